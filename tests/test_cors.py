"""CORS (`--cors ORIGIN`): preflights, the headers of every answer, images drawn into a
canvas; over a real socket, and in a real browser (headless chromium) on another origin."""

from __future__ import annotations

import http.server
import io
import threading
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser

from mockserver import MockServer
from mockserver.cli import build_parser, config_from
from mockserver.config import MockConfig
from mockserver.errors import ConfigError
from tests.test_admin_page import browser

__all__ = ["browser"]  # the fixture, shared with the journal page's tests

PAGE = "http://page.example:3000"
OTHER = "http://elsewhere.example"
GENERATIONS = "/v1/images/generations"
VALID = {"model": "jimeng-4.0", "prompt": "a cat", "n": 1, "size": "1024x1024"}
EXPOSED = {
    "x-request-id",
    "x-mock-warnings",
    "x-mock-fault",
    "x-mock-stub",
    "x-mock-latency-ms",
    "retry-after",
    "retry-after-ms",
}
CORS_HEADERS = ("access-control-allow-origin", "access-control-expose-headers")


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with MockServer(cors=[PAGE + "/"]) as server:
        yield server


@pytest.fixture
def cors_mock(mock: MockServer) -> MockServer:
    mock.reset()
    return mock


def auth(server: MockServer, origin: str = PAGE) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}", "Origin": origin}


def preflight(server: MockServer, path: str, origin: str, **extra: str) -> httpx.Response:
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST", **extra}
    return httpx.options(server.url + path, headers=headers)


def comma_set(value: str) -> set[str]:
    return {part.strip().lower() for part in value.split(",")}


def assert_marked(response: httpx.Response, origin: str = PAGE) -> None:
    assert response.headers["access-control-allow-origin"] == origin
    assert comma_set(response.headers["access-control-expose-headers"]) == EXPOSED
    assert "origin" in comma_set(response.headers["vary"])
    assert "access-control-allow-credentials" not in response.headers


def test_a_preflight_is_answered_204_and_not_journaled(cors_mock: MockServer) -> None:
    requested = "authorization, content-type, x-mock-anything, x-evil"
    response = preflight(
        cors_mock, GENERATIONS, PAGE, **{"Access-Control-Request-Headers": requested}
    )

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == PAGE
    assert comma_set(response.headers["access-control-allow-methods"]) == {"post"}
    allowed = comma_set(response.headers["access-control-allow-headers"])
    assert {
        "authorization",
        "content-type",
        "x-mock-fault",
        "x-mock-latency-ms",
        "x-mock-session",
        "x-client-request-id",
        "x-mock-anything",
    } <= allowed
    assert "x-evil" not in allowed
    assert int(response.headers["access-control-max-age"]) > 0
    assert response.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in response.headers
    assert cors_mock.requests == []


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/v1/models", {"get", "head"}),
        ("/v1/models/jimeng-4.0", {"get", "head"}),
        ("/images/jimeng-4.0/1024x1024/anything.png", {"get", "head"}),
    ],
)
def test_every_route_answers_its_own_methods(
    cors_mock: MockServer, path: str, methods: set[str]
) -> None:
    response = preflight(cors_mock, path, PAGE)

    assert response.status_code == 204
    assert comma_set(response.headers["access-control-allow-methods"]) == methods


def test_a_preflight_from_an_origin_not_listed_is_the_documented_405(
    cors_mock: MockServer,
) -> None:
    response = preflight(cors_mock, GENERATIONS, OTHER)

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "access-control-allow-origin" not in response.headers
    assert [r.status for r in cors_mock.requests] == [405]


def test_the_admin_routes_have_no_cors(cors_mock: MockServer) -> None:
    response = httpx.get(cors_mock.url + "/__admin/requests", headers={"Origin": PAGE})
    assert response.status_code == 200
    assert not any(name in response.headers for name in CORS_HEADERS)
    assert preflight(cors_mock, "/__admin/reset", PAGE).status_code == 405


