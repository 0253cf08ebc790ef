"""The one test-facing API over its two transports: the state of a mock in this process
(`MockServer`), and the admin routes of a mock reached over HTTP (`RemoteMock`, here at the
same running mock), each whole or as a session. The same calls give the same answers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from mockserver import MockServer, MockSession, RemoteMock
from mockserver.contract.sessions import HEADER
from mockserver.engine.api import Served

MODEL = "jimeng-4.0"
KINDS = ["in-process", "remote", "in-process session", "remote session"]


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    with MockServer() as mock:
        yield mock


@pytest.fixture(scope="module")
def remote(server: MockServer) -> Iterator[RemoteMock]:
    with RemoteMock(server.url) as mock:
        yield mock


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest, server: MockServer, remote: RemoteMock) -> Served[Any]:
    server.reset()
    mock: Served[Any] = server if request.param.startswith("in-process") else remote
    return mock.session("S") if request.param.endswith("session") else mock


def generate(harness: Served[Any], prompt: str, n: int = 1) -> int:
    """One generation request through the SDK, as a client of `harness`: its status."""
    with openai.OpenAI(**harness.client_options(), max_retries=0) as client:
        try:
            client.images.generate(model=MODEL, prompt=prompt, n=n)
        except openai.APIStatusError as exc:
            return exc.status_code
    return 200


def test_the_same_calls_answer_alike(harness: Served[Any]) -> None:
    harness.fail_next("quota", prompt="a dog", retry_after_ms=1500)
    assert [generate(harness, p) for p in ("a cat", "a dog", "a dog")] == [200, 429, 200]
    assert [r.status for r in harness.requests] == [200, 429, 200]
    last = harness.last_request
    assert last is not None
    assert last.body["prompt"] == "a dog"
    assert len(harness.assert_requested(2, prompt="a dog")) == 2
    assert len(harness.assert_requested(1, status=429, error="insufficient_quota")) == 1
    with pytest.raises(AssertionError, match="expected 3 request"):
        harness.assert_requested(3, prompt="a dog")
    harness.check()  # a queued fault's error is expected
    assert harness.coverage()["faults"]["quota"] == 1
    assert harness.coverage()["fault_sources"]["queue"] == 1

    assert generate(harness, "x", n=99) == 400
    with pytest.raises(AssertionError, match="1 problem"):
        harness.check()
    harness.expect_errors("invalid_value")
    harness.check()

    harness.reset()
    assert harness.requests == []
    assert harness.expected_errors == set()
    assert harness.coverage()["requests"] == 0
    assert generate(harness, "y", n=99) == 400
    with pytest.raises(AssertionError, match="1 problem"):
        harness.check()  # the errors it expected went with the reset


def test_a_session_sees_only_its_own(server: MockServer, remote: RemoteMock) -> None:
    server.reset()
    for mock in (server, remote):
        mock.reset()
        session = mock.session("S")
        generate(mock, "unscoped")
        generate(session, "scoped")
        assert [r.body["prompt"] for r in session.requests] == ["scoped"]
        assert [r.body["prompt"] for r in mock.records("S")] == ["scoped"]
        assert mock.coverage()["requests"] == 2
        assert session.coverage()["requests"] == 1
        assert session.headers == {HEADER: "S"}
        assert mock.headers == {}


@pytest.mark.parametrize("kind", ["in-process", "remote"])
def test_a_session_refuses_another_sessions_name(
    server: MockServer, remote: RemoteMock, kind: str
) -> None:
    mock: Served[Any] = server if kind == "in-process" else remote
    mock.reset()
    session = mock.session("S")
    generate(session, "mine")
    calls: list[Callable[[], object]] = [
        lambda: session.records("T"),
        lambda: session.assert_requested(session="T"),
        lambda: session.check(session="T"),
        lambda: session.fail_next("quota", session="T"),
        lambda: session.coverage("T"),
        lambda: session.reset("T"),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="this is session 'S'"):
            call()
    assert [r.body["prompt"] for r in session.records(" S ")] == ["mine"]  # its own name
    assert len(mock.records()) == 1  # nothing was reset
    assert generate(session, "next") == 200  # nothing was queued


def test_a_session_of_a_session_is_of_the_same_mock(server: MockServer) -> None:
    other = server.session("S").session("T")
    assert isinstance(other, MockSession)
    assert other.mock is server
    assert repr(other) == f"<MockSession 'T' of {server.url}>"


def test_the_state_of_create_app_has_the_same_api(server: MockServer) -> None:
    # MockServer's API is its state's: a fault queued on one is listed by the other.
    server.reset()
    entry = server.state.fail_next("server_error")
    assert server.state.queue.pending() == [entry]
    assert generate(server, "a cat") == 500
    assert server.state.requests == server.requests
    server.state.expect_errors("no_such_code")
    assert "no_such_code" in server.expected_errors
    server.reset()
    assert server.state.expected_errors == set()
