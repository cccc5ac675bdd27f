"""Reliability of the Delta engine through the CLI.

a) crash safety: a writer killed with SIGKILL at random points leaves a table that opens
   at a consistent version and reads exactly the rows of the commits that completed; an
   idempotent (--app-id) retry after a kill lands its rows exactly once;
b) concurrency: concurrent blind appends, delete vs append, delete vs delete of one file,
   and a mix of appends/deletes/updates/optimize checked against a model;
c) damaged logs: every damage gives a clean error (exit code, "error: ", the damaged file
   named and what is wrong), except a garbage `_last_checkpoint`, which is only a hint.

Randomness is seeded, so a run is reproducible up to process timing.
"""
from __future__ import annotations

import errno
import json
import random
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import BIN

SCHEMA = "id:long not null,grp:long,val:string"
LOG = "_delta_log"
COMMIT_RE = re.compile(r"^(\d{20})\.json$")


# ---------------------------------------------------------------- helpers

def _argv(*args: str) -> list[str]:
    return [str(BIN), "table", *map(str, args)]


def _retrying(start):
    """Others rebuild the binary while tests run: wait (up to 3 minutes) while it is
    missing or being replaced, then start the process."""
    deadline = time.monotonic() + 180
    while True:
        try:
            return start()
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ETXTBSY, errno.EACCES) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def cli(*args: str) -> subprocess.CompletedProcess:
    return _retrying(lambda: subprocess.run(_argv(*args), capture_output=True, text=True))


def ok(*args: str) -> subprocess.CompletedProcess:
    proc = cli(*args)
    assert proc.returncode == 0, f"stratalake table {' '.join(map(str, args))} -> {proc.returncode}\n{proc.stderr}"
    return proc


def ok_json(*args: str):
    return json.loads(ok(*args, "--json").stdout)


def popen(*args: str) -> subprocess.Popen:
    return _retrying(lambda: subprocess.Popen(_argv(*args), stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True))


def rows_file(path: Path) -> list[tuple]:
    t = pq.read_table(path)
    return sorted(zip(t.column("id").to_pylist(), t.column("grp").to_pylist(),
                      t.column("val").to_pylist()))


def read_rows(table: Path, out: Path, version: int | None = None) -> list[tuple]:
    args = ["read", table, "--output", out]
    if version is not None:
        args += ["--version", str(version)]
    ok(*args)
    return rows_file(out)


def model_rows(state: dict[int, tuple]) -> list[tuple]:
    return sorted(state.values())


def write_input(path: Path, ids: list[int], tag: str) -> dict[int, tuple]:
    rows = {i: (i, i % 5, tag) for i in ids}
    pq.write_table(pa.table({"id": pa.array(ids, pa.int64()),
                             "grp": pa.array([i % 5 for i in ids], pa.int64()),
                             "val": pa.array([tag] * len(ids), pa.string())}), path)
    return rows


def commit_versions(table: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in (table / LOG).iterdir() if (m := COMMIT_RE.match(p.name)))


def create_table(table: Path, *props: str):
    args = ["create", table, "--schema", SCHEMA]
    for p in props:
        args += ["--property", p]
    assert ok_json(*args)["version"] == 0


def ids_sql(ids) -> str:
    return "id IN (" + ", ".join(str(i) for i in sorted(ids)) + ")"


# ---------------------------------------------------------------- a) crash safety

KILLS_WANTED = 50
MAX_STEPS = 150


