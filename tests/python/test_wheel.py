"""What `pip install` gives a user (issue 23): the wheel, installed into a fresh
virtualenv with pyarrow and nothing else (no numpy, pandas or polars), writes its first
table, carries the CLI as the `stratalake` console script, creates a repository with
stratalake.init, and runs the README's "Quick start: Python" as written.

The wheel is built once per module from the incremental build folder `make python`
uses (build/python), so it costs seconds after `make`."""
from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh virtualenv holding pyarrow (linked from this one: no network) and the
    stratalake wheel built from this checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL=os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps",
                    "--disable-pip-version-check", "-C", "build-dir=build/python",
                    "-w", str(tmp / "dist"), str(ROOT)], check=True, cwd=ROOT, env=env)
    wheels = list((tmp / "dist").glob("stratalake-*.whl"))
    assert len(wheels) == 1, wheels
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    dist = importlib.metadata.distribution("pyarrow")
    for name in ("pyarrow", Path(dist._path).name):  # the package and its metadata
        (site / name).symlink_to(Path(dist._path).parent / name)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                    "-q", "--no-index", "--disable-pip-version-check", str(wheels[0])], check=True)
    return venv


def run_py(venv: Path, code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True)


def test_first_table_without_numpy(venv, tmp_path):
    proc = run_py(venv, "import numpy", tmp_path)
    assert proc.returncode == 1 and "No module named 'numpy'" in proc.stderr
    proc = run_py(venv, (
        "import pyarrow as pa, stratalake\n"
        "stratalake.write_deltalake('rt', pa.table({'id': [1, 2, 3]}))\n"
        "print(stratalake.DeltaTable('rt').to_pyarrow_table().to_pydict())\n"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "{'id': [1, 2, 3]}\n"


def test_the_cli_comes_with_the_wheel(venv, tmp_path):
    cli = venv / "bin" / "stratalake"
    proc = subprocess.run([str(cli), "init", str(tmp_path / "shop"), "--customers", "20"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "shop" / "stratalake.yaml").is_file()
    proc = subprocess.run([str(cli), "apply", "--repo", str(tmp_path / "shop")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([str(cli), "nonsense"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown command 'nonsense'" in proc.stderr


def test_init_from_python(venv, tmp_path):
    proc = run_py(venv, (
        "import pathlib, stratalake\n"
        "store = stratalake.init('shop', customers=20)\n"
        "print(store.project, sorted(p.name for p in (pathlib.Path(store.repo_path) / 'data').iterdir()))\n"
        "try:\n"
        "    stratalake.init('shop')\n"
        "except stratalake.OperationNotAllowedError as e:\n"
        "    print('again:', type(e).__name__)\n"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "shop ['churn_labels.parquet', 'clicks.jsonl', 'customer_daily_stats.parquet', 'customers.csv', "
        "'orders.csv']",
        "again: OperationNotAllowedError"]


def readme_python_blocks() -> list:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start: Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_quick_start_runs_as_written(venv, tmp_path):
    blocks = readme_python_blocks()
    assert blocks, "README.md's Quick start: Python has no python block"
    proc = run_py(venv, "\n".join(blocks), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The last line it prints is the online feature vector.
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("{'customer_id': [17], 'country': ['"), proc.stdout
    assert "'spend_30d': [" in last
