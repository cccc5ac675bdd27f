#!/usr/bin/env bash
# Runs every test: the C++ unit/conformance/reliability tests (GoogleTest), then
# the Python interoperability tests (pytest, against deltalake and Spark).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-build}"
cd "$root"
export STRATALAKE_BIN="$root/$build/bin/stratalake"
echo "== C++ tests =="
# A throwaway PostgreSQL server for the registry's PostgreSQL backend tests,
# stopped (and its folder removed) however the script exits.
pg_dir="$(mktemp -d)"
trap 'scripts/postgres.sh stop "$pg_dir" || true' EXIT
STRATALAKE_TEST_POSTGRES_URL="$(scripts/postgres.sh start "$pg_dir")"
export STRATALAKE_TEST_POSTGRES_URL
export STRATALAKE_REQUIRE_POSTGRES=1
"$build/bin/stratalake_tests" --gtest_brief=1
echo "== Python interoperability tests =="
.venv/bin/python -m pytest -q tests/python
