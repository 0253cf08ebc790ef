"""Bounded resources: renders at once, the render queue, the PNG cache; repeated bodies."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

import mockserver.web.endpoints
from mockserver import MockServer
from mockserver.answers.images import ImageSpec
from mockserver.answers.render import BoundedCache, Renderer
from mockserver.contract.validation import RequestContract

KEY = {"Authorization": "Bearer sk-test"}


def urls(server: MockServer, count: int, size: str, prompt: str = "burst") -> list[str]:
    """`count` different image URLs of `size`, one generation each."""
    found = []
    with httpx.Client(base_url=server.url, headers=KEY) as client:
        for i in range(count):
            body = {"model": "jimeng-4.5", "prompt": f"{prompt} {i}", "n": 1, "size": size}
            response = client.post("/v1/images/generations", json=body)
            assert response.status_code == 200, response.text
            found.append(response.json()["data"][0]["url"])
    return found


async def fetch_all(targets: list[str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(targets))
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        return list(await asyncio.gather(*(client.get(url) for url in targets)))


@pytest.fixture
def counted_renders(monkeypatch: pytest.MonkeyPatch) -> list[ImageSpec]:
    """Every image the app draws, in order (thumbnails aside)."""
    drawn: list[ImageSpec] = []
    original = mockserver.web.endpoints.render_spec

    def counting(spec: ImageSpec) -> bytes:
        drawn.append(spec)
        return original(spec)

    monkeypatch.setattr(mockserver.web.endpoints, "render_spec", counting)
    return drawn


def test_a_burst_of_200_4k_fetches_is_served_or_told_to_retry() -> None:
    with MockServer() as server:
        targets = urls(server, 200, "4096x4096")
        responses = asyncio.run(fetch_all(targets))

        served = [r for r in responses if r.status_code == 200]
        busy = [r for r in responses if r.status_code == 503]
        assert len(served) + len(busy) == 200, sorted({r.status_code for r in responses})
        renderer: Renderer = server.app.state.renderer
        # Two rendering and 64 waiting are let in; past that, answers come at once.
        assert len(served) >= renderer.concurrency + renderer.queue
        for response in busy:
            assert response.json()["error"]["code"] == "server_busy"
            assert int(response.headers["Retry-After"]) >= 1
        with Image.open(io.BytesIO(served[0].content)) as image:
            assert image.size == (4096, 4096)
        # Afterwards every URL is served, the busy ones included.
        assert httpx.get(targets[-1]).status_code == 200
        assert renderer.pending == 0


@pytest.mark.parametrize("jimeng_mock_config", [{"render_concurrency": 1, "render_queue": 0}])
def test_past_the_queue_a_generation_with_b64_json_is_a_503_too(
    jimeng_mock: MockServer, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    original = mockserver.web.endpoints.render_spec

    def slow(spec: ImageSpec) -> bytes:
        gate.wait(10)
        return original(spec)

    monkeypatch.setattr(mockserver.web.endpoints, "render_spec", slow)
    (url,) = urls(jimeng_mock, 1, "1024x1024", prompt="held")
    renderer: Renderer = jimeng_mock.app.state.renderer
    held = threading.Thread(target=httpx.get, args=(url,))
    held.start()  # the only render there may be, held until the gate opens
    try:
        while renderer.pending == 0:
            held.join(0.01)
        with pytest.raises(openai.InternalServerError) as raised:
            client.images.generate(
                model="jimeng-4.5", prompt="busy", n=1, size="1024x1024", response_format="b64_json"
            )
        assert raised.value.status_code == 503
        assert raised.value.code == "server_busy"
        assert raised.value.response.headers["Retry-After"] == "1"
    finally:
        gate.set()
        held.join()
    jimeng_mock.expect_errors("server_busy")
    answer = client.images.generate(
        model="jimeng-4.5", prompt="busy", n=1, size="1024x1024", response_format="b64_json"
    )
    assert answer.data
    assert answer.data[0].b64_json


def test_concurrent_fetches_of_one_image_draw_it_once(
    jimeng_mock: MockServer, counted_renders: list[ImageSpec]
) -> None:
    (url,) = urls(jimeng_mock, 1, "2048x2048", prompt="drawn once")

    responses = asyncio.run(fetch_all([url] * 30))

    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert len(counted_renders) == 1


@pytest.mark.parametrize("jimeng_mock_config", [{"image_cache_mb": 1}])
def test_the_png_cache_stays_within_its_bytes(
    jimeng_mock: MockServer, counted_renders: list[ImageSpec]
) -> None:
    renderer: Renderer = jimeng_mock.app.state.renderer
    targets = urls(jimeng_mock, 120, "1024x1024", prompt="cache")
    sizes = []
    with httpx.Client() as fetcher:
        for url in targets:
            assert fetcher.get(url).status_code == 200
            sizes.append(renderer.cache.size)
        assert max(sizes) <= 1024 * 1024
        assert len(renderer.cache) < 120  # the oldest went out
        drawn = len(counted_renders)
        fetcher.get(targets[-1])  # the newest is still kept
        assert len(counted_renders) == drawn
        fetcher.get(targets[0])  # the oldest is drawn again, the same
        assert len(counted_renders) == drawn + 1


def test_bounded_cache_drops_least_recently_used_first() -> None:
    cache: BoundedCache[str] = BoundedCache(limit=10)
    cache.put("a", "A", 4)
    cache.put("b", "B", 4)
    assert cache.get("a") == "A"  # now b is the least recently used
    cache.put("c", "C", 4)

    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("A", None, "C")
    assert cache.size == 8
    cache.put("huge", "H", 11)
    assert cache.get("huge") is None


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each request body the contract checks."""
    seen: list[object] = []
    original: Callable[..., Any] = RequestContract.validate

    def counting(self: RequestContract, body: Any) -> Any:
        seen.append(body)
        return original(self, body)

    monkeypatch.setattr(RequestContract, "validate", counting)
    return seen


