"""`MockServer`: the mock on a real socket, in a background thread of the current process."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from mockserver.app import create_app
from mockserver.config import MockConfig
from mockserver.faults import QueuedFault
from mockserver.journal import RequestRecord
from mockserver.state import MockState

DEFAULT_API_KEY = "sk-jimeng-mock"


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


class _ThreadServer(uvicorn.Server):
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
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()


class MockServer:
    """The mock served on `host`:`port` (0: a free port) from a daemon thread.

    Use it as a context manager; `.url`, `.api_base` (what the openai SDK's `base_url`
    wants) and `.api_key` say how to reach it. Options are `MockConfig`'s fields.
    """

    def __init__(
        self,
        config: MockConfig | None = None,
        *,
        host: str | None = None,
        port: int = 0,
        log_level: str = "warning",
        **options: Any,
    ) -> None:
        if config is not None and options:
            raise TypeError("pass either a MockConfig or keyword options, not both")
        config = config or MockConfig(**options)
        # The config knows the address too: the admin routes close beyond loopback.
        self.config = dataclasses.replace(config, host=host) if host else config
        self.app = create_app(self.config)
        self.state: MockState = self.app.state.mock
        self.host = self.config.host
        self._port = port
        self._log_level = log_level
        self._server: _ThreadServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return base_url(self.host, self._port)

    @property
    def api_base(self) -> str:
        return self.url + "/v1"

    @property
    def api_key(self) -> str:
        return self.config.api_keys[0] if self.config.api_keys else DEFAULT_API_KEY

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> MockServer:
        if self.running:
            raise RuntimeError(f"the mock is already running at {self.url}")
        sock = bind_socket(self.host, self._port)
        self._port = sock.getsockname()[1]
        server = _ThreadServer(
            uvicorn.Config(self.app, log_config=None, log_level=self._log_level, lifespan="off")
        )
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"jimeng-mock:{self._port}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError(f"the mock did not start on {self.url}")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.exit()
        self._thread.join(timeout)
        self._server = self._thread = None

    # The journal, faults and checks of `MockState`, on the server itself.

    @property
    def requests(self) -> list[RequestRecord]:
        """Every recorded API request, oldest first (the newest `journal_size` of them)."""
        return self.state.requests

    @property
    def last_request(self) -> RequestRecord | None:
        return self.state.last_request

    def reset(self) -> None:
        """Journal, queued faults, stub counts, rate limits and chaos back to their start."""
        self.state.reset()

    def fail_next(
        self,
        fault: str,
        times: int = 1,
        *,
        delay_ms: int | None = None,
        retry_after_ms: int | None = None,
        **match: Any,
    ) -> QueuedFault:
        """Answer the next `times` generation requests whose body has `match` with `fault`."""
        return self.state.fail_next(
            fault, times, delay_ms=delay_ms, retry_after_ms=retry_after_ms, **match
        )

    def expect_errors(self, *codes: str) -> None:
        """Errors with these codes are what the test is after: `check()` lets them pass."""
        self.state.expect_errors(*codes)

    def assert_requested(
        self, count: int | None = None, *, status: Any = None, error: Any = None, **fields: Any
    ) -> list[RequestRecord]:
        """Assert that requests with these body fields were made; see `MockState`."""
        return self.state.assert_requested(count, status=status, error=error, **fields)

    def check(self) -> None:
        """Fail if any request so far had a warning, an unexpected error, or broke the mock."""
        self.state.check()

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<MockServer {self.url} {state}>"
