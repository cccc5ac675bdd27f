"""The online store and the feature server over real HTTP: materialization, every endpoint,
every error, pushes, graceful SIGTERM, SIGKILL during pushes, and the Redis backend."""
from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from conftest import BIN

NOW = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sl(*args: str, repo: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN), *args, "--repo", str(repo)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"stratalake {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_shop(path: Path, online: str | None = None) -> Path:
    # Anchored on 2026-09-01 (the data ends 2026-08-31): the checks below expect values
    # beyond their TTL now.
    subprocess.run([str(BIN), "init", str(path), "--customers", "200", "--as-of", "2026-09-01"],
                   check=True, capture_output=True)
    if online:
        cfg = path / "stratalake.yaml"
        text = cfg.read_text().replace("  type: embedded\n  path: .stratalake/online", online)
        cfg.write_text(text)
    sl("apply", repo=path)
    for source, file in [("customers", "customers.csv"), ("orders", "orders.csv"),
                         ("customer_daily_stats", "customer_daily_stats.parquet")]:
        sl("ingest", source, str(path / "data" / file), repo=path)
    return path


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    repo = make_shop(tmp_path_factory.mktemp("serving") / "shop")
    sl("materialize", "2020-01-01T00:00:00Z", NOW, repo=repo)
    return repo


