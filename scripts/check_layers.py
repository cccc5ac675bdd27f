#!/usr/bin/env python3
"""Checks that includes follow the layers of docs/architecture.md.

- A layer under src/ includes only its own headers, those of the layers below it, and
  public headers (include/stratalake/) of itself and the layers below it.
- Front ends (src/cli/, python/src/, bench/, examples/) include only public headers.
- Tests (*_test.cc, tests/) and fuzz targets (fuzz/) are white-box: not checked.

Prints every violation as FILE:LINE: what and exits 1 if there is any.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each layer and the layers it may use (transitively closed below).
BELOW = {
    "common": [],
    "expr": [],
    "storage": ["common", "expr"],
    "registry": ["common", "expr"],
    "repo": ["registry", "storage"],
    "ingest": ["storage"],
    "retrieval": ["repo", "storage"],
    "online": ["ingest", "retrieval"],
    "server": ["online"],
    "flight": ["retrieval"],
    "sample": ["repo", "ingest"],
    "stream": ["online"],
    "transform": ["repo", "storage"],
}
# The layer that implements each public header.
PUBLIC = {
    "status": "common", "clock": "common", "progress": "common", "warnings": "common",
    "expression": "expr",
    "delta": "storage", "object_store": "storage",
    "registry": "registry",
    "on_demand": "registry",
    "repo": "repo",
    "init": "sample",
    "ingest": "ingest",
    "retrieval": "retrieval",
    "online": "online",
    "server": "server",
    "offline_server": "flight",
    "stream": "stream",
    "transform": "transform",
}
FRONT_ENDS = ["src/cli", "python/src", "bench"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def allowed(layer: str) -> set[str]:
    out, todo = set(), [layer]
    while todo:
        l = todo.pop()
        if l not in out:
            out.add(l)
            todo.extend(BELOW[l])
    return out


def includes(path: Path):
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        m = INCLUDE.match(line)
        if m:
            yield n, m.group(1)


def main() -> int:
    problems = []
    for layer in BELOW:
        ok = allowed(layer)
        for f in sorted((ROOT / "src" / layer).glob("**/*")):
            if f.suffix not in (".h", ".cc") or "_test." in f.name or "_test_" in f.name:
                continue  # tests and their helpers are white-box
            for n, inc in includes(f):
                head, _, rest = inc.partition("/")
                if head == "stratalake":
                    used = PUBLIC.get(Path(rest).stem)
                    what = f"public header {inc}"
                else:
                    used = head if head in BELOW else None
                    what = f"{head}/ internals ({inc})"
                if used is None:
                    problems.append(f"{f.relative_to(ROOT)}:{n}: unknown header {inc}")
                elif used not in ok:
                    problems.append(f"{f.relative_to(ROOT)}:{n}: layer '{layer}' uses {what} "
                                    f"of layer '{used}', which is not below it")
    for front in FRONT_ENDS:
        for f in sorted((ROOT / front).glob("**/*")):
            if f.suffix not in (".h", ".cc"):
                continue
            for n, inc in includes(f):
                head = inc.partition("/")[0]
                if head in BELOW or (head == "stratalake" and Path(inc).stem not in PUBLIC):
                    problems.append(f"{f.relative_to(ROOT)}:{n}: front end includes {inc}; "
                                    "use (or grow) the public API in include/stratalake/")
    for p in problems:
        print(p)
    print(f"check_layers: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
