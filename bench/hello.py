"""The floor: a bare ASGI hello-world on the fastest standard uvicorn, httptools and uvloop.

The floor is uvicorn with `http="httptools"` and `loop="uvloop"` given explicitly, whatever
the mock ends up using (the table records what the mock used). `python -m bench.hello
--port 0` prints `bench-hello listening on http://HOST:PORT` once ready, like the command's
ready line; `ThreadServer` mimics `MockServer.start` and `.stop`.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import uvicorn

BODY = b'{"hello":"world"}'
# The fastest standard uvicorn: its C HTTP parser and the libuv event loop.
HTTP = "httptools"
LOOP = "uvloop"
LABEL = f"bare ASGI hello-world, uvicorn http={HTTP} loop={LOOP}"
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer every HTTP request with a small JSON body, after reading the request's body."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket made as the mock makes its own (TCP, so accepted sockets get
    TCP_NODELAY, and the same backlog)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _say_when_started(server: uvicorn.Server, line: str) -> None:
    """Print `line` once `server` serves, from a thread: only uvicorn's public `started`."""

    def watch() -> None:
        while not server.started:
            time.sleep(0.001)
        print(line, flush=True)

    threading.Thread(target=watch, name="bench-hello-ready", daemon=True).start()


class ThreadServer:
    """The hello-world on a free port, served from a daemon thread (as `MockServer` does)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> ThreadServer:
        sock = bind(self.host, 0)
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                app, http=HTTP, loop=LOOP, log_config=None, log_level="warning", lifespan="off"
            )
        )
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="bench-hello", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError("the hello-world server did not start")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        self._server = self._thread = None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.hello", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--http", default=HTTP, help="uvicorn's HTTP implementation")
    parser.add_argument("--loop", default=LOOP, help="uvicorn's event loop")
    args = parser.parse_args(argv)
    sock = bind(args.host, args.port)
    config = uvicorn.Config(
        app, http=args.http, loop=args.loop, log_level=args.log_level, lifespan="off"
    )
    server = uvicorn.Server(config)
    _say_when_started(
        server, f"bench-hello listening on http://{args.host}:{sock.getsockname()[1]}"
    )
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
