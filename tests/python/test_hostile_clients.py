"""The feature server against hostile clients over real sockets (127.0.0.1 only): bodies
that crash naive parsers (deep nesting, duplicate keys, NUL, invalid UTF-8), cross-site
POSTs without a JSON Content-Type, huge entity counts, slow clients (slowloris), floods to
the descriptor limit, pipelining without reading, and bursts of connections. Each test
asserts the exact answer, and that the server lives on and keeps its memory and CPU within
bounds (bounds on resources, not timings of our speed). Every loop is bounded in count and
time."""
from __future__ import annotations

import json
import resource
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN
from test_serving import make_shop, raw_exchange

FEATURES = ["customer_profile:age"]


def feast_error(body: bytes) -> str:
    """The message of an error body, which has Feast's shape: a JSON string holding
    {"module": "feast.errors", "class": ..., "message": ...} (valid UTF-8 JSON)."""
    inner = json.loads(json.loads(body.decode("utf-8")))
    assert inner["module"] == "feast.errors" and inner["class"], inner
    return inner["message"]


class Server:
    """`stratalake serve --port 0 --threads 1`, optionally with a lower open-file limit."""

    def __init__(self, repo: Path, *extra: str, nofile: int | None = None):
        def limit():
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [str(BIN), "serve", "--port", "0", "--threads", "1", "--repo", str(repo), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limit)
        line = self.proc.stdout.readline()
        if "http://" not in line:
            self.proc.kill()
            raise AssertionError(f"server did not start: {line}{self.proc.stderr.read()}")
        self.port = int(line.split("http://")[1].split()[0].rsplit(":", 1)[1])

    def connect(self, timeout: float = 10) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def request(self, method: str, path: str, body: bytes = b"",
                content_type: str | None = "application/json") -> tuple[int, bytes]:
        """One request on a fresh connection: (status, raw body bytes)."""
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
        if content_type is not None:
            head += f"Content-Type: {content_type}\r\n"
        head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        [(status, _, payload)] = raw_exchange(self.port, head.encode("latin-1") + body, 1)
        return status, payload

    def error(self, method: str, path: str, body: bytes = b"", **kw) -> tuple[int, str]:
        """(status, the error's message); the body must be Feast's error, valid UTF-8 JSON."""
        status, payload = self.request(method, path, body, **kw)
        return status, feast_error(payload)

    def healthy(self) -> bool:
        status, payload = self.request("GET", "/health")
        return status == 200 and json.loads(payload)["status"] == "ok"

    def stop(self) -> int:
        self.proc.terminate()
        rc = self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def cpu_ticks(pid: int) -> int:
    """utime + stime of the whole process, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def online_body(ids, features=FEATURES) -> bytes:
    return json.dumps({"features": features, "entities": {"customer_id": list(ids)}}).encode()


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    return make_shop(tmp_path_factory.mktemp("hostile") / "shop")


@pytest.fixture
def server(shop):
    s = Server(shop)
    yield s
    assert s.stop() == 0


# ---- bodies that crash naive parsers --------------------------------------------------------

@pytest.mark.parametrize("path", ["/get-online-features", "/push", "/materialize"])
def test_deeply_nested_json_is_refused_and_the_server_lives(server, path):
    status, message = server.error("POST", path, b"[" * 150_000)
    assert status == 400
    assert message == ("JSON nested deeper than 256 levels at byte 256 "
                       "(arrays and objects inside each other)")
    assert server.healthy()


def test_duplicate_keys_are_refused_naming_the_key(server):
    body = b'{"features": ["customer_profile:age"], "entities": {"customer_id": [17], "customer_id": [42]}}'
    assert server.error("POST", "/get-online-features", body) == (
        400, 'the JSON key "customer_id" appears twice in one object; give each key once')
    body = b'{"push_source_name": "clicks_stream", "push_source_name": "x", "df": {"a": [1]}}'
    assert server.error("POST", "/push", body) == (
        400, 'the JSON key "push_source_name" appears twice in one object; give each key once')


def test_nul_characters_are_refused(server):
    body = b'{"features": ["customer_profile:age\\u0000x"], "entities": {"customer_id": [1]}}'
    assert server.error("POST", "/get-online-features", body) == (
        400, 'a JSON string holds a NUL character (\\u0000): "customer_profile:age\\u0000x"; '
             'names and values cannot contain NUL')
    body = b'{"end_ts": "2026-01-01T00:00:00Z", "feature_views": ["customer_profile\\u0000"]}'
    assert server.error("POST", "/materialize-incremental", body) == (
        400, 'a JSON string holds a NUL character (\\u0000): "customer_profile\\u0000"; '
             'names and values cannot contain NUL')


def test_invalid_utf8_is_refused_and_every_error_body_is_valid_json(server):
    body = b'{"features": ["\xff\xfe"], "entities": {"customer_id": [1]}}'
    assert server.error("POST", "/get-online-features", body) == (
        400, "malformed JSON at byte 15: Invalid encoding in string.")
    # User bytes echoed in messages come back escaped, invalid UTF-8 as U+FFFD.
    [(status, _, payload)] = raw_exchange(server.port, b"GET /\xff\xfe\"x HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    assert status == 404
    assert feast_error(payload).startswith('no endpoint /\ufffd\ufffd"x (endpoints:')
    assert server.error("POST", "/push", b"{}", content_type="text/\xff\"") == (
        415, 'POST /push takes a JSON body: send it with "Content-Type: application/json" '
             '(got Content-Type "text/\ufffd"")')
    assert server.healthy()


# ---- cross-site POSTs -------------------------------------------------------------------------

def test_writing_endpoints_need_a_json_content_type(server):
    for path in ["/push", "/materialize", "/materialize-incremental"]:
        assert server.error("POST", path, b"{}", content_type=None) == (
            415, f'POST {path} takes a JSON body: send it with "Content-Type: application/json" '
                 f'(got no Content-Type)')
    # What an HTML form or a cross-site fetch without a preflight can send.
    for ctype in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                  "application/jsonp"]:
        assert server.error("POST", "/push", b"{}", content_type=ctype) == (
            415, f'POST /push takes a JSON body: send it with "Content-Type: application/json" '
                 f'(got Content-Type "{ctype}")')
    # JSON in any case, with parameters: read (and refused for what the body lacks).
    for ctype in ["application/json", "Application/JSON; charset=utf-8", "application/json ;charset=UTF-8"]:
        assert server.error("POST", "/push", b"{}", content_type=ctype) == (
            400, '"push_source_name" (a string) is required')
    # Reads change nothing: they take any Content-Type (curl -d sends a form type).
    status, payload = server.request("POST", "/get-online-features", online_body([1]), content_type=None)
    assert status == 200 and json.loads(payload)["results"][0]["values"] == [1]


# ---- huge requests ---------------------------------------------------------------------------

def test_huge_entity_counts_get_413_with_the_limit(shop):
    s = Server(shop, "--max-entity-rows", "1000")
    try:
        assert s.error("POST", "/get-online-features", online_body(range(1001))) == (
            413, "entity 'customer_id' has 1001 values: over the limit of 1000 entity rows per "
                 "request (the server's --max-entity-rows); split the request")
        status, _ = s.request("POST", "/get-online-features", online_body(range(1000)))
        assert status == 200
        # Writes have the same limit on their rows, checked before the store is touched.
        push = json.dumps({"push_source_name": "clicks_stream", "to": "online",
                           "df": {"customer_id": list(range(1001))}}).encode()
        assert s.error("POST", "/push", push) == (
            413, "/push has 1001 rows: over the limit of 1000 rows per request (the server's "
                 "--max-entity-rows); split the request")
        write = json.dumps({"feature_view_name": "customer_profile",
                            "df": {"customer_id": list(range(1001))}}).encode()
        assert s.error("POST", "/write-to-online-store", write) == (
            413, "/write-to-online-store has 1001 rows: over the limit of 1000 rows per request "
                 "(the server's --max-entity-rows); split the request")
    finally:
        assert s.stop() == 0


def test_millions_of_keys_stay_within_memory_bounds(server):
    before = status_kb(server.proc.pid, "VmRSS")
    body = b'{"features": ["customer_profile:age"], "entities": {"customer_id": [' + \
        b",".join([b"1"] * 3_000_000) + b"]}}"  # 6 MB, under the 8 MiB body limit
    assert server.error("POST", "/get-online-features", body) == (
        413, "entity 'customer_id' has 3000000 values: over the limit of 100000 entity rows per "
             "request (the server's --max-entity-rows); split the request")
    # The parse of 3M values takes some memory for a moment; the store never sees them.
    peak = status_kb(server.proc.pid, "VmHWM")
    assert peak - before < 400_000, (before, peak)
    assert server.healthy()


# ---- slow clients -----------------------------------------------------------------------------

def trickle_until_answered(sock: socket.socket, pieces, max_seconds: float) -> bytes:
    """Sends one byte of `pieces` every 0.25 s until the server answers (or closes)."""
    sock.settimeout(0.25)
    deadline = time.monotonic() + max_seconds
    for byte in pieces:
        if time.monotonic() > deadline:
            break
        try:
            data = sock.recv(65536)
            return data
        except socket.timeout:
            pass
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            break
    sock.settimeout(5)
    return sock.recv(65536)


def test_slowloris_is_cut_off_by_the_header_deadline(shop):
    s = Server(shop, "--header-timeout-s", "2", "--body-timeout-s", "2")
    try:
        slow = s.connect()
        slow.sendall(b"POST /get-online-features HTTP/1.1\r\n")
        started = time.monotonic()
        # Others are served meanwhile.
        for i in range(3):
            status, _ = s.request("POST", "/get-online-features", online_body([i]))
            assert status == 200
        answer = trickle_until_answered(slow, b"X-Slow: " + b"a" * 200, max_seconds=15)
        elapsed = time.monotonic() - started
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert b"Connection: close" in head
        assert feast_error(body) == ("the request's head (request line and headers) did not "
                                     "arrive within 2 s of its first byte (the server's "
                                     "--header-timeout-s)")
        assert 2 <= elapsed < 15
        slow.close()

        # A body that trickles in: the body deadline.
        slow = s.connect()
        slow.sendall(b"POST /push HTTP/1.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{")
        answer = trickle_until_answered(slow, b'"a": "' + b"b" * 200, max_seconds=15)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert feast_error(body) == ("the request's body did not arrive within 2 s after "
                                     "its headers (the server's --body-timeout-s)")
        slow.close()
        assert s.healthy()
    finally:
        assert s.stop() == 0


def test_idle_connections_are_closed(shop):
    s = Server(shop, "--idle-timeout-s", "1")
    try:
        idle = s.connect(timeout=10)
        assert idle.recv(100) == b""  # closed by the server within a few seconds
        idle.close()
    finally:
        assert s.stop() == 0


# ---- floods -------------------------------------------------------------------------------------

def exchange_health(sock: socket.socket) -> int | None:
    """Sends GET /health; the status, or None when the connection was closed or reset."""
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        length = int([ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0]
                     .split(b":")[1])
        while len(body) < length:
            chunk = sock.recv(4096)
            if not chunk:
                break
            body += chunk
        if status == 503:
            assert feast_error(body).startswith(
                "the server is at its limit of open connections (")
        return status
    except (ConnectionResetError, BrokenPipeError):
        return None


def test_a_flood_to_the_descriptor_limit_neither_spins_nor_stops_service(shop):
    s = Server(shop, nofile=128)
    held = []
    try:
        refused = 0
        for _ in range(300):  # far more than 128 descriptors
            sock = s.connect(timeout=5)
            status = exchange_health(sock)
            if status == 200:
                held.append(sock)
                continue
            assert status in (503, None)
            sock.close()
            refused += 1
            if refused == 5:
                break
        assert refused == 5 and 0 < len(held) < 128
        # Saturated, with clients still knocking: the server does not spin.
        knocking = [s.connect(timeout=5) for _ in range(5)]
        ticks = cpu_ticks(s.proc.pid)
        time.sleep(2)
        used = cpu_ticks(s.proc.pid) - ticks
        assert used < 50, f"{used} ticks of CPU in 2 s while saturated"
        for sock in knocking:
            sock.close()
        # The connections it holds are still served.
        assert exchange_health(held[0]) == 200
        # Once some leave, new ones get in.
        for sock in held[-10:]:
            sock.close()
        del held[-10:]
        for _ in range(50):
            sock = s.connect(timeout=5)
            status = exchange_health(sock)
            sock.close()
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
    finally:
        for sock in held:
            sock.close()
        assert s.stop() == 0


def test_pipelining_without_reading_is_bounded_then_closed(shop):
    s = Server(shop, "--write-timeout-s", "4")
    try:
        body = online_body(range(1, 201), ["customer_profile"])
        status, reply = s.request("POST", "/get-online-features", body)
        assert status == 200 and len(reply) > 10_000
        before = status_kb(s.proc.pid, "VmRSS")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
        sock.connect(("127.0.0.1", s.port))
        request = (b"POST /get-online-features HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        # Unbounded, 20,000 such requests would keep 20,000 answers (~400 MB) in the server;
        # it stops reading once its answers back up, so the send blocks long before.
        sock.settimeout(0.5)
        sent = 0
        try:
            for _ in range(20_000):
                sock.sendall(request)
                sent += 1
        except socket.timeout:
            pass
        assert sent < 20_000
        rss = status_kb(s.proc.pid, "VmRSS")
        assert rss - before < 30_000, (before, rss)
        # The client reads nothing: after the write timeout the server closes it.
        time.sleep(7)
        sock.settimeout(5)
        received, closed = 0, False
        for _ in range(10_000):
            try:
                chunk = sock.recv(1 << 20)
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += len(chunk)
        assert closed
        assert received < sent * len(reply)
        sock.close()
        assert s.healthy()
    finally:
        assert s.stop() == 0


def test_memory_is_returned_after_a_burst_of_connections(server):
    pid = server.proc.pid
    before = status_kb(pid, "VmRSS")
    socks = []
    for _ in range(800):
        sock = server.connect()
        assert exchange_health(sock) == 200
        socks.append(sock)
    during = status_kb(pid, "VmRSS")
    for sock in socks:
        sock.close()
    # Idle connections hold no read buffer (was 64 KiB each: 50 MB here).
    assert during - before < 20_000, (before, during)
    for _ in range(50):  # the server notices the closes, then trims within a second or two
        time.sleep(0.1)
        if status_kb(pid, "VmRSS") - before < 8_000:
            break
    assert status_kb(pid, "VmRSS") - before < 8_000, (before, during, status_kb(pid, "VmRSS"))
    assert server.healthy()
