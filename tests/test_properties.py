"""Properties of sizes and image URLs, with hypothesis, over a real socket.

Sizes: every ratio x resolution of schemas/sizes.json gives the table's pixel size; any
explicit size within the table's bounds gives a PNG of exactly that size, any other `size` a
400 naming `size`. URLs: every image URL decodes to the model, size and index asked for, and
every edit of one is a 404 in the OpenAI envelope. Bounded and derandomized.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import string
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import openai
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mockserver import MockServer
from mockserver.answers.images import ImageSigner, ImageSpec
from tests.conftest import fetch_png

SIZES = json.loads((Path(__file__).parent.parent / "schemas" / "sizes.json").read_text("utf-8"))
BOUNDS = SIZES["explicit_size_bounds"]
MIN_PIXELS, MAX_PIXELS = BOUNDS["min_pixels"], BOUNDS["max_pixels"]
MAX_ASPECT = BOUNDS["max_aspect_ratio"]
TABLE = [
    (ratio, resolution, width, height)
    for ratio, row in SIZES["table"].items()
    for resolution, (width, height) in row.items()
]
MODELS = ["jimeng-4.0", "jimeng-4.5"]
# Sizes drawn to be fetched stay at a few megapixels, so each example is quick to draw.
RENDERED_PIXELS = 2_500_000
SIZE_PATTERN = re.compile(r"[1-9][0-9]{0,7}[*x][1-9][0-9]{0,7}")

# The `jimeng_mock` server and the `client` on it are function-scoped fixtures, but each
# example only adds requests to the shared server; nothing needs resetting between them.
SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def within(width: int, height: int) -> bool:
    """The bounds of an explicit size, as sizes.json states them."""
    long, short = max(width, height), min(width, height)
    return MIN_PIXELS <= width * height <= MAX_PIXELS and long <= MAX_ASPECT * short


@st.composite
def sizes_within(draw: st.DrawFn, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """A width and height within the bounds, with at most `max_pixels` pixels."""
    narrowest = math.ceil(math.sqrt(MIN_PIXELS / MAX_ASPECT))
    width = draw(st.integers(narrowest, math.isqrt(int(max_pixels * MAX_ASPECT))))
    low = max(math.ceil(MIN_PIXELS / width), math.ceil(width / MAX_ASPECT))
    high = min(max_pixels // width, math.floor(width * MAX_ASPECT))
    assume(low <= high)
    height = draw(st.integers(low, high))
    return (width, height) if draw(st.booleans()) else (height, width)


SIZES_OUTSIDE = st.one_of(
    st.tuples(st.integers(1, 1200), st.integers(1, 1200)),  # too few pixels
    st.tuples(st.integers(4000, 10**8 - 1), st.integers(4000, 10**8 - 1)),  # too many
    st.integers(1, 2000).flatmap(  # too elongated, at any pixel count
        lambda side: st.tuples(st.just(side), st.integers(side * 16 + 1, side * 16 + 4000))
    ),
).filter(lambda size: not within(*size))


def generate(client: openai.OpenAI, **options: Any) -> list[str]:
    options = {"model": "jimeng-4.0", "prompt": "a kite over the dunes", "n": 1, **options}
    extra = {k: options.pop(k) for k in ("ratio", "resolution") if k in options}
    result = client.images.generate(**options, extra_body=extra or None)
    urls = [item.url for item in result.data or []]
    assert all(urls), result
    return [url for url in urls if url]


def refused_size(client: openai.OpenAI, size: str) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as refused:
        generate(client, size=size)
    assert refused.value.status_code == 400
    return refused.value


def parse(jimeng_mock: MockServer, url: str) -> ImageSpec:
    """The image a URL names, as the server's signer reads it back."""
    assert url.startswith(jimeng_mock.url + "/images/"), url
    model, size, name = urlsplit(url).path.removeprefix("/images/").split("/")
    return ImageSigner(jimeng_mock.config.secret).parse(model=model, size=size, name=name)


@pytest.mark.parametrize(("ratio", "resolution", "width", "height"), TABLE)
def test_every_ratio_and_resolution_is_the_tables_size(
    client: openai.OpenAI, ratio: str, resolution: str, width: int, height: int
) -> None:
    (url,) = generate(client, model="jimeng-4.5", ratio=ratio, resolution=resolution)

    assert fetch_png(url)[1] == (width, height)


@settings(SETTINGS, max_examples=25)
@given(size=sizes_within(RENDERED_PIXELS), separator=st.sampled_from(["*", "x"]))
def test_a_size_within_the_bounds_is_drawn_at_exactly_that_size(
    client: openai.OpenAI, size: tuple[int, int], separator: str
) -> None:
    width, height = size
    (url,) = generate(client, size=f"{width}{separator}{height}")

    assert fetch_png(url)[1] == (width, height)


@settings(SETTINGS, max_examples=40)
@given(size=sizes_within(), separator=st.sampled_from(["*", "x"]))
def test_a_large_size_within_the_bounds_is_the_urls_size(
    jimeng_mock: MockServer, client: openai.OpenAI, size: tuple[int, int], separator: str
) -> None:
    """Up to the largest size allowed, checked in the URL only (not drawn)."""
    width, height = size
    (url,) = generate(client, size=f"{width}{separator}{height}")

    assert f"/{width}x{height}/" in url
    spec = parse(jimeng_mock, url)
    assert (spec.width, spec.height) == (width, height)


