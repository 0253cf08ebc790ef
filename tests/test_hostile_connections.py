"""Connections a hostile tester makes, over a real socket on 127.0.0.1, with both of uvicorn's
parsers: clients that leave mid-request, bytes uvicorn answers itself, requests that never
finish arriving, more connections than allowed, and a shutdown with all of these in flight.

The journal says what each client saw: a request whose client left is `status` None with
`outcome` "client_disconnected" (and no problem for `check()`), one the mock cut is
"dropped", and an answer the client never got is never journaled as given.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from mockserver import MockServer, create_app
from mockserver.answers.images import ImageSpec, render_spec
from mockserver.cli import build_parser, serve_options
from mockserver.record.journal import RequestRecord
from tests.conftest import PARSERS

READ_TIMEOUT = 0.5  # short, for the test: the default is 30 s
GENERATIONS = "/v1/images/generations"
BODY = json.dumps({"model": "jimeng-4.0", "prompt": "a cat", "n": 1}).encode()
UVICORN_400 = b"Invalid HTTP request received."


@pytest.fixture(scope="module", params=PARSERS)
def served(request: pytest.FixtureRequest) -> Iterator[MockServer]:
    with MockServer(http=request.param, read_timeout=READ_TIMEOUT) as server:
        yield server


@pytest.fixture
def mock(served: MockServer) -> MockServer:
    served.reset()
    return served


@pytest.fixture
def tracebacks(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """What was logged at error level or with a traceback (the server's loggers propagate to
    the root logger in a `MockServer`); uvicorn's one-line warnings do not count."""
    caplog.set_level(logging.WARNING)

    def found() -> list[str]:
        return [
            f"{r.name}: {r.getMessage()}"
            for r in caplog.records
            if r.levelno >= logging.ERROR or r.exc_info
        ]

    return found


class Address(Protocol):
    """Where a mock listens, and its key: a `MockServer`, or a `Command`."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def api_key(self) -> str: ...


@dataclass(frozen=True)
class Command:
    host: str
    port: int
    api_key: str = "sk-test"


def head(
    server: Address,
    *,
    length: int | None = len(BODY),
    extra: str = "",
    path: str = GENERATIONS,
    auth: bool = True,
) -> bytes:
    """The head of a POST; `length` None: a chunked body."""
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    key = f"Authorization: Bearer {server.api_key}\r\n" if auth else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n{key}"
        f"Content-Type: application/json\r\n{framing}\r\n{extra}\r\n"
    ).encode()


def connect(server: Address) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=10)


def read_all(sock: socket.socket, limit: float = 5.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took;
    fails if it is still open after `limit` s."""
    sock.settimeout(limit)
    began = time.monotonic()
    received = b""
    try:
        while data := sock.recv(65536):
            received += data
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the connection was still open after {limit} s: {received[:200]!r}")
    return received, time.monotonic() - began


def read_answer(sock: socket.socket, limit: float = 10.0) -> bytes:
    """One answer with a Content-Length, read without waiting for the connection to close."""
    sock.settimeout(limit)
    received = b""
    while True:
        head_part, separator, rest = received.partition(b"\r\n\r\n")
        length = re.search(rb"\r\ncontent-length: *(\d+)", head_part.lower())
        if separator and length and len(rest) >= int(length[1]):
            return received
        data = sock.recv(65536)
        assert data, f"closed before a whole answer: {received[:300]!r}"
        received += data


def first_answer(data: bytes) -> tuple[int, str, bytes]:
    """Status, content type and body of the first response in `data`."""
    head_part, separator, rest = data.partition(b"\r\n\r\n")
    assert separator, f"no response in {data[:300]!r}"
    status_line, *lines = head_part.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = rest[: int(headers.get("content-length", len(rest)))]
    return int(status_line.split()[1]), headers.get("content-type", ""), body


def until_recorded(server: MockServer, count: int = 1, limit: float = 5.0) -> list[RequestRecord]:
    deadline = time.monotonic() + limit
    while len(server.requests) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"{len(server.requests)} requests recorded after {limit} s: {count} wanted")
        time.sleep(0.01)
    return server.requests


