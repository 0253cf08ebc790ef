"""The `disconnect` fault closes the connection with no answer, however it is asked for, over
a socket with either HTTP parser; the openai SDK raises APIConnectionError, and the journal
records what the client saw: no response."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from mockserver import MockServer, create_app

PARSERS = ["httptools", "h11"]


def by_header(server: MockServer) -> dict[str, str]:
    return {"X-Mock-Fault": "disconnect"}


def by_queue(server: MockServer) -> dict[str, str]:
    server.fail_next("disconnect")
    return {}


def by_admin_api(server: MockServer) -> dict[str, str]:
    answer = httpx.post(
        server.url + "/__admin/faults",
        json={"fault": "disconnect", "match": {"prompt": {"regex": "^A CAT$", "flags": "i"}}},
    )
    assert answer.status_code == 201, answer.text
    return {}


def no_setup(server: MockServer) -> dict[str, str]:
    return {}  # the server's own options ask for it: a stub file, or --fault-rate


@pytest.fixture(scope="module")
def stub_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("disconnect-stubs")
    stub = {"match": {"body": {"prompt": {"regex": "cat", "flags": "i"}}}, "fault": "disconnect"}
    (folder / "10-drop.json").write_text(json.dumps(stub))
    return folder


TRIGGERS: dict[str, tuple[Callable[[MockServer], dict[str, str]], Callable[[Path], Any]]] = {
    "header": (by_header, lambda folder: {}),
    "queue": (by_queue, lambda folder: {}),
    "admin-api": (by_admin_api, lambda folder: {}),
    "stub-file": (no_setup, lambda folder: {"fixtures": folder}),
    "fault-rate": (no_setup, lambda folder: {"fault_rate": 1.0, "fault_names": ["disconnect"]}),
}


@pytest.fixture(params=PARSERS)
def parser(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=list(TRIGGERS))
def trigger(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(parser: str, trigger: str, stub_folder: Path) -> Iterator[MockServer]:
    options = TRIGGERS[trigger][1](stub_folder)
    with MockServer(http=parser, **options) as running:
        yield running


def test_every_trigger_drops_the_connection_for_the_sdk(server: MockServer, trigger: str) -> None:
    headers = TRIGGERS[trigger][0](server)
    with openai.OpenAI(base_url=server.api_base, api_key=server.api_key, max_retries=0) as sdk:
        with pytest.raises(openai.APIConnectionError):
            sdk.images.generate(model="jimeng-4.5", prompt="a cat", n=1, extra_headers=headers)
        # The mock serves on; the next plain request is answered.
        if trigger in ("header", "queue", "admin-api"):
            assert sdk.images.generate(model="jimeng-4.5", prompt="a cat", n=1).data

    first = server.requests[0]
    assert (first.status, first.fault, first.exception) == (None, "disconnect", None)
    assert first.outcome == "dropped"
    assert first.body == {"model": "jimeng-4.5", "prompt": "a cat", "n": 1}
    server.check()  # a fault asked for is no problem of the request


def test_the_sdk_retries_a_dropped_connection(parser: str) -> None:
    with MockServer(http=parser) as server:
        server.fail_next("disconnect", times=2)
        with openai.OpenAI(base_url=server.api_base, api_key=server.api_key, max_retries=2) as sdk:
            assert sdk.images.generate(model="jimeng-4.0", prompt="retried", n=1).data

        assert [r.status for r in server.requests] == [None, None, 200]


def test_under_an_asgi_transport_the_client_gets_connection_aborted() -> None:
    """No connection to close: the documented ConnectionAbortedError, and the journal still
    says no response."""
    app = create_app()

    async def call() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
            await client.post(
                "/v1/images/generations",
                json={"model": "jimeng-4.0", "prompt": "p", "n": 1},
                headers={"Authorization": "Bearer k", "X-Mock-Fault": "disconnect"},
            )

    with pytest.raises(ConnectionAbortedError):
        asyncio.run(call())
    (record,) = app.state.mock.requests
    assert (record.status, record.fault) == (None, "disconnect")
