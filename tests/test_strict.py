"""Strict checks: `check(unused_stubs="fail")` fails on each stub file never used, and
`check(unmatched="fail")` on each valid request that neither a stub nor a fault answered; on
`MockServer`, `MockSession` and `RemoteMock`, scoped by session."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from mockserver import MockServer, MockSession
from mockserver.harness.remote import RemoteMock
from mockserver.record.coverage import UNMATCHED_LIMIT

CAT, DOG = "a-cat.json", "b-dog.json"
MODEL = "jimeng-4.0"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    stubs = tmp_path_factory.mktemp("strict-stubs")
    (stubs / CAT).write_text(
        json.dumps(
            {
                "match": {"body": {"prompt": "cat"}},
                "response": {"status": 200, "body": {"created": 1, "data": "{{data}}"}},
            }
        ),
        encoding="utf-8",
    )
    (stubs / DOG).write_text(
        json.dumps({"match": {"body": {"prompt": "dog"}}, "fault": "quota"}), encoding="utf-8"
    )
    with MockServer(fixtures=stubs) as mock:
        yield mock


@pytest.fixture
def mock(server: MockServer) -> MockServer:
    server.reset()
    return server


Checked = MockServer | MockSession | RemoteMock


@pytest.fixture(params=["MockServer", "MockSession", "RemoteMock"])
def target(request: pytest.FixtureRequest, mock: MockServer) -> Iterator[Checked]:
    """What `check` is called on: the mock, one of its sessions, or the mock over HTTP."""
    if request.param == "MockServer":
        yield mock
    elif request.param == "MockSession":
        yield mock.session("strict")
    else:
        with RemoteMock(mock.url, api_key=mock.api_key) as remote:
            yield remote


def client_of(target: Checked) -> openai.OpenAI:
    """A client whose requests `target` sees (those of its session, for a MockSession)."""
    if isinstance(target, MockSession):
        return openai.OpenAI(**target.client_options(), max_retries=0)
    return openai.OpenAI(base_url=target.api_base, api_key=target.api_key, max_retries=0)


def send(client: openai.OpenAI, prompt: str, **headers: str) -> str | None:
    """A generation request; the answer's x-request-id."""
    try:
        raw = client.images.with_raw_response.generate(
            model=MODEL, prompt=prompt, n=1, extra_headers=headers
        )
    except openai.APIStatusError as exc:
        return exc.request_id
    return raw.request_id


def journal_id(request_id: str | None) -> int:
    assert request_id is not None
    match = re.fullmatch(r"req_([0-9]+)_[0-9a-f]{8}", request_id)
    assert match, request_id
    return int(match[1])


def failure(target: Checked, **options: Any) -> str:
    with pytest.raises(AssertionError) as raised:
        target.check(**options)
    return str(raised.value)


def test_an_unused_stub_fails_until_it_is_used(target: Checked) -> None:
    with client_of(target) as client:
        target.check(unused_stubs="ignore")
        message = failure(target, unused_stubs="fail")
        assert f"stub {CAT} was never used (unused_stubs='fail')" in message
        assert f"stub {DOG} was never used (unused_stubs='fail')" in message
        assert "2 problem(s) in 0 request(s)" in message
        send(client, "cat")
        message = failure(target, unused_stubs="fail")
        assert f"stub {DOG} was never used" in message
        assert CAT not in message
        assert "1 problem(s) in 1 request(s)" in message
        send(client, "dog")  # a stub's fault: no problem of the test
        target.check(unused_stubs="fail")
        target.check(unused_stubs="fail", unmatched="fail")


