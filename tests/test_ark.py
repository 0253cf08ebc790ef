"""Ark's dialect (`POST /api/v3/images/generations`), driven by Ark's own SDK through a socket:
answers, images, refusals in Ark's envelope, faults, the journal, sessions, stubs."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from volcenginesdkarkruntime import Ark, AsyncArk
from volcenginesdkarkruntime._exceptions import (
    ArkAuthenticationError,
    ArkBadRequestError,
    ArkInternalServerError,
    ArkNotFoundError,
    ArkRateLimitError,
)
from volcenginesdkarkruntime.types.images import SequentialImageGenerationOptions

from mockserver import MockServer
from mockserver.dialects import ark_stream

SEEDREAM_40 = "doubao-seedream-4-0-250828"
SEEDREAM_45 = "doubao-seedream-4-5-251128"
GENERATIONS = "/api/v3/images/generations"
STUB = {
    "match": {"body": {"model": SEEDREAM_45, "prompt": "a stubbed fox"}},
    "response": {
        "status": 200,
        "body": {"model": "{{model}}", "created": "{{created}}", "data": "{{data}}"},
    },
}


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    stubs = tmp_path_factory.mktemp("stubs")
    (stubs / "fox.json").write_text(json.dumps(STUB), encoding="utf-8")
    with MockServer(api_keys=["ark-key"], fixtures=stubs, ark=True) as server:
        yield server


@pytest.fixture
def ark(mock: MockServer) -> Iterator[Ark]:
    mock.reset()
    client = Ark(base_url=mock.url + "/api/v3", api_key="ark-key", max_retries=2)
    yield client
    client.close()


def fetched(url: str) -> Image.Image:
    answer = httpx.get(url)
    assert answer.status_code == 200
    return Image.open(io.BytesIO(answer.content))


def data_uri(kind: str, size: tuple[int, int]) -> str:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, format=kind.upper())
    return f"data:image/{kind};base64,{base64.b64encode(out.getvalue()).decode()}"


def png_claiming(width: int, height: int) -> str:
    """A PNG whose header claims `width` x `height`, with a few bytes of data: a bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return "data:image/png;base64," + base64.b64encode(raw).decode()


def test_an_answer_in_ark_s_shape_with_images_of_the_size_it_says(
    ark: Ark, mock: MockServer
) -> None:
    answer = ark.images.generate(model=SEEDREAM_40, prompt="a red fox")

    assert answer.model == SEEDREAM_40
    assert isinstance(answer.created, int)  # type: ignore[attr-defined]
    assert [image.size for image in answer.data] == ["2048x2048"]
    assert answer.usage.generated_images == 1
    assert answer.usage.output_tokens == round(2048 * 2048 / 256) == answer.usage.total_tokens
    image = fetched(answer.data[0].url)
    assert (image.format, image.size) == ("JPEG", (2048, 2048))
    again = ark.images.generate(model=SEEDREAM_40, prompt="a red fox")
    assert again.data[0].url == answer.data[0].url  # deterministic
    record = mock.last_request
    assert record is not None
    assert (record.method, record.path, record.status) == ("POST", GENERATIONS, 200)
    assert record.images == (answer.data[0].url,)


@pytest.mark.parametrize(
    ("model", "size", "pixels"),
    [
        (SEEDREAM_40, "1K", (1024, 1024)),
        (SEEDREAM_40, "4K", (4096, 4096)),
        (SEEDREAM_45, "2K", (2048, 2048)),
        (SEEDREAM_40, "1280x720", (1280, 720)),
        (SEEDREAM_45, "2560x1440", (2560, 1440)),
    ],
)
def test_a_preset_or_a_size_gives_its_pixels(
    ark: Ark, model: str, size: str, pixels: tuple[int, int]
) -> None:
    answer = ark.images.generate(model=model, prompt="a fox", size=size, watermark=False)

    assert answer.data[0].size == f"{pixels[0]}x{pixels[1]}"
    assert fetched(answer.data[0].url).size == pixels


def test_the_async_client_gets_the_same_answer(ark: Ark, mock: MockServer) -> None:
    async def ask() -> Any:
        client = AsyncArk(base_url=mock.url + "/api/v3", api_key="ark-key")
        try:
            return await client.images.generate(model=SEEDREAM_45, prompt="an owl", size="2K")
        finally:
            await client.close()

    answer = asyncio.run(ask())
    assert answer.data[0].url == ark.images.generate(model=SEEDREAM_45, prompt="an owl").data[0].url


