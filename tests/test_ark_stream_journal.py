"""What the journal, coverage and `check()` make of a streamed answer on Ark's route, driven
by Ark's SDK (sync and async) through a socket: the events sent, the images, whether the
client read to the end; and the answers a stub and the `malformed` and `partial` faults
give a streamed request."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from volcenginesdkarkruntime import Ark, AsyncArk
from volcenginesdkarkruntime._exceptions import ArkAPIError

from mockserver import MockServer
from mockserver.dialects import ark_stream
from mockserver.record.journal import RequestRecord
from tests.ark import FILTERED, GENERATIONS, SEEDREAM_40, THREE, WIRE_THREE, client_of

STUB = {
    "match": {"body": {"prompt": "a stubbed story"}},
    "response": {
        "status": 200,
        "body": {
            "model": "{{model}}",
            "created": "{{created}}",
            "data": [
                {"url": "{{url:1}}", "size": "2048x2048"},
                {"error": {"code": FILTERED, "message": "withheld"}},
            ],
        },
    },
}
DONE_THREE = [*[ark_stream.SUCCEEDED] * 3, ark_stream.COMPLETED]


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    stubs = tmp_path_factory.mktemp("stubs")
    (stubs / "story.json").write_text(json.dumps(STUB), encoding="utf-8")
    with MockServer(api_keys=["ark-key"], fixtures=stubs, ark=True) as server:
        yield server


@pytest.fixture
def ark(mock: MockServer) -> Iterator[Ark]:
    mock.reset()
    client = client_of(mock)
    yield client
    client.close()


def recorded(mock: MockServer, count: int = 1) -> RequestRecord:
    """The newest record, once the journal has `count` (a stream left is recorded as its
    request ends, a moment after the client goes)."""
    deadline = time.monotonic() + 5
    while len(mock.requests) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    record = mock.last_request
    assert record is not None
    return record


def test_a_stream_read_to_the_end(ark: Ark, mock: MockServer) -> None:
    events = list(ark.images.generate(model=SEEDREAM_40, prompt="a fox", stream=True, **THREE))

    record = recorded(mock)
    urls = [event.url for event in events[:3]]
    assert record.stream == {
        "events": 4,
        "types": {ark_stream.SUCCEEDED: 3, ark_stream.COMPLETED: 1},
        "order": DONE_THREE,
        "images": urls,
        "done": True,
        "ending": "read_to_end",
    }
    assert (record.outcome, record.status) == ("answered", 200)
    coverage = mock.coverage()
    assert coverage["streams"] == {"read_to_end": 1, "client_left": 0, "cut": 0}
    assert coverage["stream_events"] == {ark_stream.COMPLETED: 1, ark_stream.SUCCEEDED: 3}
    mock.check()  # nothing wrong with it
    plain = ark.images.generate(model=SEEDREAM_40, prompt="a fox")
    assert plain.data[0].url
    assert recorded(mock, 2).stream is None  # an answer not streamed has no digest
    assert "stream" not in httpx.get(mock.url + "/__admin/requests").json()["requests"][-1]


def test_a_client_that_leaves_mid_stream_is_recorded_so(ark: Ark, mock: MockServer) -> None:
    stream = ark.images.generate(
        model=SEEDREAM_40,
        prompt="a fox",
        stream=True,
        extra_headers={"X-Mock-Latency-Ms": "300"},
        **THREE,
    )
    first = next(iter(stream))
    stream.close()

    assert first.type == ark_stream.SUCCEEDED
    record = recorded(mock)
    assert record.outcome == "client_disconnected"
    assert record.stream is not None
    assert (record.stream["events"], record.stream["ending"]) == (1, "client_left")
    assert record.stream["images"] == [first.url]
    assert record.stream["done"] is False
    assert mock.coverage()["streams"]["client_left"] == 1
    with pytest.raises(AssertionError, match="left its streamed answer after 1 event"):
        mock.check()


def test_the_async_client_read_to_the_end_and_left(mock: MockServer) -> None:
    mock.reset()

    async def run() -> tuple[list[str], str]:
        client = AsyncArk(base_url=mock.url + "/api/v3", api_key="ark-key")
        try:
            whole = await client.images.generate(
                model=SEEDREAM_40, prompt="a fox", stream=True, **THREE
            )
            kinds = [event.type async for event in whole]
            left = await client.images.generate(
                model=SEEDREAM_40,
                prompt="a fox",
                stream=True,
                extra_headers={"X-Mock-Latency-Ms": "300"},
                **THREE,
            )
            async for event in left:
                first = event.type
                break
            await left.close()
            return kinds, first
        finally:
            await client.close()

    kinds, first = asyncio.run(run())
    assert (kinds, first) == (DONE_THREE, ark_stream.SUCCEEDED)
    record = recorded(mock, 2)
    assert record.stream is not None
    assert (record.stream["events"], record.stream["ending"]) == (1, "client_left")
    whole = mock.requests[0].stream
    assert whole is not None
    assert (whole["events"], whole["ending"]) == (4, "read_to_end")
    assert mock.coverage()["streams"] == {"read_to_end": 1, "client_left": 1, "cut": 0}


def test_the_disconnect_fault_cuts_it(ark: Ark, mock: MockServer) -> None:
    stream = ark.images.generate(
        model=SEEDREAM_40,
        prompt="a fox",
        stream=True,
        extra_headers={"X-Mock-Fault": "disconnect"},
        **THREE,
    )
    with pytest.raises(httpx.RemoteProtocolError):
        list(stream)

    record = recorded(mock)
    assert record.stream is not None
    assert (record.stream["events"], record.stream["ending"]) == (1, "cut")
    assert mock.coverage()["streams"]["cut"] == 1
    mock.check()  # a fault asked for: none of the test's problems


def events_of(text: str) -> list[str]:
    return [block for block in text.split("\n\n") if block]


def streamed(mock: MockServer, body: dict[str, Any], fault: str | None = None) -> str:
    headers = {"Authorization": "Bearer ark-key"}
    if fault is not None:
        headers["X-Mock-Fault"] = fault
    with httpx.stream(
        "POST",
        mock.url + GENERATIONS,
        json={"model": SEEDREAM_40, "stream": True, **body},
        headers=headers,
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        return answer.read().decode()


def test_a_stub_answers_a_streamed_request_as_a_stream(ark: Ark, mock: MockServer) -> None:
    blocks = events_of(streamed(mock, {"prompt": "a stubbed story"}))

    assert blocks[-1] == "data: [DONE]"
    parsed = [json.loads(block.split("\n")[1].removeprefix("data: ")) for block in blocks[:-1]]
    kinds = [event["type"] for event in parsed]
    assert kinds == [ark_stream.SUCCEEDED, ark_stream.FAILED, ark_stream.COMPLETED]
    assert [event["image_index"] for event in parsed[:2]] == [0, 1]
    assert parsed[2]["usage"]["generated_images"] == 1
    record = recorded(mock)
    assert record.stub == "story.json"
    assert record.stream is not None
    assert record.stream["images"] == [parsed[0]["url"]]
    assert record.stream["types"][ark_stream.FAILED] == 1

    seen: list[str] = []
    stream = ark.images.generate(model=SEEDREAM_40, prompt="a stubbed story", stream=True)
    with pytest.raises(ArkAPIError) as caught:  # Ark's SDK raises at a failed image's event
        seen.extend(event.type for event in stream)
    assert (seen, caught.value.code) == ([ark_stream.SUCCEEDED], FILTERED)


def test_malformed_cuts_the_first_event_s_json_and_ends(mock: MockServer) -> None:
    mock.reset()
    blocks = events_of(streamed(mock, {"prompt": "a fox", **WIRE_THREE}, "malformed"))

    assert len(blocks) == 1
    kind, data = blocks[0].split("\n")
    assert kind == f"event: {ark_stream.SUCCEEDED}"
    with pytest.raises(json.JSONDecodeError):
        json.loads(data.removeprefix("data: "))
    record = recorded(mock)
    assert record.stream is not None
    assert (record.stream["events"], record.stream["done"]) == (1, False)
    assert record.stream["ending"] == "read_to_end"


def test_partial_streams_fewer_images(mock: MockServer) -> None:
    mock.reset()
    blocks = events_of(
        streamed(
            mock,
            {
                "prompt": "a fox",
                "sequential_image_generation": "auto",
                "sequential_image_generation_options": {"max_images": 4},
            },
            "partial",
        )
    )

    kinds = [block.split("\n")[0] for block in blocks[:-1]]
    assert kinds == [f"event: {k}" for k in (ark_stream.SUCCEEDED,) * 2 + (ark_stream.COMPLETED,)]
    record = recorded(mock)
    assert record.stream is not None
    assert record.stream["events"] == 3
