"""mockserver/web/uvicorn_glue.py: what it needs of uvicorn's internals, and what it does with them.

These fail when a uvicorn release moves an internal the package relies on (they run on the
lowest declared versions too: `make lowest`).
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import logging
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http import h11_impl, httptools_impl

from mockserver.web.uvicorn_glue import (
    _IDLE,
    TRANSPORT,
    KeepTransport,
    ServeOptions,
    ThreadServer,
    _awaiting_headers,
    _H11Protocol,
    _PromptServer,
    _Server,
    base_url,
    bind_socket,
    cut_by_server,
    drop_connection,
    keep_transport,
    read_timeout_of,
    transport_of,
)

pytestmark = pytest.mark.smoke

PARSERS = ["h11", "httptools"]
LOOPS = ["asyncio", "uvloop"] if importlib.util.find_spec("uvloop") else ["asyncio"]


def parameters(function: object) -> list[str]:
    assert callable(function)
    return list(inspect.signature(function).parameters)


def test_uvicorn_server_has_what_serving_overrides() -> None:
    """`_Server` and `_PromptServer` override these methods and read these attributes."""
    server = uvicorn.Server
    for name in ("startup", "main_loop", "on_tick", "shutdown"):
        assert inspect.iscoroutinefunction(getattr(server, name)), name
    assert parameters(server.startup) == ["self", "sockets"]
    assert parameters(server.shutdown) == ["self", "sockets"]
    assert parameters(server.main_loop) == ["self"]
    assert parameters(server.on_tick) == ["self", "counter"]
    assert parameters(server.run) == ["self", "sockets"]
    for subclass in (_Server, _PromptServer):
        assert issubclass(subclass, uvicorn.Server)

    fresh = uvicorn.Server(uvicorn.Config(hello, log_config=None, lifespan="off"))
    assert (fresh.started, fresh.should_exit) == (False, False)
    assert isinstance(fresh.server_state.connections, set)
    assert isinstance(fresh.server_state.tasks, set)


@pytest.mark.parametrize(
    ("module", "protocol"),
    [(h11_impl, "H11Protocol"), (httptools_impl, "HttpToolsProtocol")],
    ids=PARSERS,
)
def test_uvicorn_request_cycles_hold_their_transport(module: ModuleType, protocol: str) -> None:
    """`transport_of` and `KeepTransport` read these (the served tests below use them)."""
    cycle = module.RequestResponseCycle
    assert "transport" in parameters(cycle.__init__)
    assert inspect.iscoroutinefunction(cycle.receive)
    source = inspect.getsource(cycle.__init__)
    for line in (
        "self.transport = transport",
        "self.disconnected = False",
        "self.response_complete = False",
    ):
        assert line in source, line
    lost = inspect.getsource(getattr(module, protocol).connection_lost)
    assert "self.cycle.disconnected = True" in lost


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def rewrapping(app: ASGIApp) -> ASGIApp:
    """Middleware that wraps `receive`, as Starlette's and the mock's do."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_again() -> Message:
            return await receive()

        await app(scope, receive_again, send)

    return wrapped


async def text(send: Send, body: str, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body.encode()})


