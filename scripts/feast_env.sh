#!/usr/bin/env bash
# Creates (or refreshes) .venv-feast: Feast's own Python SDK, pinned by
# scripts/requirements-feast.txt, in a virtualenv of its own so that its
# dependencies (pandas 2, a newer pyarrow) never meet ours. Prints the path of its
# python. Idempotent: a stamp skips the install when the pins have not changed.
#   scripts/feast_env.sh            # -> /path/to/repo/.venv-feast/bin/python
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${STRATALAKE_FEAST_VENV:-$root/.venv-feast}"
req="$root/scripts/requirements-feast.txt"
stamp="$venv/.requirements-installed"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$stamp"; then
  echo "feast_env: creating $venv with Feast's SDK (scripts/requirements-feast.txt)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
  cp "$req" "$stamp"
fi
echo "$venv/bin/python"
