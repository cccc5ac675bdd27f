"""The installed C++ package: `cmake --install` puts libstratalake.so, the public
headers and a CMake package config under a prefix, and an out-of-tree program
(examples/cpp) finds it with find_package(StrataLake), builds and runs."""
from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import BIN, ROOT

BUILD = BIN.parent.parent  # build/bin/stratalake -> build/


def run(*args, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_installed_package_builds_and_runs_an_out_of_tree_program(tmp_path):
    prefix = tmp_path / "prefix"
    run("cmake", "--install", BUILD, "--prefix", prefix, "--component", "dev")
    headers = sorted(p.name for p in (prefix / "include" / "stratalake").iterdir())
    assert "delta.h" in headers and "online.h" in headers and "init.h" in headers
    # Only the public headers: nothing of src/ is installed.
    assert not (prefix / "include" / "storage").exists()
    assert (prefix / "lib" / "libstratalake.so.0").exists()
    assert (prefix / "lib" / "cmake" / "StrataLake" / "StrataLakeConfig.cmake").exists()

    consumer = tmp_path / "consumer"
    run("cmake", "-S", ROOT / "examples" / "cpp", "-B", consumer, "-G", "Ninja",
        f"-DCMAKE_PREFIX_PATH={prefix}")
    run("cmake", "--build", consumer)
    out = run(consumer / "consumer", tmp_path / "table")
    assert out.stdout == "versions 0 1; rows at version 0: 3; rows now: 3\n"
    assert (tmp_path / "table" / "_delta_log" / "00000000000000000002.json").exists()