def assert_client_left(record: RequestRecord) -> None:
    assert (record.status, record.outcome) == (None, "client_disconnected"), record
    assert record.exception is None, record.exception


# ----------------------------------------------------------------- 1. clients that leave


def half_chunked(server: MockServer) -> bytes:
    return head(server, length=None) + b"10\r\n" + BODY[:16] + b"\r\n"


def bad_chunk(server: MockServer) -> bytes:
    """A chunk size that is no hexadecimal number: neither parser can go on."""
    return head(server, length=None) + b"zz\r\n" + BODY + b"\r\n0\r\n\r\n"


LEAVING_DURING_THE_BODY = {
    "content-length-1000-then-half": lambda server: head(server, length=1000) + BODY[:20],
    "chunked-then-half": half_chunked,
    "malformed-chunk": bad_chunk,
}


@pytest.mark.parametrize(
    "sent", list(LEAVING_DURING_THE_BODY.values()), ids=list(LEAVING_DURING_THE_BODY)
)
def test_a_client_that_leaves_during_the_body_left(
    mock: MockServer, sent: Callable[[MockServer], bytes], tracebacks: Callable[[], list[str]]
) -> None:
    """No `server_error` "bug in the mock": the body never came (the malformed chunk gets
    uvicorn's own 400, which closes the connection: the mock never had the body either)."""
    with connect(mock) as sock:
        sock.sendall(sent(mock))
        time.sleep(0.1)

    (record,) = until_recorded(mock)
    assert_client_left(record)
    assert (record.error, record.body) == (None, None)
    mock.check()
    assert tracebacks() == []


@pytest.mark.parametrize(
    "extra",
    ["X-Mock-Latency-Ms: 2000\r\n", "X-Mock-Fault: slow\r\n", "queued"],
    ids=["latency-header", "slow-fault", "queued-slow-fault"],
)
def test_a_client_that_leaves_while_its_answer_waits_left_then(
    mock: MockServer, extra: str, tracebacks: Callable[[], list[str]]
) -> None:
    """The 2 s wait stops when the client goes: the request is recorded then, not as a 200
    two seconds later."""
    slow = "slow" in extra or extra == "queued"
    if extra == "queued":
        mock.fail_next("slow")
    with connect(mock) as sock:
        sock.sendall(head(mock, extra="" if extra == "queued" else extra) + BODY)
        time.sleep(0.2)
    left = time.monotonic()

    (record,) = until_recorded(mock, limit=1.0)
    assert time.monotonic() - left < 1.0
    assert_client_left(record)
    assert record.duration_ms < 1500, record.duration_ms
    assert record.body == json.loads(BODY)
    assert record.fault == ("slow" if slow else None)
    mock.check()
    page = httpx.get(mock.url + "/__admin/").text
    assert "client left" in page
    assert tracebacks() == []


@pytest.mark.parametrize("http", PARSERS)
def test_a_client_that_leaves_while_its_image_is_drawn_stops_no_one_else(
    http: str, monkeypatch: pytest.MonkeyPatch, tracebacks: Callable[[], list[str]]
) -> None:
    """The image a client that left was waiting for is drawn all the same (another request
    may wait for it too): stopping that render would fail every later request for it."""

    def slowly(spec: ImageSpec) -> bytes:
        time.sleep(0.4)
        return render_spec(spec)

    monkeypatch.setattr("mockserver.web.endpoints.render_spec", slowly)

    def b64(prompt: str) -> bytes:
        body = {"model": "jimeng-4.0", "prompt": prompt, "n": 1, "response_format": "b64_json"}
        return json.dumps(body).encode()

    with MockServer(http=http, render_concurrency=1) as server:
        busy, leaving, waiting = (connect(server) for _ in range(3))
        for sock, prompt in ((busy, "one"), (leaving, "two"), (waiting, "two")):
            sock.sendall(head(server, length=len(b64(prompt))) + b64(prompt))
            time.sleep(0.1)  # "two" waits for "one", the second "two" for the first
        leaving.close()
        answers = [first_answer(read_answer(sock))[0] for sock in (busy, waiting)]
        busy.close()
        waiting.close()
        again = httpx.post(
            server.url + GENERATIONS,
            content=b64("two"),
            headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
            timeout=10,
        )
        records = until_recorded(server, 4)

    assert answers == [200, 200]
    assert again.status_code == 200, again.text[:300]
    outcomes = sorted((r.body["prompt"], r.outcome, r.status or 0) for r in records)
    assert outcomes == [
        ("one", "answered", 200),
        ("two", "answered", 200),
        ("two", "answered", 200),
        ("two", "client_disconnected", 0),
    ]
    left = next(r for r in records if r.outcome == "client_disconnected")
    assert left.status is None
    assert tracebacks() == []