def test_sigkill_writer_leaves_consistent_table(tmp_path):
    rng = random.Random(20240611)
    table = tmp_path / "t"
    out = tmp_path / "out.parquet"
    inputs = tmp_path / "in"
    inputs.mkdir()
    # A short checkpoint interval puts checkpoint writes (and _last_checkpoint renames)
    # inside the window the kills hit.
    create_table(table, "delta.checkpointInterval=4")

    # Temporary files left by an interrupted writer must never count as commits.
    (table / LOG / f".{'0' * 8}-dead-4bee-8eef-{'0' * 12}.tmp").write_text('{"commitInfo":{"timest')
    (table / LOG / f"{1:020d}.json.tmp").write_text(
        '{"add":{"path":"ghost.parquet","partitionValues":{},"size":1,"modificationTime":1,"dataChange":true}}\n')

    state: dict[int, tuple] = {}
    history = {0: []}  # committed version -> rows
    version = 0
    next_id = 0

    # How long an uninterrupted append takes here: kill delays are drawn around it.
    durations = []
    for k in range(3):
        ids = list(range(next_id, next_id + 4))
        next_id += 4
        rows = write_input(inputs / f"cal{k}.parquet", ids, f"c{k}")
        t0 = time.monotonic()
        res = ok_json("write", table, "--input", inputs / f"cal{k}.parquet")
        durations.append(time.monotonic() - t0)
        version += 1
        assert res["version"] == version
        state.update(rows)
        history[version] = model_rows(state)
    typical = sorted(durations)[1]

    kills = committed_kills = lost_kills = 0
    outcomes = []
    step = 0
    while kills < KILLS_WANTED and step < MAX_STEPS:
        step += 1
        op = rng.choices(["append", "delete", "update", "optimize"], [6, 2, 2, 1])[0]
        if not state:
            op = "append"
        new_state = dict(state)
        if op == "append":
            ids = list(range(next_id, next_id + rng.randint(2, 8)))
            next_id += len(ids)
            f = inputs / f"s{step}.parquet"
            new_state.update(write_input(f, ids, f"a{step}"))
            args = ["write", table, "--input", f]
        elif op == "delete":
            victims = rng.sample(sorted(state), min(len(state), rng.randint(1, 3)))
            for i in victims:
                del new_state[i]
            args = ["delete", table, "--where", ids_sql(victims)]
        elif op == "update":
            targets = rng.sample(sorted(state), min(len(state), rng.randint(1, 3)))
            for i in targets:
                new_state[i] = (i, i % 5, f"u{step}")
            args = ["update", table, "--where", ids_sql(targets), "--set", f"val = 'u{step}'"]
        else:
            args = ["optimize", table]

        # Process start-up (loading Arrow) is most of a command's time: aim past it.
        delay = rng.uniform(0.35, 1.15) * typical
        proc = popen(*args)
        time.sleep(delay)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        rc = proc.wait()
        stderr = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        if killed:
            assert rc in (-signal.SIGKILL, 0), (step, rc, stderr)
        else:
            assert rc == 0, f"step {step} {args}: uninterrupted command failed ({rc}):\n{stderr}"

        # The table opens at a consistent version...
        desc = ok_json("describe", table)
        v = desc["version"]
        if rc == 0 and not killed:
            # Completed: it committed, unless it was a no-op (e.g. optimize of one file).
            assert v in (version, version + 1), (step, op, version, v)
            if v == version:
                assert new_state == state, f"step {step}: {op} exited 0 without committing"
        else:
            assert v in (version, version + 1), f"step {step}: killed {op} at v{version} left v{v}"
        committed = v == version + 1
        if committed:
            state = new_state
            version = v
            history[v] = model_rows(state)
        if killed:
            kills += 1
            committed_kills += committed
            lost_kills += not committed
        # Follow the machine's speed (it changes under load): a command that finished
        # before its kill shortens the next delays, a kill lengthens them, so about two
        # kills in three land whatever the calibration above measured.
        typical *= 1.05 if killed else 0.9
        outcomes.append((step, op, round(delay * 1000), killed, committed))

        # ...whose log holds exactly versions 0..v...
        assert commit_versions(table) == list(range(version + 1)), f"step {step}"
        # ...and which reads exactly the rows of the commits that completed.
        assert read_rows(table, out) == history[version], f"step {step}: {op} killed={killed}"
        assert desc["num_records"] == len(state), (step, desc)

    assert kills >= KILLS_WANTED, f"only {kills} kills landed in {step} steps: {outcomes}"
    # The kills hit both before and after the commit point (else they tested nothing).
    assert lost_kills > 0 and committed_kills > 0, outcomes
    live = {f["path"] for f in ok_json("files", table)["files"]}
    orphans = [p.name for p in table.glob("*.parquet") if p.name not in live]
    print(f"\n{step} steps, {kills} kills: {committed_kills} committed, {lost_kills} not; "
          f"final version {version}; kill delays scaled to {typical * 1000:.0f} ms at the end; "
          f"{len(orphans)} unreferenced data files (from kills or removes); "
          f"tmp leftovers in _delta_log: {len(list((table / LOG).glob('.*.tmp'))) - 1}")

    # Every committed version time-travels to its rows (JSON replay and checkpoints).
    for v, rows in sorted(history.items()):
        assert read_rows(table, out, v) == rows, f"time travel to version {v}"

    # Leftovers of killed writers do not stop later writers.
    ids = list(range(next_id, next_id + 3))
    state.update(write_input(inputs / "last.parquet", ids, "last"))
    assert ok_json("write", table, "--input", inputs / "last.parquet")["version"] == version + 1
    assert read_rows(table, out) == model_rows(state)
    ok("checkpoint", table)
    assert read_rows(table, out) == model_rows(state)


