"""The `image_filtered` fault: the first image withheld as sensitive output, the others made.
On Ark's route, with Ark's SDK: `data[0]` is Ark's per-image error and `usage` counts the
images made, or a `partial_failed` event in a stream; on the OpenAI-compatible route, with
the openai SDK: what a gateway passing Ark's answer on gives (the other images, or a 400
when none is left). Every trigger: header, queue, admin API, stub file, chaos."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from volcenginesdkarkruntime import Ark, AsyncArk
from volcenginesdkarkruntime._exceptions import ArkAPIError

from mockserver import MockServer
from mockserver.dialects import ark_stream
from tests.ark import FILTERED, GENERATIONS, SEEDREAM_40, THREE, WIRE_THREE, client_of

STUB = {"match": {"body": {"prompt": "a stubbed fox"}}, "fault": "image_filtered"}


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    stubs = tmp_path_factory.mktemp("stubs")
    (stubs / "filtered.json").write_text(json.dumps(STUB), encoding="utf-8")
    with MockServer(api_keys=["ark-key"], fixtures=stubs, ark=True) as server:
        yield server


@pytest.fixture
def ark(mock: MockServer) -> Iterator[Ark]:
    mock.reset()
    client = client_of(mock)
    yield client
    client.close()


def by_header(mock: MockServer) -> dict[str, Any]:
    return {"extra_headers": {"X-Mock-Fault": "image_filtered"}}


def by_queue(mock: MockServer) -> dict[str, Any]:
    mock.fail_next("image_filtered")
    return {}


def by_admin(mock: MockServer) -> dict[str, Any]:
    answer = httpx.post(mock.url + "/__admin/faults", json={"fault": "image_filtered"})
    assert answer.status_code in (200, 201), answer.text
    return {}


def by_stub(mock: MockServer) -> dict[str, Any]:
    return {"prompt": "a stubbed fox"}


TRIGGERS: dict[str, Callable[[MockServer], dict[str, Any]]] = {
    "header": by_header,
    "queue": by_queue,
    "admin": by_admin,
    "stub": by_stub,
}


def field(value: Any, name: str) -> Any:
    """A field of what Ark's SDK parsed: its models keep some objects as plain dicts."""
    return value[name] if isinstance(value, dict) else getattr(value, name)


def check_answer(answer: Any, record: Any) -> None:
    """Ark's answer with its first image withheld and the two others made."""
    first, *made = answer.data
    assert first.error is not None
    assert field(first.error, "code") == FILTERED
    assert first.url is None
    assert [image.size for image in made] == ["2048x2048"] * 2
    assert all(image.url for image in made)
    assert answer.usage.generated_images == 2
    assert answer.usage.output_tokens == round(2 * 2048 * 2048 / 256)
    assert record.fault == "image_filtered"
    assert record.images == tuple(image.url for image in made)


@pytest.mark.parametrize("trigger", sorted(TRIGGERS))
def test_every_trigger_withholds_the_first_image_on_ark_s_route(
    ark: Ark, mock: MockServer, trigger: str
) -> None:
    asked = {"prompt": "a fox", **TRIGGERS[trigger](mock)}
    answer = ark.images.generate(model=SEEDREAM_40, **THREE, **asked)

    record = mock.last_request
    assert record is not None
    check_answer(answer, record)
    message = field(answer.data[0].error, "message")
    assert message.endswith(f"Request id: {record.request_id}")
    coverage = mock.coverage()
    assert coverage["faults"]["image_filtered"] == 1
    source = "stub" if trigger == "stub" else "header" if trigger == "header" else "queue"
    assert coverage["fault_sources"][source] == 1


