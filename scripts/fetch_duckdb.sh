#!/usr/bin/env bash
# Installs the pinned DuckDB (the SQL engine of src/transform/, see docs/pipelines.md
# "Dependencies") into .deps/duckdb/: lib/libduckdb.so and include/duckdb.h.
#   - libduckdb.so: npm package @duckdb/node-bindings-linux-x64 (DuckDB's own prebuilt
#     shared library, as its Node bindings load it), its tarball from the npm registry.
#   - duckdb.h: the libduckdb-sys crate of the same DuckDB version (it bundles DuckDB's
#     sources), its .crate from the crates.io registry.
# Both are plain HTTPS downloads (curl): neither npm nor cargo is needed.
# Both archives are checked against pinned SHA-256 sums. Idempotent and offline once
# installed: nothing is fetched when .deps/duckdb/VERSION names the pinned version.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="1.5.6"
npm_pkg="@duckdb/node-bindings-linux-x64@1.5.6-r.1"
npm_sha256="1b9f82478539bb9a1d1df44bd103121a12ae52142c07158dc52b97d2ec1d69ff"
crate_version="1.10506.0"  # libduckdb-sys 1.1MMPP.x bundles DuckDB 1.M.P
crate_sha256="0aac3459f2f7f0221d5be9114fa77ff5877040c8de456d3b986a680579fe202b"
dest="$root/.deps/duckdb"

if [ -f "$dest/VERSION" ] && [ "$(cat "$dest/VERSION")" = "$version" ] &&
   [ -f "$dest/lib/libduckdb.so" ] && [ -f "$dest/include/duckdb.h" ]; then
  exit 0
fi
[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || {
  echo "fetch_duckdb: only linux x86_64 is pinned; install DuckDB $version's libduckdb.so and duckdb.h into $dest/lib and $dest/include" >&2
  exit 1
}
for tool in curl sha256sum tar; do
  command -v "$tool" >/dev/null || { echo "fetch_duckdb: '$tool' is needed to fetch DuckDB $version" >&2; exit 1; }
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "fetch_duckdb: fetching DuckDB $version ($npm_pkg, libduckdb-sys $crate_version)"

fetch() {  # fetch URL FILE SHA256
  curl -fsSL --retry 3 -o "$2" "$1" || { echo "fetch_duckdb: could not download $1" >&2; exit 1; }
  echo "$3  $2" | sha256sum -c --quiet - || { echo "fetch_duckdb: checksum mismatch for $1" >&2; exit 1; }
}
npm_name="${npm_pkg%@*}"            # @duckdb/node-bindings-linux-x64
npm_version="${npm_pkg##*@}"        # 1.5.6-r.1
tgz="$work/duckdb-bindings.tgz"
fetch "https://registry.npmjs.org/$npm_name/-/${npm_name#*/}-$npm_version.tgz" "$tgz" "$npm_sha256"
tar -xzf "$tgz" -C "$work" package/libduckdb.so

crate="$work/libduckdb-sys-$crate_version.crate"
fetch "https://static.crates.io/crates/libduckdb-sys/libduckdb-sys-$crate_version.crate" "$crate" \
  "$crate_sha256"
tar -xzf "$crate" -C "$work" "libduckdb-sys-$crate_version/duckdb.tar.gz"
tar -xzf "$work/libduckdb-sys-$crate_version/duckdb.tar.gz" -C "$work" duckdb/src/include/duckdb.h

got="$(grep -c "stable: v$version" "$work/duckdb/src/include/duckdb.h" || true)"
[ "$got" -gt 0 ] || { echo "fetch_duckdb: duckdb.h is not DuckDB $version's" >&2; exit 1; }
rm -rf "$dest"
mkdir -p "$dest/lib" "$dest/include"
cp "$work/package/libduckdb.so" "$dest/lib/"
cp "$work/duckdb/src/include/duckdb.h" "$dest/include/"
echo "$version" > "$dest/VERSION"
echo "fetch_duckdb: installed DuckDB $version in $dest"
