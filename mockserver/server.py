"""`MockServer`: the mock on a real socket, in a background thread of the current process."""

from __future__ import annotations

import dataclasses
from types import TracebackType
from typing import Any

from mockserver.app import create_app
from mockserver.config import DEFAULT_API_KEY, MockConfig
from mockserver.faults import QueuedFault
from mockserver.harness_api import Served
from mockserver.serving import (
    DEFAULT_READ_TIMEOUT,
    DEFAULT_SHUTDOWN_TIMEOUT,
    ServeOptions,
    ThreadServer,
    base_url,
    bind_socket,
)
from mockserver.state import MockState


class MockServer(Served[QueuedFault]):
    """The mock served on `host`:`port` (0: a free port) from a daemon thread.

    Use it as a context manager; `.url`, `.api_base` (what the openai SDK's `base_url`
    wants) and `.api_key` say how to reach it. Options are `MockConfig`'s fields; `http`
    picks uvicorn's HTTP parser ("auto": httptools where installed, "h11", "httptools"), and
    `access_log` turns on uvicorn's line per request (off, as on the command line: the journal
    has every request). `read_timeout` (seconds, None: none), `shutdown_timeout` (seconds) and
    `limit_concurrency` are the command's `--read-timeout`, `--shutdown-timeout` (how long
    `stop()` lets answers in progress finish before it cuts them) and `--limit-concurrency`.
    """

    def __init__(
        self,
        config: MockConfig | None = None,
        *,
        host: str | None = None,
        port: int = 0,
        log_level: str = "warning",
        http: str = "auto",
        access_log: bool = False,
        read_timeout: float | None = DEFAULT_READ_TIMEOUT,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        limit_concurrency: int | None = None,
        **options: Any,
    ) -> None:
        if config is not None and options:
            raise TypeError("pass either a MockConfig or keyword options, not both")
        config = config or MockConfig(**options)
        # The config knows the address too: the admin routes close beyond loopback.
        self.config = dataclasses.replace(config, host=host) if host else config
        self.app = create_app(self.config)
        self.state: MockState = self.app.state.mock
        self.expected_errors = self.state.expected_errors  # the one set, which reset() empties
        self.host = self.config.host
        self._port = port
        self.http = http
        # uvicorn's loggers propagate to this process's own logging.
        self._server = ThreadServer(
            self.app,
            ServeOptions(
                http=http,
                log_level=log_level,
                access_log=access_log,
                uvicorn_logging=False,
                read_timeout=read_timeout,
                shutdown_timeout=shutdown_timeout,
                limit_concurrency=limit_concurrency,
            ),
        )

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return base_url(self.host, self._port)

    @property
    def api_key(self) -> str:
        return self.config.api_keys[0] if self.config.api_keys else DEFAULT_API_KEY

    @property
    def running(self) -> bool:
        return self._server.running

    def start(self, timeout: float = 10.0) -> MockServer:
        if self.running:
            raise RuntimeError(f"the mock is already running at {self.url}")
        sock = bind_socket(self.host, self._port)
        self._port = sock.getsockname()[1]
        if not self._server.start(sock, name=f"jimeng-mock:{self._port}", timeout=timeout):
            raise RuntimeError(f"the mock did not start on {self.url}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.stop(timeout)

    @property
    def transport(self) -> MockState:
        """The state of the app it serves: the journal, faults and checks are its."""
        return self.state

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