def test_an_async_refusal_is_ark_s_exception(mock: MockServer) -> None:
    async def ask() -> None:
        client = AsyncArk(base_url=mock.url + "/api/v3", api_key="ark-key")
        try:
            await client.images.generate(model="doubao-seedream-3-0", prompt="an owl")
        finally:
            await client.close()

    with pytest.raises(ArkNotFoundError) as caught:
        asyncio.run(ask())
    assert caught.value.code == "InvalidEndpointOrModel.NotFound"


REFUSALS = [
    ({"model": "gpt-image-1"}, ArkNotFoundError, "InvalidEndpointOrModel.NotFound", "model"),
    ({"prompt": None}, ArkBadRequestError, "MissingParameter", "prompt"),
    ({"size": "100x100"}, ArkBadRequestError, "InvalidParameter", "size"),
    ({"model": SEEDREAM_45, "size": "1K"}, ArkBadRequestError, "InvalidParameter", "size"),
    ({"model": SEEDREAM_45, "size": "1280x1280"}, ArkBadRequestError, "InvalidParameter", "size"),
    ({"size": "16400x1000"}, ArkBadRequestError, "InvalidParameter", "size"),  # beyond 16:1
    ({"size": "2K "}, ArkBadRequestError, "InvalidParameter", "size"),
    ({"response_format": "png"}, ArkBadRequestError, "InvalidParameter", "response_format"),
    ({"output_format": "webp"}, ArkBadRequestError, "InvalidParameter", "output_format"),
    ({"image": "ftp://example.com/a.png"}, ArkBadRequestError, "InvalidParameter", "image"),
    (
        {"image": ["https://example.com/a.png", "a.png"]},
        ArkBadRequestError,
        "InvalidParameter",
        "image[1]",
    ),
    ({"image": data_uri("png", (10, 10))}, ArkBadRequestError, "InvalidParameter", "image"),
    ({"image": data_uri("png", (600, 30))}, ArkBadRequestError, "InvalidParameter", "image"),
    ({"image": png_claiming(100_000, 100_000)}, ArkBadRequestError, "InvalidParameter", "image"),
    ({"image": png_claiming(6001, 400)}, ArkBadRequestError, "InvalidParameter", "image"),
    ({"image": "data:image/png;base64,@@@@"}, ArkBadRequestError, "InvalidParameter", "image"),
    ({"image": "data:image/svg;base64,PHN2Zz4="}, ArkBadRequestError, "InvalidParameter", "image"),
    (
        {"image": ["https://example.com/a.png"] * 15},
        ArkBadRequestError,
        "InvalidParameter",
        "image",
    ),
    (
        {
            "sequential_image_generation": "auto",
            "sequential_image_generation_options": SequentialImageGenerationOptions(max_images=16),
        },
        ArkBadRequestError,
        "InvalidParameter",
        "sequential_image_generation_options.max_images",
    ),
]


@pytest.mark.parametrize(("fields", "kind", "code", "param"), REFUSALS)
def test_each_refusal_is_ark_s_exception_with_ark_s_code(
    ark: Ark, mock: MockServer, fields: dict[str, Any], kind: type[Exception], code: str, param: str
) -> None:
    asked = {"model": SEEDREAM_40, "prompt": "a fox", **fields}
    with pytest.raises(kind) as caught:
        ark.images.generate(**asked)

    error = caught.value
    assert (error.code, error.param) == (code, param)  # type: ignore[attr-defined]
    record = mock.last_request
    assert record is not None
    assert record.path == GENERATIONS
    body = error.body  # type: ignore[attr-defined]
    assert body["message"].endswith(f"Request id: {record.request_id}")


def test_the_envelope_and_its_request_id(mock: MockServer) -> None:
    answer = httpx.post(
        mock.url + GENERATIONS,
        json={"model": SEEDREAM_40, "prompt": "a fox", "size": "9x9"},
        headers={"Authorization": "Bearer ark-key"},
    )

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert set(error) == {"code", "message", "param", "type"}
    assert (error["code"], error["param"]) == ("InvalidParameter", "size")
    assert error["message"].endswith(f"Request id: {answer.headers['x-request-id']}")