def test_sigkill_then_idempotent_retry_is_exactly_once(tmp_path):
    """A writer killed at a random point and retried with the same --app-id/--app-version
    lands its rows exactly once: the retry is a no-op iff the killed run committed."""
    rng = random.Random(99)
    table = tmp_path / "t"
    out = tmp_path / "out.parquet"
    create_table(table)
    f0 = tmp_path / "cal.parquet"
    write_input(f0, [10_000], "cal")
    t0 = time.monotonic()
    ok("write", table, "--input", f0)
    typical = time.monotonic() - t0
    state = {10_000: (10_000, 0, "cal")}
    version = 1
    outcomes = []
    for n in range(25):
        f = tmp_path / f"in{n}.parquet"
        rows = write_input(f, list(range(n * 10, n * 10 + 4)), f"n{n}")
        args = ["write", table, "--input", f, "--app-id", "loader", "--app-version", str(n)]
        proc = popen(*args)
        time.sleep(rng.uniform(0.35, 1.15) * typical)
        proc.kill()
        rc = proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        v = ok_json("describe", table)["version"]
        assert v in (version, version + 1), (n, version, v)
        first_committed = v == version + 1
        retry = ok_json(*args)
        assert retry["noop"] is first_committed, (n, rc, retry)
        assert retry["version"] == version + 1, (n, retry)
        version += 1
        state.update(rows)
        outcomes.append((n, rc, first_committed))
        assert read_rows(table, out) == model_rows(state), n
    desc = ok_json("describe", table)
    assert desc["app_transactions"] == {"loader": 24}
    assert commit_versions(table) == list(range(version + 1))
    assert any(not c for *_, c in outcomes), outcomes


# ---------------------------------------------------------------- b) concurrency

def _run_workers(jobs: list[list[list[str]]]) -> list[list[subprocess.CompletedProcess]]:
    """Each job is a list of commands run one after another; the jobs run concurrently."""
    results: list[list] = [[] for _ in jobs]
    barrier = threading.Barrier(len(jobs))

    def work(k):
        barrier.wait()
        for args in jobs[k]:
            results[k].append(cli(*args))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _commit_user_metadata(table: Path, v: int):
    for line in (table / LOG / f"{v:020d}.json").read_text().splitlines():
        action = json.loads(line)
        if "commitInfo" in action:
            return action["commitInfo"].get("userMetadata")
    raise AssertionError(f"commit {v} has no commitInfo")


