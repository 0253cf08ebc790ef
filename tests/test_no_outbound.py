"""The mock never connects anywhere: reference images in `image` are validated, never fetched.

The mock runs in this process, in a thread on a real socket or behind an ASGI transport, while
a guard patches the socket calls of the whole process (`socket.socket.connect`, `connect_ex`,
`socket.create_connection`, `socket.getaddrinfo`): it records every attempt and refuses all but
the test's own connections to the mock on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
import openai
import pytest

from mockserver import MockServer, create_app

MODELS = ("jimeng-4.0", "jimeng-4.5")
FORMATS = ("url", "b64_json")
# Hosts that would be reached if the mock fetched them: a documentation address (TEST-NET-3),
# a name that needs DNS, other loopback and IPv6 addresses, and an inline data: URI.
REFERENCES = [
    "http://203.0.113.5/reference.png",
    "https://203.0.113.5:8443/reference.png?size=large",
    "https://images.example.com/cat.png",
    "http://127.0.0.2:9/reference.png",
    "http://[2001:db8::1]/reference.png",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABpfZFQAAAAABJRU5ErkJggg==",
]


@dataclass
class SocketGuard:
    """What the process tried to connect to or look up while the guard was on."""

    allowed: set[tuple[str, int]] = field(default_factory=set)
    attempts: list[tuple[str, Any, bool]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, call: str, address: Any) -> bool:
        permitted = self._permits(address)
        with self._lock:
            self.attempts.append((call, address, permitted))
        return permitted

    def _permits(self, address: Any) -> bool:
        if not (isinstance(address, tuple) and len(address) >= 2):
            return False  # a Unix socket path, or something stranger: not the mock
        host, port = address[0], address[1]
        try:
            return (host, int(port)) in self.allowed
        except (TypeError, ValueError):
            return False

    @property
    def refused(self) -> list[tuple[str, Any]]:
        return [(call, address) for call, address, permitted in self.attempts if not permitted]


def _refusal(call: str, address: Any) -> ConnectionRefusedError:
    return ConnectionRefusedError(
        errno.ECONNREFUSED, f"{call}({address!r}) refused: the test allows no outbound connection"
    )


@contextmanager
def socket_guard() -> Iterator[SocketGuard]:
    guard = SocketGuard()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_create_connection = socket.create_connection
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        if not guard.check("connect", address):
            raise _refusal("connect", address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not guard.check("connect_ex", address):
            return errno.ECONNREFUSED
        return real_connect_ex(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if not guard.check("create_connection", address):
            raise _refusal("create_connection", address)
        return real_create_connection(address, *args, **kwargs)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not guard.check("getaddrinfo", (host, port)):
            raise _refusal("getaddrinfo", (host, port))
        return real_getaddrinfo(host, port, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        patch.setattr(socket, "create_connection", create_connection)
        patch.setattr(socket, "getaddrinfo", getaddrinfo)
        yield guard


def _thumbnails(page: str) -> list[str]:
    return re.findall(r'<img src="(/__admin/thumbnails/[^"]+)"', page)


# -------------------------------------------------------------------------- the guard itself


def test_the_guard_refuses_and_records_an_outbound_connection() -> None:
    with socket_guard() as guard:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("203.0.113.5", 80), timeout=1)
        with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
            sock.connect(("203.0.113.5", 80))
        with socket.socket() as sock:
            assert sock.connect_ex(("203.0.113.5", 80)) == errno.ECONNREFUSED
        with pytest.raises(ConnectionRefusedError):
            socket.getaddrinfo("images.example.com", 443)
        with pytest.raises(ConnectionRefusedError):
            asyncio.run(asyncio.open_connection("203.0.113.5", 80))
        with httpx.Client(trust_env=False) as http, pytest.raises(httpx.ConnectError):
            http.get("http://203.0.113.5/reference.png")
        # From another thread, as the mock's server thread and render workers would.
        caught: list[BaseException] = []

        def look_up() -> None:
            try:
                socket.getaddrinfo("images.example.com", 80)
            except ConnectionRefusedError as exc:
                caught.append(exc)

        worker = threading.Thread(target=look_up)
        worker.start()
        worker.join()
        assert len(caught) == 1

    assert guard.refused == [
        ("create_connection", ("203.0.113.5", 80)),
        ("connect", ("203.0.113.5", 80)),
        ("connect_ex", ("203.0.113.5", 80)),
        ("getaddrinfo", ("images.example.com", 443)),
        ("connect", ("203.0.113.5", 80)),
        ("create_connection", ("203.0.113.5", 80)),
        ("getaddrinfo", ("images.example.com", 80)),
    ]
    # Off again once the block ends.
    assert socket.create_connection.__module__ == "socket"
    assert "connect" not in vars(socket.socket)


# -------------------------------------------------------------------- the mock under the guard


def test_a_mock_on_a_socket_connects_nowhere() -> None:
    """A MockServer in a thread of this process, driven by the openai SDK and httpx."""
    with socket_guard() as guard, MockServer() as server:
        guard.allowed.add((server.host, server.port))
        with (
            openai.OpenAI(base_url=server.api_base, api_key=server.api_key, max_retries=0) as sdk,
            httpx.Client(base_url=server.url, trust_env=False) as http,
        ):
            urls = []
            for model in MODELS:
                for response_format in FORMATS:
                    result = sdk.images.generate(
                        model=model,
                        prompt="a cat like the references",
                        n=2,
                        size="1024x1024",
                        response_format=response_format,
                        extra_body={"image": REFERENCES},
                    )
                    assert result.data
                    assert len(result.data) == 2
                    urls += [entry.url for entry in result.data if entry.url]
            assert len(urls) == 4
            for url in urls:
                image = http.get(url)
                assert image.status_code == 200
                assert image.headers["content-type"] == "image/png"
            assert [m.id for m in sdk.models.list()] == list(MODELS)
            assert sdk.models.retrieve("jimeng-4.5").id == "jimeng-4.5"
            page = http.get("/__admin/")
            assert page.status_code == 200
            thumbnails = _thumbnails(page.text)
            assert len(thumbnails) == 8  # the b64_json answers' images are listed too
            for thumbnail in thumbnails:
                assert http.get(thumbnail).status_code == 200
            assert http.get("/__admin/requests").json()["count"] == 6

        assert [r.body["image"] for r in server.requests[:4]] == [REFERENCES] * 4

    assert guard.refused == [], f"the mock tried to connect out: {guard.refused}"
    # The guard did see this process's connections: the test's own, to the mock.
    assert guard.attempts
    assert {address[:2] for _, address, _ in guard.attempts} == {(server.host, server.port)}


def test_a_mock_behind_an_asgi_transport_opens_no_socket_at_all() -> None:
    """create_app() driven in-process: with no connection of its own, any attempt is outbound."""
    app = create_app()

    async def scenario() -> None:
        transport = httpx2.ASGITransport(app=app)
        async with (
            httpx2.AsyncClient(transport=transport, base_url="http://mock") as http,
            openai.AsyncOpenAI(
                base_url="http://mock/v1", api_key="sk-asgi", http_client=http, max_retries=0
            ) as sdk,
        ):
            for model in MODELS:
                for response_format in FORMATS:
                    result = await sdk.images.generate(
                        model=model,
                        prompt="a cat like the references",
                        n=1,
                        size="1024x1024",
                        response_format=response_format,
                        extra_body={"image": REFERENCES},
                    )
                    assert result.data
                    entry = result.data[0]
                    if response_format == "url":
                        assert entry.url
                        image = await http.get(entry.url)
                        assert image.status_code == 200
                    else:
                        assert entry.b64_json
            models = await sdk.models.list()
            assert [m.id for m in models.data] == list(MODELS)
            page = await http.get("/__admin/")
            assert page.status_code == 200
            for thumbnail in _thumbnails(page.text):
                assert (await http.get(thumbnail)).status_code == 200

    with socket_guard() as guard:
        asyncio.run(scenario())

    assert guard.attempts == []
    app.state.mock.assert_requested(4, status=200, image=REFERENCES)