def test_the_page_says_who_ended_a_request_that_got_no_answer(mock: MockServer) -> None:
    with connect(mock) as sock:
        sock.sendall(head(mock, length=1000) + BODY[:20])
    until_recorded(mock)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(
            mock.url + GENERATIONS,
            content=BODY,
            headers={
                "Authorization": "Bearer k",
                "Content-Type": "application/json",
                "X-Mock-Fault": "disconnect",
            },
        )
    left, dropped_record = until_recorded(mock, 2)

    page = httpx.get(mock.url + "/__admin/").text
    assert re.search(rf'id="request-{left.id}">.*?client left', page, re.DOTALL)
    assert re.search(rf'id="request-{dropped_record.id}">.*?dropped by the mock', page, re.DOTALL)


# ------------------------------------------------- 2. answers the app did not give


def pipelined_junk(server: MockServer) -> bytes:
    """A whole request, and bytes after it that are no request."""
    return head(server) + BODY + b"garbage\r\n\r\n"


def short_then_junk(server: MockServer) -> bytes:
    """A Content-Length 5 bytes short of the body, and more bytes that are no request."""
    return head(server, length=len(BODY) - 5) + BODY + b"\x00\x01 junk\r\n\r\n"


def refused_then_bad_chunk(server: MockServer) -> bytes:
    """No key (refused before the body is read), and a malformed chunk with the head."""
    return head(server, length=None, auth=False) + b"zz\r\nabc\r\n"


UNPARSABLE = {
    "pipelined-junk": (pipelined_junk, b""),
    "short-content-length-then-junk": (short_then_junk, b""),
    "refused-then-bad-chunk": (refused_then_bad_chunk, b""),
    "refused-then-bad-chunk-later": (
        lambda server: head(server, length=None, auth=False),
        b"zz\r\nabc\r\n",
    ),
}


@pytest.mark.parametrize("sent", list(UNPARSABLE.values()), ids=list(UNPARSABLE))
def test_the_journal_says_which_answer_the_client_got(
    mock: MockServer,
    sent: tuple[Callable[[MockServer], bytes], bytes],
    tracebacks: Callable[[], list[str]],
) -> None:
    """uvicorn answers bytes it cannot parse with a 400 of its own, sometimes before the
    mock's answer (httptools reads ahead): then the mock's answer was never the client's,
    and the journal does not say it was. Either way nothing is logged as an error."""
    first, later = sent
    with connect(mock) as sock:
        sock.sendall(first(mock))
        if later:
            time.sleep(0.1)
            sock.sendall(later)
        received, _ = read_all(sock)

    status, content_type, body = first_answer(received)
    (record,) = until_recorded(mock)
    if UVICORN_400 in body:  # h11 sends it chunked
        assert (status, content_type) == (400, "text/plain; charset=utf-8")
        assert_client_left(record)
    else:
        assert content_type == "application/json"
        assert (record.status, record.outcome) == (status, "answered")
        assert record.error == json.loads(body).get("error", {}).get("code")
    time.sleep(0.1)  # what uvicorn does after the answer
    assert tracebacks() == []


# ------------------------------------------------------------------------- 3. timeouts


def test_a_body_that_stops_coming_is_a_408(mock: MockServer) -> None:
    with connect(mock) as sock:
        sock.sendall(head(mock) + BODY[:10])
        received, took = read_all(sock)

    status, content_type, body = first_answer(received)
    assert (status, content_type) == (408, "application/json")
    error = json.loads(body)["error"]
    assert (error["code"], error["param"], error["type"]) == (
        "request_timeout",
        None,
        "invalid_request_error",
    )
    assert f"within {READ_TIMEOUT:g} s" in error["message"]
    assert b"\r\nconnection: close\r\n" in received.lower()
    assert READ_TIMEOUT * 0.8 < took < READ_TIMEOUT + 2
    (record,) = until_recorded(mock)
    assert (record.status, record.error, record.outcome) == (408, "request_timeout", "answered")


