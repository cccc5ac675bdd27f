#!/usr/bin/env bash
# Runs every test: the C++ unit/conformance/reliability tests (GoogleTest), then
# the Python interoperability tests (pytest, against deltalake and Spark).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-build}"
cd "$root"
export STRATALAKE_BIN="$root/$build/bin/stratalake"
echo "== C++ tests =="
"$build/bin/stratalake_tests" --gtest_brief=1
echo "== Python interoperability tests =="
.venv/bin/python -m pytest -q tests/python