def generate(client: openai.OpenAI, **extra: Any) -> Any:
    return client.images.with_raw_response.generate(
        model="jimeng-4.5", prompt="replayed", n=2, size="1024x1024", **extra
    )


def test_a_repeated_request_takes_the_same_path_and_gets_the_same_answer(
    jimeng_mock: MockServer, client: openai.OpenAI, validations: list[object]
) -> None:
    first = generate(client, extra_body={"aspect_ratio": "16:9"})
    second = generate(client, extra_body={"aspect_ratio": "16:9"})

    assert len(validations) == 2  # nothing is replayed from memory
    assert second.http_response.content == first.http_response.content
    assert second.headers["X-Mock-Warnings"] == first.headers["X-Mock-Warnings"]
    one, two = jimeng_mock.requests
    assert (two.id, two.status, two.body, two.images, two.warnings) == (
        2,
        200,
        one.body,
        one.images,
        one.warnings,
    )
    assert two.headers["authorization"] == one.headers["authorization"] == "Bearer ...mock"
    # A test may edit what it reads; no other entry shares its body.
    one.body["prompt"] = "changed"
    assert two.body["prompt"] == "replayed"


@pytest.mark.parametrize("jimeng_mock_config", [{"api_keys": ["sk-good-key-1"]}])
def test_the_same_body_with_another_key_is_refused(jimeng_mock: MockServer) -> None:
    body = {"model": "jimeng-4.5", "prompt": "keyed", "n": 1}
    url = jimeng_mock.api_base + "/images/generations"

    good = httpx.post(url, json=body, headers={"Authorization": "Bearer sk-good-key-1"})
    bad = httpx.post(url, json=body, headers={"Authorization": "Bearer sk-bad-key-22"})

    assert (good.status_code, bad.status_code) == (200, 401)


def test_a_queued_fault_or_a_mock_header_answers_a_repeated_body(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    generate(client)
    jimeng_mock.fail_next("server_error")
    with pytest.raises(openai.InternalServerError):
        generate(client)
    with pytest.raises(openai.BadRequestError):
        generate(client, extra_headers={"X-Mock-Fault": "content_policy"})
    generate(client)

    assert [r.status for r in jimeng_mock.requests] == [200, 500, 400, 200]
    jimeng_mock.expect_errors("upstream_error", "content_policy_violation")


@pytest.mark.parametrize("jimeng_mock_config", [{"created": "now"}])
def test_created_now_moves_with_the_clock_for_a_repeated_body(
    jimeng_mock: MockServer, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = generate(client).parse().created
    monkeypatch.setattr("time.time", lambda: first + 100.5)

    assert generate(client).parse().created == first + 100


def test_a_request_that_gives_up_on_a_queued_render_leaves_it_to_the_others() -> None:
    """Cancelling one waiter (its client left) neither cancels the render nor leaves a
    cancelled one behind for the next request of the same image."""
    renderer = Renderer(concurrency=1, queue=4, cache_bytes=1 << 20)
    release = threading.Event()

    def slow() -> bytes:
        release.wait(5)
        return b"first"

    async def scenario() -> list[bytes]:
        busy = asyncio.ensure_future(renderer.png("a", slow))
        waiter = asyncio.ensure_future(renderer.png("b", lambda: b"second"))
        await asyncio.sleep(0.05)  # "b" waits behind "a" in the one-thread pool
        waiter.cancel()
        release.set()
        return [await busy, await renderer.png("b", lambda: b"second")]

    assert asyncio.run(scenario()) == [b"first", b"second"]