def test_a_body_that_stops_coming_to_an_admin_route_is_a_408(mock: MockServer) -> None:
    with connect(mock) as sock:
        sock.sendall(head(mock, path="/__admin/faults", length=100) + b'{"fault": ')
        received, took = read_all(sock)

    status, _, body = first_answer(received)
    assert (status, json.loads(body)["error"]["code"]) == (408, "request_timeout")
    assert took < READ_TIMEOUT + 2


def test_a_body_that_trickles_in_is_timed_as_a_whole(mock: MockServer) -> None:
    """A byte every 0.1 s keeps no connection open past the timeout."""
    with connect(mock) as sock:
        sock.sendall(head(mock))
        began = time.monotonic()
        try:
            for byte in BODY:
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received, _ = read_all(sock)

    assert first_answer(received)[0] == 408
    assert time.monotonic() - began < READ_TIMEOUT + 2


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\n", b"GET /heal"],
    ids=["nothing", "part-of-the-headers", "part-of-the-request-line"],
)
def test_a_connection_whose_request_never_starts_is_closed(mock: MockServer, sent: bytes) -> None:
    with connect(mock) as sock:
        sock.sendall(sent)
        received, took = read_all(sock)

    assert received == b""
    assert READ_TIMEOUT * 0.8 < took < READ_TIMEOUT + 2
    assert mock.requests == []


def test_the_next_request_on_a_connection_is_timed_too(mock: MockServer) -> None:
    with connect(mock) as sock:
        sock.sendall(head(mock) + BODY)
        time.sleep(0.2)
        sock.sendall(b"POST /v1/images/gen")
        received, took = read_all(sock)

    assert first_answer(received)[0] == 200
    assert took < READ_TIMEOUT + 2
    assert len(mock.requests) == 1


def test_an_idle_keep_alive_connection_is_left_to_uvicorn(mock: MockServer) -> None:
    """Between requests the keep-alive timeout (uvicorn's 5 s) counts, not the read timeout."""
    with httpx.Client(timeout=5) as client:
        headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}
        first = client.post(mock.url + GENERATIONS, content=BODY, headers=headers)
        time.sleep(READ_TIMEOUT * 3)
        second = client.post(mock.url + GENERATIONS, content=BODY, headers=headers)

    assert first.status_code == second.status_code == 200
    assert first.extensions["network_stream"] is second.extensions["network_stream"]


def test_a_slow_answer_is_no_read_timeout(mock: MockServer) -> None:
    """The timeout is the client's sending; the mock's own latency may take longer."""
    answer = httpx.post(
        mock.url + GENERATIONS,
        content=BODY,
        headers={
            "Authorization": "Bearer k",
            "Content-Type": "application/json",
            "X-Mock-Latency-Ms": str(int(READ_TIMEOUT * 3000)),
        },
        timeout=10,
    )
    assert answer.status_code == 200


@pytest.mark.parametrize("http", PARSERS)
def test_past_the_concurrency_limit_uvicorn_answers_503(http: str) -> None:
    with MockServer(http=http, limit_concurrency=2) as server:
        with connect(server) as busy:
            busy.sendall(head(server, extra="X-Mock-Latency-Ms: 1000\r\n") + BODY)
            time.sleep(0.1)
            refused = httpx.get(server.url + "/healthz")
            answered = read_answer(busy)
        after = httpx.get(server.url + "/healthz")

    assert (refused.status_code, refused.headers["content-type"]) == (
        503,
        "text/plain; charset=utf-8",
    )
    assert first_answer(answered)[0] == 200
    assert after.status_code == 200


# ------------------------------------------------------------------------- 4. shutdown


