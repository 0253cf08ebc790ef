"""`create_app` in-process, with no socket: the openai SDK over an ASGI transport."""

from __future__ import annotations

import asyncio
import base64
import io

import httpx2
import openai
import pytest
from PIL import Image

from mockserver import create_app


def test_openai_async_client_over_asgi_transport() -> None:
    app = create_app(api_keys=["sk-asgi"])

    async def scenario() -> tuple[int, tuple[int, int], int, int]:
        transport = httpx2.ASGITransport(app=app)
        async with (
            httpx2.AsyncClient(transport=transport, base_url="http://mock") as http,
            openai.AsyncOpenAI(
                base_url="http://mock/v1", api_key="sk-asgi", http_client=http, max_retries=0
            ) as client,
        ):
            result = await client.images.generate(
                model="jimeng-4.5",
                prompt="a paper boat",
                n=1,
                response_format="b64_json",
                extra_body={"ratio": "3:2", "resolution": "1k"},
            )
            linked = await client.images.generate(model="jimeng-4.5", prompt="a paper boat", n=1)
            assert linked.data
            assert linked.data[0].url
            image = await http.get(linked.data[0].url)
            with pytest.raises(openai.NotFoundError) as not_found:
                await client.images.generate(model="jimeng-5", prompt="x", n=1)
        assert result.data
        assert result.data[0].b64_json
        png = base64.b64decode(result.data[0].b64_json)
        with Image.open(io.BytesIO(png)) as decoded:
            return result.created, decoded.size, image.status_code, not_found.value.status_code

    assert asyncio.run(scenario()) == (1735689600, (1024, 682), 200, 404)


def test_the_toolkit_works_over_an_asgi_transport() -> None:
    """Journal, queued faults and checks through `app.state.mock`; a dropped connection, with
    no connection to drop, is raised as ConnectionAbortedError to the client."""
    app = create_app()
    mock = app.state.mock
    mock.fail_next("rate_limit", retry_after_ms=10)
    mock.fail_next("disconnect")

    async def scenario() -> None:
        transport = httpx2.ASGITransport(app=app)
        async with (
            httpx2.AsyncClient(transport=transport, base_url="http://mock") as http,
            openai.AsyncOpenAI(
                base_url="http://mock/v1", api_key="sk-asgi", http_client=http, max_retries=1
            ) as client,
        ):
            with pytest.raises(ConnectionAbortedError):
                await client.images.generate(model="jimeng-4.0", prompt="a cat", n=1)
            await client.images.generate(model="jimeng-4.0", prompt="a cat", n=1)

    asyncio.run(scenario())

    assert [(r.status, r.fault) for r in mock.requests] == [
        (429, "rate_limit"),
        (None, "disconnect"),
        (200, None),
    ]
    mock.assert_requested(3, model="jimeng-4.0")
    mock.check()
