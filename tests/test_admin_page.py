"""The journal page at /__admin/: drawn in a real browser (headless chromium), and over HTTP."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from mockserver import MockServer
from mockserver.record.journal import excerpt

THUMBNAIL_SIDE = 160
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The filter form's inputs after those a test fills in, sent empty.
EMPTY_FIELDS = r"(&model=)?(&error=)?(&request_id=)?(&session=)?$"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Every <img> of the page as the browser has it: loaded or not, its size and its link.
IMAGES_JS = """images => images.map(img => ({
    row: img.closest("tr").id,
    src: img.getAttribute("src"),
    href: img.closest("a").getAttribute("href"),
    complete: img.complete,
    naturalWidth: img.naturalWidth,
    naturalHeight: img.naturalHeight,
    width: img.getAttribute("width"),
    height: img.getAttribute("height"),
}))"""


def find_chromium() -> str | None:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    return found if os.path.exists(found) else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless chromium (the system's; `make test` installs it) driven by playwright.

    Missing, the browser tests are skipped on a developer's machine but fail in CI (`CI` set).
    """
    chromium = find_chromium()
    if chromium is None:
        reason = "chromium is not installed (`make test` installs it with apt-get as root)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def mock() -> Iterator[MockServer]:
    """A mock of this test's own: its journal starts empty, with request ids from 1."""
    with MockServer() as server:
        yield server


@pytest.fixture
def client(mock: MockServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=mock.api_base, api_key=mock.api_key, max_retries=0) as sdk:
        yield sdk


def urls(result: Any) -> list[str]:
    found = [image.url for image in result.data or []]
    assert all(found), found
    return found


def size_in(url: str) -> tuple[int, int]:
    """The pixel size an image URL of the mock names: /images/<model>/<W>x<H>/<name>."""
    match = re.search(r"/images/[^/]+/(\d+)x(\d+)/[^/]+$", url)
    assert match, url
    return int(match[1]), int(match[2])


def row_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("tbody tr[id]").evaluate_all("rows => rows.map(r => r.id)")
    return ids