def test_on_the_wire_data_0_is_only_the_error(mock: MockServer) -> None:
    mock.reset()
    answer = httpx.post(
        mock.url + GENERATIONS,
        json={"model": SEEDREAM_40, "prompt": "a fox"},
        headers={"Authorization": "Bearer ark-key", "X-Mock-Fault": "image_filtered"},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["data"] == [
        {"error": {"code": FILTERED, "message": body["data"][0]["error"]["message"]}}
    ]
    assert body["usage"] == {"generated_images": 0, "output_tokens": 0, "total_tokens": 0}
    assert answer.headers["x-mock-fault"] == "image_filtered"


def test_chaos_draws_it_too() -> None:
    with MockServer(ark=True, fault_rate=1.0, fault_names=["image_filtered"]) as chaotic:
        with Ark(base_url=chaotic.url + "/api/v3", api_key="k", max_retries=0) as client:
            answer = client.images.generate(model=SEEDREAM_40, prompt="a fox", **THREE)
        check_answer(answer, chaotic.last_request)
        assert chaotic.coverage()["fault_sources"]["chaos"] == 1


def test_a_stream_sends_a_partial_failed_event_first(mock: MockServer) -> None:
    mock.reset()
    with httpx.stream(
        "POST",
        mock.url + GENERATIONS,
        json={"model": SEEDREAM_40, "prompt": "a fox", "stream": True, **WIRE_THREE},
        headers={"Authorization": "Bearer ark-key", "X-Mock-Fault": "image_filtered"},
    ) as answer:
        text = answer.read().decode()
    events = [
        json.loads(block.split("\n")[1].removeprefix("data: "))
        for block in text.split("\n\n")
        if block.startswith("event: ")
    ]

    kinds = [event["type"] for event in events]
    assert kinds == [ark_stream.FAILED, *[ark_stream.SUCCEEDED] * 2, ark_stream.COMPLETED]
    assert [event["image_index"] for event in events[:3]] == [0, 1, 2]
    assert events[0]["error"]["code"] == FILTERED
    assert "url" not in events[0]
    assert events[3]["usage"]["generated_images"] == 2
    record = mock.last_request
    assert record is not None
    assert (record.fault, record.outcome) == ("image_filtered", "answered")
    assert record.images == tuple(event["url"] for event in events[1:3])


def test_ark_s_sdk_raises_at_the_partial_failed_event(ark: Ark, mock: MockServer) -> None:
    """Ark's SDK raises at an event whose data has `error`, as it would against Ark."""
    stream = ark.images.generate(
        model=SEEDREAM_40,
        prompt="a fox",
        stream=True,
        extra_headers={"X-Mock-Fault": "image_filtered"},
        **THREE,
    )
    seen: list[str] = []
    with pytest.raises(ArkAPIError) as caught:
        seen.extend(event.type for event in stream)
    assert seen == []
    assert caught.value.code == FILTERED
    assert mock.coverage()["faults"]["image_filtered"] == 1


def test_the_async_sdk_too_by_a_queued_fault(mock: MockServer) -> None:
    mock.reset()
    mock.fail_next("image_filtered")

    async def events() -> tuple[list[str], ArkAPIError]:
        client = AsyncArk(base_url=mock.url + "/api/v3", api_key="ark-key")
        seen: list[str] = []
        try:
            stream = await client.images.generate(
                model=SEEDREAM_40, prompt="a fox", stream=True, **THREE
            )
            async for event in stream:
                seen.append(event.type)
        except ArkAPIError as exc:
            return seen, exc
        finally:
            await client.close()
        raise AssertionError(f"the stream ended without an error: {seen}")

    seen, error = asyncio.run(events())
    assert (seen, error.code) == ([], FILTERED)
    assert mock.coverage()["faults"]["image_filtered"] == 1


# The OpenAI-compatible route has no per-image error: a gateway passing Ark's answer on
# gives the images made, and refuses a request whose only image was withheld.


@pytest.fixture
def sdk(mock: MockServer) -> Iterator[openai.OpenAI]:
    mock.reset()
    with openai.OpenAI(base_url=mock.url + "/v1", api_key="ark-key", max_retries=0) as client:
        yield client


def test_the_openai_route_gets_the_images_made(sdk: openai.OpenAI, mock: MockServer) -> None:
    mock.fail_next("image_filtered")
    answer = sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=3)
    plain = sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=3)

    assert answer.data is not None
    assert plain.data is not None
    assert [image.url for image in answer.data] == [image.url for image in plain.data[1:]]
    record = mock.requests[0]
    assert (record.status, record.fault) == (200, "image_filtered")
    assert record.images == tuple(image.url for image in answer.data)
    assert mock.coverage()["faults"]["image_filtered"] == 1


def test_the_openai_route_refuses_when_no_image_is_left(
    sdk: openai.OpenAI, mock: MockServer
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.images.generate(
            model="jimeng-4.0",
            prompt="a cat",
            n=1,
            extra_headers={"X-Mock-Fault": "image_filtered"},
        )
    assert refused.value.code == "content_policy_violation"
    record = mock.last_request
    assert record is not None
    assert (record.status, record.error, record.fault) == (
        400,
        "content_policy_violation",
        "image_filtered",
    )
