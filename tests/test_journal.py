"""The journal and the checks on it: what the code under test sent, and what it was answered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import Counter
from typing import Any

import httpx
import httpx2
import openai
import pytest

import mockserver.web.endpoints
from mockserver import MockServer, create_app
from mockserver.record.journal import Journal, RequestRecord, redact_headers

GENERATIONS = "/v1/images/generations"


def post(mock: MockServer, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(
        mock.api_base + "/images/generations",
        json=body,
        headers={"Authorization": f"Bearer {mock.api_key}", **headers},
    )


def test_a_request_is_recorded_as_sent_and_answered(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    client = client.with_options(api_key="sk-project-1234567890abcd")
    result = client.images.generate(
        model="jimeng-4.5", prompt="a cat", n=2, extra_body={"ratio": "16:9", "resolution": "1k"}
    )

    (record,) = jimeng_mock.requests
    assert record == jimeng_mock.last_request
    assert (record.id, record.method, record.path, record.status) == (1, "POST", GENERATIONS, 200)
    assert record.body == {
        "model": "jimeng-4.5",
        "prompt": "a cat",
        "n": 2,
        "ratio": "16:9",
        "resolution": "1k",
    }
    assert record.images == tuple(image.url for image in result.data or [])
    assert record.headers["authorization"] == "Bearer ...abcd"
    assert "sk-project" not in repr(record) + str(record.to_json())
    assert record.headers["content-type"] == "application/json"
    assert record.error is None
    assert record.warnings == ()
    assert record.duration_ms >= 0


def test_errors_are_recorded_with_code_param_and_message(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="jimeng-4.0", prompt="a cat", n=99)

    record = jimeng_mock.last_request
    assert record is not None
    assert (record.status, record.error, record.param) == (400, "invalid_value", "n")
    assert record.error_message
    assert "maximum of 15" in record.error_message
    assert record.images == ()


def test_every_api_route_is_recorded_and_other_routes_are_not(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    client.models.list()
    httpx.get(jimeng_mock.url + "/v1/nothing-here")
    httpx.put(jimeng_mock.api_base + "/images/generations")
    httpx.get(jimeng_mock.url + "/healthz")
    httpx.get(jimeng_mock.url + "/__admin/requests")

    assert [(r.method, r.path, r.status, r.error) for r in jimeng_mock.requests] == [
        ("GET", "/v1/models", 200, None),
        ("GET", "/v1/nothing-here", 404, "not_found"),
        ("PUT", GENERATIONS, 405, "method_not_allowed"),
    ]


OUTCOMES: dict[str, tuple[dict[str, Any], int | None, str | None]] = {
    # name: (how to send it, the status recorded, the error recorded)
    "success": ({"json": {"model": "jimeng-4.0", "prompt": "p", "n": 1}}, 200, None),
    "contract": ({"json": {"model": "jimeng-4.0", "prompt": "p", "n": 0}}, 400, "invalid_value"),
    "no-key": ({"json": {}, "headers": {"Authorization": ""}}, 401, "invalid_api_key"),
    "unknown-url": ({"path": "/v1/images/nothing"}, 404, "not_found"),
    "method": ({"method": "DELETE"}, 405, "method_not_allowed"),
    "too-large": ({"content": b"{" * (1024 * 1024 + 1)}, 413, "request_too_large"),
    "media-type": ({"content": b"{}", "headers": {"Content-Type": "text/plain"}}, 415, None),
    "fault": (
        {"json": {"model": "jimeng-4.0", "prompt": "p", "n": 1}, "fault": "quota"},
        429,
        None,
    ),
    "stub": ({"json": {"model": "jimeng-4.0", "prompt": "stubbed", "n": 1}}, 200, None),
    "dropped": (
        {"json": {"model": "jimeng-4.0", "prompt": "p", "n": 1}, "fault": "disconnect"},
        None,
        None,
    ),
    "mock-failure": (
        {"json": {"model": "jimeng-4.0", "prompt": "p", "n": 1, "response_format": "b64_json"}},
        500,
        "server_error",
    ),
}


@pytest.fixture(scope="module")
def outcome_stubs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("outcome-stubs")
    stub = {
        "match": {"body": {"prompt": "stubbed"}},
        "response": {"status": 200, "body": {"created": "{{created}}", "data": "{{data}}"}},
    }
    (folder / "10-stubbed.json").write_text(json.dumps(stub))
    return folder


@pytest.mark.parametrize("outcome", list(OUTCOMES))
def test_every_outcome_of_an_api_request_is_recorded_once(
    outcome: str, outcome_stubs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    send, status, error = OUTCOMES[outcome]
    if outcome == "mock-failure":
        monkeypatch.setattr(mockserver.web.endpoints, "render_spec", _broken)
    headers = {"Authorization": "Bearer sk-outcomes", "Content-Type": "application/json"}
    headers.update(send.get("headers", {}))
    if "fault" in send:
        headers["X-Mock-Fault"] = send["fault"]
    with MockServer(fixtures=outcome_stubs) as mock, httpx.Client() as http:
        try:
            answer = http.request(
                send.get("method", "POST"),
                mock.url + send.get("path", GENERATIONS),
                headers=headers,
                json=send.get("json"),
                content=send.get("content"),
            )
        except httpx.TransportError:
            answer = None
        (record,) = mock.requests
        assert (answer.status_code if answer else None) == status
        assert (record.status, record.id) == (status, 1)
        if error is not None:
            assert record.error == error
        assert (record.stub is not None) == (outcome == "stub")
        assert (record.fault is not None) == (outcome in ("fault", "dropped"))
        assert (record.exception is not None) == (outcome == "mock-failure")
        assert http.get(mock.url + "/healthz").status_code == 200


def _broken(spec: object) -> bytes:
    raise RuntimeError("the renderer is broken")


VALID = {"model": "jimeng-4.0", "prompt": "p", "n": 1}


def test_the_journal_and_coverage_say_the_same_of_every_outcome(
    outcome_stubs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both are derived from each request's one outcome: what coverage counts is what the
    journal's records say, whatever the request turned out to be."""
    monkeypatch.setattr(mockserver.web.endpoints, "render_spec", _broken)
    base = {"Authorization": "Bearer sk-outcomes", "Content-Type": "application/json"}
    with MockServer(fixtures=outcome_stubs) as mock, httpx.Client() as http:
        for send, _, _ in OUTCOMES.values():
            headers = {**base, **send.get("headers", {})}
            if "fault" in send:
                headers["X-Mock-Fault"] = send["fault"]
            with contextlib.suppress(httpx.TransportError):
                http.request(
                    send.get("method", "POST"),
                    mock.url + send.get("path", GENERATIONS),
                    headers=headers,
                    json=send.get("json"),
                    content=send.get("content"),
                )
        http.post(mock.api_base + "/images/generations", headers=base, json={**VALID, "x": 1})
        records, report = mock.requests, mock.coverage()

    def counted(values: list[Any]) -> dict[str, int]:
        return {str(k).lower(): n for k, n in Counter(v for v in values if v).items()}

    assert report["requests"] == len(records) == len(OUTCOMES) + 1
    assert {k: n for k, n in report["outcomes"].items() if n} == counted(
        [r.outcome for r in records]
    )
    assert report["statuses"] == counted([r.status or "none" for r in records])
    for kind in ("error", "fault", "stub"):
        used = {k: n for k, n in report[kind + "s"].items() if n}
        assert used == counted([getattr(r, kind) for r in records]), kind
    warned = [w.code for r in records for w in r.warnings]
    assert {k: n for k, n in report["warnings"].items() if n} == Counter(warned)
    assert warned