def admin_page(mock: MockServer, **query: str) -> str:
    response = httpx.get(mock.url + "/__admin/", params=query)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def test_the_page_shows_each_request_in_a_browser(
    mock: MockServer, client: openai.OpenAI, page: Page, tmp_path: Path
) -> None:
    square = urls(client.images.generate(model="jimeng-4.0", prompt="a cat", n=2, size="1024*1024"))
    wide = urls(
        client.images.generate(
            model="jimeng-4.5",
            prompt="a lake under a snowy mountain",
            n=1,
            extra_body={"ratio": "16:9", "resolution": "1k"},
        )
    )
    raw = client.images.with_raw_response.generate(
        model="jimeng-4.0", prompt="a kite", n=1, extra_body={"aspect_ratio": "16:9"}
    )
    warned = urls(raw.parse())
    with pytest.raises(openai.BadRequestError) as invalid:
        client.images.generate(model="jimeng-4.0", prompt="a dog", n=1, size="12x34")
    with pytest.raises(openai.RateLimitError) as limited:
        client.images.generate(
            model="jimeng-4.0",
            prompt="a fox",
            n=1,
            extra_headers={"X-Mock-Fault": "rate_limit"},
        )
    images = {"request-1": square, "request-2": wide, "request-3": warned}
    assert (len(square), len(wide), len(warned)) == (2, 1, 1)
    assert [r.id for r in mock.requests] == [1, 2, 3, 4, 5]
    (warning,) = mock.requests[2].warnings
    assert warning.code == "unknown_field"
    assert warning.message in raw.headers["X-Mock-Warnings"]
    assert "aspect_ratio" in warning.message

    response = page.goto(mock.url + "/__admin/")
    assert response is not None
    assert response.status == 200

    # The rows: one per request, newest first.
    assert page.title() == "jimeng-mock: 5 requests"
    assert row_ids(page) == ["request-5", "request-4", "request-3", "request-2", "request-1"]
    statuses = page.locator("tbody tr .status").all_inner_texts()
    assert statuses == ["429", "400", "200", "200", "200"]
    expect(page.locator(".muted").first).to_contain_text("5 request(s) in the journal")

    # Every thumbnail is loaded, drawn at the size the page gives it, and links to its image.
    thumbnails: list[dict[str, Any]] = page.locator("img").evaluate_all(IMAGES_JS)
    assert len(thumbnails) == sum(len(found) for found in images.values()) == 4
    for thumb in thumbnails:
        assert thumb["complete"], thumb
        assert thumb["naturalWidth"] > 0, thumb
        assert thumb["src"].startswith("/__admin/thumbnails/"), thumb
        shown = (thumb["naturalWidth"], thumb["naturalHeight"])
        assert shown == (int(thumb["width"]), int(thumb["height"])), thumb
        assert max(shown) == THUMBNAIL_SIDE, thumb
        width, height = size_in(thumb["href"])
        assert abs(shown[0] / shown[1] - width / height) < 0.02, thumb
    for row, expected in images.items():
        assert [t["href"] for t in thumbnails if t["row"] == row] == expected
    assert [
        (t["naturalWidth"], t["naturalHeight"]) for t in thumbnails if t["row"] == "request-2"
    ] == [(160, 90)]

    # The answers: the error with its code and message, the fault, the warning.
    error_row = page.locator("#request-4")
    assert invalid.value.code is not None
    expect(error_row).to_contain_text(invalid.value.code)
    expect(error_row).to_contain_text(f"({invalid.value.param})")
    expect(error_row).to_contain_text(mock.requests[3].error_message or "?")
    assert error_row.locator("img").count() == 0
    fault_row = page.locator("#request-5")
    assert limited.value.code == "rate_limit_exceeded"
    expect(fault_row.locator(".tag")).to_have_text("fault rate_limit")
    expect(fault_row).to_contain_text("rate_limit_exceeded")
    expect(page.locator("#request-3 .warning")).to_have_text(
        f"warning {warning.code}: {warning.message}"
    )
    assert page.locator(".warning").count() == 1
    expect(page.locator("#request-1 pre")).to_contain_text('"size": "1024*1024"')

    screenshot = tmp_path / "admin.png"
    page.screenshot(path=screenshot, full_page=True)
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(screenshot) as shot:
        assert shot.format == "PNG"
        assert shot.width >= 1400
        assert shot.height > 300

    # Reset: a form POST, answered with a redirect back to the (now empty) page.
    page.get_by_role("button", name="Reset the mock").click()
    expect(page.locator("tbody")).to_have_text("No requests yet.")
    assert page.url == mock.url + "/__admin/"
    assert page.title() == "jimeng-mock: 0 requests"
    assert page.locator("img").count() == 0
    assert mock.requests == []

    # New requests show after Refresh; the filter form keeps only the rows it asks for.
    client.images.generate(model="jimeng-4.0", prompt="a boat", n=1, size="1024x1024")
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="jimeng-4.0", prompt="a boat", n=0)
    client.images.generate(model="jimeng-4.5", prompt="a train", n=1, size="1024x1024")
    page.get_by_role("link", name="Refresh").click()
    expect(page.locator("tbody tr")).to_have_count(3)
    assert row_ids(page) == ["request-3", "request-2", "request-1"]

    page.get_by_label("status").fill("400")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"/__admin/\?status=400" + EMPTY_FIELDS))
    assert row_ids(page) == ["request-2"]
    expect(page.locator("#request-2")).to_contain_text("invalid_value")
    expect(page.get_by_label("status")).to_have_value("400")
    assert page.get_by_role("link", name="Refresh").get_attribute("href") == (
        "/__admin/?status=400"
    )

    page.get_by_label("status").fill("")
    page.get_by_label("model").fill("jimeng-4.5")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"model=jimeng-4\.5" + EMPTY_FIELDS))
    assert row_ids(page) == ["request-3"]
    assert page.locator("img").evaluate_all(IMAGES_JS)[0]["naturalWidth"] == THUMBNAIL_SIDE


def test_the_page_escapes_what_requests_sent(mock: MockServer, client: openai.OpenAI) -> None:
    client.images.generate(
        model="jimeng-4.0", prompt="<script>alert(1)</script>", n=1, size="1024x1024"
    )
    with pytest.raises(openai.NotFoundError):
        client.images.generate(model="<img src=x onerror=alert(2)>", prompt="p", n=1)

    text = admin_page(mock)

    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<img src=x" not in text
    assert "&lt;img src=x onerror=alert(2)&gt;" in text
    assert text.count("<img ") == 1  # the thumbnail of the first request, and nothing else

    echoed = admin_page(mock, model='"><script>alert(3)</script>')
    assert "<script" not in echoed.lower()
    assert 'value="&#34;&gt;&lt;script&gt;alert(3)&lt;/script&gt;"' in echoed
    assert "<tr id=" not in echoed  # no request has that model


