#!/usr/bin/env bash
# Runs every test: the C++ unit/conformance/reliability tests (GoogleTest), then
# the Python interoperability tests (pytest, against deltalake and Spark).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-build}"
cd "$root"
export STRATALAKE_BIN="$root/$build/bin/stratalake"
echo "== Layers: each includes only those below it; front ends only the public API =="
python3 scripts/check_layers.py
echo "== C++ tests =="
# Throwaway PostgreSQL, Redis, Redis Cluster (3 primaries) and Kafka servers for
# the registry's PostgreSQL backend, the online store's Redis backends and the
# streaming tests, stopped (and their folders removed) however the script exits.
pg_dir="$(mktemp -d)"
redis_dir="$(mktemp -d)"
cluster_dir="$(mktemp -d)"
kafka_dir="$(mktemp -d)"
trap 'scripts/postgres.sh stop "$pg_dir" || true; scripts/redis.sh stop "$redis_dir" || true; scripts/redis_cluster.sh stop "$cluster_dir" || true; scripts/kafka.sh stop "$kafka_dir" || true' EXIT
STRATALAKE_TEST_POSTGRES_URL="$(scripts/postgres.sh start "$pg_dir")"
export STRATALAKE_TEST_POSTGRES_URL
export STRATALAKE_REQUIRE_POSTGRES=1
STRATALAKE_TEST_REDIS_URL="$(scripts/redis.sh start "$redis_dir")"
export STRATALAKE_TEST_REDIS_URL
export STRATALAKE_REQUIRE_REDIS=1
STRATALAKE_TEST_REDIS_CLUSTER="$(scripts/redis_cluster.sh start "$cluster_dir")"
export STRATALAKE_TEST_REDIS_CLUSTER
export STRATALAKE_TEST_REDIS_CLUSTER_DIR="$cluster_dir"
export STRATALAKE_REQUIRE_REDIS_CLUSTER=1
STRATALAKE_TEST_KAFKA_BROKERS="$(scripts/kafka.sh start "$kafka_dir")"
export STRATALAKE_TEST_KAFKA_BROKERS
export STRATALAKE_REQUIRE_KAFKA=1
"$build/bin/stratalake_tests" --gtest_brief=1
echo "== Fuzz targets: their corpora (seeds, every input that once crashed) and 1,000 fixed-seed mutants of each =="
fuzz_dir="$(mktemp -d)"  # a crash leaves its input there as crash-NAME
for t in "$build"/bin/fuzz_*_replay; do
  name="$(basename "$t" _replay)"
  bin="$(realpath "$t")"
  (cd "$fuzz_dir" && "$bin" --mutations 1000 "$root/fuzz/corpus/$name")
done
rm -rf "$fuzz_dir"
echo "== Python interoperability tests =="
.venv/bin/python -m pytest -q tests/python