def test_redaction_keeps_only_the_last_four_characters() -> None:
    headers = redact_headers(
        [("Authorization", "Bearer sk-secret-value-wxyz"), ("Cookie", "s=1"), ("X-A", "1")]
    )

    assert headers == {"authorization": "Bearer ...wxyz", "cookie": "****", "x-a": "1"}
    assert redact_headers([("authorization", "Bearer short")]) == {"authorization": "Bearer ****"}


def test_the_admin_api_lists_filters_and_deletes(jimeng_mock: MockServer) -> None:
    post(jimeng_mock, {"model": "jimeng-4.0", "prompt": "a", "n": 1})
    post(jimeng_mock, {"model": "jimeng-4.5", "prompt": "b", "n": 1})
    post(jimeng_mock, {"model": "jimeng-4.5", "prompt": "c", "n": 0})
    admin = jimeng_mock.url + "/__admin/requests"

    everything = httpx.get(admin).json()
    assert [r["body"]["prompt"] for r in everything["requests"]] == ["a", "b", "c"]
    assert (everything["count"], everything["journal_size"], everything["dropped"]) == (3, 1000, 0)
    assert everything["requests"][0]["headers"]["authorization"] == "Bearer ...mock"
    assert [r["id"] for r in httpx.get(admin, params={"status": 200}).json()["requests"]] == [1, 2]
    assert [
        r["id"] for r in httpx.get(admin, params={"model": "jimeng-4.5"}).json()["requests"]
    ] == [2, 3]
    assert [
        r["id"] for r in httpx.get(admin, params={"error": "invalid_value"}).json()["requests"]
    ] == [3]
    assert [r["id"] for r in httpx.get(admin, params={"limit": 2}).json()["requests"]] == [2, 3]

    assert httpx.delete(admin).json() == {"deleted": 3}
    assert httpx.get(admin).json()["requests"] == []