class Server:
    """`stratalake serve --port 0` on a repository; the port comes from its first line."""

    def __init__(self, repo: Path, *extra: str):
        self.proc = subprocess.Popen([str(BIN), "serve", "--port", "0", "--repo", str(repo), *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "http://" not in line:
            self.proc.kill()
            raise AssertionError(f"server did not start: {line}{self.proc.stderr.read()}")
        self.port = int(line.split("http://")[1].split()[0].rsplit(":", 1)[1])

    def request(self, method: str, path: str, body=None, conn=None, raw: bytes | None = None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        c.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = c.getresponse()
        payload = resp.read()
        if conn is None:
            c.close()
        ctype = resp.getheader("Content-Type", "")
        return resp.status, (json.loads(payload) if "json" in ctype else payload.decode()), resp

    def post(self, path: str, body):
        status, payload, _ = self.request("POST", path, body)
        return status, payload

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc_stderr = self.proc.stderr.read()
        self.proc.stderr.close()
        return rc

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def server(shop):
    s = Server(shop)
    yield s
    if s.proc.poll() is None:
        assert s.stop() == 0


def feast_error(payload) -> tuple[str, str]:
    """(class, message) of an error body in Feast's shape: a JSON string holding
    {"module": "feast.errors", "class": ..., "message": ...}, what Feast's client raises."""
    assert isinstance(payload, str), payload
    inner = json.loads(payload)
    assert inner["module"] == "feast.errors", inner
    return inner["class"], inner["message"]


def err(payload) -> str:
    return feast_error(payload)[1]


def as_rows(resp: dict) -> dict:
    """{feature name: (values, statuses)} from a Feast-format response."""
    names = resp["metadata"]["feature_names"]
    return {n: (r["values"], r["statuses"]) for n, r in zip(names, resp["results"])}


# ---- reads -----------------------------------------------------------------------------------

def test_health_reports_the_registry_version(server):
    status, body, _ = server.request("GET", "/health")
    assert (status, body) == (200, {"status": "ok", "registry_version": 1})


def test_online_values_equal_the_training_set_at_now(server, shop, tmp_path):
    ids = list(range(1, 41)) + [999999]
    status, resp = server.post("/get-online-features", {
        "features": ["customer_profile:country", "customer_profile:segment", "customer_profile:age",
                     "last_order:amount", "last_order:status"],
        "entities": {"customer_id": ids}})
    assert status == 200
    assert resp["metadata"]["feature_names"] == ["customer_id", "country", "segment", "age", "amount",
                                                 "status"]
    rows = as_rows(resp)
    assert rows["customer_id"] == (ids, ["PRESENT"] * len(ids))
    # The same features from the offline store for entity rows at "now".
    import pyarrow as pa
    now = dt.datetime.strptime(NOW, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    pq.write_table(pa.table({"customer_id": pa.array(ids, pa.int64()),
                             "event_timestamp": pa.array([now] * len(ids), pa.timestamp("us", "UTC"))}),
                   tmp_path / "entities.parquet")
    sl("get-historical", "--entities", str(tmp_path / "entities.parquet"), "--features",
       "customer_profile:country,customer_profile:segment,customer_profile:age,last_order:amount,"
       "last_order:status", "--output", str(tmp_path / "out.parquet"), repo=shop)
    offline = pq.read_table(tmp_path / "out.parquet").to_pydict()
    for name in ["country", "segment", "age", "amount", "status"]:
        assert rows[name][0] == offline[name], name
    assert rows["country"][1][-1] == "NOT_FOUND"
    # last_order has a 30d TTL and the sample orders (anchored on 2026-09-01) end in 2026-08:
    # outside max age now.
    assert set(rows["amount"][1]) <= {"OUTSIDE_MAX_AGE", "NOT_FOUND"}


def test_feature_service_and_full_feature_names(server):
    status, resp = server.post("/get-online-features", {
        "feature_service": "churn_model", "entities": {"customer_id": [1, 2]},
        "full_feature_names": True})
    assert status == 200
    names = resp["metadata"]["feature_names"]
    assert names[0] == "customer_id"
    assert "customer_profile__country" in names and "last_order__amount" in names
    assert all(len(r["values"]) == 2 for r in resp["results"])


def test_cli_get_online_prints_the_same_json(server, shop):
    cli = json.loads(sl("get-online", "--features", "customer_profile:country,customer_profile:age",
                        "--entity", "customer_id=3,4", "--json", repo=shop).stdout)
    _, http_resp = server.post("/get-online-features", {
        "features": ["customer_profile:country", "customer_profile:age"],
        "entities": {"customer_id": [3, 4]}})
    assert cli == http_resp
    text = sl("get-online", "--features", "customer_profile:country", "--entity", "customer_id=3",
              repo=shop).stdout.splitlines()
    assert text[0].split() == ["customer_id", "country"]
    bad = sl("get-online", "--features", "customer_profile:country", "--entity", "customer_id=x",
             repo=shop, check=False)
    assert bad.returncode == 2 and "is an integer; 'x' is not" in bad.stderr


def test_keep_alive_serves_many_requests_on_one_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for i in range(50):
        status, body, resp = server.request("POST", "/get-online-features", {
            "features": ["customer_profile:age"], "entities": {"customer_id": [i]}}, conn=conn)
        assert status == 200
        assert not resp.will_close
    conn.close()


# ---- the HTTP/1.1 transport (server/http_loop.cc) ---------------------------------------------

def raw_exchange(port: int, data: bytes | list[bytes], responses: int, pause: float = 0.0) -> list[tuple]:
    """Sends raw bytes (a list: written one piece at a time, `pause` apart) and parses
    `responses` answers: [(status, headers dict with lower-case names, body bytes)]."""
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    for piece in (data if isinstance(data, list) else [data]):
        s.sendall(piece)
        if pause:
            time.sleep(pause)
    buf, out = b"", []
    while len(out) < responses:
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, f"connection closed after {len(out)} answers: {buf!r}"
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        if status == 100:
            continue
        n = int(headers["content-length"])
        while len(buf) < n:
            chunk = s.recv(65536)
            assert chunk, "connection closed mid-body"
            buf += chunk
        out.append((status, headers, buf[:n]))
        buf = buf[n:]
    s.close()
    return out


def get_request(customer: int, extra_headers: str = "", version: str = "1.1") -> bytes:
    body = json.dumps({"features": ["customer_profile:age"], "entities": {"customer_id": [customer]}})
    return (f"POST /get-online-features HTTP/{version}\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"{extra_headers}Content-Length: {len(body)}\r\n\r\n{body}").encode()


def test_pipelined_requests_are_answered_in_order(server):
    answers = raw_exchange(server.port, b"".join(get_request(i) for i in range(1, 21)), 20)
    ids = [json.loads(b)["results"][0]["values"][0] for _, _, b in answers]
    assert ids == list(range(1, 21))
    assert all(st == 200 and "connection" not in h for st, h, _ in answers)


def test_requests_split_across_writes_byte_by_byte(server):
    req = get_request(7)
    [(status, _, body)] = raw_exchange(server.port, [req[i:i + 1] for i in range(len(req))], 1)
    assert status == 200 and json.loads(body)["results"][0]["values"] == [7]


def test_chunked_bodies_and_expect_100_continue(server):
    body = json.dumps({"features": ["customer_profile:age"], "entities": {"customer_id": [5]}}).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 10]), body[i:i + 10]) for i in range(0, len(body), 10))
    req = (b"POST /get-online-features HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"Expect: 100-continue\r\n\r\n" + chunked + b"0\r\n\r\n")
    [(status, _, payload)] = raw_exchange(server.port, req, 1)
    assert status == 200 and json.loads(payload)["results"][0]["values"] == [5]


def test_http10_closes_unless_keep_alive_is_asked_for(server):
    [(status, headers, _)] = raw_exchange(server.port, get_request(3, version="1.0"), 1)
    assert status == 200 and headers["connection"] == "close"
    answers = raw_exchange(server.port, get_request(3, "Connection: keep-alive\r\n", "1.0") * 2, 2)
    assert [(st, h["connection"]) for st, h, _ in answers] == [(200, "keep-alive")] * 2
    [(status, headers, _)] = raw_exchange(server.port, get_request(3, "Connection: close\r\n"), 1)
    assert status == 200 and headers["connection"] == "close"


def test_malformed_http_gets_400_and_a_close(server):
    [(status, headers, body)] = raw_exchange(server.port, b"POST /x HTTP/1.1\r\nContent-Length: zz\r\n\r\n", 1)
    assert status == 400 and headers["connection"] == "close"
    assert "malformed HTTP request" in err(json.loads(body))
    status, _ = server.post("/get-online-features", {"features": ["customer_profile:age"],
                                                     "entities": {"customer_id": [1]}})
    assert status == 200


def test_head_answers_without_a_body(server):
    [(status, headers, body)] = raw_exchange(server.port, b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
                                             b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    # The HEAD answer announces the GET's length but carries no body: the next bytes on the
    # wire are the GET's answer, which raw_exchange reads as the HEAD's "body".
    assert status == 200 and body.startswith(b"HTTP/1.1 200 OK")


# ---- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("body,code,message", [
    (b'{"features": [', 400, "malformed JSON at byte"),
    (b'[1, 2]', 400, "must be a JSON object"),
    (b'{"features": ["nope:x"], "entities": {"customer_id": [1]}}', 404, "unknown feature view 'nope'"),
    (b'{"features": ["customer_profile:nope"], "entities": {"customer_id": [1]}}', 404,
     "has no feature 'nope'"),
    (b'{"feature_service": "nope", "entities": {"customer_id": [1]}}', 404,
     "unknown feature service 'nope'"),
    (b'{"features": ["customer_profile:country"], "entities": {"customer_id": ["a"]}}', 400,
     "expected an integer"),
    (b'{"features": ["customer_profile:country"], "entities": {"user": [1]}}', 400,
     "missing join key 'customer_id'"),
    (b'{"features": ["customer_profile:country"], "entities": {"customer_id": [1.5]}}', 400,
     "neither an integer nor a string"),
    (b'{"features": ["customer_profile:country"]}', 400, "no entities given"),
    (b'{"entities": {"customer_id": [1]}}', 400, "no features requested"),
])
def test_bad_requests_are_answered_with_a_clear_error(server, body, code, message):
    status, payload, _ = server.request("POST", "/get-online-features", raw=body)
    assert status == code
    assert message in err(payload)


def test_error_bodies_name_feasts_exception_classes(server):
    def cls(body):
        return feast_error(server.request("POST", "/get-online-features", body)[1])[0]
    assert cls({"features": ["nope:x"], "entities": {"customer_id": [1]}}) == \
        "FeatureViewNotFoundException"
    assert cls({"feature_service": "nope", "entities": {"customer_id": [1]}}) == \
        "FeatureServiceNotFoundException"
    assert cls({"features": ["customer_profile:nope"], "entities": {"customer_id": [1]}}) == \
        "FeastObjectNotFoundException"
    assert cls({"features": ["customer_profile:country"]}) == "FeastError"
    status, payload = server.post("/push", {"push_source_name": "nope", "df": {"a": [1]}})
    assert (status, feast_error(payload)[0]) == (404, "PushSourceNotFoundException")


def test_fields_the_server_does_not_know_are_ignored_and_logged(shop):
    # As Feast's server: unknown fields are ignored (Feast's client sends fields of newer
    # versions); --log-requests logs them.
    s = Server(shop, "--log-requests")
    try:
        status, resp = s.post("/get-online-features", {
            "features": ["customer_profile:country"], "entities": {"customer_id": [1]},
            "x": 1, "feature_service": None, "include_feature_view_version_metadata": True})
        assert status == 200
        assert resp["metadata"] == {"feature_names": ["customer_id", "country"],
                                    "feature_view_metadata": [{"name": "customer_profile"}]}
    finally:
        assert s.stop() == 0
        log = s.proc_stderr
    assert '/get-online-features: ignored unknown field(s) "x"' in log


def test_unknown_paths_and_methods(server):
    status, payload, _ = server.request("GET", "/nope")
    assert status == 404 and "no endpoint /nope" in err(payload)
    status, payload, _ = server.request("GET", "/get-online-features")
    assert status == 405 and "POST only" in err(payload)
    status, payload, _ = server.request("POST", "/health", {})
    assert status == 405


def test_bodies_over_the_limit_get_413(shop):
    s = Server(shop, "--max-body-bytes", "1000")
    try:
        status, payload, resp = s.request("POST", "/get-online-features", raw=b"{" + b" " * 5000 + b"}")
        assert status == 413 and resp.getheader("Connection") == "close"
        assert err(payload) == ("request body over the limit of 1000 bytes (the server's "
                                "--max-body-bytes)")
        # Announced too large: answered before the body is sent (here: never sent).
        [(status, _, _)] = raw_exchange(s.port, b"POST /push HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 1)
        assert status == 413
        status, _ = s.post("/get-online-features", {"features": ["customer_profile:age"],
                                                    "entities": {"customer_id": [1]}})
        assert status == 200  # the server is still fine
    finally:
        assert s.stop() == 0


# ---- push -------------------------------------------------------------------------------------

def click(i: int, page: str | None = None) -> dict:
    return {"customer_id": [i], "page": [page or f"/p{i}"], "dwell_ms": [i % 1000], "event_ts": [NOW]}


def test_push_online_is_visible_to_the_next_read(server):
    status, body = server.post("/push", {"push_source_name": "clicks_stream", "df": click(5, "/checkout"),
                                         "to": "online"})
    assert (status, body) == (200, {"rows": 1, "views_written": 1})
    _, resp = server.post("/get-online-features", {"features": ["live_clicks:page"],
                                                   "entities": {"customer_id": [5]}})
    assert as_rows(resp)["page"] == (["/checkout"], ["PRESENT"])


def test_push_offline_is_acknowledged_after_the_delta_commit(server, shop):
    status, body = server.post("/push", {"push_source_name": "clicks_stream", "df": click(6),
                                         "to": "offline"})
    assert status == 200
    table = DeltaTable(str(shop / "lake" / "bronze" / "clicks_stream"))
    assert table.version() == body["delta_version"]
    rows = table.to_pyarrow_table().to_pydict()
    assert 6 in rows["customer_id"]


def test_concurrent_offline_pushes_all_land(server, shop):
    path = shop / "lake" / "bronze" / "clicks_stream"
    before = DeltaTable(str(path)).to_pyarrow_table().num_rows if (path / "_delta_log").exists() else 0
    results = []

    def push(i):
        results.append(server.post("/push", {"push_source_name": "clicks_stream", "df": click(1000 + i),
                                             "to": "online_and_offline"}))

    threads = [threading.Thread(target=push, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s for s, _ in results] == [200] * 20
    table = DeltaTable(str(path)).to_pyarrow_table()
    assert table.num_rows == before + 20
    assert set(range(1000, 1020)) <= set(table.column("customer_id").to_pylist())


@pytest.mark.parametrize("body,code,message", [
    ({"push_source_name": "nope", "df": {"a": [1]}}, 404, "unknown push source 'nope'"),
    ({"push_source_name": "clicks_stream", "df": {"a": [1]}}, 400, "has no column 'a'"),
    ({"push_source_name": "customers", "df": {"customer_id": [1]}}, 400, "only push sources"),
    ({"push_source_name": "clicks_stream", "df": {"customer_id": [1], "event_ts": ["yesterday"]}}, 400,
     "column 'event_ts', row 0"),
    ({"push_source_name": "clicks_stream", "df": {"customer_id": [1, 2], "event_ts": [NOW]}}, 400,
     "differ in length"),
    ({"push_source_name": "clicks_stream", "df": click(1), "to": "disk"}, 400, "unknown push target"),
    ({"df": click(1)}, 400, '"push_source_name" (a string) is required'),
])
def test_bad_pushes_are_refused(server, body, code, message):
    status, payload = server.post("/push", body)
    assert status == code
    assert message in err(payload)


# ---- materialization endpoints --------------------------------------------------------------

def test_materialize_endpoints(server):
    status, body = server.post("/materialize", {"start_ts": "2020-01-01T00:00:00Z", "end_ts": NOW,
                                                "feature_views": ["customer_profile"]})
    assert status == 200
    assert [v["view"] for v in body["views"]] == ["customer_profile"]
    assert body["views"][0]["rows_written"] > 0
    status, body = server.post("/materialize-incremental", {"end_ts": NOW})
    assert status == 200
    by_view = {v["view"]: v for v in body["views"]}
    assert by_view["customer_profile"]["incremental"] is True
    assert by_view["customer_profile"]["files_read"] == 0  # nothing committed since
    status, body = server.post("/materialize", {"end_ts": NOW})
    assert status == 400 and "start_ts" in err(body)
    status, body = server.post("/materialize-incremental", {"end_ts": "soon"})
    assert status == 400 and "not an ISO 8601 time" in err(body)
    status, body = server.post("/materialize-incremental", {"end_ts": NOW, "feature_views": ["nope"]})
    assert status == 404 and "unknown feature view 'nope'" in err(body)


def test_metrics_are_prometheus_text(server):
    server.post("/get-online-features", {"features": ["customer_profile:age"],
                                         "entities": {"customer_id": [1]}})
    server.post("/get-online-features", {"features": ["nope:x"], "entities": {"customer_id": [1]}})
    status, text, resp = server.request("GET", "/metrics")
    assert status == 200 and resp.getheader("Content-Type").startswith("text/plain")
    lines = text.splitlines()
    assert 'stratalake_requests_total{endpoint="/get-online-features",code="200"} 1' in lines
    assert 'stratalake_requests_total{endpoint="/get-online-features",code="404"} 1' in lines
    assert 'stratalake_request_duration_seconds_count{endpoint="/get-online-features"} 2' in lines
    assert "stratalake_store_keys_read_total 1" in lines
    assert "# TYPE stratalake_request_duration_seconds histogram" in lines


def test_a_full_queue_answers_503(shop):
    s = Server(shop, "--max-queued", "1")
    try:
        results = []

        def call():
            results.append(s.post("/materialize", {"start_ts": "2020-01-01T00:00:00Z", "end_ts": NOW}))

        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(c for c, _ in results)
        assert set(codes) == {200, 503}
        assert all("retry" in err(b) for c, b in results if c == 503)
    finally:
        assert s.stop() == 0


# ---- stopping -------------------------------------------------------------------------------

def test_sigterm_finishes_in_flight_requests_then_exits_cleanly(shop):
    s = Server(shop)
    result = []
    t = threading.Thread(target=lambda: result.append(
        s.post("/materialize", {"start_ts": "2020-01-01T00:00:00Z", "end_ts": NOW})))
    t.start()
    time.sleep(0.05)
    s.proc.send_signal(signal.SIGTERM)
    t.join()
    assert result[0][0] == 200
    assert s.proc.wait(timeout=30) == 0
    assert "stopped" in s.proc.stdout.read()


def test_busy_polling_answers_the_same_and_stops_cleanly(shop):
    """--busy-poll-us: the same answers (keep-alive, pipelining, pushes), the loop pinned to the
    first CPU the server may use, and SIGTERM still stops it."""
    request = {"features": ["customer_profile:country", "customer_profile:age", "last_order:amount"],
               "entities": {"customer_id": list(range(1, 31)) + [999999]}}
    plain = Server(shop)  # (one server at a time: the store is locked by its process)
    try:
        expected = plain.post("/get-online-features", request)
        assert expected[0] == 200
    finally:
        assert plain.stop() == 0
    busy = Server(shop, "--busy-poll-us", "200")
    try:
        assert busy.post("/get-online-features", request) == expected
        conn = http.client.HTTPConnection("127.0.0.1", busy.port, timeout=10)
        for i in range(1, 101):
            status, body, resp = busy.request("POST", "/get-online-features", {
                "features": ["customer_profile:age"], "entities": {"customer_id": [i]}}, conn=conn)
            assert status == 200 and body["results"][0]["values"] == [i] and not resp.will_close
        conn.close()
        answers = raw_exchange(busy.port, b"".join(get_request(i) for i in range(1, 11)), 10)
        assert [json.loads(b)["results"][0]["values"][0] for _, _, b in answers] == list(range(1, 11))
        # One event loop (half of the CPUs, at least one), pinned to the first allowed CPU.
        first = min(os.sched_getaffinity(busy.proc.pid))
        pinned = []
        for task in Path(f"/proc/{busy.proc.pid}/task").iterdir():
            status_text = (task / "status").read_text()
            allowed = [ln.split(":", 1)[1].strip() for ln in status_text.splitlines()
                       if ln.startswith("Cpus_allowed_list")][0]
            pinned.append(allowed)
        if len(os.sched_getaffinity(busy.proc.pid)) > 1:
            assert pinned.count(str(first)) == 1, pinned
    finally:
        assert busy.stop() == 0
    # Out-of-range values are refused with the rule.
    r = subprocess.run([str(BIN), "serve", "--busy-poll-us", "-5", "--repo", str(shop)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "--busy-poll-us must be 0..1000000" in r.stderr


def thread_scheduling(pid: int) -> list[tuple[int, int]]:
    """(policy, realtime priority) of every thread of `pid`: fields 41 and 40 of
    /proc/PID/task/TID/stat (0 = SCHED_OTHER, 1 = SCHED_FIFO)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        out.append((int(fields[38]), int(fields[37])))
    return out


def may_use_realtime() -> bool:
    """Whether this test may run threads at SCHED_FIFO (root, CAP_SYS_NICE or ulimit -r)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except PermissionError:
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True


def test_realtime_priority_runs_only_the_event_loops_at_sched_fifo(shop, tmp_path):
    """--realtime-priority: every event loop (one per usable CPU) at SCHED_FIFO with that priority,
    every other thread ordinary, also threads started after reads, pushes and a materialization;
    the same answers. Refused, with the way to get the right, where the kernel says no."""
    shop = Path(shutil.copytree(shop, tmp_path / "shop"))  # (it pushes offline)
    request = {"features": ["customer_profile:country", "customer_profile:age", "last_order:amount"],
               "entities": {"customer_id": list(range(1, 31)) + [999999]}}
    plain = Server(shop)
    try:
        expected = plain.post("/get-online-features", request)
        assert expected[0] == 200
    finally:
        assert plain.stop() == 0
    if not may_use_realtime():
        r = subprocess.run([str(BIN), "serve", "--port", "0", "--realtime-priority", "5",
                            "--repo", str(shop)], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert "cannot run at realtime priority 5 (SCHED_FIFO)" in r.stderr, r.stderr
        assert "CAP_SYS_NICE" in r.stderr and "ulimit -r" in r.stderr, r.stderr
    else:
        rt = Server(shop, "--realtime-priority", "5")
        try:
            loops = len(os.sched_getaffinity(rt.proc.pid))
            for _ in range(20):
                assert rt.post("/get-online-features", request) == expected
            status, body = rt.post("/push", {"push_source_name": "clicks_stream", "df": click(7),
                                             "to": "online_and_offline"})
            assert status == 200, body
            status, body = rt.post("/materialize", {"start_ts": "2020-01-01T00:00:00Z", "end_ts": NOW})
            assert status == 200, body
            assert rt.post("/get-online-features", request) == expected
            threads = thread_scheduling(rt.proc.pid)
            assert sorted(p for p in threads if p != (0, 0)) == [(1, 5)] * loops, threads
        finally:
            assert rt.stop() == 0
    # Out-of-range values, and busy polling at a realtime priority, are refused with the rule.
    for extra, message in [(["--realtime-priority", "100"], "--realtime-priority must be 1..99"),
                           (["--realtime-priority", "-1"], "--realtime-priority must be 1..99"),
                           (["--realtime-priority", "5", "--busy-poll-us", "200"],
                            "realtime priority and busy polling cannot be combined")]:
        r = subprocess.run([str(BIN), "serve", "--port", "0", *extra, "--repo", str(shop)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and message in r.stderr, r.stderr


def test_every_acknowledged_push_survives_sigkill(tmp_path):
    repo = make_shop(tmp_path / "shop")
    s = Server(repo)
    acked = []
    stop = threading.Event()

    def pusher(offset):
        i = offset
        while not stop.is_set():
            try:
                status, _ = s.post("/push", {"push_source_name": "clicks_stream", "df": click(i),
                                             "to": "online_and_offline" if i % 2 else "online"})
            except (ConnectionError, OSError, http.client.HTTPException):
                return
            if status == 200:
                acked.append(i)
            i += 2

    threads = [threading.Thread(target=pusher, args=(o,)) for o in (0, 1)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    os.kill(s.proc.pid, signal.SIGKILL)
    s.proc.wait(timeout=30)
    stop.set()
    for t in threads:
        t.join()
    s.proc.stdout.close()
    s.proc.stderr.close()
    assert len(acked) > 10
    s2 = Server(repo)
    try:
        _, resp = s2.post("/get-online-features", {"features": ["live_clicks:page"],
                                                   "entities": {"customer_id": sorted(acked)}})
        values, statuses = as_rows(resp)["page"]
        assert statuses == ["PRESENT"] * len(acked)
        assert values == [f"/p{i}" for i in sorted(acked)]
        offline = set(DeltaTable(str(repo / "lake" / "bronze" / "clicks_stream"))
                      .to_pyarrow_table().column("customer_id").to_pylist())
        assert {i for i in acked if i % 2} <= offline
    finally:
        assert s2.stop() == 0


# ---- Redis ------------------------------------------------------------------------------------

REDIS_URL = os.environ.get("STRATALAKE_TEST_REDIS_URL")


def test_redis_backend_end_to_end(tmp_path):
    if not REDIS_URL:
        if os.environ.get("STRATALAKE_REQUIRE_REDIS") == "1":
            raise AssertionError("STRATALAKE_REQUIRE_REDIS=1 but STRATALAKE_TEST_REDIS_URL is unset")
        pytest.skip("no Redis server (STRATALAKE_TEST_REDIS_URL)")
    repo = make_shop(tmp_path / "rshop", online=f"  type: redis\n  url: {REDIS_URL}")
    out = sl("materialize", "2020-01-01T00:00:00Z", NOW, "--json", repo=repo).stdout
    assert json.loads(out)["store"].startswith("redis://")
    s = Server(repo)
    try:
        status, resp = s.post("/get-online-features", {
            "features": ["customer_profile:country", "customer_profile:age"],
            "entities": {"customer_id": [1, 2, 999999]}})
        assert status == 200
        rows = as_rows(resp)
        assert rows["country"][1] == ["PRESENT", "PRESENT", "NOT_FOUND"]
        status, _ = s.post("/push", {"push_source_name": "clicks_stream", "df": click(9, "/redis"),
                                     "to": "online"})
        assert status == 200
        _, resp = s.post("/get-online-features", {"features": ["live_clicks:page"],
                                                  "entities": {"customer_id": [9]}})
        assert as_rows(resp)["page"] == (["/redis"], ["PRESENT"])
    finally:
        assert s.stop() == 0
    # The embedded store of another repository answers the same values.
    local = make_shop(tmp_path / "lshop")
    sl("materialize", "2020-01-01T00:00:00Z", NOW, repo=local)
    a = json.loads(sl("get-online", "--features", "customer_profile:country,customer_profile:age",
                      "--entity", "customer_id=1,2,3", "--json", repo=repo).stdout)
    b = json.loads(sl("get-online", "--features", "customer_profile:country,customer_profile:age",
                      "--entity", "customer_id=1,2,3", "--json", repo=local).stdout)
    assert a == b


REDIS_CLUSTER = os.environ.get("STRATALAKE_TEST_REDIS_CLUSTER")


def test_redis_cluster_backend_end_to_end(tmp_path):
    """The same repository on a Redis Cluster (scripts/redis_cluster.sh): materialize, serve,
    push and teardown answer what the embedded store and one Redis server answer."""
    if not REDIS_CLUSTER:
        if os.environ.get("STRATALAKE_REQUIRE_REDIS_CLUSTER") == "1":
            raise AssertionError(
                "STRATALAKE_REQUIRE_REDIS_CLUSTER=1 but STRATALAKE_TEST_REDIS_CLUSTER is unset")
        pytest.skip("no Redis Cluster (STRATALAKE_TEST_REDIS_CLUSTER)")
    seeds = REDIS_CLUSTER.split(",")
    repo = make_shop(tmp_path / "cshop",
                     online=f"  type: redis\n  cluster: true\n  url: [{', '.join(seeds)}]")
    out = json.loads(sl("materialize", "2020-01-01T00:00:00Z", NOW, "--json", repo=repo).stdout)
    assert out["store"] == "redis-cluster://" + ",".join(u[len("redis://"):] for u in seeds)
    local = make_shop(tmp_path / "lshop")
    sl("materialize", "2020-01-01T00:00:00Z", NOW, repo=local)
    features = "customer_profile:country,customer_profile:age"
    ids = ",".join(str(i) for i in range(0, 60)) + ",999999"

    def online(r):
        return json.loads(sl("get-online", "--features", features, "--entity",
                             f"customer_id={ids}", "--json", repo=r).stdout)

    assert online(repo) == online(local)
    s = Server(repo)
    try:
        status, resp = s.post("/get-online-features", {
            "features": ["customer_profile:country", "customer_profile:age"],
            "entities": {"customer_id": [1, 2, 999999]}})
        assert status == 200
        assert as_rows(resp)["country"][1] == ["PRESENT", "PRESENT", "NOT_FOUND"]
        status, _ = s.post("/push", {"push_source_name": "clicks_stream",
                                     "df": click(9, "/cluster"), "to": "online"})
        assert status == 200
        _, resp = s.post("/get-online-features", {"features": ["live_clicks:page"],
                                                  "entities": {"customer_id": [9]}})
        assert as_rows(resp)["page"] == (["/cluster"], ["PRESENT"])
    finally:
        assert s.stop() == 0
    # One server started with a single seed finds the other nodes.
    one = make_shop(tmp_path / "oshop",
                    online=f"  type: redis\n  cluster: true\n  url: {seeds[-1]}")
    sl("materialize", "2020-01-01T00:00:00Z", NOW, repo=one)
    assert online(one) == online(local)
    # Teardown removes the keys from every node.
    sl("teardown", repo=repo)
    gone = online(repo)["results"]
    assert all(st == "NOT_FOUND" for col in gone[1:] for st in col["statuses"])
    assert len(gone[1]["statuses"]) == 61


def test_redis_cluster_node_down_fails_only_its_keys_then_recovers(tmp_path):
    """A primary of the cluster SIGKILLed: the server answers 200, the keys on that node
    UNAVAILABLE with a warning naming it, every other key as before; restarted, all read."""
    cluster_dir = os.environ.get("STRATALAKE_TEST_REDIS_CLUSTER_DIR")
    if not REDIS_CLUSTER or not cluster_dir:
        if os.environ.get("STRATALAKE_REQUIRE_REDIS_CLUSTER") == "1":
            raise AssertionError("STRATALAKE_REQUIRE_REDIS_CLUSTER=1 but "
                                 "STRATALAKE_TEST_REDIS_CLUSTER(_DIR) is unset")
        pytest.skip("no Redis Cluster (STRATALAKE_TEST_REDIS_CLUSTER, _DIR)")
    seeds = REDIS_CLUSTER.split(",")
    repo = make_shop(tmp_path / "kshop",
                     online=f"  type: redis\n  cluster: true\n  url: [{', '.join(seeds)}]")
    sl("materialize", "2020-01-01T00:00:00Z", NOW, repo=repo)
    ids = list(range(0, 60))
    request = {"features": ["customer_profile:country", "customer_profile:age"],
               "entities": {"customer_id": ids}}
    port = seeds[-1].rsplit(":", 1)[1]
    node_dir = next(d for d in Path(cluster_dir).glob("node*")
                    if (d / "port").read_text().strip() == port)
    s = Server(repo)
    try:
        status, before = s.post("/get-online-features", request)
        assert status == 200 and "warnings" not in before
        present = [i for i, st in enumerate(before["results"][1]["statuses"]) if st == "PRESENT"]
        assert len(present) >= 50, before
        pid = int((node_dir / "redis.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists() and "zombie" not in Path(
                f"/proc/{pid}/status").read_text():
            time.sleep(0.01)
        status, down = s.post("/get-online-features", request)
        assert status == 200, down
        statuses = down["results"][1]["statuses"]
        lost = [i for i, st in enumerate(statuses) if st == "UNAVAILABLE"]
        assert 0 < len(lost) < len(ids), statuses
        for col in (1, 2):  # both features of the view: the same rows, the rest as before
            got, was = down["results"][col], before["results"][col]
            assert [i for i, st in enumerate(got["statuses"]) if st == "UNAVAILABLE"] == lost
            for i in range(len(ids)):
                if i in lost:
                    assert got["values"][i] is None
                else:
                    assert (got["statuses"][i], got["values"][i]) == (was["statuses"][i],
                                                                      was["values"][i])
        assert down["warnings"] == [{
            "code": "store_unavailable", "view": "customer_profile", "keys": len(lost),
            "detail": down["warnings"][0]["detail"]}]
        assert f"127.0.0.1:{port}" in down["warnings"][0]["detail"]
        # The CLI says the same, as a warning on stderr, and exits 0.
        r = sl("get-online", "--features", "customer_profile:country", "--entity",
               "customer_id=" + ",".join(map(str, ids)), "--json", repo=repo)
        assert json.loads(r.stdout)["results"][1]["statuses"] == statuses
        assert f"{len(lost)} key(s) of feature view 'customer_profile' could not be read" in r.stderr
    finally:  # whatever happened above, the node runs again (same port, id, slots, data)
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
        except OSError:
            subprocess.run([os.environ.get("REDIS_SERVER", "/usr/bin/redis-server"),
                            str(node_dir / "redis.conf")], check=True)
    try:
        deadline = time.time() + 60  # only stops a test that would hang
        while True:
            status, after = s.post("/get-online-features", request)
            if status == 200 and "warnings" not in after:
                break
            assert time.time() < deadline, after
            time.sleep(0.2)
        assert after["results"] == before["results"]
    finally:
        assert s.stop() == 0


# ---- registry refresh and crash safety ------------------------------------------------------

def test_the_server_picks_up_a_new_registry_version(tmp_path):
    repo = make_shop(tmp_path / "shop")
    s = Server(repo)
    try:
        assert s.request("GET", "/health")[1]["registry_version"] == 1
        defs = repo / "definitions" / "feature_views.yaml"
        defs.write_text(defs.read_text().replace(
            "      - {name: age, type: int32}",
            "      - {name: age, type: int32}\n      - {name: signup_ts, type: timestamp}"))
        sl("apply", repo=repo)
        deadline = time.time() + 10
        while s.request("GET", "/health")[1]["registry_version"] != 2:
            assert time.time() < deadline, "the server never saw registry version 2"
            time.sleep(0.1)
        status, resp = s.post("/get-online-features", {"features": ["customer_profile:signup_ts"],
                                                       "entities": {"customer_id": [1]}})
        assert status == 200
        assert as_rows(resp)["signup_ts"] == ([None], ["NOT_FOUND"])  # not materialized yet
    finally:
        assert s.stop() == 0


def test_the_server_keeps_serving_while_its_registry_database_is_down(monkeypatch):
    """A registry in its own PostgreSQL server, which is stopped under a running feature
    server: requests go on being answered from the registry version held in memory, and
    /health and /metrics say that the registry cannot be read."""
    root = Path(__file__).resolve().parents[2]
    if not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")):
        if os.environ.get("STRATALAKE_REQUIRE_POSTGRES") == "1":
            raise AssertionError("PostgreSQL server binaries are not installed")
        pytest.skip("no PostgreSQL server binaries (scripts/bootstrap.sh installs them)")
    import tempfile
    pg_dir = tempfile.mkdtemp(prefix="sl-serving-pg-")  # under /tmp: the postgres user must reach it
    pg = [str(root / "scripts" / "postgres.sh")]
    url = subprocess.run(pg + ["start", pg_dir], check=True, capture_output=True, text=True).stdout.strip()
    stopped = False
    try:
        monkeypatch.setenv("STRATALAKE_REGISTRY", url)
        repo = make_shop(Path(tempfile.mkdtemp(prefix="sl-serving-")) / "shop")
        sl("materialize", "2020-01-01T00:00:00Z", NOW, repo=repo)
        s = Server(repo)
        try:
            req = {"features": ["customer_profile:country", "customer_profile:age"],
                   "entities": {"customer_id": [1, 2, 3]}}
            status, before = s.post("/get-online-features", req)
            assert status == 200
            assert as_rows(before)["age"][1] == ["PRESENT"] * 3

            subprocess.run(pg + ["stop", pg_dir], check=True, capture_output=True)
            stopped = True
            deadline = time.time() + 10
            while "registry_error" not in (health := s.request("GET", "/health")[1]):
                assert time.time() < deadline, f"/health never reported the registry down: {health}"
                time.sleep(0.1)
            assert health["status"] == "ok" and health["registry_version"] == 1
            assert health["registry_error"] != ""
            for _ in range(20):  # every request in the outage is answered as before
                assert s.post("/get-online-features", req) == (200, before)
            metrics = s.request("GET", "/metrics")[1]
            failures = [line for line in metrics.splitlines()
                        if line.startswith("stratalake_registry_check_failures_total ")]
            assert len(failures) == 1 and int(failures[0].split()[1]) >= 1
        finally:
            assert s.stop() == 0
    finally:
        if not stopped:
            subprocess.run(pg + ["stop", pg_dir], capture_output=True)


def test_a_materialization_killed_midway_is_completed_by_running_it_again(tmp_path):
    import numpy as np
    import pyarrow as pa
    n = 1_500_000
    rng = np.random.default_rng(3)
    base = tmp_path / "a"
    (base / "definitions").mkdir(parents=True)
    (base / "stratalake.yaml").write_text(
        "project: crash\noffline_store: lake\nonline_store:\n  type: embedded\n  path: online\n"
        "registry: registry.db\ndefinitions: [definitions]\n")
    (base / "definitions" / "d.yaml").write_text("""
entities: [{name: user, join_keys: [{name: user_id, type: int64}]}]
sources:
  - name: s
    path: gold/s
    timestamp_field: ts
    schema: [{name: user_id, type: int64}, {name: ts, type: timestamp}, {name: x, type: float64},
             {name: y, type: int64}]
feature_views:
  - {name: v, entities: [user], source: s, ttl: 0,
     features: [{name: x, type: float64}, {name: y, type: int64}]}
""")
    pq.write_table(pa.table({
        "user_id": rng.integers(0, 200_000, n),
        "ts": pa.array(1767225600_000000 + rng.integers(0, 10**12, n), pa.timestamp("us", "UTC")),
        "x": rng.random(n), "y": rng.integers(0, 10**6, n)}), tmp_path / "s.parquet",
        row_group_size=100_000)
    sl("apply", repo=base)
    sl("ingest", "s", str(tmp_path / "s.parquet"), repo=base)
    clean = tmp_path / "b"
    shutil.copytree(base, clean)
    proc = subprocess.Popen([str(BIN), "materialize-incremental", "now", "--repo", str(base)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.4)
    proc.kill()
    proc.wait()
    sl("materialize-incremental", "now", repo=base)
    sl("materialize-incremental", "now", repo=clean)
    keys = ",".join(str(k) for k in range(0, 200_000, 997))
    a = json.loads(sl("get-online", "--features", "v:x,v:y", "--entity", f"user_id={keys}", "--json",
                      repo=base).stdout)
    b = json.loads(sl("get-online", "--features", "v:x,v:y", "--entity", f"user_id={keys}", "--json",
                      repo=clean).stdout)
    assert a == b
    assert set(a["results"][1]["statuses"]) == {"PRESENT"}


def test_rows_deleted_offline_leave_the_online_store_on_the_next_run(tmp_path):
    """A Delta DELETE on a source, then materialize-incremental: the deleted customers'
    profiles are NOT_FOUND online (no row left), the others are untouched."""
    repo = make_shop(tmp_path / "shop")
    sl("materialize-incremental", NOW, "--views", "customer_profile", repo=repo)

    def online(ids):
        out = json.loads(sl("get-online", "--features", "customer_profile:country", "--entity",
                            "customer_id=" + ",".join(map(str, ids)), "--json", repo=repo).stdout)
        return out["results"][1]["statuses"], out["results"][1]["values"]

    before_statuses, before_values = online([3, 4, 5])
    assert before_statuses == ["PRESENT"] * 3
    subprocess.run([str(BIN), "table", "delete", str(repo / "lake" / "bronze" / "customers"),
                    "--where", "customer_id IN (3, 5)"], check=True, capture_output=True)
    rep = json.loads(sl("materialize-incremental", NOW, "--views", "customer_profile", "--json",
                        repo=repo).stdout)
    view = rep["views"][0]
    assert view["incremental"] is True and view["rebuilt"] is False
    assert view["keys_repaired"] >= 2  # the deleted keys (and the rewritten file's others)
    statuses, values = online([3, 4, 5])
    assert statuses == ["NOT_FOUND", "PRESENT", "NOT_FOUND"]
    assert values[1] == before_values[1]
