"""Runs one Python transformation of the definition files for the CLI.

``python -m stratalake.transform_worker DIR``: DIR holds ``request.json``
(root, file, function, kind, name, inputs, output, error) and the inputs as
Arrow IPC files; the function's result is written to DIR/output as an Arrow IPC
file. When the function (or importing its file) fails, the error's one-line text
("ValueError: ...") goes to DIR/error, the traceback to standard error, and the
exit status is 1. The CLI (src/transform/python_transform.cc) starts it.
"""
from __future__ import annotations

import json
import os
import sys
import traceback


def main(argv: list) -> int:
    if len(argv) != 2:
        print("usage: python -m stratalake.transform_worker DIR", file=sys.stderr)
        return 2
    folder = argv[1]
    with open(os.path.join(folder, "request.json"), encoding="utf-8") as f:
        request = json.load(f)
    try:
        import pyarrow as pa
        import pyarrow.ipc

        from .pipelines import call_registered_function

        tables = []
        for name in request["inputs"]:
            with pa.memory_map(os.path.join(folder, name)) as source:
                tables.append(pa.ipc.open_file(source).read_all())
        result = call_registered_function(request, tables)
        with pa.OSFile(os.path.join(folder, request["output"]), "wb") as sink:
            with pa.ipc.new_file(sink, result.schema) as writer:
                writer.write_table(result)
        return 0
    except BaseException as e:  # noqa: B902 - every failure is reported, SystemExit too
        traceback.print_exc()
        text = f"{type(e).__name__}: {e}"
        with open(os.path.join(folder, request["error"]), "w", encoding="utf-8") as f:
            f.write(text)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