@pytest.mark.parametrize(
    ("query", "code", "param"),
    [
        ({"status": "ok"}, "invalid_value", "status"),
        ({"limit": "0"}, "invalid_value", "limit"),
        ({"stauts": "200"}, "unknown_parameter", "stauts"),
    ],
)
def test_bad_filters_are_refused(
    jimeng_mock: MockServer, query: dict[str, str], code: str, param: str
) -> None:
    response = httpx.get(jimeng_mock.url + "/__admin/requests", params=query)

    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (code, param)


def test_reset_over_http_empties_the_journal_and_restarts_the_ids(
    jimeng_mock: MockServer,
) -> None:
    post(jimeng_mock, {"model": "jimeng-4.0", "prompt": "a", "n": 1})
    jimeng_mock.fail_next("quota")

    assert httpx.post(jimeng_mock.url + "/__admin/reset").json() == {"reset": True, "session": None}
    post(jimeng_mock, {"model": "jimeng-4.0", "prompt": "b", "n": 1})

    (record,) = jimeng_mock.requests
    assert (record.id, record.status) == (1, 200)


def test_the_journal_stays_bounded_under_10000_requests() -> None:
    """10,000 requests through the ASGI app; the journal keeps the newest 1,000."""
    app = create_app()
    state = app.state.mock
    body = {"model": "jimeng-4.0", "prompt": "a cat", "n": 1, "size": "1024*1024"}

    async def send_all() -> None:
        transport = httpx2.ASGITransport(app=app)
        headers = {"Authorization": "Bearer sk-load"}
        async with httpx2.AsyncClient(transport=transport, base_url="http://mock") as http:
            for i in range(10_000):
                if i % 3 == 2:
                    await http.post(GENERATIONS, json={**body, "n": 0}, headers=headers)
                else:
                    await http.post(
                        GENERATIONS, json={**body, "prompt": f"cat {i}"}, headers=headers
                    )

    asyncio.run(send_all())

    records = state.requests
    assert len(records) == 1000
    assert state.journal.dropped == 9000
    assert [r.id for r in records] == list(range(9001, 10_001))
    assert records[-1].body["prompt"] == "cat 9999"


def test_journal_keeps_the_newest() -> None:
    journal = Journal(3)
    for _i in range(1, 6):
        journal.add(_record(journal.next_id()), journal.current("default"))

    assert [r.id for r in journal.records()] == [3, 4, 5]
    assert journal.dropped == 2


def test_a_request_that_began_before_a_clear_is_not_recorded() -> None:
    journal = Journal(3)
    began = journal.current("default")
    journal.clear()
    journal.add(_record(1), began)

    assert journal.records() == []


def _record(id: int, **fields: Any) -> RequestRecord:
    values: dict[str, Any] = {
        "id": id,
        "time": 0.0,
        "method": "POST",
        "path": GENERATIONS,
        "headers": {},
        "body": {"model": "jimeng-4.0", "prompt": "a cat", "n": 1},
        "status": 200,
    }
    return RequestRecord(**{**values, **fields})


# ------------------------------------------------------------------------------ assert_requested


