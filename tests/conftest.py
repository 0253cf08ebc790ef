from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import openai
import pytest
from PIL import Image

from mockserver import MockServer

# What pytest-xdist tells its workers through the environment. A suite run inside pytester
# inherits it, and would take itself for a worker (the plugin names sessions after it).
XDIST_ENVIRONMENT = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")
# The dev extra's plugins that no suite run inside pytester uses: loading them is most of
# such a run's start-up (about 1.3 s of 1.7 s), paid by each of some twenty runs.
UNUSED_PLUGINS = ("hypothesispytest", "schemathesis")


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester's, with the inner run unaware of the outer run's xdist worker, and without
    the plugins it does not use (still with every other one installed, this one's included)."""
    for name in XDIST_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTEST_ADDOPTS", " ".join(f"-p no:{name}" for name in UNUSED_PLUGINS))
    return pytester


@pytest.fixture
def client(jimeng_mock: MockServer) -> Iterator[openai.OpenAI]:
    """An openai SDK client pointed at the mock, with retries off so each call is one request."""
    with openai.OpenAI(
        base_url=jimeng_mock.api_base, api_key=jimeng_mock.api_key, max_retries=0
    ) as sdk:
        yield sdk


def fetch_png(url: str) -> tuple[bytes, tuple[int, int]]:
    """GET an image URL as a browser would (no Authorization) and open it with Pillow."""
    response = httpx.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.format == "PNG"
        return response.content, image.size


# uvicorn's two HTTP parsers: httptools, which a plain install serves with, and h11, which
# `--http h11` picks. Tests that depend on how a request is parsed run on both.
PARSERS = ("httptools", "h11")


@pytest.fixture(scope="module", params=PARSERS)
def parsed_mock(request: pytest.FixtureRequest) -> Iterator[MockServer]:
    """A mock served with one HTTP parser; a test that asks for it runs on each."""
    with MockServer(http=request.param) as server:
        yield server


@pytest.fixture
def parser(parsed_mock: MockServer) -> str:
    """The HTTP parser `parsed_mock` serves with."""
    return parsed_mock.http
