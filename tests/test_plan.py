"""`plan()`: how a valid generation request is answered, decided without HTTP. One test per
precedence rule the README states (Faults: "When several apply, ...")."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mockserver.answers.faults import Fault, FaultCatalogue, QueuedFault
from mockserver.answers.matching import compile_json, compile_python
from mockserver.answers.plan import Asked, Plan, plan
from mockserver.answers.stubs import Stub
from mockserver.config import MockConfig
from mockserver.engine.state import MockState
from mockserver.errors import ErrorCatalogue
from mockserver.paths import data_dir

CATALOGUE = FaultCatalogue.from_file(
    data_dir() / "faults.json", ErrorCatalogue.from_file(data_dir() / "errors.json").kinds
)
MAX = CATALOGUE.max_latency_ms
BODY = {"model": "jimeng-4.5", "prompt": "a cat", "n": 4}


def fault(name: str, **options: Any) -> Fault:
    found = CATALOGUE.get(name)
    assert found is not None
    return found.with_options(**options)


def queued(name: str, times: int = 1, **match: Any) -> QueuedFault:
    return QueuedFault(fault(name), times, compile_python(match))


def stub(
    name: str,
    *,
    fault_name: str | None = None,
    delay_ms: int | None = None,
    url_count: int = 0,
    body: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
) -> Stub:
    return Stub(
        name=name,
        match_body=compile_json(body or {}, "match.body"),
        match_headers=compile_json(headers or {}, "match.headers"),
        times=None,
        fault=fault(fault_name, delay_ms=delay_ms) if fault_name else None,
        delay_ms=delay_ms,
        retry_after_ms=None,
        status=200,
        headers={},
        body={"data": []},
        url_count=url_count,
        uses_data=False,
    )


def asked(**changes: Any) -> Asked:
    return Asked(**{"body": BODY, "headers": {}, "n": 4, **changes})


def decide(
    request: Asked, queue: list[QueuedFault] | None = None, stubs: list[Stub] | None = None
) -> Plan:
    return plan(request, queue or [], stubs or [], MAX)


def test_a_plain_request_gets_every_image_it_asked_for_at_once() -> None:
    assert decide(asked()) == Plan(count=4, urls=4)


def test_the_header_fault_wins_over_the_queue_the_stubs_and_the_draw() -> None:
    chosen = decide(
        asked(fault=fault("quota"), chaos_fault=fault("bad_gateway")),
        [queued("rate_limit")],
        [stub("10-any.json", fault_name="content_policy")],
    )

    assert (chosen.fault, chosen.source, chosen.queued, chosen.stub) == (
        fault("quota"),
        "header",
        None,
        None,
    )


def test_the_queue_wins_over_the_stubs_and_the_draw_and_its_oldest_match_first() -> None:
    older, newer = queued("rate_limit", prompt="a cat"), queued("quota")
    chosen = decide(
        asked(chaos_fault=fault("bad_gateway")),
        [queued("server_error", prompt="a dog"), older, newer],
        [stub("10-any.json")],
    )

    assert (chosen.fault, chosen.source, chosen.queued, chosen.stub) == (
        older.fault,
        "queue",
        older,
        None,
    )


def test_a_queued_fault_matches_by_value_type_and_regex_flags() -> None:
    entries = [
        queued("quota", n=4.0),  # 4.0 is not the integer 4
        queued("rate_limit", prompt=re.compile("CAT", re.IGNORECASE)),
    ]

    assert decide(asked(), entries).fault == fault("rate_limit")


def test_a_stub_wins_over_the_draw_in_file_name_order() -> None:
    stubs = [stub("10-dog.json", body={"prompt": "a dog"}), stub("20-cat.json"), stub("30.json")]

    chosen = decide(asked(chaos_fault=fault("bad_gateway")), stubs=stubs)

    assert (chosen.fault, chosen.stub, chosen.source) == (None, stubs[1], "stub")


def test_a_stub_matches_on_headers_too() -> None:
    stubs = [stub("10-header.json", headers={"x-tenant": {"regex": "^blue$"}})]

    assert decide(asked(headers={"x-tenant": "blue"}), stubs=stubs).stub is stubs[0]
    assert decide(asked(headers={"x-tenant": "blue\n"}), stubs=stubs).stub is None


def test_a_stub_fault_answers_with_its_fault() -> None:
    chosen = decide(asked(), stubs=[stub("10.json", fault_name="content_policy")])

    assert (chosen.fault, chosen.source) == (fault("content_policy"), "stub")


def test_the_draw_answers_only_when_nothing_else_does() -> None:
    chosen = decide(asked(chaos_fault=fault("bad_gateway")))

    assert (chosen.fault, chosen.source) == (fault("bad_gateway"), "chaos")


def test_the_delay_is_the_fault_s_own() -> None:
    assert decide(asked(fault=fault("timeout"))).delay_ms == fault("timeout").delay_ms > 0


def test_a_stub_s_own_delay_applies_to_its_canned_answer() -> None:
    assert decide(asked(), stubs=[stub("10.json", delay_ms=250)]).delay_ms == 250


def test_the_latency_header_replaces_the_fault_s_own_delay() -> None:
    assert decide(asked(fault=fault("timeout"), latency_ms=5)).delay_ms == 5
    assert decide(asked(fault=fault("slow"), latency_ms=0)).delay_ms == 0


def test_the_latency_draw_adds_to_any_delay() -> None:
    assert decide(asked(chaos_delay_ms=100)).delay_ms == 100
    assert decide(asked(fault=fault("timeout"), chaos_delay_ms=100)).delay_ms == (
        fault("timeout").delay_ms + 100
    )
    assert decide(asked(latency_ms=5, chaos_delay_ms=100)).delay_ms == 105


def test_the_delay_is_capped_at_the_catalogue_s_maximum() -> None:
    assert decide(asked(latency_ms=MAX * 10)).delay_ms == MAX
    assert decide(asked(latency_ms=MAX, chaos_delay_ms=1)).delay_ms == MAX


@pytest.mark.parametrize(("n", "kept"), [(1, 0), (2, 1), (3, 1), (4, 2), (15, 7)])
def test_a_partial_fault_keeps_half_the_images_rounded_down(n: int, kept: int) -> None:
    chosen = decide(asked(n=n, fault=fault("partial")))

    assert (chosen.count, chosen.urls) == (kept, kept)


def test_a_stub_s_placeholders_may_use_more_urls_than_images() -> None:
    chosen = decide(asked(n=1), stubs=[stub("10.json", url_count=3)])

    assert (chosen.count, chosen.urls) == (1, 3)


def test_the_mock_spends_one_queued_use_and_one_stub_use_per_plan(tmp_path: Path) -> None:
    stub = {"match": {"body": {"prompt": "a dog"}}, "times": 1, "response": {"status": 200}}
    (tmp_path / "10-once.json").write_text(json.dumps(stub))
    state = MockState(MockConfig(fixtures=tmp_path))
    state.fail_next("rate_limit", times=2, prompt="a cat")

    firsts = [state.plan(asked()).source for _ in range(3)]
    dogs = [state.plan(asked(body={**BODY, "prompt": "a dog"})).source for _ in range(2)]

    assert firsts == ["queue", "queue", None]
    assert dogs == ["stub", None]
    assert state.queue.pending() == []