def test_a_long_data_uri_is_shortened_on_the_page(mock: MockServer, client: openai.OpenAI) -> None:
    png = io.BytesIO()
    Image.effect_noise((180, 180), 64).convert("RGB").save(png, format="PNG")
    data_uri = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode("ascii")
    assert 90_000 < len(data_uri) < 130_000
    client.images.generate(
        model="jimeng-4.0",
        prompt="like this",
        n=1,
        size="1024x1024",
        extra_body={"image": [data_uri]},
    )
    (record,) = mock.requests
    assert record.body["image"] == [excerpt(data_uri)]  # the journal keeps an excerpt
    assert record.cut == ("image[0]",)

    text = admin_page(mock)

    assert data_uri not in text
    assert data_uri[:256] in text
    assert f"{len(data_uri)}" in text
    assert len(text) < 20_000


@pytest.mark.parametrize(
    ("query", "code", "param", "says"),
    [
        ({"status": "abc"}, "invalid_value", "status", "'abc' is not a whole number"),
        ({"status": "-1"}, "invalid_value", "status", "'-1' is not a whole number"),
        ({"limit": "0"}, "invalid_value", "limit", "'0' is not a whole number of at least 1"),
        ({"colour": "red"}, "unknown_parameter", "colour", "'colour'"),
        ({"limit": "9" * 5000}, "invalid_value", "limit", "(5000 characters)"),
        ({"status": "4" * 5000}, "invalid_value", "status", "at most 18 digits"),
        ({"limit": "1" * 19}, "invalid_value", "limit", "at most 18 digits"),
    ],
    ids=[
        "status-abc",
        "status-negative",
        "limit-0",
        "unknown-parameter",
        "limit-5000-digits",
        "status-5000-digits",
        "limit-19-digits",
    ],
)
def test_a_bad_filter_is_a_400_in_the_error_envelope(
    mock: MockServer, query: dict[str, str], code: str, param: str, says: str
) -> None:
    response = httpx.get(mock.url + "/__admin/", params=query)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert (error["code"], error["param"], error["type"]) == (
        code,
        param,
        "invalid_request_error",
    )
    assert says in error["message"]


def test_a_number_with_leading_zeros_is_the_number(mock: MockServer, client: openai.OpenAI) -> None:
    for prompt in ("one", "two", "three"):
        client.images.generate(model="jimeng-4.0", prompt=prompt, n=1, size="1024x1024")
    zeros = "0" * 30
    params = {"after": zeros + "1", "limit": zeros + "1"}
    response = httpx.get(mock.url + "/__admin/requests", params=params)
    assert response.status_code == 200, response.text
    assert [r["body"]["prompt"] for r in response.json()["requests"]] == ["two"]


def test_limit_shows_the_newest_rows(mock: MockServer, client: openai.OpenAI) -> None:
    for prompt in ("one", "two", "three"):
        client.images.generate(model="jimeng-4.0", prompt=prompt, n=1, size="1024x1024")

    text = admin_page(mock, limit="2")

    assert re.findall(r'<tr id="(request-\d+)"', text) == ["request-3", "request-2"]
    assert "3 request(s) in the journal" in text
    assert "showing 2" in text


def test_thumbnails_are_small_pngs_and_only_for_issued_urls(
    mock: MockServer, client: openai.OpenAI
) -> None:
    (url,) = urls(
        client.images.generate(
            model="jimeng-4.0", prompt="p", n=1, extra_body={"ratio": "16:9", "resolution": "2k"}
        )
    )
    assert size_in(url) == (2560, 1440)
    (src,) = re.findall(r'<img src="([^"]+)"', admin_page(mock))
    assert src == "/__admin/thumbnails/" + url.partition("/images/")[2]

    response = httpx.get(mock.url + src)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert len(response.content) < 20_000
    with Image.open(io.BytesIO(response.content)) as thumb:
        assert thumb.format == "PNG"
        assert thumb.size == (THUMBNAIL_SIDE, 90)
    assert httpx.get(mock.url + src).content == response.content

    tampered = re.sub(r"/2560x1440/", "/2560x1439/", src)
    assert tampered != src
    other_name = src[:-5] + ("0" if src[-5] != "0" else "1") + src[-4:]
    for bad in (tampered, other_name, "/__admin/thumbnails/jimeng-4.0/10x10/nope.png"):
        missing = httpx.get(mock.url + bad)
        assert missing.status_code == 404, (bad, missing.text)
        assert missing.json()["error"]["code"] == "image_not_found", bad