def test_an_unmatched_request_fails_naming_it(target: Checked) -> None:
    with client_of(target) as client:
        target.check(unmatched="fail")  # no request: nothing unmatched
        first = send(client, "plain one")
        send(client, "cat")
        second = send(client, "plain two")
        target.check()
        target.check(unmatched="ignore")
        message = failure(target, unmatched="fail")
    assert "2 problem(s) in 3 request(s)" in message
    for request_id, prompt in ((first, "plain one"), (second, "plain two")):
        line = (
            f"#{journal_id(request_id)} POST /v1/images/generations (request id {request_id})"
            f" matched no stub (unmatched='fail'): prompt {prompt!r}"
        )
        assert line in message
    assert "cat" not in message


def test_requests_a_stub_or_a_fault_answered_pass(target: Checked) -> None:
    with client_of(target) as client:
        send(client, "cat")  # a stub's answer
        send(client, "dog")  # a stub's fault
        send(client, "plain", **{"X-Mock-Fault": "rate_limit"})  # the header's fault
        target.fail_next("server_error", prompt="queued")
        send(client, "queued")  # a queued fault
        with pytest.raises(openai.BadRequestError):
            client.images.generate(model=MODEL, prompt="invalid", n=99)
    target.expect_errors("invalid_value")  # an invalid request is not unmatched
    target.check(unmatched="fail", unused_stubs="fail")
    coverage = target.coverage()
    assert coverage["unmatched"] == 0
    assert coverage["requests"] == 5


def test_more_unmatched_requests_than_a_report_names(mock: MockServer) -> None:
    sent = UNMATCHED_LIMIT + 3
    with httpx.Client(headers={"Authorization": f"Bearer {mock.api_key}"}) as http:
        for i in range(sent):
            http.post(
                mock.api_base + "/images/generations",
                json={"model": MODEL, "prompt": f"p{i}", "n": 1},
            )
    message = failure(mock, unmatched="fail")
    assert f"{UNMATCHED_LIMIT + 1} problem(s) in {sent} request(s)" in message
    assert "- 3 more request(s) matched no stub" in message
    assert "prompt 'p2'" not in message
    assert "prompt 'p3'" in message


def test_the_checks_are_scoped_by_session(mock: MockServer) -> None:
    a, b = mock.session("A"), mock.session("B")
    with client_of(a) as for_a, client_of(b) as for_b:
        send(for_a, "plain")
        send(for_b, "cat")
        send(for_b, "dog")
    # B used both stubs and sent nothing unmatched; A used none and sent one unmatched.
    b.check(unused_stubs="fail", unmatched="fail")
    mock.check(session="B", unused_stubs="fail", unmatched="fail")
    message = failure(a, unused_stubs="fail", unmatched="fail")
    assert "3 problem(s) in 1 request(s) of session 'A'" in message
    assert f"stub {CAT} was never used" in message
    assert f"stub {DOG} was never used" in message
    assert "prompt 'plain'" in message
    assert failure(mock, session="A", unmatched="fail").count("matched no stub") == 1
    # The whole mock: every stub was used by some session, one request was unmatched.
    mock.check(unused_stubs="fail")
    assert "1 problem(s) in 3 request(s) to the mock" in failure(mock, unmatched="fail")
    with RemoteMock(mock.url) as remote:
        remote.check(session="B", unused_stubs="fail", unmatched="fail")
        remote.session("B").check(unused_stubs="fail", unmatched="fail")
        message = failure(remote, session="A", unmatched="fail")
        assert f"of session 'A' to the mock at {mock.url}" in message
    # A reset of A leaves nothing of A to fail, and B as it was.
    a.reset()
    a.check(unused_stubs="ignore", unmatched="fail")
    assert "2 problem(s) in 0 request(s)" in failure(a, unused_stubs="fail")
    b.check(unused_stubs="fail", unmatched="fail")


@pytest.mark.parametrize(
    "options",
    [
        {"unused_stubs": "yes"},
        {"unmatched": "Fail"},
        {"unmatched": True},
        {"unused_stubs": None},
        {"unused_stubs": "fail", "unmatched": "warn"},
    ],
)
def test_a_bad_strictness_is_a_value_error(target: Checked, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="is 'ignore' or 'fail', not"):
        target.check(**options)
