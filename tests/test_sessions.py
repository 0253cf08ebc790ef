"""Sessions: requests tagged `X-Mock-Session: NAME` have a journal, faults, stub uses, checks,
coverage and reset of their own; untagged ones are the session "default"."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from mockserver import MockServer, MockSession
from mockserver.contract.sessions import HEADER, NAME_LIMIT
from mockserver.record.journal import RequestRecord

MODEL = "jimeng-4.0"
STUB = "once.json"  # answers a prompt "once", the first time in each session


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    stubs = tmp_path_factory.mktemp("session-stubs")
    (stubs / STUB).write_text(
        json.dumps(
            {
                "match": {"body": {"prompt": "once"}},
                "times": 1,
                "response": {"status": 200, "body": {"created": 7, "data": "{{data}}"}},
            }
        ),
        encoding="utf-8",
    )
    with MockServer(fixtures=stubs) as mock:
        yield mock


@pytest.fixture
def mock(server: MockServer) -> MockServer:
    server.reset()
    return server


@pytest.fixture
def sdk(mock: MockServer) -> Iterator[openai.OpenAI]:
    """A client of no session: its requests are the session "default"."""
    with openai.OpenAI(base_url=mock.api_base, api_key=mock.api_key, max_retries=0) as client:
        yield client


def session_client(session: MockSession) -> openai.OpenAI:
    """A client whose every request is of `session` (its `default_headers`)."""
    return openai.OpenAI(**session.client_options(), max_retries=0)


def generate(
    client: openai.OpenAI, prompt: str, session: str | None = None, **headers: str
) -> openai.types.ImagesResponse:
    """One generation request; of `session` through `extra_headers` if given."""
    extra = dict(headers)
    if session is not None:
        extra[HEADER] = session
    return client.images.generate(model=MODEL, prompt=prompt, n=1, extra_headers=extra)


def post(mock: MockServer, prompt: str, headers: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(
        mock.api_base + "/images/generations",
        json={"model": MODEL, "prompt": prompt, "n": 1},
        headers={"Authorization": f"Bearer {mock.api_key}", **(headers or {})},
    )


def prompts(records: list[RequestRecord]) -> list[str]:
    return [r.body["prompt"] for r in records]


def admin(mock: MockServer, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, mock.url + "/__admin/" + path, **kw)


def journal_prompts(mock: MockServer, query: str = "") -> list[str]:
    answer = admin(mock, "GET", "requests" + query)
    assert answer.status_code == 200, answer.text
    return [r["body"]["prompt"] for r in answer.json()["requests"]]


# ---------------------------------------------------------------------------- the journal


@pytest.mark.smoke
def test_each_session_has_its_journal(mock: MockServer, sdk: openai.OpenAI) -> None:
    # A through extra_headers on the shared client, B through its own default headers.
    b = mock.session("B")
    plan = [("A", "a1"), (None, "d1"), ("B", "b1"), ("A", "a2"), ("B", "b2"), (None, "d2")]
    plan += [("A", "a3")]
    with session_client(b) as b_client:
        for who, prompt in plan:
            if who == "B":
                generate(b_client, prompt)
            else:
                generate(sdk, prompt, who)
    wanted = {
        name: [p for w, p in plan if (w or "default") == name] for name in ("A", "B", "default")
    }
    assert prompts(mock.records()) == [p for _, p in plan]
    for name, expected in wanted.items():
        assert prompts(mock.records(name)) == expected
        assert prompts(mock.session(name).requests) == expected
        assert journal_prompts(mock, f"?session={name}") == expected
        last = mock.session(name).last_request
        assert last is not None
        assert last.body["prompt"] == expected[-1]
        assert {r.session for r in mock.records(name)} == {name}
    assert prompts(b.requests) == wanted["B"]
    assert journal_prompts(mock) == [p for _, p in plan]
    # The journal's JSON names each record's session.
    listed = admin(mock, "GET", "requests").json()["requests"]
    assert [r["session"] for r in listed] == [w or "default" for w, _ in plan]
    assert mock.session("nobody").requests == []
    assert mock.session("nobody").last_request is None


def test_assert_requested_counts_a_sessions_requests(mock: MockServer, sdk: openai.OpenAI) -> None:
    sent = [("A", "cat"), ("B", "cat"), ("A", "cat"), (None, "cat"), ("A", "dog")]
    for who, prompt in sent:
        generate(sdk, prompt, who)
    counts = Counter((who or "default", prompt) for who, prompt in sent)
    for (session, prompt), count in counts.items():
        assert len(mock.assert_requested(count, session=session, prompt=prompt)) == count
        assert len(mock.session(session).assert_requested(count, prompt=prompt)) == count
    assert len(mock.assert_requested(4, prompt="cat")) == 4  # unscoped: every session
    with pytest.raises(AssertionError, match="expected 1 request"):
        mock.assert_requested(1, session="B", prompt="dog")
    with pytest.raises(AssertionError, match="found 2"):
        mock.session("A").assert_requested(1, prompt="cat")


def test_a_session_name_is_stripped_and_up_to_200_characters(
    mock: MockServer, sdk: openai.OpenAI
) -> None:
    longest = "s" * NAME_LIMIT
    generate(sdk, "padded", "padded")
    generate(sdk, "longest", longest)
    # Spaces around a name are left out, as HTTP leaves them out of a header.
    assert prompts(mock.records(" padded\t")) == ["padded"]
    assert journal_prompts(mock, "?session=%20padded%20") == ["padded"]
    assert prompts(mock.records(longest)) == ["longest"]
    assert mock.session(" padded").headers == {HEADER: "padded"}


def test_every_api_request_is_of_its_session(mock: MockServer) -> None:
    tagged = {HEADER: "A"}
    answers = [
        httpx.get(mock.api_base + "/models", headers={**tagged, "Authorization": "Bearer k"}),
        httpx.post(mock.api_base + "/images/generations", json={}, headers=tagged),  # no key
        httpx.get(mock.api_base + "/nowhere", headers=tagged),
        post(mock, "fine", tagged),
    ]
    assert [a.status_code for a in answers] == [200, 401, 404, 200]
    assert [(r.path, r.status, r.session) for r in mock.records()] == [
        ("/v1/models", 200, "A"),
        ("/v1/images/generations", 401, "A"),
        ("/v1/nowhere", 404, "A"),
        ("/v1/images/generations", 200, "A"),
    ]
    assert mock.records("default") == []
    assert mock.coverage("A")["statuses"] == {"200": 2, "401": 1, "404": 1}


def test_deleting_a_sessions_journal(mock: MockServer, sdk: openai.OpenAI) -> None:
    for who, prompt in [("A", "a1"), ("B", "b1"), ("A", "a2"), (None, "d1")]:
        generate(sdk, prompt, who)
    answer = admin(mock, "DELETE", "requests?session=A")
    assert answer.json() == {"deleted": 2}
    assert prompts(mock.records()) == ["b1", "d1"]
    assert admin(mock, "DELETE", "requests?session=A").json() == {"deleted": 0}


# ---------------------------------------------------------------------------- faults


def status_of(client: openai.OpenAI, prompt: str, session: str | None = None) -> int:
    """The status the client saw."""
    try:
        generate(client, prompt, session)
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def queue_over_http(mock: MockServer, body: dict[str, Any]) -> dict[str, Any]:
    answer = admin(mock, "POST", "faults", json=body)
    assert answer.status_code == 201, answer.text
    queued: dict[str, Any] = answer.json()["queued"]
    return queued


@pytest.mark.smoke
@pytest.mark.parametrize("how", ["fail_next", "session.fail_next", "POST /__admin/faults"])
def test_a_fault_queued_for_a_session_takes_only_its_requests(
    mock: MockServer, sdk: openai.OpenAI, how: str
) -> None:
    if how == "fail_next":
        mock.fail_next("quota", 2, session="A")
    elif how == "session.fail_next":
        mock.session("A").fail_next("quota", 2)
    else:
        queued = queue_over_http(mock, {"fault": "quota", "times": 2, "session": "A"})
        assert queued["session"] == "A"
    assert [status_of(sdk, "x", who) for who in ("B", None, "B")] == [200, 200, 200]
    assert status_of(sdk, "x", "A") == 429
    assert [status_of(sdk, "x", who) for who in (None, "B")] == [200, 200]
    assert status_of(sdk, "x", "A") == 429
    assert status_of(sdk, "x", "A") == 200  # both times spent
    faulted = [(r.session, r.fault) for r in mock.records() if r.fault]
    assert faulted == [("A", "quota"), ("A", "quota")]
    assert mock.state.queue.pending() == []


@pytest.mark.parametrize("how", ["python", "http"])
def test_an_unscoped_fault_takes_any_sessions_request(
    mock: MockServer, sdk: openai.OpenAI, how: str
) -> None:
    if how == "python":
        mock.fail_next("quota", 3)
    else:
        assert queue_over_http(mock, {"fault": "quota", "times": 3})["session"] is None
    assert [status_of(sdk, "x", who) for who in ("B", None, "A", "A")] == [429, 429, 429, 200]


def test_a_sessions_fault_is_taken_before_a_later_unscoped_one(
    mock: MockServer, sdk: openai.OpenAI
) -> None:
    mock.fail_next("quota", session="A")
    mock.fail_next("rate_limit")
    generate_faults: list[str | None] = []
    for who in ("B", "A", "A"):
        try:
            generate(sdk, "x", who)
            generate_faults.append(None)
        except openai.APIStatusError as exc:
            generate_faults.append(exc.response.headers.get("x-mock-fault"))
    assert generate_faults == ["rate_limit", "quota", None]


def test_listing_and_clearing_a_sessions_faults(mock: MockServer, sdk: openai.OpenAI) -> None:
    mock.fail_next("quota", session="A")
    mock.fail_next("rate_limit", 2, session="A", prompt="p")
    mock.fail_next("server_error", session="B")
    mock.fail_next("bad_gateway")

    def listed(query: str = "") -> list[tuple[str, int, str | None]]:
        answer = admin(mock, "GET", "faults" + query)
        assert answer.status_code == 200, answer.text
        return [(q["fault"], q["times"], q["session"]) for q in answer.json()["queued"]]

    everything: list[tuple[str, int, str | None]] = [
        ("quota", 1, "A"),
        ("rate_limit", 2, "A"),
        ("server_error", 1, "B"),
        ("bad_gateway", 1, None),
    ]
    assert listed() == everything
    assert listed("?session=A") == [e for e in everything if e[2] == "A"]
    assert listed("?session=B") == [e for e in everything if e[2] == "B"]
    assert listed("?session=C") == []
    assert admin(mock, "DELETE", "faults?session=A").json() == {"deleted": 2}
    assert listed() == [e for e in everything if e[2] != "A"]
    # What is left still answers as before: B's for B, the unscoped one for A.
    assert status_of(sdk, "p", "A") == 502
    assert status_of(sdk, "p", "B") == 500
    assert admin(mock, "DELETE", "faults").json() == {"deleted": 0}


# ---------------------------------------------------------------------------- stubs


def stub_of(client: openai.OpenAI, prompt: str, session: str | None) -> str | None:
    raw = client.images.with_raw_response.generate(
        model=MODEL, prompt=prompt, n=1, extra_headers={HEADER: session} if session else {}
    )
    return raw.headers.get("x-mock-stub")


def test_a_stubs_times_are_counted_per_session(mock: MockServer, sdk: openai.OpenAI) -> None:
    sent = ["A", "A", "B", None, "B", None, "C"]
    seen: set[str | None] = set()
    expected = []
    for who in sent:
        expected.append(None if who in seen else STUB)
        seen.add(who)
    assert [stub_of(sdk, "once", who) for who in sent] == expected
    assert [r.stub for r in mock.records()] == expected
    assert mock.coverage()["stubs"] == {STUB: expected.count(STUB)}
    assert mock.coverage("A")["stubs"] == {STUB: 1}


# ---------------------------------------------------------------------------- reset


def fill_sessions(mock: MockServer, sdk: openai.OpenAI) -> None:
    """Journal, stub uses, coverage and a queued fault in each of A and B; and an unscoped
    fault for prompt "any"."""
    for who in ("A", "B"):
        generate(sdk, f"{who}-1", who)
        stub_of(sdk, "once", who)
        mock.fail_next("quota", session=who, prompt="faulty")
    mock.fail_next("bad_gateway", prompt="any")


@pytest.mark.smoke
@pytest.mark.parametrize("how", ["MockServer.reset", "MockSession.reset", "POST /__admin/reset"])
def test_resetting_a_session_leaves_the_others(
    mock: MockServer, sdk: openai.OpenAI, how: str
) -> None:
    fill_sessions(mock, sdk)
    b_journal = mock.records("B")
    b_coverage = mock.coverage("B")
    whole = mock.coverage()
    if how == "MockServer.reset":
        mock.reset("A")
    elif how == "MockSession.reset":
        mock.session("A").reset()
    else:
        answer = admin(mock, "POST", "reset?session=A")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"reset": True, "session": "A"}
    # A: nothing recorded, queued, used or counted.
    assert mock.records("A") == []
    assert [q.session for q in mock.state.queue.pending()] == ["B", None]
    assert mock.coverage("A")["requests"] == 0
    # B: as it was.
    assert mock.records("B") == b_journal
    assert mock.coverage("B") == b_coverage
    # The whole mock's counters are of every request since the whole mock's reset.
    assert mock.coverage()["requests"] == whole["requests"]
    # A's stub use and fault are gone; B's stay; the unscoped fault stays for anyone.
    assert stub_of(sdk, "once", "A") == STUB
    assert stub_of(sdk, "once", "B") is None
    assert status_of(sdk, "faulty", "A") == 200
    assert status_of(sdk, "faulty", "B") == 429
    assert status_of(sdk, "any", "A") == 502


@pytest.mark.parametrize("how", ["MockSession.reset", "POST /__admin/reset"])
def test_a_sessions_reset_leaves_the_rate_limit_of_its_key(how: str) -> None:
    # Rate limits count a key's requests, whatever their session: a session's reset does not
    # hand its key a new minute (the whole mock's reset does).
    with MockServer(rpm=2) as limited:
        session = limited.session("A")
        with openai.OpenAI(**session.client_options(), max_retries=0) as client:
            for _ in range(2):
                client.images.generate(model=MODEL, prompt="p", n=1)
            if how == "MockSession.reset":
                session.reset()
            else:
                assert admin(limited, "POST", "reset?session=A").status_code == 200
            with pytest.raises(openai.RateLimitError):
                client.images.generate(model=MODEL, prompt="p", n=1)
            limited.reset()
            assert client.images.generate(model=MODEL, prompt="p", n=1).data


def test_a_whole_reset_answers_session_null(mock: MockServer, sdk: openai.OpenAI) -> None:
    fill_sessions(mock, sdk)
    answer = admin(mock, "POST", "reset")
    assert answer.json() == {"reset": True, "session": None}
    assert mock.records() == []
    assert mock.state.queue.pending() == []
    assert mock.coverage("B")["requests"] == 0


def test_a_request_in_flight_when_its_session_is_reset_is_not_recorded(
    mock: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = mock.state.journal
    begun: dict[str, threading.Event] = {"A": threading.Event(), "B": threading.Event()}
    begin = journal.begin

    def noted(session: str = "default") -> Any:
        taken = begin(session)
        begun[session].set()
        return taken

    monkeypatch.setattr(journal, "begin", noted)
    statuses: dict[str, int] = {}

    def slow(session: str) -> None:
        answer = post(mock, f"slow-{session}", {HEADER: session, "X-Mock-Latency-Ms": "500"})
        statuses[session] = answer.status_code

    threads = [threading.Thread(target=slow, args=(name,)) for name in begun]
    for thread in threads:
        thread.start()
    assert all(event.wait(10) for event in begun.values())  # both wait out their latency
    mock.reset("A")
    reset_at = time.time()
    for thread in threads:
        thread.join(10)
    assert statuses == {"A": 200, "B": 200}  # both were answered
    assert mock.records("A") == []
    [b] = mock.records()
    assert (b.session, b.body["prompt"]) == ("B", "slow-B")
    assert b.time < reset_at < b.time + b.duration_ms / 1000  # in flight at the reset
    assert mock.coverage("A")["requests"] == 0
    assert mock.coverage()["requests"] == 1
    # A's next request is recorded again.
    assert post(mock, "after", {HEADER: "A"}).status_code == 200
    assert prompts(mock.records("A")) == ["after"]


# ---------------------------------------------------------------------------- bad names


BAD_NAMES = {
    "empty": "",
    "blank": "  \t ",
    "too long": "x" * (NAME_LIMIT + 1),
    "too long once stripped": " " + "x" * (NAME_LIMIT + 1) + " ",
}


def raw_post(mock: MockServer, session: bytes) -> tuple[int, dict[str, Any]]:
    """A generation request sent over a socket as it is (HTTP clients refuse a header value
    with spaces at either end): the answer's status and JSON."""
    body = json.dumps({"model": MODEL, "prompt": "raw", "n": 1}).encode()
    head = (
        f"POST /v1/images/generations HTTP/1.1\r\nHost: {mock.host}\r\n"
        f"Authorization: Bearer {mock.api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    ).encode()
    with socket.create_connection((mock.host, mock.port), timeout=10) as sock:
        sock.sendall(head + HEADER.encode() + b":" + session + b"\r\n\r\n" + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    text = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(text)


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_a_bad_session_header_on_the_wire_is_a_400(mock: MockServer, name: str) -> None:
    status, answer = raw_post(mock, name.encode())
    assert status == 400
    assert (answer["error"]["code"], answer["error"]["param"]) == ("invalid_value", HEADER)
    assert raw_post(mock, b" \t spaced  ") == (200, raw_post(mock, b"spaced")[1])
    assert [r.session for r in mock.records()] == ["default", "spaced", "spaced"]


@pytest.mark.parametrize("name", ["", "x" * (NAME_LIMIT + 1)], ids=["empty", "too long"])
def test_a_bad_session_header_is_a_400_and_the_mock_serves_on(
    mock: MockServer, sdk: openai.OpenAI, name: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        generate(sdk, "bad", name)
    error = raised.value
    assert error.status_code == 400
    assert error.code == "invalid_value"
    assert error.param == HEADER
    body = error.body
    assert isinstance(body, dict)
    assert set(body) >= {"message", "type", "param", "code"}
    record = mock.last_request
    assert record is not None
    assert (record.status, record.error, record.param) == (400, "invalid_value", HEADER)
    assert record.session == "default"
    assert generate(sdk, "good", "good").data
    assert prompts(mock.records("good")) == ["good"]


def test_a_session_header_beyond_printable_ascii_is_a_400(mock: MockServer) -> None:
    for value in ("caf\xe9".encode("latin-1"), b"a\tb"):
        answer = post(mock, "bad", {HEADER: value})
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["param"]) == ("invalid_value", HEADER)
        assert "printable ASCII" in error["message"]
    assert post(mock, "good").status_code == 200


ADMIN_SESSION_ROUTES = [
    ("GET", "requests"),
    ("DELETE", "requests"),
    ("POST", "reset"),
    ("GET", "faults"),
    ("DELETE", "faults"),
    ("GET", "coverage"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_SESSION_ROUTES)
@pytest.mark.parametrize(
    "name", ["", " ", "x" * (NAME_LIMIT + 1)], ids=["empty", "blank", "too long"]
)
def test_a_bad_session_query_is_a_400(
    mock: MockServer, sdk: openai.OpenAI, method: str, path: str, name: str
) -> None:
    generate(sdk, "kept", "A")
    mock.fail_next("quota", session="A")
    answer = admin(mock, method, path, params={"session": name})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "session")
    # Nothing was cleared.
    assert prompts(mock.records("A")) == ["kept"]
    assert len(mock.state.queue.pending("A")) == 1


@pytest.mark.parametrize("name", ["", "x" * (NAME_LIMIT + 1)], ids=["empty", "too long"])
def test_a_bad_session_of_a_queued_fault_is_a_400(mock: MockServer, name: str) -> None:
    answer = admin(mock, "POST", "faults", json={"fault": "quota", "session": name})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "session"
    assert mock.state.queue.pending() == []


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_a_bad_session_name_in_python_is_a_value_error(mock: MockServer, name: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: mock.records(name),
        lambda: mock.reset(name),
        lambda: mock.fail_next("quota", session=name),
        lambda: mock.assert_requested(session=name),
        lambda: mock.check(session=name),
        lambda: mock.coverage(name),
        lambda: mock.session(name),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="session name"):
            call()
    assert mock.state.queue.pending() == []
    with pytest.raises(TypeError):
        mock.session(3)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- checks


def test_a_session_expects_its_own_errors(mock: MockServer, sdk: openai.OpenAI) -> None:
    a, b = mock.session("A"), mock.session("B")
    for who in ("A", "B"):
        with pytest.raises(openai.BadRequestError):
            sdk.images.generate(model=MODEL, prompt="x", n=99, extra_headers={HEADER: who})
    generate(sdk, "fine")
    a.expect_errors("invalid_value")
    a.check()
    with pytest.raises(AssertionError, match=r"1 problem\(s\) in 1 request\(s\) of session 'B'"):
        b.check()
    with pytest.raises(AssertionError, match=r"2 problem\(s\) in 3 request\(s\) to the mock"):
        mock.check()
    mock.check(session="default")
    mock.check(session="B", expected_errors={"invalid_value"})
    a.reset()
    assert a.expected_errors == set()
    assert repr(a) == f"<MockSession 'A' of {mock.url}>"
