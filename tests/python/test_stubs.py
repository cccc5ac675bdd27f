"""python/stratalake/_core.pyi is what nanobind's stubgen (nanobind 2.9.2, pinned in
scripts/requirements.txt) writes for the built extension: regenerated here and compared,
so the checked-in stub cannot drift from the bindings. After changing the bindings run
`make stubs`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nanobind

ROOT = Path(__file__).resolve().parents[2]


def test_core_stub_matches_the_bindings(tmp_path):
    assert nanobind.__version__ == "2.9.2"
    out = tmp_path / "_core.pyi"
    subprocess.run([sys.executable, "-m", "nanobind.stubgen", "-q", "-m", "stratalake._core",
                    "-o", str(out)], check=True)
    checked_in = (ROOT / "python" / "stratalake" / "_core.pyi").read_text()
    assert out.read_text() == checked_in, "python/stratalake/_core.pyi is stale: run `make stubs`"
