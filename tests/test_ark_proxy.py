"""Proxy mode and `--record` with an Ark upstream, driven by Ark's SDK through a socket: the
upstream is a second mock with Ark's route on 127.0.0.1, its base URL `.../api/v3` given as
`upstream` as a `/v1` one is; the same checks as mock mode, drift judged by Ark's contract,
and a recorded Ark answer replayed offline with its images served from the folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from volcenginesdkarkruntime import Ark
from volcenginesdkarkruntime._exceptions import ArkAuthenticationError, ArkBadRequestError
from volcenginesdkarkruntime.types.images import SequentialImageGenerationOptions

from mockserver import MockServer
from mockserver.dialects import ark_stream

SEEDREAM_40 = "doubao-seedream-4-0-250828"
UPSTREAM_KEY = "ark-upstream-secret-4242"
CLIENT_KEY = "ark-client-0001"
TWO = {
    "sequential_image_generation": "auto",
    "sequential_image_generation_options": SequentialImageGenerationOptions(max_images=2),
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockServer]:
    with MockServer(api_keys=[UPSTREAM_KEY], ark=True) as server:
        yield server


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "recorded"


@pytest.fixture
def proxy(upstream: MockServer, folder: Path) -> Iterator[MockServer]:
    upstream.reset()
    base = upstream.url + "/api/v3"
    with MockServer(ark=True, upstream=base, upstream_api_key=UPSTREAM_KEY, record=folder) as p:
        yield p


def client(server: MockServer, key: str = CLIENT_KEY) -> Ark:
    return Ark(base_url=server.url + "/api/v3", api_key=key, max_retries=0)


def test_answers_come_from_the_ark_upstream(proxy: MockServer, upstream: MockServer) -> None:
    with client(proxy) as ark:
        answer = ark.images.generate(model=SEEDREAM_40, prompt="a fox", size="1K", **TWO)

    assert [image.size for image in answer.data] == ["1024x1024"] * 2
    assert all(image.url.startswith(upstream.url) for image in answer.data)
    assert answer.usage.generated_images == 2
    forwarded = upstream.last_request
    assert forwarded is not None
    assert forwarded.path == "/api/v3/images/generations"
    assert forwarded.headers["authorization"].endswith(UPSTREAM_KEY[-4:])
    record = proxy.last_request
    assert record is not None
    assert record.upstream is not None
    assert record.upstream["url"] == upstream.url + "/api/v3/images/generations"
    assert (record.upstream["status"], record.drift) == (200, None)
    assert record.images == tuple(image.url for image in answer.data)


def test_a_refusal_both_agree_on_is_no_drift(proxy: MockServer, upstream: MockServer) -> None:
    with client(proxy) as ark, pytest.raises(ArkBadRequestError) as caught:
        ark.images.generate(model=SEEDREAM_40, prompt="a fox", size="9x9")

    assert (caught.value.code, caught.value.param) == ("InvalidParameter", "size")
    assert upstream.requests  # forwarded all the same (--upstream-invalid forward)
    record = proxy.last_request
    assert record is not None
    assert record.mock_verdict == {"status": 400, "error": "InvalidParameter", "param": "size"}
    assert (record.upstream or {}).get("error") == "InvalidParameter"
    assert record.drift is None


def test_drift_is_judged_by_ark_s_contract(upstream: MockServer) -> None:
    """The client's key, handed on, is one the upstream refuses: the mock took it."""
    upstream.reset()
    with (
        MockServer(ark=True, upstream=upstream.url + "/api/v3") as proxy,
        client(proxy, "ark-wrong-key-0000") as ark,
        pytest.raises(ArkAuthenticationError) as caught,
    ):
        ark.images.generate(model=SEEDREAM_40, prompt="a fox")
    assert caught.value.code == "AuthenticationError"
    record = proxy.last_request
    assert record is not None
    assert record.drift == "upstream_refuses"
    assert any(w.code == "drift" for w in record.warnings)


def test_the_mock_s_own_refusals_and_faults_stay_local(
    proxy: MockServer, upstream: MockServer
) -> None:
    with client(proxy) as ark:
        with pytest.raises(ArkBadRequestError) as caught:
            ark.images.generate(
                model=SEEDREAM_40, prompt="a fox", extra_headers={"X-Mock-Fault": "no-such"}
            )
        assert caught.value.param == "X-Mock-Fault"
        filtered = ark.images.generate(
            model=SEEDREAM_40, prompt="a fox", extra_headers={"X-Mock-Fault": "image_filtered"}
        )
    assert filtered.usage.generated_images == 0
    assert upstream.requests == []


def test_reject_mode_answers_an_invalid_request_itself(upstream: MockServer) -> None:
    upstream.reset()
    base = upstream.url + "/api/v3"
    with (
        MockServer(ark=True, upstream=base, upstream_invalid="reject") as proxy,
        client(proxy) as ark,
        pytest.raises(ArkBadRequestError) as caught,
    ):
        ark.images.generate(model=SEEDREAM_40, prompt="a fox", size="9x9")
    assert caught.value.code == "InvalidParameter"
    assert upstream.requests == []


def test_a_stream_is_handed_on(proxy: MockServer, upstream: MockServer) -> None:
    with client(proxy) as ark:
        events = list(ark.images.generate(model=SEEDREAM_40, prompt="a fox", stream=True, **TWO))

    assert [e.type for e in events] == [*[ark_stream.SUCCEEDED] * 2, ark_stream.COMPLETED]
    assert all(e.url.startswith(upstream.url) for e in events[:2])
    record = proxy.last_request
    assert record is not None
    assert record.recorded is not None
    assert record.recorded["written"] is False


def test_a_recorded_ark_answer_replays_offline(
    proxy: MockServer, upstream: MockServer, folder: Path
) -> None:
    with client(proxy) as ark:
        live = ark.images.generate(model=SEEDREAM_40, prompt="A red fox, in the snow!", **TWO)
    images = [httpx.get(image.url).content for image in live.data]
    record = proxy.last_request
    assert record is not None
    assert record.recorded is not None
    assert (record.recorded["written"], record.recorded["failures"]) == (True, [])
    stub = json.loads((folder / record.recorded["file"]).read_text(encoding="utf-8"))
    assert stub["match"]["body"]["model"] == SEEDREAM_40
    assert stub["response"]["body"]["usage"]["generated_images"] == 2
    assert UPSTREAM_KEY not in json.dumps(stub)
    proxy.stop()

    with MockServer(ark=True, fixtures=folder) as replay, client(replay) as ark:
        again = ark.images.generate(model=SEEDREAM_40, prompt="A red fox, in the snow!", **TWO)
        assert [i.size for i in again.data] == [i.size for i in live.data]
        assert again.usage.generated_images == 2
        assert all(i.url.startswith(replay.url + "/images/_fixtures/images/") for i in again.data)
        assert [httpx.get(i.url).content for i in again.data] == images
        served = replay.last_request
        assert served is not None
        assert served.stub == record.recorded["file"]