def test_a_mock_server_stops_within_its_shutdown_timeout() -> None:
    """`stop()` lets an answer in progress finish, and cuts the ones that would not in time:
    the journal says the mock dropped them."""
    server = MockServer(read_timeout=READ_TIMEOUT, shutdown_timeout=0.5).start()
    slow = connect(server)
    slow.sendall(head(server, extra="X-Mock-Latency-Ms: 30000\r\n") + BODY)
    quick = connect(server)
    quick.sendall(head(server, extra="X-Mock-Latency-Ms: 300\r\n") + BODY)
    time.sleep(0.1)

    began = time.monotonic()
    server.stop()
    took = time.monotonic() - began

    assert not server.running
    assert took < 2.0, took
    assert read_all(slow)[0] == b""
    assert first_answer(read_all(quick)[0])[0] == 200
    slow.close()
    quick.close()
    by_latency = {r.headers["x-mock-latency-ms"]: r for r in server.requests}
    assert (by_latency["30000"].status, by_latency["30000"].outcome) == (None, "dropped")
    assert (by_latency["300"].status, by_latency["300"].outcome) == (200, "answered")


COMMAND = [sys.executable, "-m", "mockserver", "--port", "0", "--log-level", "info"]


def _in_flight(url: str) -> dict[str, socket.socket]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    command = Command(host, int(port))

    def sent(data: bytes) -> socket.socket:
        sock = connect(command)
        sock.sendall(data)
        return sock

    return {
        "slow": sent(head(command, extra="X-Mock-Latency-Ms: 30000\r\n") + BODY),
        "half-body": sent(head(command) + BODY[:10]),
        "quick": sent(head(command, extra="X-Mock-Latency-Ms: 500\r\n") + BODY),
        "idle": sent(b""),
        "part-of-the-headers": sent(b"POST / HTTP/1.1\r\n"),
    }


def _stopped(args: list[str], sig: int) -> tuple[int, float, dict[str, bytes], str]:
    """Start the command, put requests in flight, send `sig`: its exit code, how long it
    took to exit, what each connection got, and its standard error."""
    process = subprocess.Popen(
        [*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("jimeng-mock listening on "), line
        connections = _in_flight(line.split()[-1])
        time.sleep(0.2)
        began = time.monotonic()
        process.send_signal(sig)
        got: dict[str, bytes] = {}
        readers = [
            threading.Thread(target=lambda n=n, s=s: got.update({n: read_all(s, 10)[0]}))
            for n, s in connections.items()
        ]
        for reader in readers:
            reader.start()
        code = process.wait(timeout=15)
        took = time.monotonic() - began
        for reader in readers:
            reader.join(15)
        for sock in connections.values():
            sock.close()
        return code, took, got, process.communicate(timeout=5)[1]
    finally:
        process.kill()
        process.communicate()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("http", PARSERS)
def test_the_command_stops_within_its_shutdown_timeout(http: str, sig: int) -> None:
    code, took, got, stderr = _stopped(["--http", http, "--shutdown-timeout", "1"], sig)

    assert code == 0, stderr
    assert took < 1 + 1.5, took
    assert first_answer(got["quick"])[0] == 200  # in progress, and done in time
    assert got["slow"] == got["half-body"] == got["idle"] == got["part-of-the-headers"] == b""
    assert "Traceback" not in stderr, stderr
    assert "ERROR" not in stderr, stderr


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="workers: Linux")
def test_workers_stop_within_the_shutdown_timeout() -> None:
    code, took, got, stderr = _stopped(
        ["--workers", "2", "--shutdown-timeout", "1"], signal.SIGTERM
    )

    assert code == 0, stderr
    assert took < 1 + 2.5, took
    assert first_answer(got["quick"])[0] == 200
    assert got["slow"] == b""
    assert "Traceback" not in stderr, stderr
    assert "did not stop; killing it" not in stderr


class FakeTransport:
    def __init__(self) -> None:
        self.closed = False

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


class FakeCycle:
    """What `KeepTransport` finds behind uvicorn's `receive`: a cycle holding the transport."""

    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.disconnected = False
        self.response_complete = False
        self.sent = False

    async def receive(self) -> dict[str, object]:
        if not self.sent:
            self.sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}


