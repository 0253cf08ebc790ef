"""Image URLs: stateless, signed, cacheable, and the same bytes for the same request."""

from __future__ import annotations

import hashlib
import hmac
import io
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from mockserver import MockServer
from mockserver.answers.images import ImageSigner, ImageSpec, render_placeholder
from tests.conftest import fetch_png

REQUEST = {"model": "jimeng-4.0", "prompt": "a tram in the rain", "n": 2, "size": "1024x1024"}


def generate(server: MockServer, body: dict[str, Any] | None = None) -> httpx.Response:
    response = httpx.post(
        server.api_base + "/images/generations",
        json=REQUEST if body is None else body,
        headers={"Authorization": f"Bearer {server.api_key}"},
    )
    assert response.status_code == 200, response.text
    return response


def urls(response: httpx.Response) -> list[str]:
    return [item["url"] for item in response.json()["data"]]


def test_same_request_same_response_bytes_and_images(jimeng_mock: MockServer) -> None:
    first, second = generate(jimeng_mock), generate(jimeng_mock)

    assert first.content == second.content
    assert [fetch_png(u)[0] for u in urls(first)] == [fetch_png(u)[0] for u in urls(second)]


def test_images_differ_by_prompt_and_by_index(jimeng_mock: MockServer) -> None:
    one = urls(generate(jimeng_mock))
    other = urls(generate(jimeng_mock, {**REQUEST, "prompt": "a tram in the snow"}))

    pngs = {fetch_png(u)[0] for u in one + other}
    assert len(pngs) == 4


def test_image_k_does_not_depend_on_n(jimeng_mock: MockServer) -> None:
    of_two = urls(generate(jimeng_mock))
    of_one = urls(generate(jimeng_mock, {**REQUEST, "n": 1}))

    assert of_one == of_two[:1]


def test_urls_outlive_the_server_that_issued_them() -> None:
    with MockServer(public_url="http://mock.invalid") as first:
        issued = urls(generate(first))
    with MockServer(public_url="http://mock.invalid") as second:
        again = urls(generate(second))
        local = [u.replace("http://mock.invalid", second.url) for u in issued]
        pngs = [fetch_png(u)[0] for u in local]

    assert again == issued
    assert all(u.startswith("http://mock.invalid/images/jimeng-4.0/1024x1024/") for u in issued)
    assert len(set(pngs)) == 2


def test_another_secret_does_not_accept_the_urls() -> None:
    with MockServer() as issuer, MockServer(secret="another") as other:
        path = httpx.URL(urls(generate(issuer))[0]).path
        response = httpx.get(other.url + path)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "image_not_found"


@pytest.mark.parametrize(
    "edit",
    [
        lambda path: path.replace("1024x1024", "4096x4096"),
        lambda path: path.replace("jimeng-4.0", "jimeng-4.5"),
        lambda path: path.replace("-1-", "-9-"),
        lambda path: path[:-8] + "0000.png",
        lambda path: path.removesuffix(".png"),
        lambda path: path.replace(".png", ".jpg"),
    ],
)
def test_an_edited_url_is_not_found(jimeng_mock: MockServer, edit: Any) -> None:
    path = httpx.URL(urls(generate(jimeng_mock))[0]).path

    response = httpx.get(jimeng_mock.url + edit(path))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "image_not_found"


def test_conditional_get_head_and_cache_headers(jimeng_mock: MockServer) -> None:
    url = urls(generate(jimeng_mock))[0]
    full = httpx.get(url)
    etag = full.headers["etag"]

    head = httpx.head(url)
    cached = httpx.get(url, headers={"If-None-Match": etag})
    stale = httpx.get(url, headers={"If-None-Match": '"something-else"'})

    assert full.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert int(full.headers["content-length"]) == len(full.content)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == full.headers["content-length"]
    assert head.headers["etag"] == etag
    assert cached.status_code == 304
    assert cached.content == b""
    assert stale.status_code == 200
    assert stale.content == full.content


def test_image_urls_use_the_request_host(jimeng_mock: MockServer) -> None:
    response = httpx.post(
        jimeng_mock.api_base + "/images/generations",
        json=REQUEST,
        headers={"Authorization": "Bearer k", "Host": "mock.example:8443"},
    )

    assert urls(response)[0].startswith("http://mock.example:8443/images/")


@pytest.mark.parametrize("jimeng_mock_config", [{"public_url": "https://cdn.example/mock/"}])
def test_public_url_is_the_base_of_image_urls(jimeng_mock: MockServer) -> None:
    url = urls(generate(jimeng_mock))[0]
    assert url.startswith("https://cdn.example/mock/images/jimeng-4.0/1024x1024/")

    local = url.replace("https://cdn.example/mock", jimeng_mock.url)
    assert fetch_png(local)[1] == (1024, 1024)


@pytest.mark.parametrize("jimeng_mock_config", [{"created": "now"}])
def test_created_now_follows_the_clock(jimeng_mock: MockServer) -> None:
    before = int(time.time())
    created = generate(jimeng_mock).json()["created"]
    assert before <= created <= int(time.time())


@pytest.mark.parametrize("jimeng_mock_config", [{"created": 42}])
def test_created_can_be_pinned(jimeng_mock: MockServer) -> None:
    assert generate(jimeng_mock).json()["created"] == 42


@pytest.mark.parametrize(
    ("width", "height"), [(1, 1), (3, 500), (500, 3), (4096, 256), (777, 333), (6048, 2592)]
)
def test_render_placeholder_has_exactly_the_asked_size(width: int, height: int) -> None:
    png = render_placeholder(width, height, "seed", ["jimeng-4.0", f"{width} x {height}", "#1"])

    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        assert image.size == (width, height)


def test_render_placeholder_is_deterministic_and_seeded() -> None:
    lines = ["jimeng-4.0", "1024 x 1024", "#1"]
    first = render_placeholder(1024, 1024, "a", lines)

    assert render_placeholder(1024, 1024, "a", lines) == first
    assert render_placeholder(1024, 1024, "b", lines) != first
    assert render_placeholder(1024, 1024, "a", [*lines[:2], "#2"]) != first


@pytest.mark.parametrize("secret", ["jimeng-mockserver", "", "k" * 64, "a longer secret " * 10])
def test_the_signature_is_hmac_sha256_of_the_path_key(secret: str) -> None:
    """The signer's precomputed pads give exactly the standard library's HMAC."""
    spec = ImageSpec("jimeng-4.0", 1024, 768, "0123456789abcdef", 3)
    expected = hmac.new(secret.encode(), spec.key.encode(), hashlib.sha256).hexdigest()[:16]

    assert ImageSigner(secret).path(spec) == f"/images/{spec.key}-{expected}.png"