async def endpoints(scope: Scope, receive: Receive, send: Send) -> None:
    """`/drop` drops the connection; `/where` says what the app sees of the connection."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/drop":
        if not drop_connection(scope):
            await text(send, "no transport to drop", 503)
        return
    if scope["path"] == "/where":
        kept = scope.get(TRANSPORT)
        # `receive` is wrapped here: only the kept transport knows the connection.
        await text(send, f"{transport_of(receive) is None} {kept is not None}")
        return
    await text(send, "ok")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def serving(app: ASGIApp, options: ServeOptions) -> Iterator[str]:
    sock = bind_socket("127.0.0.1", 0)
    server = ThreadServer(app, options)
    assert server.start(sock, name="test-serving")
    try:
        yield base_url("127.0.0.1", sock.getsockname()[1])
    finally:
        server.stop()
    assert not server.running


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("http", PARSERS)
def test_a_dropped_connection_gets_no_answer_and_the_server_goes_on(http: str, loop: str) -> None:
    records = Records()
    logging.getLogger("uvicorn.error").addHandler(records)
    options = ServeOptions(http=http, loop=loop, log_level="warning", uvicorn_logging=False)
    try:
        with serving(KeepTransport(rewrapping(endpoints)), options) as url, httpx.Client() as c:
            assert c.get(url + "/where").text == "True True"
            with pytest.raises(httpx.RemoteProtocolError):
                c.get(url + "/drop")
            assert c.get(url + "/ok").text == "ok"
            # A new connection, and the same one again.
            with pytest.raises(httpx.RemoteProtocolError):
                c.get(url + "/drop")
            assert [c.get(url + "/ok").text for _ in range(3)] == ["ok"] * 3
    finally:
        logging.getLogger("uvicorn.error").removeHandler(records)
    # uvicorn saw the connection lost before the app returned: no "returned without
    # starting response", no 500 written to a closed connection.
    assert [r.getMessage() for r in records.records] == []


@pytest.mark.parametrize("http", PARSERS)
def test_options_choose_the_parser(http: str) -> None:
    async def where(scope: Scope, receive: Receive, send: Send) -> None:
        await text(send, type(getattr(receive, "__self__", None)).__module__)

    options = ServeOptions(http=http, log_level="warning", uvicorn_logging=False)
    with serving(where, options) as url:
        assert httpx.get(url).text == f"uvicorn.protocols.http.{http}_impl"


def test_under_an_asgi_transport_there_is_no_connection_to_drop() -> None:
    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=KeepTransport(endpoints))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.get("/drop"), await client.get("/where")]

    dropped, where = asyncio.run(scenario())
    assert (dropped.status_code, dropped.text) == (503, "no transport to drop")
    assert where.text == "True False"
    assert drop_connection({"type": "http"}) is False


def test_keep_transport_leaves_other_scopes_alone() -> None:
    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    scope: Scope = {"type": "lifespan"}
    assert keep_transport(scope, receive) is None
    assert scope == {"type": "lifespan"}


def test_options_refuse_unknown_choices() -> None:
    with pytest.raises(ValueError, match="http must be one of auto, h11, httptools"):
        ServeOptions(http="h3")
    with pytest.raises(ValueError, match="loop must be one of auto, asyncio, uvloop"):
        ServeOptions(loop="trio")


def test_a_thread_server_stops_at_once() -> None:
    """uvicorn alone polls every 0.1 s and then waits 0.1 s for connections."""
    options = ServeOptions(log_level="warning", uvicorn_logging=False)
    server = ThreadServer(hello, options)
    for _ in range(3):
        sock = bind_socket("127.0.0.1", 0)
        url = base_url("127.0.0.1", sock.getsockname()[1])
        assert server.start(sock, name="test-stop")
        assert server.running
        uvicorn_server = server._server
        assert uvicorn_server is not None
        assert len(uvicorn_server.servers) == 1  # what the quick shutdown closes
        assert httpx.get(url).text == "hello"
        began = time.monotonic()
        server.stop()
        assert time.monotonic() - began < 0.09
        assert not server.running
        with pytest.raises(httpx.ConnectError):  # the listening socket is closed
            httpx.get(url)


def test_a_thread_server_stops_with_a_connection_open() -> None:
    options = ServeOptions(log_level="warning", uvicorn_logging=False)
    server = ThreadServer(hello, options)
    sock = bind_socket("127.0.0.1", 0)
    assert server.start(sock, name="test-stop")
    with httpx.Client() as keep_alive:
        assert keep_alive.get(base_url("127.0.0.1", sock.getsockname()[1])).text == "hello"
        server.stop(timeout=5)
        assert not server.running


def test_base_url_brackets_ipv6() -> None:
    assert base_url("127.0.0.1", 80) == "http://127.0.0.1:80"
    assert base_url("::1", 80) == "http://[::1]:80"


def test_every_file_with_smoke_tests_runs_in_make_lowest() -> None:
    """`make lowest` collects only the files it names (the others need more test tools)."""
    root = Path(__file__).parent.parent
    makefile = (root / "Makefile").read_text()
    named = re.search(r"^SMOKE_TESTS\s*:=(.*)$", makefile, re.MULTILINE)
    assert named is not None
    marked = {
        path.relative_to(root).as_posix()
        for path in (root / "tests").glob("test_*.py")
        if "mark.smoke" in path.read_text()
    }
    assert marked <= set(named.group(1).split())


SUPERVISE = """
import sys
from mockserver.app import create_app
from mockserver.config import MockConfig
from mockserver.web.uvicorn_glue import ServeOptions, bind_socket, serve_workers