def test_concurrent_appends_are_all_committed_once(tmp_path):
    workers, per_worker, rows_per = 4, 15, 5
    table = tmp_path / "t"
    out = tmp_path / "out.parquet"
    create_table(table)
    appends: dict[str, dict[int, tuple]] = {}
    jobs = []
    for w in range(workers):
        job = []
        for i in range(per_worker):
            tag = f"w{w}-{i}"
            base = (w * per_worker + i) * rows_per
            f = tmp_path / f"{tag}.parquet"
            appends[tag] = write_input(f, list(range(base, base + rows_per)), tag)
            job.append(["write", table, "--input", f, "--user-metadata", tag, "--json"])
        jobs.append(job)

    results = _run_workers(jobs)
    committed_versions = []
    for w, procs in enumerate(results):
        for i, p in enumerate(procs):
            assert p.returncode == 0, f"append w{w}-{i} failed ({p.returncode}):\n{p.stderr}"
            committed_versions.append(json.loads(p.stdout)["version"])

    n = workers * per_worker
    # Contiguous versions; one commit per append, plus the creation.
    assert commit_versions(table) == list(range(n + 1))
    assert sorted(committed_versions) == list(range(1, n + 1))
    assert ok_json("describe", table)["version"] == n

    # Each commit holds exactly the append that reported it, one add each.
    by_version = {}
    for v in range(1, n + 1):
        tag = _commit_user_metadata(table, v)
        assert tag in appends and tag not in by_version.values(), (v, tag)
        by_version[v] = tag
        actions = [json.loads(line) for line in (table / LOG / f"{v:020d}.json").read_text().splitlines()]
        assert sum("add" in a for a in actions) == 1 and not any("remove" in a for a in actions), v
    for w, procs in enumerate(results):
        for i, p in enumerate(procs):
            assert by_version[json.loads(p.stdout)["version"]] == f"w{w}-{i}"

    # Every row of every append is present exactly once, now and at each checkpointed
    # or in-between version.
    expected_all = sorted(r for rows in appends.values() for r in rows.values())
    actual = read_rows(table, out)
    assert len(actual) == len(set(actual)) == n * rows_per
    assert actual == expected_all
    assert (table / LOG / f"{50:020d}.checkpoint.parquet").exists()
    for v in (1, 9, 10, 11, 35, n):
        expected = sorted(r for u in range(1, v + 1) for r in appends[by_version[u]].values())
        assert read_rows(table, out, v) == expected, f"version {v}"


def test_concurrent_delete_and_appends_both_succeed(tmp_path):
    table = tmp_path / "t"
    out = tmp_path / "out.parquet"
    create_table(table)
    state: dict[int, tuple] = {}
    for k in range(4):  # initial rows 0..39 in 4 files
        f = tmp_path / f"init{k}.parquet"
        state.update(write_input(f, list(range(k * 10, k * 10 + 10)), f"i{k}"))
        ok("write", table, "--input", f)

    rng = random.Random(7)
    deletes = [rng.sample(range(40), 3) for _ in range(6)]
    deleted = {i for d in deletes for i in d}
    delete_job = [["delete", table, "--where", ids_sql(d), "--json"] for d in deletes]
    append_jobs = []
    for w in range(3):
        job = []
        for i in range(8):  # appended ids never match a delete predicate
            base = 1000 + (w * 8 + i) * 4
            f = tmp_path / f"a{w}-{i}.parquet"
            state.update(write_input(f, list(range(base, base + 4)), f"a{w}-{i}"))
            job.append(["write", table, "--input", f, "--json"])
        append_jobs.append(job)
    for i in deleted:
        del state[i]

    results = _run_workers([delete_job] + append_jobs)
    for procs in results:
        for p in procs:
            assert p.returncode == 0, f"{p.args[2:4]} failed ({p.returncode}):\n{p.stderr}"
    n_commits = 1 + 4 + len(deletes) + 3 * 8
    assert commit_versions(table) == list(range(n_commits))
    assert read_rows(table, out) == model_rows(state)


