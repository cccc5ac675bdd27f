#!/usr/bin/env bash
# Installs whatever StrataLake needs and is missing on this machine; idempotent.
#   - Debian packages (compiler toolchain, RapidJSON, GoogleTest, clang tools, Java for Spark)
#   - .venv at the repository root with the pinned Python tools (scripts/requirements.txt)
#   - symlinks for the Arrow C++ shared libraries that the pyarrow wheel ships
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

apt_pkgs=(build-essential cmake ninja-build rapidjson-dev libgtest-dev
          clang clang-format clang-tidy libclang-rt-14-dev zstd openjdk-17-jre-headless
          libyaml-cpp-dev libsqlite3-dev libpq-dev postgresql
          librocksdb-dev libhiredis-dev libevent-dev libhttp-parser-dev redis-server wrk
          librdkafka-dev maven libcurl4-openssl-dev)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stamp=".venv/.requirements-installed"
if [ ! -x .venv/bin/python ] || ! cmp -s scripts/requirements.txt "$stamp"; then
  echo "bootstrap: creating .venv with pinned Python tools (scripts/requirements.txt)"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements.txt
  .venv/bin/python -c "import pyarrow; pyarrow.create_library_symlinks()"
  cp scripts/requirements.txt "$stamp"
fi
# DuckDB with its delta extension (scripts/requirements-duckdb-delta.txt) in .venv/duckdb-delta.
dstamp=".venv/duckdb-delta/.requirements-installed"
if ! cmp -s scripts/requirements-duckdb-delta.txt "$dstamp"; then
  echo "bootstrap: installing DuckDB's delta extension (scripts/requirements-duckdb-delta.txt)"
  rm -rf .venv/duckdb-delta
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --target .venv/duckdb-delta \
    -r scripts/requirements-duckdb-delta.txt
  cp scripts/requirements-duckdb-delta.txt "$dstamp"
fi
# DuckDB (the SQL engine of pipelines), pinned prebuilt library + header in .deps/duckdb.
scripts/fetch_duckdb.sh
# Feast's own SDK in .venv-feast (scripts/feast_env.sh): the Feast compatibility tests run it.
scripts/feast_env.sh >/dev/null
# Apache Kafka's jars (scripts/kafka.sh, pinned version) in .cache/kafka/: the streaming
# tests and the demo run a real broker.
scripts/kafka.sh fetch >/dev/null
# versitygw, an S3-compatible server (scripts/s3.sh, pinned version) built with `go install`
# into .cache/s3/: the object-storage tests and the demo's S3 variant run against it.
scripts/s3.sh fetch >/dev/null
# The same server's last release without conditional writes (it ignores If-None-Match):
# the commit-coordinator tests check the refusal and the coordinator against it.
S3_NO_CONDITIONAL_WRITES=1 scripts/s3.sh fetch >/dev/null