def test_answers_of_every_status_carry_the_headers(cors_mock: MockServer) -> None:
    url = cors_mock.url + GENERATIONS
    ok = httpx.post(url, json={**VALID, "colour": "red"}, headers=auth(cors_mock))
    bad = httpx.post(url, json={"model": "jimeng-4.0"}, headers=auth(cors_mock))
    limited = httpx.post(url, json=VALID, headers={**auth(cors_mock), "X-Mock-Fault": "rate_limit"})

    assert (ok.status_code, bad.status_code, limited.status_code) == (200, 400, 429)
    for response in (ok, bad, limited):
        assert_marked(response)
    assert "x-mock-warnings" in ok.headers
    assert "retry-after" in limited.headers

    unlisted = httpx.post(url, json=VALID, headers=auth(cors_mock, OTHER))
    assert unlisted.status_code == 200
    assert not any(name in unlisted.headers for name in CORS_HEADERS)


def test_an_image_is_served_to_another_origin(cors_mock: MockServer) -> None:
    answer = httpx.post(cors_mock.url + GENERATIONS, json=VALID, headers=auth(cors_mock))
    (entry,) = answer.json()["data"]

    image = httpx.get(entry["url"], headers={"Origin": PAGE})

    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert_marked(image)


def test_any_origin_with_a_star() -> None:
    with MockServer(cors="*") as server:
        response = preflight(server, GENERATIONS, OTHER)
        answer = httpx.get(server.url + "/v1/models", headers=auth(server, OTHER))

    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert_marked(answer, "*")


def test_without_cors_options_stays_405_and_no_header_appears() -> None:
    with MockServer() as server:
        response = preflight(server, GENERATIONS, PAGE)
        answer = httpx.post(server.url + GENERATIONS, json=VALID, headers=auth(server))

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    for sent in (response, answer):
        assert not any(name.startswith("access-control-") for name in sent.headers)
        assert "vary" not in sent.headers


def test_the_option_and_its_checks() -> None:
    args = build_parser().parse_args(["--cors", "HTTP://LocalHost:80", "--cors", PAGE])
    assert config_from(args).cors == ("http://localhost", PAGE)
    assert MockConfig().cors == ()
    for bad in ("localhost:3000", "http://x/path", "ftp://x", "null", ["*", PAGE]):
        with pytest.raises(ConfigError, match="cors origin"):
            MockConfig(cors=bad)


# A page on another origin: fetch with a preflight, a warning read, the image in a canvas.
PAGE_JS = """async ({api, key, body}) => {
    const answer = await fetch(api + "/images/generations", {
        method: "POST",
        headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json"},
        body: JSON.stringify(body),
    });
    const json = await answer.json();
    const image = new Image();
    image.crossOrigin = "anonymous";
    await new Promise((loaded, failed) => {
        image.onload = loaded;
        image.onerror = () => failed(new Error("image not loaded"));
        image.src = json.data[0].url;
    });
    const canvas = document.createElement("canvas");
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    return {
        status: answer.status,
        warnings: answer.headers.get("X-Mock-Warnings"),
        url: json.data[0].url,
        size: [image.naturalWidth, image.naturalHeight],
        pixel: Array.from(context.getImageData(10, 10, 1, 1).data),
    };
}"""
REFUSED_JS = """async ({api, key}) => {
    try {
        await fetch(api + "/models", {headers: {"Authorization": "Bearer " + key}});
        return "read";
    } catch (error) {
        return error.name;
    }
}"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        page = b"<!doctype html><title>another origin</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """A page of its own origin: a tiny server on 127.0.0.1, another port than the mock's."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_on_another_origin_calls_the_api_and_draws_the_image(
    browser: Browser, page_origin: str
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(page_origin + "/")
        with MockServer(cors=[page_origin]) as server:
            body = {**VALID, "colour": "red"}
            seen = page.evaluate(
                PAGE_JS, {"api": server.api_base, "key": server.api_key, "body": body}
            )
            kinds = [(r.method, r.status) for r in server.requests]
            png = httpx.get(seen["url"]).content
        with MockServer(cors=[OTHER]) as elsewhere:
            refused = page.evaluate(REFUSED_JS, {"api": elsewhere.api_base, "key": "sk-x"})
    finally:
        context.close()

    assert seen["status"] == 200
    assert "colour" in seen["warnings"]
    assert seen["size"] == [1024, 1024]
    with Image.open(io.BytesIO(png)) as drawn:
        expected = drawn.convert("RGBA").getpixel((10, 10))
    assert tuple(seen["pixel"]) == expected
    assert kinds == [("POST", 200)]  # the preflight is not in the journal
    assert refused == "TypeError"  # an origin not listed cannot read the answer