def test_a_wrong_key_and_an_unknown_path_in_ark_s_envelope(mock: MockServer) -> None:
    client = Ark(base_url=mock.url + "/api/v3", api_key="not-the-key")
    with client, pytest.raises(ArkAuthenticationError) as caught:
        client.images.generate(model=SEEDREAM_40, prompt="a fox")
    assert caught.value.code == "AuthenticationError"

    answer = httpx.post(mock.url + "/api/v3/images/edits", json={})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "NotFound"
    record = mock.last_request
    assert record is not None
    assert (record.path, record.status) == ("/api/v3/images/edits", 404)


def test_good_references_are_taken(ark: Ark) -> None:
    references = [
        "https://example.com/a.png",
        data_uri("png", (64, 48)),
        data_uri("jpeg", (15, 15)),
        data_uri("webp", (32, 32)),
        data_uri("gif", (40, 20)),
        data_uri("bmp", (20, 40)),
        data_uri("tiff", (30, 30)),
    ]
    answer = ark.images.generate(model=SEEDREAM_40, prompt="these", image=references)
    assert len(answer.data) == 1
    single = ark.images.generate(model=SEEDREAM_40, prompt="this", image=references[1])
    assert single.data[0].url != answer.data[0].url


def test_sequential_generation_makes_max_images_or_what_the_references_leave(ark: Ark) -> None:
    def count(**fields: Any) -> int:
        answer = ark.images.generate(model=SEEDREAM_40, prompt="a story", **fields)
        assert answer.usage.generated_images == len(answer.data)
        assert len({image.url for image in answer.data}) == len(answer.data)
        return len(answer.data)

    three = SequentialImageGenerationOptions(max_images=3)
    assert count(sequential_image_generation="auto", sequential_image_generation_options=three) == 3
    assert count(sequential_image_generation="auto") == 15
    references = ["https://example.com/a.png"] * 14
    assert count(sequential_image_generation="auto", image=references) == 1
    assert count(sequential_image_generation="auto", image=references[:12]) == 3
    assert (
        count(sequential_image_generation="disabled", sequential_image_generation_options=three)
        == 1
    )


def test_b64_json_and_png(ark: Ark) -> None:
    answer = ark.images.generate(
        model=SEEDREAM_40,
        prompt="a fox",
        size="1K",
        response_format="b64_json",
        output_format="png",
    )
    image = Image.open(io.BytesIO(base64.b64decode(answer.data[0].b64_json)))
    assert (image.format, image.size) == ("PNG", (1024, 1024))
    assert answer.data[0].url is None
    jpeg = ark.images.generate(
        model=SEEDREAM_40, prompt="a fox", size="1K", response_format="b64_json"
    )
    assert Image.open(io.BytesIO(base64.b64decode(jpeg.data[0].b64_json))).format == "JPEG"