def test_concurrent_deletes_of_one_file(tmp_path):
    out = tmp_path / "out.parquet"
    rounds, conflicts = 12, 0
    for r in range(rounds):
        table = tmp_path / f"t{r}"
        create_table(table)
        f = tmp_path / f"in{r}.parquet"
        state = write_input(f, list(range(10)), "x")
        ok("write", table, "--input", f)  # one file holds every row
        a, b = 2 + r % 3, 7
        p1 = popen("delete", table, "--where", f"id = {a}", "--json")
        p2 = popen("delete", table, "--where", f"id = {b}", "--json")
        done = []
        for p, victim in ((p1, a), (p2, b)):
            stdout, stderr = p.communicate()
            done.append((p.returncode, stdout, stderr, victim))
        for rc, _, stderr, _ in done:
            assert rc in (0, 4), (r, rc, stderr)
            if rc == 4:
                assert stderr.startswith("error: ") and "Concurrent" in stderr, stderr
                assert "concurrent commit (version 2)" in stderr, stderr
        assert any(rc == 0 for rc, *_ in done), done
        for rc, _, _, victim in done:
            if rc == 0:
                del state[victim]
        conflicts += sum(rc == 4 for rc, *_ in done)
        winners = sum(rc == 0 for rc, *_ in done)
        assert commit_versions(table) == list(range(2 + winners))
        assert read_rows(table, out) == model_rows(state), (r, done)
    print(f"\n{conflicts} of {rounds} rounds had a conflicting delete")


def test_concurrent_mixed_operations_are_serializable(tmp_path):
    """Appends, deletes, updates and optimize at once. Appends are blind and must all
    succeed; the others may lose with exit code 4 and a "Concurrent..." error. The ops
    touch disjoint rows, so the final table is the model of the ops that succeeded."""
    table = tmp_path / "t"
    out = tmp_path / "out.parquet"
    create_table(table)
    state: dict[int, tuple] = {}
    for k in range(6):  # initial rows 0..59 in 6 files
        f = tmp_path / f"init{k}.parquet"
        state.update(write_input(f, list(range(k * 10, k * 10 + 10)), f"i{k}"))
        ok("write", table, "--input", f)
    ids = list(range(60))
    random.Random(5).shuffle(ids)
    deletes = [ids[k * 2:k * 2 + 2] for k in range(8)]             # ids[0:16]
    updates = [ids[16 + k * 2:16 + k * 2 + 2] for k in range(8)]   # ids[16:32]
    jobs = [
        [["delete", table, "--where", ids_sql(d), "--json"] for d in deletes],
        [["update", table, "--where", ids_sql(u), "--set", f"val = 'u{k}'", "--json"]
         for k, u in enumerate(updates)],
        [["optimize", table, "--json"] for _ in range(4)],
    ]
    appended: dict[int, tuple] = {}
    for w in range(2):
        job = []
        for i in range(8):
            base = 1000 + (w * 8 + i) * 3
            f = tmp_path / f"a{w}-{i}.parquet"
            appended.update(write_input(f, list(range(base, base + 3)), f"a{w}-{i}"))
            job.append(["write", table, "--input", f, "--json"])
        jobs.append(job)

    results = _run_workers(jobs)
    commits, conflicts = [], 0
    for j, procs in enumerate(results):
        for k, p in enumerate(procs):
            if p.returncode == 4 and j < 3:
                assert p.stderr.startswith("error: ") and "Concurrent" in p.stderr, p.stderr
                assert "reload the table and retry" in p.stderr, p.stderr
                conflicts += 1
                continue
            assert p.returncode == 0, f"{p.args[2:5]} failed ({p.returncode}):\n{p.stderr}"
            res = json.loads(p.stdout)
            if not res["noop"]:
                commits.append(res["version"])
            if j == 0:
                for i in deletes[k]:
                    del state[i]
            elif j == 1:
                for i in updates[k]:
                    state[i] = (i, i % 5, f"u{k}")
    state.update(appended)
    assert sorted(commits) == list(range(7, 7 + len(commits))), commits
    assert commit_versions(table) == list(range(7 + len(commits)))
    assert read_rows(table, out) == model_rows(state)
    print(f"\n{len(commits)} commits, {conflicts} conflicts")


# ---------------------------------------------------------------- c) damaged tables

