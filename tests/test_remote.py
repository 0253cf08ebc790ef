"""`RemoteMock`: a `jimeng-mock` started as a command, in another process, driven over its
admin routes with the journal, faults, checks, coverage and sessions of `MockServer`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from mockserver.contract.sessions import HEADER
from mockserver.harness.remote import PAGE, RemoteMock
from mockserver.record.journal import RequestRecord
from tests.test_cli import started

TOKEN = "admin-token-for-tests"
KEY = "sk-remote-key"
STUB = "cat.json"
MODEL = "jimeng-4.0"
JOURNAL = PAGE + 200  # room for more than a page of records


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    stubs: Path = tmp_path_factory.mktemp("remote-stubs")
    (stubs / STUB).write_text(
        json.dumps({"match": {"body": {"prompt": "stubbed"}}, "fault": "content_policy"}),
        encoding="utf-8",
    )
    options = ["--admin-token", TOKEN, "--api-key", KEY, "--journal-size", str(JOURNAL)]
    with started(*options, "--fixtures", str(stubs)) as (_, address):
        yield address


@pytest.fixture
def remote(url: str) -> Iterator[RemoteMock]:
    with RemoteMock(url, api_key=KEY, admin_token=TOKEN) as mock:
        mock.reset()
        yield mock


@pytest.fixture
def sdk(remote: RemoteMock) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=remote.api_base, api_key=remote.api_key, max_retries=0) as c:
        yield c


def generate(client: openai.OpenAI, prompt: str, session: str | None = None) -> int:
    """One generation request: the status the client saw."""
    headers = {HEADER: session} if session else {}
    try:
        client.images.generate(model=MODEL, prompt=prompt, n=1, extra_headers=headers)
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def prompts(records: list[RequestRecord]) -> list[str]:
    return [r.body["prompt"] for r in records]


def test_its_addresses(remote: RemoteMock, url: str) -> None:
    assert remote.url == url
    assert remote.api_base == url + "/v1"
    assert remote.api_key == KEY
    assert RemoteMock(url + "/").url == url
    assert RemoteMock(url).api_key == "sk-jimeng-mock"
    assert repr(remote) == f"<RemoteMock {url}>"


def test_records_are_read_a_page_at_a_time(remote: RemoteMock, url: str) -> None:
    # More than a page in all; exactly a page of session "P" (every 21st is "default").
    sent = PAGE + 50
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=url, headers=auth) as http:
        for i in range(sent):
            headers = {HEADER: "P"} if i % 21 else {}
            assert http.get("/v1/models", headers=headers).status_code == 200
    records = remote.records()
    assert [r.id for r in records] == list(range(1, sent + 1))
    paged = remote.records("P")
    assert len(paged) == sum(1 for i in range(sent) if i % 21) == PAGE
    assert [r.id for r in paged] == [i + 1 for i in range(sent) if i % 21]
    assert {r.session for r in paged} == {"P"}
    assert len(remote.records("default")) == sent - PAGE
    assert remote.requests == records
    last = remote.last_request
    assert last is not None
    assert last.id == sent
    assert remote.session("P").requests == paged


def test_assert_requested(remote: RemoteMock, sdk: openai.OpenAI) -> None:
    sent = [("cat", None), ("cat", "S"), ("dog", "S"), ("cat", "S")]
    for prompt, session in sent:
        generate(sdk, prompt, session)
    assert len(remote.assert_requested(3, prompt="cat")) == 3
    assert len(remote.assert_requested(2, session="S", prompt="cat")) == 2
    assert len(remote.session("S").assert_requested(1, prompt="dog")) == 1
    assert len(remote.assert_requested(4, status=200, model=MODEL)) == 4
    assert len(remote.assert_requested(1, prompt=re.compile("^D", re.I))) == 1
    with pytest.raises(AssertionError, match="expected 1 request"):
        remote.assert_requested(1, session="default", prompt="dog")
    with pytest.raises(AssertionError, match="found 3"):
        remote.assert_requested(2, prompt="cat")


def test_fail_next_with_a_compiled_regex(remote: RemoteMock, sdk: openai.OpenAI) -> None:
    queued = remote.fail_next("quota", 2, prompt=re.compile("CAT", re.I), retry_after_ms=2500)
    assert queued["match"] == {"prompt": {"regex": "CAT", "flags": "i"}}
    assert (queued["fault"], queued["times"], queued["session"]) == ("quota", 2, None)
    assert queued["retry_after_ms"] == 2500
    assert [generate(sdk, p) for p in ("a dog", "a Cat", "dog", "CATS", "cat")] == [
        200,
        429,
        200,
        429,
        200,
    ]
    faulted = [r.body["prompt"] for r in remote.records() if r.fault == "quota"]
    assert faulted == ["a Cat", "CATS"]


def test_fail_next_for_a_session(remote: RemoteMock, sdk: openai.OpenAI) -> None:
    remote.fail_next("server_error", session="S", delay_ms=0)
    remote.session("T").fail_next("bad_gateway")
    assert [generate(sdk, "x", s) for s in (None, "T", "S", "S", "T")] == [200, 502, 500, 200, 200]
    listed = httpx.get(remote.url + "/__admin/faults", headers={"X-Admin-Token": TOKEN})
    assert listed.json()["queued"] == []


def test_a_predicate_is_refused(remote: RemoteMock) -> None:
    with pytest.raises(ValueError, match="not functions"):
        remote.fail_next("quota", prompt=lambda prompt: "cat" in prompt)
    with pytest.raises(ValueError, match="not functions"):
        remote.session("S").fail_next("quota", n=lambda n: n > 1)
    listed = httpx.get(remote.url + "/__admin/faults", headers={"X-Admin-Token": TOKEN})
    assert listed.json()["queued"] == []


def test_check(remote: RemoteMock, sdk: openai.OpenAI, url: str) -> None:
    generate(sdk, "fine")
    remote.check()
    with pytest.raises(openai.BadRequestError):
        sdk.images.generate(model=MODEL, prompt="x", n=99)
    with pytest.raises(AssertionError) as raised:
        remote.check()
    message = str(raised.value)
    assert f"1 problem(s) in 2 request(s) to the mock at {url}" in message
    assert "invalid_value" in message
    remote.check(expected_errors={"invalid_value"})
    remote.expect_errors("invalid_value")
    remote.check()
    assert generate(sdk, "stubbed") == 400  # a stub's fault: no problem
    remote.check(unused_stubs="fail")
    with pytest.raises(AssertionError, match=r"prompt 'fine'"):
        remote.check(unmatched="fail")
    remote.reset()
    assert remote.expected_errors == set()
    with pytest.raises(AssertionError, match=f"stub {STUB} was never used"):
        remote.check(unused_stubs="fail")


def test_coverage(remote: RemoteMock, sdk: openai.OpenAI, url: str) -> None:
    statuses = [generate(sdk, "plain"), generate(sdk, "stubbed", "S"), generate(sdk, "p", "S")]
    assert statuses == [200, 400, 200]
    admin = {"X-Admin-Token": TOKEN}
    whole = remote.coverage()
    assert whole == httpx.get(url + "/__admin/coverage", headers=admin).json()
    assert whole["requests"] == 3
    assert whole["stubs"] == {STUB: 1}
    assert whole["statuses"] == {"200": 2, "400": 1}
    part = remote.coverage("S")
    assert part == httpx.get(url + "/__admin/coverage?session=S", headers=admin).json()
    assert (part["session"], part["requests"], part["unmatched"]) == ("S", 2, 1)
    assert remote.session("S").coverage() == part


def test_session_views(remote: RemoteMock, sdk: openai.OpenAI) -> None:
    s = remote.session("S")
    assert s.url == remote.url
    assert s.api_base == remote.api_base
    assert s.api_key == KEY
    assert s.client_options() == {
        "base_url": remote.api_base,
        "api_key": KEY,
        "default_headers": {HEADER: "S"},
    }
    with openai.OpenAI(**s.client_options(), max_retries=0) as for_s:
        generate(for_s, "s1")
        generate(sdk, "d1")
        generate(for_s, "s2")
    assert prompts(s.requests) == ["s1", "s2"]
    last = s.last_request
    assert last is not None
    assert last.body["prompt"] == "s2"
    s.fail_next("quota")
    s.reset()
    assert s.requests == []
    assert prompts(remote.records()) == ["d1"]
    assert generate(sdk, "after", "S") == 200  # its fault went with the reset
    assert repr(s) == f"<MockSession 'S' of {remote.url}>"


def test_the_admin_token(url: str) -> None:
    for token in (None, "wrong-token"):
        with RemoteMock(url, admin_token=token) as stranger:
            with pytest.raises(RuntimeError) as raised:
                stranger.records()
            message = str(raised.value)
            assert f"the mock at {url} answered GET /__admin/requests" in message
            assert "with 403" in message
            assert "admin_forbidden" in message
            with pytest.raises(RuntimeError, match="with 403"):
                stranger.reset()
            with pytest.raises(RuntimeError, match="with 403"):
                stranger.coverage()


def test_an_admin_error_is_a_runtime_error(remote: RemoteMock, url: str) -> None:
    with pytest.raises(RuntimeError) as raised:
        remote.fail_next("no-such-fault")
    message = str(raised.value)
    assert f"the mock at {url} answered POST /__admin/faults with 400" in message
    assert "no-such-fault" in message
    with pytest.raises(RuntimeError, match="with 400"):
        remote.fail_next("quota", 0)


def test_a_bad_session_name_is_a_value_error(remote: RemoteMock) -> None:
    for call in (
        lambda: remote.records(""),
        lambda: remote.reset(" "),
        lambda: remote.coverage("x" * 201),
        lambda: remote.session(""),
        lambda: remote.check(session=""),
    ):
        with pytest.raises(ValueError, match="session name"):
            call()
