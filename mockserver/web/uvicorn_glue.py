"""Serving the app with uvicorn: the one module that knows uvicorn's internals.

uvicorn's public API is `uvicorn.Config` and `uvicorn.Server(config).run(sockets=...)`; the
rest of the package uses only that and this module. What this module needs beyond it, and
what changed between the uvicorn versions pyproject.toml allows, is checked by
tests/test_serving.py, so a uvicorn release that moves it fails there and not in a user's test:

- `Server.startup(sockets)`, `.main_loop()`, `.on_tick(counter)`, `.shutdown(sockets)`,
  `.started`, `.should_exit`, `.servers` and `.server_state.connections/.tasks`: the
  in-thread server that stops at once, and the ready line printed once the socket serves;
- `receive` being a bound method of the HTTP request cycle, which holds the connection's
  asyncio transport as `.transport` and marks `.disconnected` when it is lost (in both
  `uvicorn.protocols.http.h11_impl` and `httptools_impl`): the `disconnect` fault;
- the protocol objects in `.server_state.connections`: their `.transport`, `.cycle` (None
  until a request's headers are in; its `.scope` and `.response_complete`) and
  `.timeout_keep_alive_task` (set while the connection idles between requests): the read
  timeout of requests that do not start, and the connections cut at the end of a shutdown;
- `h11_impl.H11Protocol.send_400_response`, overridden (no second answer, see
  `_H11Protocol`), and `Server._captured_signals`, emptied (a stop on a signal exits 0).

Contents: `bind_socket` and `base_url`; `ServeOptions` (what the command line lets a user
choose); `serve` (this process, until SIGINT/SIGTERM); `ThreadServer` (a background thread,
for `MockServer`); the timeouts (`read_timeout_of`, `cut_by_server`); `serve_workers` (N
processes on one socket, supervised); and `KeepTransport` (or `keep_transport`),
`transport_of`, `kept_transport` and `drop_connection` (closing a connection with no
answer), which `mockserver.web.connection` uses to follow each request's connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import gc
import importlib.util
import math
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from types import FrameType
from typing import Any, cast

import h11
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http import h11_impl

from mockserver import options
from mockserver.errors import ConfigError

# The scope key `KeepTransport` stores the connection's transport under.
TRANSPORT = "jimeng.transport"
# The scope keys of the read timeout (seconds) the server serves with, and of a request the
# server cut at the end of a shutdown.
READ_TIMEOUT = "jimeng.read_timeout"
CUT = "jimeng.cut"


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket, so the port is known (port 0 picks a free one) before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted connections only then, and
    # without it every keep-alive answer waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@options.declared("serve")
@dataclasses.dataclass(frozen=True)
class ServeOptions:
    """How uvicorn serves: its HTTP parser and event loop ("auto": httptools and uvloop
    where installed), its log level, and whether it logs a line per request. Each field but
    `uvicorn_logging` is a "serve" row of the table of options (`mockserver.options`), with
    its default and check there; a bad value is a `ConfigError`.

    `uvicorn_logging` False leaves the process's logging as it is (uvicorn's loggers then
    propagate to the root logger): right for a server inside someone else's process.

    `proxy_headers` lets `X-Forwarded-Proto` and `X-Forwarded-For` from the addresses in
    `forwarded_allow_ips` (uvicorn's default: loopback) stand for the client's scheme and
    address, and so change the returned image URLs. Off by default: on a shared machine any
    local process could otherwise rewrite them; `--public-url` sets the URL base instead.

    `read_timeout` (seconds; None: no limit): a connection whose request headers have not
    all arrived that long after it opened (or after the client started sending the next
    request on it) is closed; a body that has not all arrived that long after its headers is
    answered 408 by the app (`scope["jimeng.read_timeout"]` tells it). A connection idle
    between requests is uvicorn's keep-alive timeout's.

    `shutdown_timeout` (seconds): on SIGINT/SIGTERM (or `ThreadServer.stop`) answers in
    progress may finish for that long; then the connections still open are cut.

    `limit_concurrency`: uvicorn's; past that many connections or requests at once, new
    requests get uvicorn's own `503 text/plain`.
    """

    http: str = options.field("http")
    loop: str = options.field("loop")
    log_level: str = options.field("log_level")
    access_log: bool = options.field("access_log")
    uvicorn_logging: bool = True
    proxy_headers: bool = options.field("proxy_headers")
    forwarded_allow_ips: str | None = options.field("forwarded_allow_ips")
    read_timeout: float | None = options.field("read_timeout")
    shutdown_timeout: float = options.field("shutdown_timeout")
    limit_concurrency: int | None = options.field("limit_concurrency")

    def __post_init__(self) -> None:
        options.checked(self, "serve", ConfigError)
        if self.forwarded_allow_ips is not None:
            # Whose headers to believe says to believe some: --forwarded-allow-ips implies it.
            object.__setattr__(self, "proxy_headers", True)

    def config(self, app: ASGIApp) -> uvicorn.Config:
        extra: dict[str, Any] = {} if self.uvicorn_logging else {"log_config": None}
        if self.read_timeout is not None:
            app = _ReadTimeoutScope(app, self.read_timeout)
        return uvicorn.Config(
            app,
            http=_protocol(self.http),
            loop=self.loop,
            log_level=self.log_level,
            access_log=self.access_log,
            proxy_headers=self.proxy_headers,
            forwarded_allow_ips=self.forwarded_allow_ips,
            limit_concurrency=self.limit_concurrency,
            # Only a backstop: `_Server` cuts what is left once `shutdown_timeout` is up, so
            # uvicorn need not cancel the tasks (which logs a traceback for each).
            timeout_graceful_shutdown=math.ceil(self.shutdown_timeout) + 1,
            lifespan="off",
            **extra,
        )


def _protocol(http: str) -> str | type[asyncio.Protocol]:
    """uvicorn's `http` option: h11 (`auto` without httptools) as `_H11Protocol`."""
    if http == "h11" or (http == "auto" and importlib.util.find_spec("httptools") is None):
        return _H11Protocol
    return http


class _H11Protocol(h11_impl.H11Protocol):
    """uvicorn's h11 protocol, which answers bytes it cannot parse with a 400 of its own.
    When the app has already answered (it need not read a body to refuse the request), h11
    can send no second answer: uvicorn's attempt raised inside `data_received`, and asyncio
    logged it as a fatal error of the transport. Here the connection is closed instead."""

    def send_400_response(self, msg: str) -> None:
        try:
            super().send_400_response(msg)
        except h11.LocalProtocolError:
            self.transport.close()


class _ReadTimeoutScope:
    """ASGI middleware: `scope["jimeng.read_timeout"]`, for the app to time its body reads."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[READ_TIMEOUT] = self.seconds
        await self.app(scope, receive, send)


def read_timeout_of(scope: Scope) -> float | None:
    """The read timeout the request is served with; None under no server of this module."""
    seconds: float | None = scope.get(READ_TIMEOUT)
    return seconds


def cut_by_server(scope: Scope) -> bool:
    """Whether the server closed the request's connection, at the end of its shutdown."""
    return bool(scope.get(CUT))


class _Server(uvicorn.Server):
    """uvicorn's server with the options' timeouts, calling `on_started` once its sockets
    serve: connections whose request does not start within the read timeout are closed,
    and those still open when a shutdown's time is up are cut."""

    def __init__(
        self,
        options: ServeOptions,
        app: ASGIApp,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(options.config(app))
        self.options = options
        self._on_started = on_started
        self._watchers: list[asyncio.Task[None]] = []

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started:
            return
        if self.options.read_timeout is not None:
            reaper = _close_unstarted(self.server_state, self.options.read_timeout)
            self._watchers.append(asyncio.create_task(reaper))
        if not self.should_exit and self._on_started is not None:
            self._on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        cutter = _cut_after(self.server_state, self.options.shutdown_timeout)
        self._watchers.append(asyncio.create_task(cutter))
        try:
            await super().shutdown(sockets)
        finally:
            self._stop_watching()
            # A stop on SIGINT or SIGTERM is the normal end, with exit status 0: uvicorn
            # would raise the signal again once it has stopped (SIGINT: a KeyboardInterrupt
            # traceback; SIGTERM: death by the signal).
            self._captured_signals.clear()

    def _stop_watching(self) -> None:
        for task in self._watchers:
            task.cancel()
        self._watchers.clear()


_IDLE = object()  # the state of a connection no request has started on


def _awaiting_headers(connection: object) -> object | None:
    """What a connection waits for the headers of: a marker that stays the same while it
    waits for the same request, or None when it waits for no request headers (a request is
    being answered, it idles under uvicorn's keep-alive timeout, it is closing, or it is no
    HTTP/1 connection of uvicorn's).

    Once an answer is complete, uvicorn arms its keep-alive timer, and disarms it as bytes
    come: of the next request, or the rest of a body the app answered without reading.
    Either way the read timeout counts from then, so such a connection, idle again with no
    timer, is closed after the read timeout too (uvicorn alone would keep it for ever)."""
    transport = getattr(connection, "transport", None)
    if transport is None or transport.is_closing():
        return None
    if getattr(connection, "timeout_keep_alive_task", None) is not None:
        return None
    cycle = getattr(connection, "cycle", _IDLE)
    if cycle is _IDLE:
        return None
    if cycle is None:
        return _IDLE
    return cycle if getattr(cycle, "response_complete", False) else None


async def _close_unstarted(state: Any, timeout: float) -> None:
    """Close, every tick, the connections that have waited `timeout` s for the headers of
    the same request (nothing sent, or part of the headers)."""
    period = min(1.0, max(0.02, timeout / 5))
    waiting: dict[object, tuple[object, float]] = {}
    while True:
        await asyncio.sleep(period)
        now = time.monotonic()
        still: dict[object, tuple[object, float]] = {}
        for connection in list(state.connections):
            marker = _awaiting_headers(connection)
            if marker is None:
                continue
            seen = waiting.get(connection)
            since = seen[1] if seen is not None and seen[0] is marker else now
            if now - since >= timeout:
                connection.transport.close()
            else:
                still[connection] = (marker, since)
        waiting = still


async def _cut_after(state: Any, seconds: float) -> None:
    """Once a shutdown has waited `seconds`: cut every connection still open, marking the
    requests still being read or answered as cut (`cut_by_server`), so their apps end.

    A cut is an abort: `close()` would first flush what is buffered, which a client that
    stopped reading never lets happen, and the shutdown would wait on it for ever."""
    await asyncio.sleep(seconds)
    for connection in list(state.connections):
        cycle = getattr(connection, "cycle", None)
        if cycle is not None and not cycle.response_complete:
            cycle.scope[CUT] = True
        transport = getattr(connection, "transport", None)
        if transport is not None:
            transport.abort()


def serve(
    app: ASGIApp, sock: socket.socket, options: ServeOptions, on_ready: Callable[[], None]
) -> None:
    """Serve `app` on `sock` in this process until SIGINT or SIGTERM; `on_ready()` once it
    serves. It shuts down gracefully (within `options.shutdown_timeout`) and returns."""
    _settle()
    _Server(options, app, on_ready).run(sockets=[sock])


def _settle() -> None:
    """What the process built to start (modules, schemas, catalogues, the app) stays for its
    life: moved out of the garbage collector's sight, so a collection under load walks only
    what requests made, not the whole start-up heap again."""
    gc.collect()
    gc.freeze()


class _PromptServer(_Server):
    """uvicorn's server, stopped at once from another thread.

    uvicorn looks at `should_exit` every 0.1 s and then gives open connections 0.1 s more;
    here `exit()` wakes the loop, and with no connection open there is nothing to wait for.
    """

    _loop: asyncio.AbstractEventLoop | None = None
    _wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        ticks = 0
        while not await self.on_tick(ticks):  # every 10th tick refreshes the Date header
            ticks += 10
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)

    def exit(self) -> None:
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(wake.set)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.server_state.connections or self.server_state.tasks:
            await super().shutdown(sockets)
            return
        self._stop_watching()
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()


class ThreadServer:
    """`app` served by uvicorn from a daemon thread of this process, stopped at once.

    uvicorn installs no signal handlers outside the main thread, so the process's own stay.
    """

    def __init__(self, app: ASGIApp, options: ServeOptions) -> None:
        self.app = app
        self.options = options
        self._server: _PromptServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, sock: socket.socket, *, name: str, timeout: float = 10.0) -> bool:
        """Serve on `sock`; whether it serves within `timeout` s (if not, it is stopped and
        `sock` closed)."""
        if self.running:
            raise RuntimeError("the server is already running")
        server = _PromptServer(self.options, self.app)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.exit()
                sock.close()
                return False
            time.sleep(0.005)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.exit()
        self._thread.join(timeout)
        self._server = self._thread = None