def _white_in_corner(image: Image.Image) -> int:
    width, height = image.size
    corner = image.convert("RGB").crop((width * 3 // 4, height * 9 // 10, width, height))
    pixels = corner.tobytes()
    return sum(1 for i in range(0, len(pixels), 3) if min(pixels[i : i + 3]) > 240)


def test_the_watermark_is_drawn_bottom_right_unless_turned_off(ark: Ark) -> None:
    def image(watermark: bool | None) -> Image.Image:
        answer = ark.images.generate(
            model=SEEDREAM_40, prompt="a fox", size="1K", output_format="png", watermark=watermark
        )
        return fetched(answer.data[0].url)

    marked, plain, default = image(True), image(False), image(None)
    assert _white_in_corner(marked) > 50
    assert _white_in_corner(plain) == 0
    assert default.tobytes() == marked.tobytes()
    middle = (300, 300, 700, 700)
    assert (
        marked.convert("RGB").crop(middle).tobytes() == plain.convert("RGB").crop(middle).tobytes()
    )


def test_a_rate_limit_is_retried_by_the_sdk_and_quota_is_not(ark: Ark, mock: MockServer) -> None:
    mock.fail_next("rate_limit", retry_after_ms=50)
    answer = ark.images.generate(model=SEEDREAM_40, prompt="a fox")
    assert len(answer.data) == 1
    assert [(r.status, r.error) for r in mock.requests] == [
        (429, "rate_limit_exceeded"),
        (200, None),
    ]

    mock.reset()
    mock.fail_next("quota")
    with pytest.raises(ArkRateLimitError) as caught:
        ark.images.generate(model=SEEDREAM_40, prompt="a fox")
    assert caught.value.code == "QuotaExceeded"
    assert len(mock.requests) == 1

    mock.fail_next("rate_limit", times=3, retry_after_ms=50)
    with pytest.raises(ArkRateLimitError) as limited:
        ark.images.generate(model=SEEDREAM_40, prompt="a fox")
    assert limited.value.code == "RateLimitExceeded.EndpointRPMExceeded"


def test_faults_by_header_answer_in_ark_s_envelope(ark: Ark, mock: MockServer) -> None:
    client = Ark(base_url=mock.url + "/api/v3", api_key="ark-key", max_retries=0)
    with client, pytest.raises(ArkInternalServerError) as caught:
        client.images.generate(
            model=SEEDREAM_40, prompt="a fox", extra_headers={"X-Mock-Fault": "server_error"}
        )
    assert caught.value.code == "InternalServiceError"

    partial = ark.images.generate(
        model=SEEDREAM_40,
        prompt="a fox",
        sequential_image_generation="auto",
        sequential_image_generation_options=SequentialImageGenerationOptions(max_images=4),
        extra_headers={"X-Mock-Fault": "partial"},
    )
    assert 0 < len(partial.data) < 4
    assert partial.usage.generated_images == len(partial.data)


def test_sessions_coverage_and_stubs(ark: Ark, mock: MockServer) -> None:
    session = mock.session("ark-tests")
    ark.images.generate(model=SEEDREAM_45, prompt="a session's fox", extra_headers=session.headers)
    ark.images.generate(model=SEEDREAM_45, prompt="the default's fox")

    assert [r.body["prompt"] for r in session.requests] == ["a session's fox"]
    assert session.coverage()["requests"] == 1
    assert mock.coverage()["requests"] == 2

    stubbed = ark.images.generate(model=SEEDREAM_45, prompt="a stubbed fox")
    assert [image.size for image in stubbed.data] == ["2048x2048"]
    assert fetched(stubbed.data[0].url).size == (2048, 2048)
    record = mock.last_request
    assert record is not None
    assert record.stub == "fox.json"


ARK_CODES = json.loads(
    (Path(__file__).parent.parent / "schemas/dialects/ark/errors.json").read_text(encoding="utf-8")
)["codes"]
FAULTS = json.loads(
    (Path(__file__).parent.parent / "schemas/faults.json").read_text(encoding="utf-8")
)["faults"]
ERROR_FAULTS = sorted(name for name, fault in FAULTS.items() if fault["action"] == "error")


@pytest.mark.parametrize("fault", ERROR_FAULTS)
def test_every_error_fault_is_answered_in_ark_s_envelope(mock: MockServer, fault: str) -> None:
    mock.reset()
    answer = httpx.post(
        mock.url + GENERATIONS,
        json={"model": SEEDREAM_40, "prompt": "a fox"},
        headers={"Authorization": "Bearer ark-key", "X-Mock-Fault": fault},
    )

    mock_code = FAULTS[fault]["error"]
    error = answer.json()["error"]
    assert set(error) == {"code", "message", "param", "type"}
    assert (error["code"], error["type"]) == (
        ARK_CODES[mock_code]["code"],
        ARK_CODES[mock_code]["type"],
    )
    assert error["message"].endswith(f"Request id: {answer.headers['x-request-id']}")
    record = mock.last_request
    assert record is not None
    assert (record.path, record.status, record.error, record.fault) == (
        GENERATIONS,
        answer.status_code,
        mock_code,
        fault,
    )


def test_the_other_faults_on_ark_s_route(mock: MockServer) -> None:
    def sent(fault: str) -> httpx.Response:
        return httpx.post(
            mock.url + GENERATIONS,
            json={"model": SEEDREAM_40, "prompt": "a fox"},
            headers={"Authorization": "Bearer ark-key", "X-Mock-Fault": fault},
        )

    malformed = sent("malformed")
    assert malformed.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed.text)
    assert sent("slow").json()["usage"]["generated_images"] == 1
    with pytest.raises(httpx.HTTPError):
        sent("disconnect")
    record = mock.last_request
    assert record is not None
    assert (record.path, record.fault, record.outcome) == (GENERATIONS, "disconnect", "dropped")


# Streaming: `stream: true` answers Server-Sent Events, an image's event as soon as it is made.

SEQUENCE = {
    "sequential_image_generation": "auto",
    "sequential_image_generation_options": SequentialImageGenerationOptions(max_images=3),
}


def test_a_stream_sends_each_image_as_it_is_made(ark: Ark, mock: MockServer) -> None:
    started = time.monotonic()
    seen: list[tuple[float, Any]] = []
    stream = ark.images.generate(
        model=SEEDREAM_40,
        prompt="a story",
        stream=True,
        extra_headers={"X-Mock-Latency-Ms": "300"},
        **SEQUENCE,
    )
    for event in stream:
        seen.append((time.monotonic() - started, event))

    kinds = [event.type for _, event in seen]
    assert kinds == [ark_stream.SUCCEEDED] * 3 + [ark_stream.COMPLETED]
    assert [event.image_index for _, event in seen[:3]] == [0, 1, 2]
    assert seen[2][0] - seen[0][0] >= 0.5  # the first came while the others were being made
    assert seen[0][0] >= 0.3
    urls = [event.url for _, event in seen[:3]]
    assert {fetched(url).size for url in urls} == {(2048, 2048)}
    usage = seen[3][1].usage
    generated = usage["generated_images"] if isinstance(usage, dict) else usage.generated_images
    assert generated == 3
    plain = ark.images.generate(model=SEEDREAM_40, prompt="a story", **SEQUENCE)
    assert [image.url for image in plain.data] == urls
    record = mock.requests[0]
    assert (record.path, record.status, record.outcome) == (GENERATIONS, 200, "answered")
    assert record.images == tuple(urls)


def test_the_stream_on_the_wire(mock: MockServer) -> None:
    with httpx.stream(
        "POST",
        mock.url + GENERATIONS,
        json={"model": SEEDREAM_45, "prompt": "a fox", "stream": True, "size": "2K"},
        headers={"Authorization": "Bearer ark-key"},
    ) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        text = answer.read().decode()
    blocks = text.split("\n\n")
    assert blocks[-2:] == ["data: [DONE]", ""]
    first = blocks[0].split("\n")
    assert first[0] == f"event: {ark_stream.SUCCEEDED}"
    event = json.loads(first[1].removeprefix("data: "))
    assert event["type"] == ark_stream.SUCCEEDED
    assert (event["model"], event["image_index"], event["size"]) == (SEEDREAM_45, 0, "2048x2048")
    assert isinstance(event["created"], int)


def test_an_async_stream_with_b64_json(mock: MockServer) -> None:
    async def events() -> list[Any]:
        client = AsyncArk(base_url=mock.url + "/api/v3", api_key="ark-key")
        try:
            stream = await client.images.generate(
                model=SEEDREAM_40,
                prompt="a fox",
                size="1K",
                response_format="b64_json",
                output_format="png",
                stream=True,
                **SEQUENCE,
            )
            return [event async for event in stream]
        finally:
            await client.close()

    got = asyncio.run(events())
    assert [event.type for event in got] == [ark_stream.SUCCEEDED] * 3 + [ark_stream.COMPLETED]
    for event in got[:3]:
        image = Image.open(io.BytesIO(base64.b64decode(event.b64_json)))
        assert (image.format, image.size) == ("PNG", (1024, 1024))


def test_a_stream_refused_before_its_first_event_is_a_plain_error(
    ark: Ark, mock: MockServer
) -> None:
    with pytest.raises(ArkBadRequestError) as caught:
        ark.images.generate(model=SEEDREAM_40, prompt="a fox", size="9x9", stream=True)
    assert (caught.value.code, caught.value.param) == ("InvalidParameter", "size")
    mock.fail_next("quota")
    with pytest.raises(ArkRateLimitError):
        ark.images.generate(model=SEEDREAM_40, prompt="a fox", stream=True)


def test_disconnect_cuts_a_stream_after_its_first_event(ark: Ark, mock: MockServer) -> None:
    stream = ark.images.generate(
        model=SEEDREAM_40,
        prompt="a fox",
        stream=True,
        extra_headers={"X-Mock-Fault": "disconnect"},
        **SEQUENCE,
    )
    seen: list[str] = []

    def read() -> None:
        seen.extend(event.type for event in stream)

    with pytest.raises(httpx.RemoteProtocolError):
        read()
    assert seen == [ark_stream.SUCCEEDED]
    record = mock.last_request
    assert record is not None
    assert (record.fault, record.outcome, record.status) == ("disconnect", "dropped", None)


def test_a_mock_without_ark_has_no_ark_route() -> None:
    with MockServer() as plain:
        answer = httpx.post(
            plain.url + GENERATIONS,
            json={"model": SEEDREAM_40, "prompt": "a fox"},
            headers={"Authorization": f"Bearer {plain.api_key}"},
        )
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"  # the mock's own envelope
        assert plain.requests == []
