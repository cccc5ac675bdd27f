"""The CLI's one argument parser: unknown commands and options are usage errors
(exit 2) that name the closest valid ones; --help never prints another
command's help."""
import subprocess

from conftest import BIN


def sl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=60)


def test_unknown_command_names_the_closest_commands():
    out = sl("aply")
    assert out.returncode == 2
    first = out.stderr.splitlines()[0]
    assert first.startswith("error: unknown command 'aply'; did you mean 'apply'?"), first
    assert "plan" in first and "get-historical" in first  # the valid commands are listed
    assert out.stdout == ""


def test_unknown_command_does_not_fall_through_to_table_commands():
    for args in (["validate"], ["validate", "--help"], ["validate", "x", "--json"]):
        out = sl(*args)
        assert out.returncode == 2, args
        assert out.stderr.startswith("error: unknown command 'validate'"), out.stderr
        assert "missing table PATH" not in out.stderr
        assert out.stdout == "", args  # no help of another command


def test_unknown_table_command_names_the_closest():
    out = sl("table", "creat", "/tmp/x")
    assert out.returncode == 2
    assert out.stderr.startswith("error: unknown table command 'creat'; did you mean 'create'")
    assert "init" not in out.stderr.splitlines()[0]  # only table commands are offered


def test_unknown_option_names_the_closest_options():
    out = sl("apply", "--mesage", "x")
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert lines[0] == "error: unknown option --mesage"
    assert lines[1].startswith("did you mean --message?"), lines[1]
    assert "usage: stratalake apply" in out.stderr
    table = sl("read", "/tmp/nowhere", "--limt", "3")
    assert table.returncode == 2
    assert table.stderr.splitlines()[:2] == [
        "error: unknown option --limt",
        "did you mean --limit? (read takes --allow-external-paths, --columns, --filter, --help, "
        "--json, --limit, --output, --timestamp, --version)",
    ]
    assert "usage: stratalake table COMMAND PATH" in table.stderr


def test_help_and_missing_arguments():
    top = sl("--help")
    assert top.returncode == 0 and top.stdout.startswith("usage: stratalake COMMAND")
    assert sl().returncode == 2
    table_help = sl("table", "--help")
    assert table_help.returncode == 0
    assert table_help.stdout.startswith("usage: stratalake table COMMAND PATH")
    create_help = sl("create", "--help")
    assert create_help.returncode == 0 and create_help.stdout == table_help.stdout
    missing = sl("table")
    assert missing.returncode == 2 and missing.stderr.startswith("error: missing command\n")
    no_path = sl("history")
    assert no_path.returncode == 2 and no_path.stderr.startswith("error: missing table PATH\n")
    no_value = sl("plan", "--repo")
    assert no_value.returncode == 2
    assert no_value.stderr.startswith("error: option --repo needs a value\n")