# ---------------------------------------------------------------- worker processes


def serve_workers(
    sock: socket.socket,
    count: int,
    factory: Callable[..., ASGIApp],
    factory_args: Sequence[Any],
    options: ServeOptions,
    on_ready: Callable[[], None],
    *,
    startup_timeout: float = 60.0,
    stop_timeout: float | None = None,
) -> int:
    """Serve on `sock` from `count` worker processes until SIGINT or SIGTERM; the exit code.

    Each worker is a fresh interpreter (multiprocessing's "spawn"), is handed the listening
    socket, builds its own app with `factory(*factory_args)` and serves it with uvicorn;
    `on_ready()` is called once every worker serves. Both must pickle: the command passes
    `create_app` and its checked `MockConfig`, so a worker parses nothing again, and the
    random secret in that config reaches it through multiprocessing's pipe, not a command
    line that `ps` shows.

    SIGINT or SIGTERM: each worker gets SIGTERM (uvicorn's graceful shutdown, which cuts what
    is still open after `options.shutdown_timeout`), those still there after `stop_timeout`
    s (None: that shutdown timeout and 5 s more) are killed, and the exit code is 0.

    A worker that dies on its own is not restarted: the supervisor says so on stderr, stops
    the others the same way and exits 1. A mock for tests should fail loudly, not carry on
    with fewer workers and different journals. Likewise a worker that fails to start, or
    workers not all serving within `startup_timeout` s, exit 1.

    Workers never outlive the supervisor: on Linux they ask the kernel for SIGTERM when it
    dies (PR_SET_PDEATHSIG; call this from the thread that stays, the main one), elsewhere
    they poll their parent's pid. POSIX only: the socket is passed as a file descriptor.
    """
    processes: list[multiprocessing.process.BaseProcess] = []
    pending: dict[Connection, multiprocessing.process.BaseProcess] = {}
    with _stop_signals() as stop:
        try:
            args = (sock, factory, tuple(factory_args), options)
            for index in range(count):
                receiver, process = _start_worker(index, args)
                processes.append(process)
                pending[receiver] = process
            started = _until_started(pending, processes, stop, startup_timeout)
            if started is not None:
                return started
            on_ready()
            ready = wait([*(p.sentinel for p in processes), stop])
            if stop in ready:
                return 0
            _say(f"{_dead(processes, ready)}; stopping the other workers")
            return 1
        finally:
            for conn in pending:
                conn.close()
            limit = options.shutdown_timeout + 5.0 if stop_timeout is None else stop_timeout
            _stop_all(processes, limit)


