"""The ``stratalake`` console script: runs the CLI executable the wheel carries
(``stratalake/bin/stratalake``, the same program ``make`` builds at build/bin), so a
``pip install`` gives the whole command line (``stratalake init``, ``serve``, ...)."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def executable() -> str:
    """The path of the CLI executable inside the installed package."""
    return str(Path(__file__).resolve().parent / "bin" / "stratalake")


def main() -> None:
    exe = executable()
    if not os.access(exe, os.X_OK):
        sys.exit(f"stratalake: the CLI executable {exe} is missing from this installation; "
                 "reinstall the package (pip install --force-reinstall stratalake)")
    os.execv(exe, [exe, *sys.argv[1:]])


if __name__ == "__main__":
    main()
