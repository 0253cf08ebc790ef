"""Faults against the real client: what the openai SDK does with each one the mock injects."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from mockserver import MockServer
from mockserver.answers.faults import RateLimiter

SCHEMAS = Path(__file__).parent.parent / "schemas"
BODY = {"model": "jimeng-4.0", "prompt": "a cat", "n": 1}


def retrying_client(mock: MockServer, retries: int = 2) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.api_base, api_key=mock.api_key, max_retries=retries)


@pytest.fixture
def retrying(jimeng_mock: MockServer) -> Iterator[openai.OpenAI]:
    with retrying_client(jimeng_mock) as sdk:
        yield sdk


def generate(sdk: openai.OpenAI, **extra: Any) -> Any:
    return sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=1, size="1024*1024", **extra)


def test_rate_limit_twice_then_recovers_and_the_sdk_waits_retry_after(
    jimeng_mock: MockServer, retrying: openai.OpenAI
) -> None:
    jimeng_mock.fail_next("rate_limit", times=2, retry_after_ms=300)

    result = generate(retrying)

    assert result.data
    assert result.data[0].url
    first, second, third = jimeng_mock.requests
    assert [r.status for r in (first, second, third)] == [429, 429, 200]
    assert [r.fault for r in (first, second, third)] == ["rate_limit", "rate_limit", None]
    # The SDK slept the 300 ms of retry-after-ms before each retry, not its own back-off.
    assert second.time - first.time >= 0.3
    assert third.time - second.time >= 0.3


def test_quota_is_not_retried(jimeng_mock: MockServer, retrying: openai.OpenAI) -> None:
    jimeng_mock.fail_next("quota")

    with pytest.raises(openai.RateLimitError) as raised:
        generate(retrying)

    assert raised.value.code == "insufficient_quota"
    assert len(jimeng_mock.requests) == 1


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("server_error", 500, "upstream_error"),
        ("bad_gateway", 502, "bad_gateway"),
        ("unavailable", 503, "service_unavailable"),
    ],
)
def test_server_side_faults_are_retried_until_they_pass(
    jimeng_mock: MockServer, retrying: openai.OpenAI, fault: str, status: int, code: str
) -> None:
    jimeng_mock.fail_next(fault, times=2, retry_after_ms=50)

    generate(retrying)

    assert [(r.status, r.error) for r in jimeng_mock.requests] == [
        (status, code),
        (status, code),
        (200, None),
    ]


def test_server_side_faults_past_the_retries_raise(jimeng_mock: MockServer) -> None:
    jimeng_mock.fail_next("bad_gateway", times=3)

    with (
        retrying_client(jimeng_mock, retries=2) as sdk,
        pytest.raises(openai.InternalServerError) as raised,
    ):
        generate(sdk)

    assert raised.value.status_code == 502
    assert len(jimeng_mock.requests) == 3


def test_timeout_answers_504_after_its_delay(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    jimeng_mock.fail_next("timeout", delay_ms=200)
    started = time.monotonic()

    with pytest.raises(openai.InternalServerError) as raised:
        generate(client)

    assert time.monotonic() - started >= 0.2
    assert raised.value.status_code == 504
    assert raised.value.code == "gateway_timeout"


def test_a_client_timeout_shorter_than_the_delay_is_the_sdks_timeout_error(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    jimeng_mock.fail_next("slow", delay_ms=1500)

    with pytest.raises(openai.APITimeoutError):
        generate(client.with_options(timeout=0.3))


def test_content_policy_is_a_bad_request_naming_the_prompt(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    jimeng_mock.fail_next("content_policy")

    with pytest.raises(openai.BadRequestError) as raised:
        generate(client)

    assert (raised.value.code, raised.value.param) == ("content_policy_violation", "prompt")


def test_slow_is_the_normal_answer_late(jimeng_mock: MockServer, client: openai.OpenAI) -> None:
    jimeng_mock.fail_next("slow", delay_ms=250)
    started = time.monotonic()

    result = generate(client)

    assert time.monotonic() - started >= 0.25
    assert jimeng_mock.last_request is not None
    assert jimeng_mock.last_request.images == ((result.data or [])[0].url,)
    assert jimeng_mock.last_request.fault == "slow"


def test_disconnect_is_the_sdks_connection_error(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    jimeng_mock.fail_next("disconnect")

    with pytest.raises(openai.APIConnectionError):
        generate(client)

    record = jimeng_mock.last_request
    assert record is not None
    assert (record.status, record.fault) == (None, "disconnect")
    assert generate(client).data, "the mock serves the next request"


def test_disconnect_is_retried_by_the_sdk(jimeng_mock: MockServer, retrying: openai.OpenAI) -> None:
    jimeng_mock.fail_next("disconnect")

    generate(retrying)

    assert [r.status for r in jimeng_mock.requests] == [None, 200]


def test_malformed_is_a_200_the_sdk_cannot_parse(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    jimeng_mock.fail_next("malformed")

    with pytest.raises(json.JSONDecodeError):
        generate(client)

    assert jimeng_mock.requests[0].status == 200


def test_partial_returns_fewer_images_than_asked(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    jimeng_mock.fail_next("partial")

    result = client.images.generate(model="jimeng-4.5", prompt="a cat", n=5)

    assert len(result.data or []) == 2
    assert len(jimeng_mock.requests[0].images) == 2


def test_the_header_asks_for_a_fault_per_request(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    with pytest.raises(openai.RateLimitError) as raised:
        generate(client, extra_headers={"X-Mock-Fault": "rate_limit"})

    assert raised.value.response.headers["retry-after"] == "1"
    assert generate(client).data, "only that request was faulted"


def test_queued_faults_only_hit_matching_requests(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    jimeng_mock.fail_next("content_policy", model="jimeng-4.5")

    generate(client)  # jimeng-4.0: not matched, answered
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="jimeng-4.5", prompt="a cat", n=1)
    client.images.generate(model="jimeng-4.5", prompt="a cat", n=1)  # used up

    assert [r.status for r in jimeng_mock.requests] == [200, 400, 200]


def test_a_regex_matches_the_prompt(jimeng_mock: MockServer, client: openai.OpenAI) -> None:
    jimeng_mock.fail_next("content_policy", times=5, prompt=re.compile(r"(?i)\bgore\b"))

    generate(client)
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="jimeng-4.0", prompt="Some GORE here", n=1)

    assert [r.status for r in jimeng_mock.requests] == [200, 400]


def test_fail_next_refuses_what_it_cannot_do(jimeng_mock: MockServer) -> None:
    with pytest.raises(ValueError, match="unknown fault 'gremlins'"):
        jimeng_mock.fail_next("gremlins")
    with pytest.raises(ValueError, match="times"):
        jimeng_mock.fail_next("quota", times=0)


def test_reset_drops_queued_faults(jimeng_mock: MockServer, client: openai.OpenAI) -> None:
    jimeng_mock.fail_next("quota", times=3)
    jimeng_mock.reset()

    assert generate(client).data


# ------------------------------------------------------------------------------ admin API


def test_faults_are_queued_over_http(jimeng_mock: MockServer, retrying: openai.OpenAI) -> None:
    queued = httpx.post(
        jimeng_mock.url + "/__admin/faults",
        json={"fault": "unavailable", "times": 2, "retry_after_ms": 50, "match": {"n": 1}},
    )
    assert queued.status_code == 201, queued.text
    listing = httpx.get(jimeng_mock.url + "/__admin/faults").json()
    assert listing["queued"] == [
        {
            "fault": "unavailable",
            "times": 2,
            "match": {"n": 1},
            "delay_ms": 0,
            "retry_after_ms": 50,
            "session": None,
        }
    ]
    assert set(listing["faults"]) >= {"rate_limit", "quota", "disconnect", "partial"}

    generate(retrying)

    assert [r.status for r in jimeng_mock.requests] == [503, 503, 200]
    assert httpx.get(jimeng_mock.url + "/__admin/faults").json()["queued"] == []


def test_queued_faults_can_be_cleared_over_http(jimeng_mock: MockServer) -> None:
    jimeng_mock.fail_next("quota", times=4)

    deleted = httpx.delete(jimeng_mock.url + "/__admin/faults")

    assert deleted.json() == {"deleted": 1}
    assert jimeng_mock.state.queue.pending() == []


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({}, "missing_required_parameter", "fault"),
        ({"fault": "gremlins"}, "invalid_value", "fault"),
        ({"fault": "quota", "times": 0}, "invalid_value", "times"),
        ({"fault": "quota", "times": "2"}, "invalid_value", "times"),
        ({"fault": "quota", "when": "now"}, "unknown_parameter", "when"),
        ({"fault": "quota", "match": {"prompt": {"regex": "("}}}, "invalid_value", None),
        ({"fault": "quota", "match": {"prompt": {"re": "x"}}}, "invalid_value", "match.prompt"),
    ],
)
def test_bad_fault_requests_are_refused(
    jimeng_mock: MockServer, body: dict[str, Any], code: str, param: str | None
) -> None:
    response = httpx.post(jimeng_mock.url + "/__admin/faults", json=body)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    assert jimeng_mock.state.queue.pending() == []


# ------------------------------------------------------------------------------ the command line's


def _statuses(mock: MockServer, count: int) -> list[int]:
    with httpx.Client() as http:
        return [
            http.post(
                mock.api_base + "/images/generations",
                json=BODY,
                headers={"Authorization": f"Bearer {mock.api_key}"},
            ).status_code
            for _ in range(count)
        ]


def test_a_fault_rate_with_a_seed_repeats_exactly() -> None:
    options = {"fault_rate": 0.4, "fault_names": ["rate_limit", "bad_gateway"], "seed": 7}
    with MockServer(**options) as first, MockServer(**options) as second:
        runs = [_statuses(first, 30), _statuses(second, 30)]
        first.reset()
        runs.append(_statuses(first, 30))

    assert runs[0] == runs[1] == runs[2]
    assert set(runs[0]) == {200, 429, 502}
    assert 4 <= runs[0].count(200) <= 26


def test_another_seed_draws_other_faults() -> None:
    options: dict[str, Any] = {"fault_rate": 0.5, "fault_names": ["bad_gateway"]}
    with MockServer(**options, seed=1) as first, MockServer(**options, seed=2) as second:
        assert _statuses(first, 30) != _statuses(second, 30)


def test_latency_range_delays_every_answer() -> None:
    with MockServer(latency_ms=(40, 60), seed=3) as mock:
        with httpx.Client() as http:
            response = http.post(
                mock.api_base + "/images/generations",
                json=BODY,
                headers={"Authorization": "Bearer k"},
            )
        assert 40 <= int(response.headers["x-mock-latency-ms"]) <= 60
        assert response.elapsed.total_seconds() * 1000 >= 40


def test_latency_is_capped_by_the_catalogue(tmp_path: Path) -> None:
    catalogue = json.loads((SCHEMAS / "faults.json").read_text())
    catalogue["max_latency_ms"] = 30
    path = tmp_path / "faults.json"
    path.write_text(json.dumps(catalogue))

    with MockServer(fault_catalogue=path) as mock, httpx.Client() as http:
        response = http.post(
            mock.api_base + "/images/generations",
            json=BODY,
            headers={"Authorization": "Bearer k", "X-Mock-Latency-Ms": "999999"},
        )

    assert response.status_code == 200
    assert response.headers["x-mock-latency-ms"] == "30"


def test_rpm_answers_429_with_a_correct_retry_after() -> None:
    with MockServer(rpm=2) as mock, httpx.Client() as http:

        def post(key: str) -> httpx.Response:
            return http.post(
                mock.api_base + "/images/generations",
                json=BODY,
                headers={"Authorization": f"Bearer {key}"},
            )

        statuses = [post("sk-one").status_code for _ in range(3)]
        limited = post("sk-one")
        other = post("sk-two")

    assert statuses == [200, 200, 429]
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert "2 requests per minute" in limited.json()["error"]["message"]
    assert 58 <= int(limited.headers["retry-after"]) <= 60
    assert 57_000 <= int(limited.headers["retry-after-ms"]) <= 60_000
    assert other.status_code == 200, "each key has its own budget"


def test_the_rate_limiter_window_slides() -> None:
    now = [1000.0]
    limiter = RateLimiter(2, clock=lambda: now[0])

    assert limiter.acquire("k") is None
    now[0] += 30
    assert limiter.acquire("k") is None
    assert limiter.acquire("k") == pytest.approx(30.0)
    now[0] += 30.5
    assert limiter.acquire("k") is None, "the first request has left the window"
    assert limiter.acquire("k") == pytest.approx(29.5)


def test_the_rate_limiter_forgets_the_oldest_keys() -> None:
    limiter = RateLimiter(1, max_keys=3)

    for key in "abcde":
        limiter.acquire(key)

    assert limiter.acquire("a") is None, "a was forgotten, so it starts afresh"
    assert limiter.acquire("e") is not None