def _start_worker(
    index: int, args: tuple[Any, ...]
) -> tuple[Connection, multiprocessing.process.BaseProcess]:
    """A worker process started, and the end of the pipe it says it serves on."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_worker_main,
        args=(*args, sender, os.getpid()),
        name=f"jimeng-mock-worker-{index + 1}",
        daemon=True,
    )
    process.start()
    sender.close()  # the worker's end: its exit then shows as EOF here too
    return receiver, process


def _until_started(
    pending: dict[Connection, multiprocessing.process.BaseProcess],
    processes: Sequence[multiprocessing.process.BaseProcess],
    stop: socket.socket,
    timeout: float,
) -> int | None:
    """Wait until every pending worker serves: None, or the exit code if that is not to be."""
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            _say(f"the workers did not all start within {timeout:g} s")
            return 1
        ready = wait([*pending, *(p.sentinel for p in processes), stop], left)
        if stop in ready:
            return 0
        for conn in [c for c in pending if c in ready]:
            with contextlib.suppress(EOFError, OSError):
                conn.recv()
                del pending[conn]
                conn.close()
        if dead := _dead(processes, ready):
            _say(f"{dead} before serving; stopping")
            return 1
    return None


def _say(message: str) -> None:
    print(f"jimeng-mock: {message}", file=sys.stderr, flush=True)


def _dead(processes: Sequence[multiprocessing.process.BaseProcess], ready: Sequence[object]) -> str:
    """Which worker has exited (its sentinel is in `ready`), as a sentence's subject; ""
    when none has."""
    for process in processes:
        if process.sentinel in ready:
            process.join(5)  # its sentinel closes as it exits: it may not be reaped yet
        if process.exitcode is not None:
            code = process.exitcode
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            return f"worker {process.name} (pid {process.pid}) {how}"
    return ""


def _stop_all(processes: Sequence[multiprocessing.process.BaseProcess], timeout: float) -> None:
    for process in processes:
        if process.exitcode is None:
            process.terminate()  # SIGTERM: uvicorn's graceful shutdown
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.exitcode is None:
            _say(f"worker {process.name} (pid {process.pid}) did not stop; killing it")
            process.kill()
            process.join()
        process.close()


@contextlib.contextmanager
def _stop_signals() -> Iterator[socket.socket]:
    """A socket that turns readable on SIGINT or SIGTERM, for `wait()` next to the workers.

    Outside the main thread no handler can be installed: then only the workers' exits count.
    """
    readable, writable = socket.socketpair()
    writable.setblocking(False)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            writable.send(b"\0")

    handled = (signal.SIGINT, signal.SIGTERM)
    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, on_signal) for sig in handled} if main else {}
    try:
        yield readable
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        readable.close()
        writable.close()


def _worker_main(
    sock: socket.socket,
    factory: Callable[..., ASGIApp],
    factory_args: tuple[Any, ...],
    options: ServeOptions,
    ready: Connection,
    supervisor: int,
) -> None:
    """One worker process: build the app, serve it on the inherited socket until SIGTERM."""
    # The supervisor stops workers with SIGTERM; Ctrl+C reaches the whole process group,
    # and the supervisor's SIGTERM is what counts (no KeyboardInterrupt traceback here).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with(supervisor)
    app = factory(*factory_args)
    _settle()

    def started() -> None:
        ready.send(True)
        ready.close()

    _Server(options, app, started).run(sockets=[sock])


PR_SET_PDEATHSIG = 1


def _exit_with(supervisor: int) -> None:
    """SIGTERM to this process once `supervisor`, its parent, is gone."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            if cast(int, libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)) == 0:
                if os.getppid() != supervisor:  # it died before the request was in place
                    os._exit(1)
                return

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="jimeng-mock-parent-watch", daemon=True).start()