@pytest.mark.parametrize("closed_meanwhile", [True, False], ids=["connection-closed", "open"])
def test_an_answer_the_server_refuses_is_not_journaled_as_given(
    closed_meanwhile: bool, tracebacks: Callable[[], list[str]]
) -> None:
    """The server's `send` raising (h11 refuses a second answer) is no error of the app's:
    on a connection closed meanwhile the client saw nothing of it; on an open one it is a
    failure of the mock, recorded, and the connection is closed."""
    app = create_app()
    cycle = FakeCycle()

    async def refusing_send(message: Mapping[str, object]) -> None:
        cycle.transport.closed = closed_meanwhile
        cycle.disconnected = closed_meanwhile
        raise RuntimeError("the server cannot send this")

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/models",
        "headers": [(b"authorization", b"Bearer k")],
        "query_string": b"",
        "scheme": "http",
        "server": ("127.0.0.1", 1),
        "root_path": "",
    }
    asyncio.run(app(scope, cycle.receive, refusing_send))

    (record,) = app.state.mock.requests
    assert record.status is None
    assert cycle.transport.closed
    if closed_meanwhile:
        assert_client_left(record)
        assert tracebacks() == []
    else:
        assert record.outcome == "dropped"
        assert record.exception is not None
        assert "the server cannot send this" in record.exception
        with pytest.raises(AssertionError, match="the mock failed"):
            app.state.mock.check()


def test_the_command_line_takes_the_limits() -> None:
    defaults = serve_options(build_parser().parse_args([]))
    assert (defaults.read_timeout, defaults.shutdown_timeout, defaults.limit_concurrency) == (
        30.0,
        3.0,
        None,
    )
    args = ["--read-timeout", "2.5", "--limit-concurrency", "8", "--shutdown-timeout", "0"]
    chosen = serve_options(build_parser().parse_args(args))
    assert (chosen.read_timeout, chosen.shutdown_timeout, chosen.limit_concurrency) == (2.5, 0, 8)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--read-timeout", "0", "expected seconds above 0"),
        ("--read-timeout", "soon", "expected seconds above 0"),
        ("--read-timeout", "inf", "expected seconds above 0"),
        ("--shutdown-timeout", "-1", "expected seconds 0 or more"),
        ("--limit-concurrency", "0", "expected a whole number of at least 1"),
    ],
)
def test_the_command_line_refuses_limits_that_are_none(
    option: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([option, value])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def _never_reading(base: str, image_path: str, count: int = 4) -> list[socket.socket]:
    """Sockets that ask, pipelined, for 20 large images each and never read a byte: the
    mock's writes to them fill up and stay full."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    request = f"GET {image_path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode() * 20
    sockets = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.connect((host, int(port)))
        sock.sendall(request)
        sockets.append(sock)
    return sockets


def _large_image_path(base: str) -> str:
    answer = httpx.post(
        base + "/v1/images/generations",
        headers={"Authorization": "Bearer k"},
        json={"model": "jimeng-4.0", "prompt": "wide", "n": 1, "size": "6048x2592"},
    )
    answer.raise_for_status()
    return "/" + answer.json()["data"][0]["url"].split("/", 3)[3]


@pytest.mark.parametrize("http", PARSERS)
def test_a_stop_is_bounded_while_clients_never_read(http: str) -> None:
    server = MockServer(http=http, shutdown_timeout=0.5).start()
    sockets = _never_reading(server.url, _large_image_path(server.url))
    try:
        time.sleep(0.5)  # the answers are drawn and their writes fill the sockets
        began = time.monotonic()
        server.stop()
        took = time.monotonic() - began
        serving = [t.name for t in threading.enumerate() if t.name == f"jimeng-mock:{server.port}"]
        assert serving == [], f"still serving {took:.1f} s after stop()"
        assert took < 0.5 + 3, took
    finally:
        for sock in sockets:
            sock.close()


def test_the_command_exits_on_sigterm_while_clients_never_read() -> None:
    process = subprocess.Popen(
        [*COMMAND, "--shutdown-timeout", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sockets: list[socket.socket] = []
    try:
        assert process.stdout is not None
        base = process.stdout.readline().split()[-1]
        sockets = _never_reading(base, _large_image_path(base))
        time.sleep(0.5)
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
        assert code == 0
        assert time.monotonic() - began < 0.5 + 3
    finally:
        for sock in sockets:
            sock.close()
        process.kill()
        process.communicate()
