"""The socket MockServer and the command line serve on."""

from __future__ import annotations

import asyncio
import socket

from mockserver.server import bind_socket


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
