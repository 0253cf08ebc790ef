"""Stubs from fixture files: matched, answered, counted, re-read, and refused when malformed."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from mockserver import ConfigError, MockServer, create_app
from tests.conftest import fetch_png

EXAMPLES = Path(__file__).parent.parent / "fixtures" / "stubs"


def write(folder: Path, name: str, stub: Any) -> Path:
    path = folder / name
    path.write_text(json.dumps(stub) if not isinstance(stub, str) else stub, encoding="utf-8")
    # Rewrites within one clock tick must still look changed.
    stamp = path.stat().st_mtime_ns + 1_000_000 * len(list(folder.iterdir()))
    os.utime(path, ns=(stamp, stamp))
    return path


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    folder = tmp_path / "stubs"
    folder.mkdir()
    return folder


@pytest.fixture
def mock(stubs: Path) -> Iterator[MockServer]:
    write(stubs, "00-placeholder.json", {"match": {"body": {"prompt": "never"}}, "fault": "quota"})
    with MockServer(fixtures=stubs) as server:
        yield server


@pytest.fixture
def sdk(mock: MockServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=mock.api_base, api_key=mock.api_key, max_retries=0) as client:
        yield client


# ------------------------------------------------------------------------------ the examples


@pytest.fixture
def examples() -> Iterator[openai.OpenAI]:
    with (
        MockServer(fixtures=EXAMPLES) as server,
        openai.OpenAI(base_url=server.api_base, api_key=server.api_key, max_retries=1) as client,
    ):
        client.mock = server  # type: ignore[attr-defined]
        yield client


def test_example_content_policy(examples: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        examples.images.generate(model="jimeng-4.0", prompt="Scenes of VIOLENCE", n=1)

    assert raised.value.code == "content_policy_violation"
    assert raised.value.response.headers["x-mock-stub"] == "10-content-policy.json"
    examples.images.generate(model="jimeng-4.0", prompt="violent sunset colours", n=1)


def test_example_throttled_once_then_retried(examples: openai.OpenAI) -> None:
    mock: MockServer = examples.mock  # type: ignore[attr-defined]

    examples.images.generate(
        model="jimeng-4.0", prompt="a cat", n=1, extra_headers={"X-Scenario": "throttled"}
    )

    assert [(r.status, r.stub) for r in mock.requests] == [
        (429, "20-throttled-once.json"),
        (200, None),
    ]
    assert mock.requests[1].time - mock.requests[0].time >= 0.1


def test_example_canned_answer_uses_the_generated_url(examples: openai.OpenAI) -> None:
    mock: MockServer = examples.mock  # type: ignore[attr-defined]
    normal = httpx.post(
        mock.api_base + "/images/generations",
        json={"model": "jimeng-4.5", "prompt": "a cat in a hat", "n": 1, "seed": 1},
        headers={"Authorization": "Bearer k"},
    )

    result = examples.images.generate(model="jimeng-4.5", prompt="a cat in a hat", n=1)

    (image,) = result.data or []
    assert result.created == 1735689600
    assert image.revised_prompt == (
        "A ginger cat wearing a red top hat, studio light (jimeng-4.5: a cat in a hat)"
    )
    assert image.url == normal.json()["data"][0]["url"]
    assert fetch_png(image.url)[1] == (2048, 2048)
    assert mock.last_request is not None
    assert mock.last_request.images == (image.url,)


def test_example_upstream_envelope(examples: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        examples.images.generate(
            model="jimeng-4.0",
            prompt="a cat",
            n=1,
            extra_headers={"X-Scenario": "upstream-envelope"},
        )

    assert raised.value.code == "InputTextSensitiveContentDetected"


def test_example_extra_fields_keep_the_normal_data(examples: openai.OpenAI) -> None:
    result = examples.images.generate(
        model="jimeng-4.0", prompt="a cat", n=2, extra_headers={"X-Scenario": "extra-fields"}
    )

    assert len(result.data or []) == 2
    assert result.model_extra == {"gateway": "jimeng-eu-1"}


# ------------------------------------------------------------------------------ matching


def test_first_match_in_file_name_order_wins(
    stubs: Path, mock: MockServer, sdk: openai.OpenAI
) -> None:
    write(stubs, "20-b.json", {"match": {"body": {"n": 1}}, "fault": "bad_gateway"})
    write(stubs, "10-a.json", {"match": {"body": {"n": 1}}, "fault": "content_policy"})

    with pytest.raises(openai.BadRequestError):
        sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=1)

    assert mock.last_request is not None
    assert mock.last_request.stub == "10-a.json"


def test_times_limits_a_stub_and_reset_counts_again(
    stubs: Path, mock: MockServer, sdk: openai.OpenAI
) -> None:
    write(stubs, "10.json", {"match": {}, "times": 2, "fault": "content_policy"})

    for _ in range(2):
        with pytest.raises(openai.BadRequestError):
            sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=1)
    sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=1)
    mock.reset()
    with pytest.raises(openai.BadRequestError):
        sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=1)


def test_a_request_no_stub_matches_gets_the_normal_answer(
    stubs: Path, mock: MockServer, sdk: openai.OpenAI
) -> None:
    write(stubs, "10.json", {"match": {"body": {"model": "jimeng-4.5"}}, "fault": "quota"})

    result = sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=1)

    assert result.data
    assert mock.last_request is not None
    assert mock.last_request.stub is None


def test_body_matches_need_the_same_json_type(
    stubs: Path, mock: MockServer, sdk: openai.OpenAI
) -> None:
    write(stubs, "10.json", {"match": {"body": {"n": 1.0}}, "fault": "quota"})

    sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=1)


def test_headers_match_without_regard_to_case(
    stubs: Path, mock: MockServer, sdk: openai.OpenAI
) -> None:
    write(
        stubs,
        "10.json",
        {"match": {"headers": {"x-tenant": {"regex": "^acme-"}}}, "fault": "quota"},
    )

    sdk.images.generate(model="jimeng-4.0", prompt="a", n=1, extra_headers={"X-Tenant": "other"})
    with pytest.raises(openai.RateLimitError):
        sdk.images.generate(
            model="jimeng-4.0", prompt="a", n=1, extra_headers={"X-Tenant": "acme-eu"}
        )


def test_a_canned_answer_can_ask_for_more_urls_than_n(
    stubs: Path, mock: MockServer, sdk: openai.OpenAI
) -> None:
    write(
        stubs,
        "10.json",
        {
            "match": {},
            "response": {
                "status": 200,
                "body": {"created": 5, "data": [{"url": "{{url:1}}"}, {"url": "{{url:3}}"}]},
            },
        },
    )

    result = sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=1, size="1024*1024")

    urls = [image.url for image in result.data or []]
    assert urls[0]
    assert urls[0].endswith("-1-" + urls[0].rsplit("-", 1)[1])
    assert urls[1]
    assert "-3-" in urls[1]
    for url in urls:
        assert url
        assert fetch_png(url)[1] == (1024, 1024)


def test_stubs_only_answer_valid_requests(
    stubs: Path, mock: MockServer, sdk: openai.OpenAI
) -> None:
    write(stubs, "10.json", {"match": {}, "fault": "quota"})

    with pytest.raises(openai.BadRequestError) as raised:
        sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=0)

    assert raised.value.code == "invalid_value"


def test_the_admin_api_lists_the_stubs(stubs: Path, mock: MockServer) -> None:
    write(stubs, "10.json", {"match": {}, "fault": "quota"})

    listing = httpx.get(mock.url + "/__admin/stubs").json()

    assert listing == {
        "folder": str(stubs),
        "stubs": ["00-placeholder.json", "10.json"],
        "error": None,
    }


# ------------------------------------------------------------------------------ re-reading


def test_files_are_re_read_when_they_change(
    stubs: Path, mock: MockServer, sdk: openai.OpenAI
) -> None:
    sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=1)
    path = write(stubs, "10.json", {"match": {}, "fault": "quota"})
    with pytest.raises(openai.RateLimitError):
        sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=1)

    write(stubs, "10.json", {"match": {}, "fault": "content_policy"})
    with pytest.raises(openai.BadRequestError):
        sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=1)

    path.unlink()
    sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=1)


def test_a_file_broken_while_running_is_answered_loudly_until_fixed(
    stubs: Path, mock: MockServer, sdk: openai.OpenAI
) -> None:
    write(stubs, "10.json", '{"match": {}, "fault": ')

    with pytest.raises(openai.InternalServerError) as raised:
        sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=1)

    assert raised.value.code == "stub_error"
    assert "10.json" in str(raised.value)
    assert "not valid JSON" in str(raised.value)
    assert httpx.get(mock.url + "/__admin/stubs").json()["error"]
    with pytest.raises(AssertionError, match="stub_error"):
        mock.check()

    write(stubs, "10.json", {"match": {}, "fault": "content_policy"})
    with pytest.raises(openai.BadRequestError):
        sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=1)


def test_reset_over_http_re_reads_the_files(stubs: Path, mock: MockServer) -> None:
    mock.state.stubs.stubs = []  # type: ignore[union-attr]
    httpx.post(mock.url + "/__admin/reset")

    assert httpx.get(mock.url + "/__admin/stubs").json()["stubs"] == ["00-placeholder.json"]


# ------------------------------------------------------------------------------ at start-up


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        ([], "at top level"),
        ({"fault": "quota"}, "'match' is a required property"),
        ({"match": {}}, "exactly one of 'fault' and 'response'"),
        ({"match": {}, "fault": "quota", "response": {"status": 200}}, "exactly one of"),
        ({"match": {}, "fault": "gremlins"}, "unknown fault 'gremlins'"),
        ({"match": {}, "fault": "quota", "times": 0}, "at times"),
        ({"match": {"body": {"prompt": {"regex": "("}}}, "fault": "quota"}, "invalid regex"),
        ({"match": {"body": {"prompt": {"rx": "a"}}}, "fault": "quota"}, "match/body/prompt"),
        ({"match": {"headers": {"bad name": "x"}}, "fault": "quota"}, "match/headers"),
        ({"match": {}, "response": {"status": 99}}, "response/status"),
        ({"match": {}, "response": {"status": 200, "body": "{{colour}}"}}, "'{{colour}}'"),
        ({"match": {}, "response": {"status": 200, "body": "{{url}}"}}, "unknown placeholder"),
        ({"match": {}, "response": {"status": 200, "body": ["x {{data}}"]}}, "whole string"),
        ({"match": {}, "response": {"status": 200, "body": "{{url:0}}"}}, "1 to 999"),
        ({"match": {}, "fault": "quota", "colour": "red"}, "'colour' was unexpected"),
    ],
)
def test_a_malformed_stub_is_refused_at_start_naming_file_and_problem(
    stubs: Path, content: Any, problem: str
) -> None:
    path = write(stubs, "10-broken.json", content)

    with pytest.raises(ConfigError) as raised:
        create_app(fixtures=stubs)

    assert str(path) in str(raised.value)
    assert problem in str(raised.value)


def test_the_command_line_refuses_a_malformed_stub(stubs: Path) -> None:
    import subprocess
    import sys

    write(stubs, "10-broken.json", {"match": {}})

    result = subprocess.run(
        [sys.executable, "-m", "mockserver", "--port", "0", "--fixtures", str(stubs)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "10-broken.json" in result.stderr
    assert "exactly one of" in result.stderr


def test_the_examples_are_all_valid(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(EXAMPLES, copy)

    app = create_app(fixtures=copy)

    assert app.state.mock.stubs.names() == sorted(p.name for p in EXAMPLES.glob("*.json"))


# ---------------------------------------------------------------- files that come and go


POLICY = {"match": {"body": {"prompt": {"regex": "gore"}}}, "fault": "content_policy"}


def test_a_link_to_nothing_in_the_folder_is_no_stub(stubs: Path) -> None:
    """A name the folder lists but no file behind it (removed since, or a dangling link) is
    gone, at start-up and while the mock runs: no refusal, no `stub_error`."""
    write(stubs, "policy.json", POLICY)
    (stubs / "gone.json").symlink_to(stubs / "no-such-file.json")
    with MockServer(fixtures=stubs) as server, httpx.Client(base_url=server.url) as http:
        headers = {"Authorization": "Bearer k"}
        body = {"model": "jimeng-4.0", "prompt": "gore", "n": 1}
        assert http.post("/v1/images/generations", json=body, headers=headers).status_code == 400
        (stubs / "later.json").symlink_to(stubs / "also-missing.json")
        answer = http.post(
            "/v1/images/generations", json={**body, "prompt": "a cat"}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        assert http.get("/__admin/stubs").json()["error"] is None


def test_stubs_replaced_and_removed_while_requests_come_never_answer_500(stubs: Path) -> None:
    """A writer replaces stub files atomically and deletes some while a client sends requests
    (bounded: about a second): each request gets a stub's answer or the normal one."""
    write(stubs, "policy.json", POLICY)
    stop = threading.Event()

    def churn() -> None:
        index = 0
        while not stop.is_set():
            index += 1
            temporary = stubs / f".tmp-{index}"
            temporary.write_text(json.dumps(POLICY), encoding="utf-8")
            os.replace(temporary, stubs / f"churn-{index % 5}.json")
            with_gone = stubs / f"churn-{(index + 2) % 5}.json"
            with_gone.unlink(missing_ok=True)

    writer = threading.Thread(target=churn)
    statuses: list[int] = []
    with MockServer(fixtures=stubs) as server, httpx.Client(base_url=server.url) as http:
        writer.start()
        try:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                body = {
                    "model": "jimeng-4.0",
                    "prompt": "gore" if len(statuses) % 2 else "cat",
                    "n": 1,
                }
                answer = http.post(
                    "/v1/images/generations", json=body, headers={"Authorization": "Bearer k"}
                )
                statuses.append(answer.status_code)
        finally:
            stop.set()
            writer.join()
    assert len(statuses) > 20
    assert set(statuses) <= {200, 400}, sorted(set(statuses))