@pytest.fixture(scope="module")
def base_table(tmp_path_factory) -> tuple[Path, dict[int, list]]:
    """12 appends (checkpoint at version 10) and the rows of every version."""
    root = tmp_path_factory.mktemp("base")
    table = root / "t"
    create_table(table)
    state: dict[int, tuple] = {}
    rows = {0: []}
    for v in range(1, 13):
        f = root / f"in{v}.parquet"
        state.update(write_input(f, list(range(v * 10, v * 10 + 3)), f"v{v}"))
        assert ok_json("write", table, "--input", f)["version"] == v
        rows[v] = model_rows(state)
    assert (table / LOG / f"{10:020d}.checkpoint.parquet").exists()
    assert (table / LOG / "_last_checkpoint").exists()
    return table, rows


def _commit(v: int) -> str:
    return f"{LOG}/{v:020d}.json"


CHECKPOINT = f"{LOG}/{10:020d}.checkpoint.parquet"


def _truncate_mid_line(p: Path):
    data = p.read_bytes()
    second = data.index(b"\n") + 1
    p.write_bytes(data[: second + (data.index(b"\n", second) - second) // 2])


def _garbage_line(p: Path):
    p.write_bytes(p.read_bytes() + b"}{ this is not json\n")


def _trailing_garbage(p: Path):
    p.write_bytes(p.read_bytes().rstrip(b"\n") + b"garbage\n")


def _binary_garbage(p: Path):
    p.write_bytes(random.Random(3).randbytes(300))


def _footer_garbage(p: Path):
    data = bytearray(p.read_bytes())
    footer_len = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - footer_len
    data[start:start + footer_len] = b"\xff" * footer_len
    p.write_bytes(bytes(data))


def _deeply_nested(p: Path):
    p.write_bytes(b'{"add": ' + b"[" * 150000 + b"\n")


# name -> (file to damage, damage, read args, exit code, words the message must hold)
DAMAGE = {
    "commit-truncated-mid-line": (_commit(12), _truncate_mid_line, [], 7, ["line 2", "invalid JSON"]),
    "commit-garbage-line": (_commit(11), _garbage_line, [], 7, ["line 3", "invalid JSON"]),
    "commit-trailing-garbage": (_commit(12), _trailing_garbage, [], 7, ["line 2", "JSON"]),
    "commit-binary-garbage": (_commit(12), _binary_garbage, [], 7, ["line 1"]),
    # 150k '[' crashed every reader (RapidJSON's recursive parser); issue 24.
    "commit-deeply-nested": (_commit(12), _deeply_nested, [], 7,
                             ["line 1", "JSON nested deeper than 256 levels"]),
    "commit-empty": (_commit(12), lambda p: p.write_bytes(b""), [], 7, ["empty"]),
    "commit-blank-lines": (_commit(12), lambda p: p.write_bytes(b"\n\n"), [], 7, ["empty"]),
    "commit-before-checkpoint-time-travel": (_commit(3), _truncate_mid_line, ["--version", "5"], 7,
                                             ["line 2", "invalid JSON"]),
    "commit-missing-after-checkpoint": (_commit(11), Path.unlink, [], 7, ["not contiguous", "missing"]),
    "commit-missing-time-travel": (_commit(4), Path.unlink, ["--version", "6"], 7,
                                   ["not contiguous", "missing"]),
    "checkpoint-truncated": (CHECKPOINT, lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
                             [], 7, ["corrupt checkpoint"]),
    "checkpoint-garbage": (CHECKPOINT, _binary_garbage, [], 7, ["corrupt checkpoint"]),
    "checkpoint-empty": (CHECKPOINT, lambda p: p.write_bytes(b""), [], 7, ["corrupt checkpoint"]),
    "checkpoint-footer-garbage": (CHECKPOINT, _footer_garbage, [], 7, ["corrupt checkpoint"]),
}


def _assert_clean_error(proc, code, path: Path, words):
    assert proc.returncode != 0, f"exit 0 on a damaged table; stdout:\n{proc.stdout}"
    assert proc.returncode > 0, f"killed by a signal ({proc.returncode}):\n{proc.stderr}"
    assert proc.stderr.startswith("error: "), proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert str(path) in proc.stderr, f"the message does not name {path}:\n{proc.stderr}"
    for w in words:
        assert w in proc.stderr, f"the message does not say {w!r}:\n{proc.stderr}"
    assert proc.stdout == ""


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_log_gives_clear_error(base_table, tmp_path, case):
    src, rows = base_table
    rel, damage, extra, code, words = DAMAGE[case]
    table = tmp_path / "t"
    shutil.copytree(src, table)
    damage(table / rel)
    out = tmp_path / "out.parquet"
    for args in (["describe", table, *extra, "--json"], ["read", table, *extra, "--output", out],
                 ["files", table, *extra, "--json"]):
        _assert_clean_error(cli(*args), code, table / rel, words)
    # A writer must refuse to commit on top of a damaged log (unless it is time travel only).
    if not extra:
        f = tmp_path / "more.parquet"
        write_input(f, [9999], "more")
        _assert_clean_error(cli("write", table, "--input", f), code, table / rel, words)
        assert not (table / _commit(13)).exists()


@pytest.mark.parametrize("content", [b"garbage{{{\n", b"", b'{"version":99,"size":3}',
                                     b'{"version":"ten"}', b'{"version":4}'])
def test_garbage_last_checkpoint_is_only_a_hint(base_table, tmp_path, content):
    src, rows = base_table
    table = tmp_path / "t"
    shutil.copytree(src, table)
    (table / LOG / "_last_checkpoint").write_bytes(content)
    out = tmp_path / "out.parquet"
    assert ok_json("describe", table)["version"] == 12
    assert read_rows(table, out) == rows[12]
    assert read_rows(table, out, 11) == rows[11]
    assert read_rows(table, out, 7) == rows[7]
    # And the table stays writable.
    f = tmp_path / "more.parquet"
    extra = write_input(f, [9999], "more")
    assert ok_json("write", table, "--input", f)["version"] == 13
    assert read_rows(table, out) == sorted(rows[12] + list(extra.values()))


def test_damaged_paths(tmp_path):
    missing = tmp_path / "nope"
    _assert_clean_error(cli("describe", missing, "--json"), 3, missing, ["no Delta table", "does not exist"])
    _assert_clean_error(cli("read", missing), 3, missing, ["no Delta table", "does not exist"])

    a_file = tmp_path / "data.parquet"
    write_input(a_file, [1], "x")
    for cmd in ("describe", "read", "history"):
        _assert_clean_error(cli(cmd, a_file), 3, a_file, ["no Delta table"])

    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    _assert_clean_error(cli("describe", empty_dir), 3, empty_dir, ["no Delta table", "_delta_log"])

    empty_log = tmp_path / "emptylog"
    (empty_log / LOG).mkdir(parents=True)
    _assert_clean_error(cli("describe", empty_log), 3, empty_log, ["no Delta table", "no commits"])


def test_delta_log_that_is_a_file(tmp_path):
    table = tmp_path / "t"
    table.mkdir()
    (table / LOG).write_text("not a folder\n")
    proc = cli("describe", table, "--json")
    assert proc.returncode in (3, 7), proc.stderr
    assert proc.stderr.startswith("error: ") and str(table / LOG) in proc.stderr, proc.stderr
    assert re.search(r"not a (directory|folder)", proc.stderr), proc.stderr


def test_deeply_nested_log_line_is_a_corrupt_log_error_in_python(base_table, tmp_path):
    """The SDK reading a log line nested 150k deep raised a segfault in the interpreter."""
    from stratalake import CorruptLogError, DeltaTable
    src, _ = base_table
    table = tmp_path / "t"
    shutil.copytree(src, table)
    _deeply_nested(table / _commit(12))
    with pytest.raises(CorruptLogError) as e:
        DeltaTable(str(table)).to_pandas()
    assert str(e.value) == (
        f"corrupt Delta log file '{table / _commit(12)}' line 1: JSON nested deeper than 256 "
        "levels at byte 263 (arrays and objects inside each other) (not a Delta log file)")
