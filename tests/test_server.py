"""`MockServer` and the `jimeng_mock` fixture: the mock on a real socket, through the SDK."""

from __future__ import annotations

import asyncio
import socket

import httpx
import openai
import pytest

from mockserver import MockServer
from mockserver.web.uvicorn_glue import bind_socket

PARSERS = ["h11", "httptools"]


def test_accepted_connections_send_small_writes_at_once() -> None:
    """TCP_NODELAY on every connection: uvicorn writes a response's head and body separately,
    and with Nagle's algorithm on, the body would wait for the client's delayed ACK (~40 ms)
    on every keep-alive request."""

    async def scenario() -> int:
        listener = bind_socket("127.0.0.1", 0)
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            accepted.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname())
            nodelay = await asyncio.wait_for(accepted, 10)
            writer.close()
            await writer.wait_closed()
        return nodelay

    assert asyncio.run(scenario()) != 0


def sdk(server: MockServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api_base, api_key=server.api_key, max_retries=0)


@pytest.mark.smoke
@pytest.mark.parametrize("http", PARSERS)
def test_mock_server_serves_on_either_parser(http: str) -> None:
    with MockServer(http=http) as server, sdk(server) as client:
        result = client.images.generate(model="jimeng-4.0", prompt="a cat", n=2, size="1024*1024")
        assert result.data is not None
        assert len(result.data) == 2
        assert result.data[0].url is not None
        assert httpx.get(result.data[0].url).headers["content-type"] == "image/png"
        server.assert_requested(1, prompt="a cat")
    assert not server.running


def test_mock_server_refuses_an_unknown_parser() -> None:
    with pytest.raises(ValueError, match="http must be one of"):
        MockServer(http="h3")


@pytest.mark.smoke
@pytest.mark.parametrize("http", PARSERS)
def test_a_dropped_connection_is_a_connection_error_in_the_sdk(http: str) -> None:
    with MockServer(http=http) as server, sdk(server) as client:
        with pytest.raises(openai.APIConnectionError):
            client.images.generate(
                model="jimeng-4.0",
                prompt="a cat",
                n=1,
                size="1024*1024",
                extra_headers={"X-Mock-Fault": "disconnect"},
            )
        # The server goes on serving, on a new connection.
        result = client.images.generate(model="jimeng-4.0", prompt="a cat", n=1, size="1024*1024")
        assert result.data is not None
        assert len(result.data) == 1


@pytest.mark.smoke
def test_the_fixture_serves_the_sdk(client: openai.OpenAI, jimeng_mock: MockServer) -> None:
    result = client.images.generate(model="jimeng-4.5", prompt="城市夜景", n=1, size="2048*2048")
    assert result.data is not None
    assert len(result.data) == 1
    jimeng_mock.assert_requested(1, model="jimeng-4.5")


@pytest.mark.smoke
def test_a_fault_through_the_sdk(client: openai.OpenAI, jimeng_mock: MockServer) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client.images.generate(
            model="jimeng-4.0",
            prompt="a cat",
            n=1,
            size="1024*1024",
            extra_headers={"X-Mock-Fault": "rate_limit"},
        )
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "1"
