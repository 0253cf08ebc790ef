"""`MockServer`: the mock on a real socket, in a background thread of the current process."""

from __future__ import annotations

import dataclasses
from types import TracebackType
from typing import Any

from mockserver import options as table
from mockserver.answers.faults import QueuedFault
from mockserver.app import create_app
from mockserver.config import MockConfig
from mockserver.engine.api import Served
from mockserver.engine.state import MockState
from mockserver.options import DEFAULT_API_KEY
from mockserver.web.uvicorn_glue import ServeOptions, ThreadServer, base_url, bind_socket


class MockServer(Served[QueuedFault]):
    """The mock served on `host`:`port` (0: a free port) from a daemon thread.

    Use it as a context manager; `.url`, `.api_base` (what the openai SDK's `base_url`
    wants) and `.api_key` say how to reach it. Its keyword options are the table's
    (`mockserver.options`, the README's Options): `MockConfig`'s fields, and how uvicorn
    serves (`http`, `log_level`, `access_log`, `read_timeout`, `shutdown_timeout` (how long
    `stop()` lets answers in progress finish before it cuts them), `limit_concurrency`), with
    the command's defaults but `log_level` "warning". An unknown keyword is a TypeError
    naming the nearest known one.
    """

    def __init__(
        self,
        config: MockConfig | None = None,
        *,
        host: str | None = None,
        port: int = table.OPTIONS["port"].python_default,
        **options: Any,
    ) -> None:
        given = table.sort_keywords("MockServer", options, "config", "serve", also=("host", "port"))
        if config is not None and given["config"]:
            raise TypeError("pass either a MockConfig or keyword options, not both")
        config = config or MockConfig(**given["config"])
        # The config knows the address too: the admin routes close beyond loopback.
        self.config = dataclasses.replace(config, host=host) if host else config
        self.app = create_app(self.config)
        self.state: MockState = self.app.state.mock
        self.expected_errors = self.state.expected_errors  # the one set, which reset() empties
        self.host = self.config.host
        self._port = port
        # uvicorn's loggers propagate to this process's own logging.
        serving = {**table.python_defaults("serve"), **given["serve"], "uvicorn_logging": False}
        self._server = ThreadServer(self.app, ServeOptions(**serving))
        self.http = self._server.options.http

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