def test_assert_requested_finds_matching_requests(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    client.images.generate(model="jimeng-4.5", prompt="an orange cat", n=2)
    client.images.generate(model="jimeng-4.0", prompt="a dog", n=1)

    assert len(jimeng_mock.assert_requested(model="jimeng-4.5", n=2)) == 1
    jimeng_mock.assert_requested(2)
    jimeng_mock.assert_requested(1, prompt=re.compile("orange"))
    jimeng_mock.assert_requested(n=lambda n: n > 1)
    jimeng_mock.assert_requested(2, status=200)


def test_assert_requested_reports_the_nearest_miss(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    client.images.generate(model="jimeng-4.0", prompt="a dog", n=1)
    client.images.generate(
        model="jimeng-4.5", prompt="an orange cat", n=1, extra_body={"ratio": "16:9"}
    )

    with pytest.raises(AssertionError) as raised:
        jimeng_mock.assert_requested(model="jimeng-4.5", n=2, prompt="an orange cat")

    message = str(raised.value)
    assert "none of the 2 recorded request(s) matched" in message
    assert "Nearest: #2 POST /v1/images/generations -> 200" in message
    assert "  n: expected 2, got 1" in message
    assert "model" not in message.split("differs in:")[1].split("its body")[0]


def test_assert_requested_shows_where_strings_differ_and_absent_fields(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    client.images.generate(model="jimeng-4.5", prompt="an orange cat", n=1)

    with pytest.raises(AssertionError) as raised:
        jimeng_mock.assert_requested(prompt="an orange hat", ratio="16:9")

    message = str(raised.value)
    assert (
        'prompt: expected "an orange hat", got "an orange cat" (first difference at character 10)'
        in message
    )
    assert 'ratio: expected "16:9", got (absent)' in message


def test_assert_requested_tells_1_from_true(jimeng_mock: MockServer, client: openai.OpenAI) -> None:
    client.images.generate(model="jimeng-4.0", prompt="a cat", n=1)

    jimeng_mock.assert_requested(n=1)
    with pytest.raises(AssertionError, match="int instead of float"):
        jimeng_mock.assert_requested(n=1.0)


def test_assert_requested_with_a_count_lists_what_it_found(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    for _ in range(3):
        client.images.generate(model="jimeng-4.0", prompt="a cat", n=1)

    with pytest.raises(
        AssertionError, match=r"expected 2 request\(s\) with model=\"jimeng-4.0\", found 3"
    ):
        jimeng_mock.assert_requested(2, model="jimeng-4.0")


def test_assert_requested_on_an_empty_journal(jimeng_mock: MockServer) -> None:
    with pytest.raises(AssertionError, match="none of the 0 recorded"):
        jimeng_mock.assert_requested(model="jimeng-4.0")


# ------------------------------------------------------------------------------ check()


def test_check_passes_a_clean_run(jimeng_mock: MockServer, client: openai.OpenAI) -> None:
    client.images.generate(model="jimeng-4.0", prompt="a cat", n=1)

    jimeng_mock.check()


def test_check_fails_on_a_warning(jimeng_mock: MockServer, client: openai.OpenAI) -> None:
    client.images.generate(
        model="jimeng-4.0", prompt="a cat", n=1, extra_body={"aspect_ratio": "16:9"}
    )

    with pytest.raises(AssertionError) as raised:
        jimeng_mock.check()

    assert "#1 POST /v1/images/generations -> 200: warning unknown_field" in str(raised.value)
    assert "Did you mean 'ratio'?" in str(raised.value)


def test_check_fails_on_an_unexpected_error_unless_expected(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="jimeng-4.0", prompt="a cat", n=0)

    with pytest.raises(AssertionError, match=r"-> 400 invalid_value \(n\): Invalid value for 'n'"):
        jimeng_mock.check()
    jimeng_mock.expect_errors("invalid_value")
    jimeng_mock.check()


def test_check_lets_injected_faults_pass(jimeng_mock: MockServer, client: openai.OpenAI) -> None:
    jimeng_mock.fail_next("quota")
    with pytest.raises(openai.RateLimitError):
        client.images.generate(model="jimeng-4.0", prompt="a cat", n=1)

    jimeng_mock.check()


def test_check_reports_a_failure_of_the_mock_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = create_app()

    def broken_render(spec: object) -> bytes:
        raise RuntimeError("the renderer is broken")

    monkeypatch.setattr(mockserver.web.endpoints, "render_spec", broken_render)

    async def scenario() -> httpx2.Response:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://mock") as http:
            return await http.post(
                GENERATIONS,
                json={"model": "jimeng-4.0", "prompt": "p", "n": 1, "response_format": "b64_json"},
                headers={"Authorization": "Bearer k"},
            )

    response = asyncio.run(scenario())

    assert response.status_code == 500
    with pytest.raises(AssertionError) as raised:
        app.state.mock.check()
    assert "the mock failed" in str(raised.value)
    assert "RuntimeError: the renderer is broken" in str(raised.value)