# ---------------------------------------------------------------- dropped connections


def transport_of(receive: Receive) -> asyncio.BaseTransport | None:
    """The connection's transport behind uvicorn's `receive`; None under another server
    (an ASGI transport such as httpx.ASGITransport has no connection to close).

    uvicorn's `receive` is a bound method of its request cycle, which holds the transport.
    uvloop's transports are not `asyncio.BaseTransport` subclasses, but have its methods.
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None or not callable(getattr(transport, "close", None)):
        return None
    return cast(asyncio.BaseTransport, transport)


def keep_transport(scope: Scope, receive: Receive) -> asyncio.BaseTransport | None:
    """What `KeepTransport` does before calling its app, for middleware of one's own: for an
    http scope, the transport of `receive` (the server's own) in `scope["jimeng.transport"]`.
    Returns the transport, None if there is none."""
    transport = transport_of(receive) if scope["type"] == "http" else None
    if transport is not None:
        scope[TRANSPORT] = transport
    return transport


class KeepTransport:
    """ASGI middleware: for http scopes, the transport of the server's own `receive` goes in
    `scope["jimeng.transport"]` before `app` runs, so `drop_connection` finds it however
    the middleware inside wraps `receive`.

    A connection dropped while the app ran is seen as lost by uvicorn before it looks at
    the response: else it would log "returned without starting response" and try a 500.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = keep_transport(scope, receive)
        if transport is None:
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            if transport.is_closing():
                await _until_lost(receive)


async def _until_lost(receive: Receive, timeout: float = 1.0) -> None:
    """Until uvicorn's request cycle has seen its connection lost (`.disconnected`), unless
    it finished its answer anyway (a `Connection: close` answer closes the transport too)."""
    cycle = getattr(receive, "__self__", None)
    deadline = time.monotonic() + timeout
    while not (getattr(cycle, "disconnected", True) or getattr(cycle, "response_complete", True)):
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0)


def kept_transport(scope: Scope) -> asyncio.BaseTransport | None:
    """The transport `KeepTransport` kept for the request; None if there is none."""
    transport: asyncio.BaseTransport | None = scope.get(TRANSPORT)
    return transport


def drop_connection(scope: Scope) -> bool:
    """Close the request's connection with no answer, if a server behind `KeepTransport`
    serves it; whether it did. Return from the app without sending anything then."""
    transport = kept_transport(scope)
    if transport is None:
        return False
    transport.close()
    return True
