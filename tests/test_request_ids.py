"""Every answer to a `/v1/...` request has an `x-request-id`, which the journal records."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import openai
import pytest

from mockserver import MockServer
from mockserver.record.journal import Journal, RequestRecord
from tests.test_journal import _record
from tests.test_upstream import HandServer, answering, post

ID = re.compile(r"^req_[0-9]{6,}_[0-9a-f]{8}$")


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    stubs = tmp_path_factory.mktemp("stubs")
    canned = {
        "match": {"body": {"prompt": "canned"}},
        "response": {"status": 200, "headers": {"X-Request-Id": "req-stub-1"}, "body": {}},
    }
    (stubs / "10-canned.json").write_text(json.dumps(canned), encoding="utf-8")
    (stubs / "20-quota.json").write_text(
        json.dumps({"match": {"body": {"prompt": "stubbed"}}, "fault": "quota"}), encoding="utf-8"
    )
    with MockServer(fixtures=stubs) as server:
        yield server


@pytest.fixture
def client(mock: MockServer) -> Iterator[openai.OpenAI]:
    mock.reset()
    with openai.OpenAI(base_url=mock.api_base, api_key=mock.api_key, max_retries=0) as sdk:
        yield sdk


def assert_id(value: str | None) -> None:
    assert value is not None
    assert ID.match(value), value


def last(mock: MockServer) -> RequestRecord:
    record = mock.last_request
    assert record is not None
    return record


def generate(client: openai.OpenAI, prompt: str = "a cat") -> str | None:
    raw = client.images.with_raw_response.generate(model="jimeng-4.0", prompt=prompt, n=1)
    assert raw.parse()._request_id == raw.request_id
    return raw.request_id


def test_an_answer_has_the_journals_request_id(mock: MockServer, client: openai.OpenAI) -> None:
    request_id = generate(client)
    assert_id(request_id)
    assert last(mock).request_id == request_id
    assert last(mock).client_request_id is None


def test_a_contract_error_has_one(mock: MockServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(model="jimeng-4.0", prompt="a cat", n=99)
    assert_id(raised.value.request_id)
    assert last(mock).request_id == raised.value.request_id


def test_an_injected_fault_has_one(mock: MockServer, client: openai.OpenAI) -> None:
    mock.fail_next("rate_limit")
    with pytest.raises(openai.APIStatusError) as raised:
        client.images.generate(model="jimeng-4.0", prompt="a cat", n=1)
    assert raised.value.status_code == 429
    assert raised.value.request_id == last(mock).request_id
    assert last(mock).fault is not None


def test_stub_answers(mock: MockServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        client.images.generate(model="jimeng-4.0", prompt="stubbed", n=1)
    assert_id(raised.value.request_id)
    assert last(mock).request_id == raised.value.request_id
    # A stub with its own x-request-id: that one is sent, and recorded.
    response = httpx.post(
        f"{mock.api_base}/images/generations",
        headers={"Authorization": f"Bearer {mock.api_key}"},
        json={"model": "jimeng-4.0", "prompt": "canned", "n": 1},
    )
    assert response.headers.get_list("x-request-id") == ["req-stub-1"]
    assert last(mock).request_id == "req-stub-1"
    assert last(mock).stub == "10-canned.json"


def test_errors_outside_the_routes_and_auth_have_one(mock: MockServer) -> None:
    mock.reset()
    answers = [
        httpx.get(f"{mock.api_base}/nowhere"),
        httpx.delete(f"{mock.api_base}/models"),
        httpx.get(f"{mock.api_base}/models"),
        httpx.get(f"{mock.api_base}/models", headers={"Authorization": f"Bearer {mock.api_key}"}),
    ]
    assert [a.status_code for a in answers] == [404, 405, 401, 200]
    assert [a.headers["x-request-id"] for a in answers] == [r.request_id for r in mock.requests]
    assert [r.id for r in mock.requests] == [1, 2, 3, 4]


def test_the_same_requests_after_a_reset_get_the_same_ids(
    mock: MockServer, client: openai.OpenAI
) -> None:
    def run() -> list[str | None]:
        mock.reset()
        ids = [generate(client, prompt) for prompt in ("a cat", "a dog", "a cat")]
        with pytest.raises(openai.BadRequestError) as raised:
            client.images.generate(model="jimeng-4.0", prompt="a cat", n=99)
        return [*ids, raised.value.request_id]

    first = run()
    assert len(set(first)) == len(first)
    assert run() == first
    assert [r.request_id for r in mock.requests] == first


def test_a_client_request_id_is_recorded_and_found(mock: MockServer, client: openai.OpenAI) -> None:
    generate(client)
    raw = client.images.with_raw_response.generate(
        model="jimeng-4.0", prompt="a cat", n=1, extra_headers={"X-Client-Request-Id": "mine-7"}
    )
    generate(client)
    record = next(r for r in mock.requests if r.client_request_id == "mine-7")
    assert record.request_id == raw.request_id
    admin = f"{mock.url}/__admin/requests"
    for wanted in ("mine-7", raw.request_id):
        found = httpx.get(admin, params={"request_id": wanted}).json()["requests"]
        assert [r["id"] for r in found] == [record.id]
        assert found[0]["request_id"] == raw.request_id
        assert found[0]["client_request_id"] == "mine-7"
    assert httpx.get(admin, params={"request_id": "req_nobody"}).json()["requests"] == []
    page = httpx.get(f"{mock.url}/__admin/").text
    assert str(raw.request_id) in page


def test_ids_are_unique(mock: MockServer, client: openai.OpenAI) -> None:
    with httpx.Client(headers={"Authorization": f"Bearer {mock.api_key}"}) as http:
        ids = [http.get(f"{mock.api_base}/models").headers["x-request-id"] for _ in range(200)]
    assert len(set(ids)) == 200
    assert [r.request_id for r in mock.requests] == ids


def test_assert_requested_names_the_nearest_request_id(
    mock: MockServer, client: openai.OpenAI
) -> None:
    request_id = generate(client)
    with pytest.raises(AssertionError) as raised:
        mock.assert_requested(prompt="a dog")
    assert str(request_id) in str(raised.value)


def test_a_dropped_connection_has_an_id_in_the_journal(
    mock: MockServer, client: openai.OpenAI
) -> None:
    mock.fail_next("disconnect")
    with pytest.raises(openai.APIConnectionError):
        client.images.generate(model="jimeng-4.0", prompt="a cat", n=1)
    record = last(mock)
    assert record.outcome == "dropped"
    assert_id(record.request_id)


def test_journal_ids_stay_in_order(mock: MockServer) -> None:
    ids = [r.id for r in mock.requests]
    assert ids == sorted(ids)


def test_in_proxy_mode_the_upstreams_id_is_sent_and_recorded() -> None:
    body = {"model": "jimeng-4.0", "prompt": "a red fox", "n": 1, "size": "1024x1024"}
    ok = {"created": 1, "data": [{"url": "https://example.com/a.png"}]}
    with (
        HandServer(answering(200, ok, {"x-request-id": "req-upstream-9"})) as up,
        MockServer(upstream=up.api_base) as proxy,
    ):
        answer = post(proxy, body)
        assert answer.headers.get_list("x-request-id") == ["req-upstream-9"]
        assert last(proxy).request_id == "req-upstream-9"
    with (
        HandServer(answering(200, ok)) as up,
        MockServer(upstream=up.api_base) as proxy,
    ):
        answer = post(proxy, body)
        assert_id(answer.headers["x-request-id"])
        assert last(proxy).request_id == answer.headers["x-request-id"]


def test_a_request_that_began_first_stays_first_in_the_journal() -> None:
    journal = Journal(10)
    epoch, first = journal.begin()
    _, second = journal.begin()
    journal.add(_record(second), epoch)  # the quicker, later request ends first
    journal.add(_record(first), epoch)
    assert [r.id for r in journal.records()] == [first, second]
    _, old = journal.begin()
    journal.clear(restart_ids=True)
    journal.add(_record(old), epoch)  # begun before the reset: not recorded
    assert journal.records() == []
    assert journal.begin() == ((epoch[0] + 1, 0), 1)
