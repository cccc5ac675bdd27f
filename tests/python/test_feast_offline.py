"""Feast's own SDK against StrataLake's offline server (`stratalake serve-offline`).

A Feast repository (feast_compat/example_repo.py) is converted with
`stratalake import-feast` and applied; its feature_store.yaml then points at
`serve-offline` as a remote offline store (offline_store: {type: remote}).
Feast's client (.venv-feast, scripts/feast_env.sh) applies the repository
(validate_data_source over Flight) and runs get_historical_features; its
to_arrow() must equal, and its to_df() equal with pandas, what `stratalake
get-historical` writes for the same entity rows in the same run. Unsupported
calls and malformed Flight requests get clear errors and the server lives on.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as fl
import pyarrow.parquet as pq
import pytest

from conftest import BIN, ROOT

sys.path.insert(0, str(Path(__file__).parent / "feast_compat"))
import example_repo  # noqa: E402

CLIENT = Path(__file__).parent / "feast_compat" / "feast_client.py"
UTC = dt.timezone.utc


def feast_python() -> str:
    out = subprocess.run(["bash", str(ROOT / "scripts" / "feast_env.sh")], check=True,
                         capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def cli(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN), *args], capture_output=True, text=True)
    assert proc.returncode == 0, f"stratalake {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


CASES = [
    {"name": "features", "full_feature_names": False,
     "features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips",
                  "customer_profile:current_balance", "customer_profile:segment"]},
    {"name": "service_full_names", "full_feature_names": True,
     "feature_service": "driver_activity"},
    {"name": "aliased_service", "full_feature_names": True, "feature_service": "driver_aliased"},
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("feast_offline")
    feast_repo = example_repo.write_repo(base / "feast_repo")
    ours = base / "ours"
    cli("import-feast", str(feast_repo), "--out", str(ours), "--feast-python", feast_python())
    cli("apply", "--repo", str(ours))
    server = subprocess.Popen([str(BIN), "serve-offline", "--repo", str(ours), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    m = re.search(r"grpc\+tcp://127\.0\.0\.1:(\d+)", line)
    assert m, (line, server.stderr.read() if server.poll() is not None else "")
    port = int(m.group(1))
    example_repo.write_feature_store_yaml(
        feast_repo, f"offline_store:\n  type: remote\n  host: 127.0.0.1\n  port: {port}\n")
    yield {"base": base, "feast_repo": feast_repo, "ours": ours, "port": port, "server": server}
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=30) == 0
    assert "stopped" in server.stdout.read()


def write_entities(path: Path) -> None:
    t = lambda h: dt.datetime(2026, 6, 1, tzinfo=UTC) + dt.timedelta(hours=h)  # noqa: E731
    hours = [0, 3, 12, 13, 30, 47, 50, 71, 100, 12, 5, 26]
    pq.write_table(pa.table({
        "driver_id": pa.array([1001, 1002, 1003, 1001, 1002, 1003, 1001, 1002, 1003, 1001, 9999,
                               1002], pa.int64()),
        "customer_id": pa.array(["c1", "c2", "c3", "c2", None, "c1", "c3", "c9", "c1", "c1",
                                 "c2", "c3"]),
        "event_timestamp": pa.array([t(h) for h in hours], pa.timestamp("ns", tz="UTC")),
        "label": pa.array([float(i % 2) for i in range(len(hours))]),
    }), path)


def test_feast_client_gets_what_the_cli_gets(served):
    base = served["base"]
    out = base / "out"
    out.mkdir()
    entities = base / "entities.parquet"
    write_entities(entities)
    for case in CASES:
        args = ["get-historical", "--repo", str(served["ours"]), "--entities", str(entities),
                "--output", str(out / (case["name"] + ".cli.parquet"))]
        if "features" in case:
            args += ["--features", ",".join(case["features"])]
        else:
            args += ["--feature-service", case["feature_service"]]
        if case["full_feature_names"]:
            args.append("--full-feature-names")
        cli(*args)
    (base / "cases.json").write_text(json.dumps(CASES))
    proc = subprocess.run([feast_python(), str(CLIENT), str(served["feast_repo"]), str(entities),
                           str(base / "cases.json"), str(out)],
                          capture_output=True, text=True, cwd=str(base))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for case in CASES:
        name = case["name"]
        ours = pq.read_table(out / f"{name}.cli.parquet")
        theirs = pq.read_table(out / f"{name}.arrow.parquet")
        assert theirs.schema.equals(ours.schema, check_metadata=False), (theirs.schema, ours.schema)
        assert theirs.equals(ours), name
        assert report["cases"][name] == {"columns": ours.column_names, "rows": 12, "df": "equal"}
    # The values themselves, for the record (not just "both sides agree").
    feats = pq.read_table(out / "features.cli.parquet").to_pydict()
    assert feats["conv_rate"][0] == pytest.approx(0.01)       # driver 1001 at hour 0
    assert feats["avg_daily_trips"][3] == -1                  # the correction at hour 12 wins
    assert feats["conv_rate"][8] is None                      # hour 100: past the 1-day TTL
    assert feats["current_balance"][4] is None                # null customer
    assert feats["segment"][0] == "bronze"
    full = pq.read_table(out / "service_full_names.cli.parquet").column_names
    assert "driver_hourly_stats__conv_rate" in full and "customer_profile__segment" in full
    assert "drv__acc_rate" in pq.read_table(out / "aliased_service.cli.parquet").column_names

    errors = report["errors"]
    assert "get_historical_features with entity_df given as SQL is not supported by " \
           "StrataLake" in errors["entity_df_sql"]
    assert "server disconnect" not in errors["entity_df_sql"]
    # Feast materialized from StrataLake's offline store: the latest row per driver up to
    # the end of the range (hour 66), into Feast's own online store.
    online = report["online"]
    assert online["driver_id"] == [1001, 1002, 9999]
    assert online["conv_rate"] == [pytest.approx(0.076), pytest.approx(0.086), None]
    assert online["avg_daily_trips"] == [67, 68, None]


def test_malformed_flight_requests_get_errors_and_the_server_lives_on(served):
    client = fl.connect(f"grpc+tcp://127.0.0.1:{served['port']}")

    def exchange_error(command: bytes, table: pa.Table) -> str:
        writer, reader = client.do_exchange(fl.FlightDescriptor.for_command(command))
        with pytest.raises(pa.ArrowException) as e:
            writer.begin(table.schema)
            writer.write_table(table)
            writer.done_writing()
            reader.read_all()
        try:
            writer.close()
        except pa.ArrowException:
            pass  # the stream ended with the server's error
        return str(e.value)

    key = pa.table({"key": ["mock_key"]})
    assert "must be Feast's JSON object" in exchange_error(b"\xff\xfe not json", key)
    assert "unknown api 'drop'" in exchange_error(b'{"api": "drop"}', key)
    assert "'feature_refs' is required" in exchange_error(
        b'{"api": "get_historical_features", "feature_view_names": []}', key)
    hist = json.dumps({"api": "get_historical_features", "feature_view_names": ["x"],
                       "name_aliases": [None], "feature_refs": ["driver_hourly_stats:nope"],
                       "project": "feast_shop", "full_feature_names": False}).encode()
    assert "without entity rows is not supported" in exchange_error(hist, key)
    rows = pa.table({"driver_id": [1001], "event_timestamp": pa.array(
        [dt.datetime(2026, 6, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))})
    assert "nope" in exchange_error(hist, rows)
    wrong_project = hist.replace(b'"feast_shop"', b'"other"')
    assert "project 'other' is not served here" in exchange_error(wrong_project, rows)
    no_ts = pa.table({"driver_id": [1001]})
    assert "'event_timestamp' column" in exchange_error(
        hist.replace(b"driver_hourly_stats:nope", b"driver_hourly_stats:conv_rate"), no_ts)
    with pytest.raises(pa.ArrowException, match="not a path"):
        client.do_exchange(fl.FlightDescriptor.for_path("x"))[1].read_all()
    with pytest.raises(pa.ArrowException, match="unknown ticket"):
        client.do_get(fl.Ticket(b"anything")).read_all()
    with pytest.raises(pa.ArrowException, match="no actions are served"):
        list(client.do_action(fl.Action("shutdown", b"")))

    # The data-source calls, as Feast's client sends them (the source as its proto's JSON).
    def source_command(api: str, name: str) -> bytes:
        proto = json.dumps({"type": "BATCH_FILE", "name": name,
                            "timestampField": "event_timestamp"})
        return json.dumps({"command_id": "1", "api": api, "data_source_proto": proto}).encode()

    api = "get_table_column_names_and_types_from_data_source"
    writer, reader = client.do_exchange(
        fl.FlightDescriptor.for_command(source_command(api, "driver_stats_source")))
    writer.begin(key.schema)
    writer.write_table(key)
    writer.done_writing()
    columns = reader.read_all()
    writer.close()
    assert columns.to_pydict() == {
        "name": ["driver_id", "event_timestamp", "created", "conv_rate", "acc_rate",
                 "avg_daily_trips"],
        "type": ["int64", "timestamp[us, tz=UTC]", "timestamp[us, tz=UTC]", "double", "double",
                 "int64"]}
    assert "data source 'nope' is not in StrataLake's registry (sources: customer_source, " \
           "driver_stats_source)" in exchange_error(source_command(api, "nope"), key)
    writer, _ = client.do_put(fl.FlightDescriptor.for_command(
        source_command("validate_data_source", "nope")), key.schema)
    with pytest.raises(pa.ArrowException, match="data source 'nope' is not in StrataLake"):
        writer.write_table(key)
        writer.close()

    # Materialization reads: the rows in [start, end] (both ends inclusive, as Feast's file
    # store), and the latest of them per key (latest event time, then created time).
    def pull(api: str) -> pa.Table:
        command = json.dumps({
            "api": api, "data_source_name": "driver_stats_source",
            "join_key_columns": ["driver_id"],
            "feature_name_columns": ["conv_rate", "avg_daily_trips"],
            "timestamp_field": "event_timestamp", "created_timestamp_column": "created",
            "start_date": "2026-06-01T00:00:00+00:00",
            "end_date": "2026-06-01T14:00:00+02:00"}).encode()  # 12:00 UTC
        writer, reader = client.do_exchange(fl.FlightDescriptor.for_command(command))
        writer.begin(key.schema)
        writer.write_table(key)
        writer.done_writing()
        got = reader.read_all()
        writer.close()
        return got

    every = pull("pull_all_from_table_or_query")
    assert every.column_names == ["driver_id", "conv_rate", "avg_daily_trips",
                                  "event_timestamp", "created"]
    assert sorted(zip(every["driver_id"].to_pylist(), every["avg_daily_trips"].to_pylist())) == [
        (1001, -1), (1001, 1), (1001, 7), (1001, 13), (1002, 2), (1002, 8), (1002, 14),
        (1003, 3), (1003, 9), (1003, 15)]
    latest = pull("pull_latest_from_table_or_query").to_pydict()
    assert latest["driver_id"] == [1001, 1002, 1003]
    assert latest["avg_daily_trips"] == [-1, 14, 15]
    assert latest["conv_rate"] == [pytest.approx(0.999), pytest.approx(0.032),
                                   pytest.approx(0.042)]

    # Feast's older flow: DoPut the entity rows, GetFlightInfo, DoGet the ticket once.
    good = hist.replace(b"driver_hourly_stats:nope", b"driver_hourly_stats:conv_rate")
    rows2 = pa.table({"driver_id": pa.array([1001, 1002], pa.int64()),
                      "event_timestamp": pa.array([dt.datetime(2026, 6, 1, 7, tzinfo=UTC)] * 2,
                                                  pa.timestamp("us", tz="UTC"))})
    desc = fl.FlightDescriptor.for_command(good)
    writer, _ = client.do_put(desc, rows2.schema)
    writer.write_table(rows2)
    writer.close()
    info = client.get_flight_info(desc)
    got = client.do_get(info.endpoints[0].ticket).read_all()
    assert got.column_names == ["driver_id", "event_timestamp", "conv_rate"] or \
        sorted(got.column_names) == ["conv_rate", "driver_id", "event_timestamp"]
    assert got.column("conv_rate").to_pylist() == [pytest.approx(0.016), pytest.approx(0.026)]
    with pytest.raises(pa.ArrowException, match="unknown ticket"):
        client.do_get(info.endpoints[0].ticket).read_all()
    assert served["server"].poll() is None