@settings(SETTINGS, max_examples=50)
@given(size=SIZES_OUTSIDE, separator=st.sampled_from(["*", "x"]))
def test_a_size_outside_the_bounds_is_a_400_naming_size(
    client: openai.OpenAI, size: tuple[int, int], separator: str
) -> None:
    error = refused_size(client, f"{size[0]}{separator}{size[1]}")

    assert (error.code, error.param) == ("invalid_value", "size")


@settings(SETTINGS, max_examples=60)
@given(
    size=st.one_of(
        st.text(max_size=24),
        st.from_regex(r"\A[0-9]{1,9}[*xX\u00d7 :,/-]{1,2}[0-9]{1,9}\n?\Z"),
        sizes_within().map(lambda size: f"{size[0]}x{size[1]}"),
    )
)
def test_any_size_string_is_an_image_of_that_size_or_a_400_naming_size(
    jimeng_mock: MockServer, client: openai.OpenAI, size: str
) -> None:
    if SIZE_PATTERN.fullmatch(size) and within(*map(int, re.split(r"[*x]", size))):
        (url,) = generate(client, size=size)
        spec = parse(jimeng_mock, url)
        assert f"{spec.width}x{spec.height}" == size.replace("*", "x")
    else:
        assert refused_size(client, size).param == "size"


# The image URLs: what they name, and what an edited one answers.


REQUESTS = st.fixed_dictionaries(
    {
        "model": st.sampled_from(MODELS),
        "prompt": st.text(
            st.characters(codec="utf-8", exclude_categories=["Cc", "Cf", "Cs", "Zl", "Zp", "Zs"]),
            min_size=1,
            max_size=40,
        ),
        "n": st.integers(1, 15),
    },
    optional={"size": sizes_within().map(lambda size: f"{size[0]}*{size[1]}")},
)


@settings(SETTINGS, max_examples=30)
@given(body=REQUESTS, table=st.sampled_from(TABLE))
def test_every_url_names_the_image_asked_for(
    jimeng_mock: MockServer, client: openai.OpenAI, body: dict[str, Any], table: Any
) -> None:
    ratio, resolution, width, height = table
    if "size" in body:
        width, height = map(int, body["size"].split("*"))
    else:
        body = {**body, "ratio": ratio, "resolution": resolution}
    urls = generate(client, **body)

    assert len(urls) == body["n"]
    for index, url in enumerate(urls, 1):
        spec = parse(jimeng_mock, url)
        assert (spec.model, spec.width, spec.height, spec.index) == (
            body["model"],
            width,
            height,
            index,
        )


# Characters an edit may bring into a path: the printable ones a request line can carry.
PATH_CHARACTERS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/%?#"
ROUTE = re.compile(r"/images/[^/]+/[^/]+/[^/]+")
# httptools, uvicorn's parser when it is installed, cuts a `#...` off the target as a URL's
# fragment; h11 keeps it in the path.
CUTS_FRAGMENT = importlib.util.find_spec("httptools") is not None


@st.composite
def edits(draw: st.DrawFn, path: str) -> str:
    """`path` with one character changed, inserted or deleted, cut short, or walked out of
    with `..`. Its first character, the `/` a request target starts with, stays."""
    kind = draw(st.sampled_from(["change", "insert", "delete", "truncate", "traverse"]))
    if kind == "traverse":
        model, size, name = path.removeprefix("/images/").split("/")
        return draw(
            st.sampled_from(
                [
                    f"/images/../images/{model}/{size}/{name}",
                    f"/images/{model}/../{model}/{size}/{name}",
                    f"/images/{model}/{size}/../{size}/{name}",
                    f"/images/{model}/{size}/%2e%2e/{name}",
                    f"/images/{model}/{size}/..%2F..%2Fhealthz",
                    "/images/../healthz",
                    f"/images/./{model}/{size}/{name}",
                ]
            )
        )
    if kind == "truncate":
        return path[: draw(st.integers(1, len(path) - 1))]
    position = draw(st.integers(1, len(path) - (kind != "insert")))
    if kind == "delete":
        return path[:position] + path[position + 1 :]
    character = draw(st.sampled_from(PATH_CHARACTERS))
    if kind == "insert":
        return path[:position] + character + path[position:]
    assume(character != path[position])
    return path[:position] + character + path[position + 1 :]


@pytest.fixture
def image_paths(client: openai.OpenAI) -> list[str]:
    """Paths of a few URLs the mock issued, of both models and several sizes."""
    urls = generate(client, n=2, size="1024*1024")
    urls += generate(client, model="jimeng-4.5", size="3840x240")
    urls += generate(client, ratio="21:9", resolution="1k")
    return [urlsplit(url).path for url in urls]


@settings(SETTINGS, max_examples=120)
@given(data=st.data())
def test_every_edited_url_is_a_404(
    jimeng_mock: MockServer, image_paths: list[str], data: st.DataObject
) -> None:
    original = data.draw(st.sampled_from(image_paths), label="original")
    edited = data.draw(edits(original), label="edited")
    assume(edited != original)
    with httpx.Client() as http:
        assert http.get(jimeng_mock.url + original).status_code == 200
        # httpx, like browsers, removes `..` segments and cuts `#...` off before sending: the
        # edited target goes out byte for byte instead.
        response = http.get(jimeng_mock.url, extensions={"target": edited.encode("ascii")})

    assert response.status_code == 404, (edited, response.text)
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    path = edited.partition("?")[0]
    routed = ROUTE.fullmatch(unquote(path.partition("#")[0] if CUTS_FRAGMENT else path))
    assert error["code"] == ("image_not_found" if routed else "not_found"), edited