code = serve_workers(
    bind_socket("127.0.0.1", 0), 2, create_app, (MockConfig(fixtures=sys.argv[1]),),
    ServeOptions(log_level="warning"), lambda: print("ready", flush=True),
    startup_timeout=30,
)
sys.exit(code)
"""


def test_workers_that_fail_to_start_fail_the_supervisor() -> None:
    """The command checks its options before it starts workers; should a worker fail all
    the same, the supervisor stops and exits 1 without saying it is ready."""
    result = subprocess.run(
        [sys.executable, "-c", SUPERVISE, "/no/such/folder"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "ready" not in result.stdout
    assert "exited with code 1 before serving; stopping" in result.stderr


# ---------------------------------------------------------------- timeouts and shutdown


def test_uvicorn_has_the_options_and_the_signals_serving_uses() -> None:
    """`ServeOptions.config` passes these; `_Server.shutdown` empties `_captured_signals`,
    which uvicorn raises again once it has stopped; `_H11Protocol` overrides this method."""
    config = inspect.signature(uvicorn.Config).parameters
    for name in ("limit_concurrency", "timeout_graceful_shutdown", "timeout_keep_alive", "http"):
        assert name in config, name
    fresh = uvicorn.Server(uvicorn.Config(hello, log_config=None, lifespan="off"))
    assert fresh._captured_signals == []
    assert "self._captured_signals" in inspect.getsource(uvicorn.Server.capture_signals)
    assert parameters(h11_impl.H11Protocol.send_400_response) == ["self", "msg"]
    h11_config = ServeOptions(http="h11").config(hello)
    h11_config.load()
    assert h11_config.http_protocol_class is _H11Protocol
    assert h11_config.timeout_graceful_shutdown == 4  # the backstop: 3 s, and 1 more


class Held:
    """An app that answers `/hold` when `release` is set, and keeps the scopes it saw."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.scopes.append(scope)
        if scope["path"] == "/hold":
            while not self.release.is_set() and not cut_by_server(scope):
                await asyncio.sleep(0.01)
        await text(send, f"{read_timeout_of(scope)}")


def connections(server: ThreadServer) -> list[object]:
    assert server._server is not None
    return list(server._server.server_state.connections)


def one_connection(server: ThreadServer) -> object:
    deadline = time.monotonic() + 5
    while len(found := connections(server)) != 1:
        assert time.monotonic() < deadline, found
        time.sleep(0.01)
    return found[0]


def eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("http", PARSERS)
def test_what_the_read_timeout_sees_of_uvicorn_connections(http: str) -> None:
    """`_awaiting_headers` reads `.transport`, `.cycle` (and its `.response_complete`) and
    `.timeout_keep_alive_task` of uvicorn's protocols; a long read timeout, so that none of
    these connections is closed while the test looks at them."""
    app = Held()
    options = ServeOptions(http=http, log_level="warning", uvicorn_logging=False, read_timeout=60)
    sock = bind_socket("127.0.0.1", 0)
    server = ThreadServer(app, options)
    assert server.start(sock, name="test-timeouts")
    try:
        with socket.create_connection(sock.getsockname(), timeout=5) as raw:
            connection = one_connection(server)
            assert _awaiting_headers(connection) is _IDLE  # nothing sent
            raw.sendall(b"GET /hold HTTP/1.1\r\nHost: x\r\n")
            time.sleep(0.1)
            assert _awaiting_headers(connection) is _IDLE  # part of the headers
            raw.sendall(b"\r\n")
            eventually(lambda: len(app.scopes) == 1)
            assert _awaiting_headers(connection) is None  # being answered
            app.release.set()
            answer = b""
            while not answer.endswith(b"0\r\n\r\n"):  # chunked: no Content-Length
                answer += raw.recv(4096)
            assert b"\r\n60\r\n" in answer  # the read timeout, in the scope
            eventually(lambda: _awaiting_headers(connection) is None)  # idle: keep-alive's
            raw.sendall(b"GET /ok HT")
            eventually(lambda: _awaiting_headers(connection) not in (None, _IDLE))
            marker = _awaiting_headers(connection)
            raw.sendall(b"TP/1.1\r\nHost")
            time.sleep(0.1)
            assert _awaiting_headers(connection) is marker  # still the same request's
    finally:
        server.stop()


@pytest.mark.parametrize("http", PARSERS)
def test_a_shutdown_cuts_what_is_still_open_when_its_time_is_up(http: str) -> None:
    """`_cut_after` marks the scope the app has (uvicorn's cycle's `.scope`) and closes."""
    app = Held()
    options = ServeOptions(
        http=http, log_level="warning", uvicorn_logging=False, shutdown_timeout=0.3
    )
    sock = bind_socket("127.0.0.1", 0)
    server = ThreadServer(app, options)
    assert server.start(sock, name="test-cut")
    with socket.create_connection(sock.getsockname(), timeout=5) as raw:
        raw.sendall(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        eventually(lambda: len(app.scopes) == 1)
        began = time.monotonic()
        server.stop()
        assert time.monotonic() - began < 1.5
        assert cut_by_server(app.scopes[0])
        assert raw.recv(4096) == b""  # cut: no answer


def test_serve_options_refuse_timeouts_that_are_none() -> None:
    for field, value in (("read_timeout", 0), ("read_timeout", -1), ("shutdown_timeout", -1)):
        with pytest.raises(ValueError, match=field):
            ServeOptions(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit_concurrency"):
        ServeOptions(limit_concurrency=0)
    assert ServeOptions(read_timeout=None).read_timeout is None
