"""Coverage: what the requests to a mock exercised, counted since start or reset, for the whole
mock and per session, beyond the journal's window; `GET /__admin/coverage` and `merge`."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from mockserver import MockServer
from mockserver.contract.sessions import HEADER
from mockserver.record.coverage import (
    FAULT_SOURCES,
    OTHER_LIMIT,
    OUTCOMES,
    SESSION_LIMIT,
    UNMATCHED_LIMIT,
    Coverage,
    Names,
    Tally,
    merge,
)

SCHEMAS = Path(__file__).parent.parent / "schemas"
KEY = "sk-right-key"
CANNED, THROTTLE, NEVER = "10-canned.json", "20-throttle.json", "30-never.json"


def load(name: str) -> Any:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


ERROR_STATUS = {code: entry["status"] for code, entry in load("errors.json")["errors"].items()}
SIZES = load("sizes.json")
FAULTS = load("faults.json")["faults"]
FIELDS = list(load("images-generations.request.json")["properties"])


def write_stubs(folder: Path) -> Path:
    stubs = {
        CANNED: {
            "match": {"body": {"prompt": "canned"}},
            "response": {"status": 200, "body": {"created": 1, "data": "{{data}}"}},
        },
        THROTTLE: {"match": {"body": {"prompt": "throttle"}}, "fault": "rate_limit"},
        NEVER: {"match": {"body": {"prompt": "never sent"}}, "fault": "quota"},
    }
    for name, stub in stubs.items():
        (folder / name).write_text(json.dumps(stub), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    with MockServer(fixtures=write_stubs(tmp_path_factory.mktemp("stubs")), api_keys=[KEY]) as m:
        yield m


@pytest.fixture
def mock(server: MockServer) -> MockServer:
    server.reset()
    return server


@dataclass
class Send:
    """One request of the mix, and what it should be counted as."""

    body: dict[str, Any]
    error: str | None = None  # the error code it is answered with
    fault: str | None = None
    source: str | None = None  # where the fault comes from
    stub: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    key: str = KEY
    queue: str | None = None  # a fault to queue just before it
    warnings: tuple[str, ...] = ()
    session: str | None = None
    read: bool = True  # whether the mock reads its body (not after a 401)

    @property
    def valid(self) -> bool:
        """A valid generation request: answered, or by a fault or stub."""
        return self.error is None or self.fault is not None

    @property
    def pair(self) -> str | None:
        if not self.valid or "size" in self.body:
            return None
        ratio = self.body.get("ratio", SIZES["defaults"]["ratio"])
        return f"{ratio} x {self.body.get('resolution', SIZES['defaults']['resolution'])}"

    @property
    def unmatched(self) -> bool:
        return self.valid and self.fault is None and self.stub is None


def body(prompt: str, model: str = "jimeng-4.0", **more: Any) -> dict[str, Any]:
    return {"model": model, "prompt": prompt, "n": 1, **more}


MIX = [
    Send(body("plain")),
    Send(body("paired", "jimeng-4.5", ratio="16:9", resolution="4k"), session="S1"),
    Send(body("sized", size="1024x1024")),
    Send(
        body("sized and paired", size="1024x1024", ratio="4:3"),
        warnings=("size_overrides_ratio",),
        session="S1",
    ),
    Send(body("too many", n=99), error="invalid_value"),
    Send(body("wrong key"), error="invalid_api_key", key="sk-wrong-key", read=False),
    Send(
        body("header fault", ratio="3:4"),
        error="rate_limit_exceeded",
        fault="rate_limit",
        source="header",
        headers={"X-Mock-Fault": "rate_limit"},
        session="S1",
    ),
    Send(body("queued"), error="insufficient_quota", fault="quota", source="queue", queue="quota"),
    Send(body("canned", resolution="1k"), stub=CANNED, session="S1"),
    Send(
        body("throttle"),
        error="rate_limit_exceeded",
        fault="rate_limit",
        source="stub",
        stub=THROTTLE,
    ),
    Send(body("extra field", foo=1), warnings=("unknown_field",)),
    Send(body("bad model", "no-such-model"), error="model_not_found"),
]


def send(mock: MockServer, item: Send) -> tuple[int, str | None]:
    """The status the client saw, and the answer's x-request-id."""
    if item.queue:
        mock.fail_next(item.queue)
    headers = dict(item.headers)
    if item.session:
        headers[HEADER] = item.session
    with openai.OpenAI(base_url=mock.api_base, api_key=item.key, max_retries=0) as client:
        try:
            rest = {k: v for k, v in item.body.items() if k not in ("model", "prompt")}
            raw = client.images.with_raw_response.generate(
                model=item.body["model"],
                prompt=item.body["prompt"],
                extra_body=rest,
                extra_headers=headers,
            )
        except openai.APIStatusError as exc:
            status, code, rid = exc.status_code, exc.code, exc.request_id
        else:
            status, code, rid = raw.status_code, None, raw.request_id
    assert code == item.error, item
    return status, rid


def expected(items: list[Send], statuses: list[int], ids: list[str | None]) -> dict[str, Any]:
    """The counts of a report on `items`, as computed here from what was sent."""
    fields: Counter[str] = Counter()
    models: Counter[str] = Counter()
    for item in items:
        if item.read:
            fields.update(list(item.body))
            models[item.body["model"]] += 1
    unmatched = [
        {
            "id": int(rid.split("_")[1]),
            "request_id": rid,
            "session": item.session or "default",
            "prompt": item.body["prompt"],
        }
        for item, rid in zip(items, ids, strict=True)
        if item.unmatched and rid is not None
    ]
    return {
        "requests": len(items),
        "outcomes": {"answered": len(items), "dropped": 0, "client_disconnected": 0},
        "statuses": dict(sorted(Counter(str(s) for s in statuses).items())),
        "fault_sources": {
            source: sum(item.source == source for item in items) for source in FAULT_SOURCES
        },
        "errors": Counter(item.error for item in items if item.error),
        "faults": Counter(item.fault for item in items if item.fault),
        "stubs": Counter(item.stub for item in items if item.stub),
        "fields": fields,
        "models": models,
        "pairs": Counter(item.pair for item in items if item.pair),
        "warnings": Counter(code for item in items for code in item.warnings),
        "unmatched": len(unmatched),
        "unmatched_requests": unmatched,
    }


LISTED_NAMES = {
    "errors": list(ERROR_STATUS),
    "faults": list(FAULTS),
    "stubs": [CANNED, THROTTLE, NEVER],
    "fields": FIELDS,
    "models": ["jimeng-4.0", "jimeng-4.5"],
    "pairs": [f"{r} x {res}" for r, row in SIZES["table"].items() for res in row],
    "warnings": sorted(load("warnings.json")["warnings"]),
}


def assert_report(report: dict[str, Any], wanted: dict[str, Any]) -> None:
    for kind in ("requests", "outcomes", "statuses", "fault_sources", "unmatched"):
        assert report[kind] == wanted[kind], kind
    assert report["unmatched_requests"] == wanted["unmatched_requests"]
    for kind, names in LISTED_NAMES.items():
        counts = wanted[kind]
        unknown = {name: counts[name] for name in sorted(set(counts) - set(names))}
        assert list(report[kind])[: len(names)] == names, kind  # every name, in order
        if kind in ("fields", "models"):  # names the mock does not know are counted apart
            assert report[f"unknown_{kind}"] == unknown, kind
            unknown = {}
        assert report[kind] == {name: counts.get(name, 0) for name in names} | unknown, kind
        assert report["totals"][kind] == {
            "used": sum(1 for n in report[kind] if counts.get(n)),
            "of": len(names) + len(unknown),
        }
    assert report["other"] == {"fields": 0, "models": 0}


def run_mix(mock: MockServer) -> tuple[list[int], list[str | None]]:
    statuses, ids = [], []
    for item in MIX:
        status, rid = send(mock, item)
        statuses.append(status)
        ids.append(rid)
    return statuses, ids


def test_a_mix_of_requests_is_counted(mock: MockServer) -> None:
    started = time.time()
    statuses, ids = run_mix(mock)
    # What the client saw agrees with the catalogue.
    assert statuses == [ERROR_STATUS[i.error] if i.error else 200 for i in MIX]
    report = mock.coverage()
    assert report["session"] is None
    assert report["since"] <= started
    assert_report(report, expected(MIX, statuses, ids))
    # The same mix seen per session.
    for session in ("S1", "default"):
        keep = [(i.session or "default") == session for i in MIX]
        part = mock.coverage(session)
        assert part["session"] == session
        wanted = expected(
            [i for i, k in zip(MIX, keep, strict=True) if k],
            [s for s, k in zip(statuses, keep, strict=True) if k],
            [r for r, k in zip(ids, keep, strict=True) if k],
        )
        assert_report(part, wanted)
    assert mock.coverage("nobody")["requests"] == 0


def validator(document: dict[str, Any]) -> Draft202012Validator:
    """A validator of the document's Coverage schema, its `$ref`s resolved in the document."""
    uri = "urn:jimeng-mock:openapi"
    registry: Registry[Any] = Registry().with_resource(
        uri, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    return Draft202012Validator({"$ref": f"{uri}#/components/schemas/Coverage"}, registry=registry)


def test_reports_validate_against_the_openapi_document(mock: MockServer) -> None:
    document = httpx.get(mock.url + "/openapi.json").json()
    check = validator(document)
    empty = mock.coverage()
    check.validate(empty)
    run_mix(mock)
    for report in (mock.coverage(), mock.coverage("S1"), merge(mock.coverage(), empty)):
        errors = [e.message for e in check.iter_errors(report)]
        assert errors == []
    # The validator does refuse a broken report.
    assert list(check.iter_errors({**empty, "requests": -1}))
    assert list(check.iter_errors({**empty, "surprise": 1}))


def test_the_admin_route_answers_the_report(mock: MockServer) -> None:
    run_mix(mock)
    for query, session in (("", None), ("?session=S1", "S1"), ("?session=default", "default")):
        answer = httpx.get(mock.url + "/__admin/coverage" + query)
        assert answer.status_code == 200
        assert answer.json() == mock.coverage(session)
    refused = httpx.get(mock.url + "/__admin/coverage?other=1")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "unknown_parameter"


def test_a_reset_zeroes_the_counts(mock: MockServer) -> None:
    run_mix(mock)
    before = mock.coverage()
    s1 = sum(1 for i in MIX if i.session == "S1")
    assert mock.coverage("S1")["requests"] == s1
    mock.reset("S1")
    assert mock.coverage("S1")["requests"] == 0
    assert mock.coverage("default")["requests"] == len(MIX) - s1
    assert mock.coverage() == before  # the whole mock's counters are of every session
    mock.reset()
    after = mock.coverage()
    assert after["since"] > before["since"]
    assert after["requests"] == after["unmatched"] == 0
    assert after["unknown_fields"] == after["unknown_models"] == {}
    for kind in ("outcomes", "fault_sources", *LISTED_NAMES, "other"):
        assert set(after[kind].values()) == {0}, kind
        assert list(after[kind])[: len(LISTED_NAMES.get(kind, ()))] == LISTED_NAMES.get(kind, [])
    assert after["statuses"] == {}
    assert after["unmatched_requests"] == []
    assert mock.coverage("default")["requests"] == 0


def test_coverage_counts_beyond_the_journal() -> None:
    with MockServer(journal_size=2) as mock:
        prompts = [f"prompt {i}" for i in range(5)]
        with openai.OpenAI(base_url=mock.api_base, api_key=mock.api_key, max_retries=0) as sdk:
            for prompt in prompts:
                sdk.images.generate(model="jimeng-4.0", prompt=prompt, n=1)
        assert [r.body["prompt"] for r in mock.records()] == prompts[-2:]
        report = mock.coverage()
        assert report["requests"] == report["unmatched"] == len(prompts)
        assert report["models"]["jimeng-4.0"] == len(prompts)
        assert [r["prompt"] for r in report["unmatched_requests"]] == prompts


def test_only_the_newest_unmatched_requests_are_named(mock: MockServer) -> None:
    sent = UNMATCHED_LIMIT + 5
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}) as http:
        for i in range(sent):
            answer = http.post(mock.api_base + "/images/generations", json=body(f"p{i}"))
            assert answer.status_code == 200
    report = mock.coverage()
    assert report["unmatched"] == sent
    named = report["unmatched_requests"]
    assert [r["prompt"] for r in named] == [f"p{i}" for i in range(sent - UNMATCHED_LIMIT, sent)]
    assert [r["id"] for r in named] == list(range(sent - UNMATCHED_LIMIT + 1, sent + 1))


def test_unknown_names_past_the_limit_are_counted_together(mock: MockServer) -> None:
    names = [f"extra_{i:03d}" for i in range(OTHER_LIMIT + 50)]
    chunks = [names[i : i + 50] for i in range(0, len(names), 50)]
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}) as http:
        for chunk in chunks:
            sent = {**body("extra"), **dict.fromkeys(chunk, 1)}
            answer = http.post(mock.api_base + "/images/generations", json=sent)
            assert answer.status_code == 200
        # Unknown models too: each is a 404, counted by name up to the limit.
        models = [f"model-{i:03d}" for i in range(OTHER_LIMIT + 3)]
        for model in models:
            answer = http.post(mock.api_base + "/images/generations", json=body("m", model))
            assert answer.status_code == 404
        # A name already counted is counted by name again.
        http.post(mock.api_base + "/images/generations", json=body("again", extra_000=1))
    report = mock.coverage()
    fields = report["fields"]
    assert list(fields) == FIELDS
    unknown = report["unknown_fields"]
    first = names[:OTHER_LIMIT]
    assert unknown == {name: 2 if name == "extra_000" else 1 for name in first}
    assert report["other"]["fields"] == len(names) - OTHER_LIMIT
    assert fields["model"] == len(chunks) + len(models) + 1
    assert list(report["models"]) == LISTED_NAMES["models"]
    assert report["unknown_models"] == dict.fromkeys(models[:OTHER_LIMIT], 1)
    assert report["other"]["models"] == len(models) - OTHER_LIMIT
    assert report["warnings"]["unknown_field"] == len(names) + 1
    assert report["totals"]["fields"]["of"] == len(FIELDS)
    assert report["totals"]["models"] == {"used": 1, "of": 2}  # jimeng-4.5, by "again"


def test_a_dropped_connection_is_counted(mock: MockServer) -> None:
    with (
        openai.OpenAI(base_url=mock.api_base, api_key=KEY, max_retries=0) as sdk,
        pytest.raises(openai.APIConnectionError),
    ):
        sdk.images.generate(
            model="jimeng-4.0", prompt="gone", n=1, extra_headers={"X-Mock-Fault": "disconnect"}
        )
    deadline = time.monotonic() + 5
    while mock.coverage()["requests"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    report = mock.coverage()
    assert report["requests"] == 1
    assert report["outcomes"] == {"answered": 0, "dropped": 1, "client_disconnected": 0}
    assert report["statuses"] == {"none": 1}
    assert report["faults"]["disconnect"] == 1
    assert report["fault_sources"]["header"] == 1
    assert report["unmatched"] == 0


# ---------------------------------------------------------------------------- merge


NAMES = Names(
    errors=("e1", "e2"),
    faults=("f1",),
    fields=("model", "prompt"),
    models=("m1",),
    pairs=("1:1 x 1k",),
    warnings=("w1",),
)


def counted(id: int, session: str = "default", **fields: Any) -> Tally:
    values: dict[str, Any] = {
        "id": id,
        "body": {"model": "m1", "prompt": f"p{id}"},
        "status": 200,
        "session": session,
    }
    return Tally(**{**values, **fields})


def report_of(stubs: list[str], *tallies: Tally, session: str | None = None) -> dict[str, Any]:
    coverage = Coverage(NAMES, lambda: stubs)
    for one in tallies:
        coverage.count(one)
    return coverage.report(session)


def test_merge_adds_two_reports() -> None:
    a = report_of(
        ["s1.json"],
        counted(1, body={"model": "m1", "prompt": "x", "odd": 1}, pair="1:1 x 1k", unmatched=True),
        counted(2, status=400, error="e1"),
        counted(3, stub="s1.json", pair="1:1 x 1k"),
    )
    b = report_of(
        ["s1.json", "s2.json"],
        counted(1, body={"model": "m9", "prompt": "y"}, status=404, error="e2"),
        counted(
            2,
            status=None,
            fault="f1",
            outcome="dropped",
            pair="1:1 x 1k",
            fault_source="header",
        ),
        counted(3, warnings=("w1",), pair="2:1 x 9k", unmatched=True),
    )
    merged = merge(a, b)
    assert merged["requests"] == 6
    assert merged["outcomes"] == {"answered": 5, "dropped": 1, "client_disconnected": 0}
    assert merged["statuses"] == {"200": 3, "400": 1, "404": 1, "none": 1}
    assert merged["errors"] == {"e1": 1, "e2": 1}
    assert merged["faults"] == {"f1": 1}
    assert merged["fault_sources"] == {"header": 1, "queue": 0, "stub": 0, "chaos": 0}
    assert merged["stubs"] == {"s1.json": 1, "s2.json": 0}
    assert merged["fields"] == {"model": 6, "prompt": 6}
    assert merged["unknown_fields"] == {"odd": 1}
    assert merged["models"] == {"m1": 5}
    assert merged["unknown_models"] == {"m9": 1}
    assert merged["pairs"] == {"1:1 x 1k": 3, "2:1 x 9k": 1}
    assert merged["warnings"] == {"w1": 1}
    assert merged["unmatched"] == 2
    assert [r["prompt"] for r in merged["unmatched_requests"]] == ["x", "p3"]
    assert merged["other"] == {"fields": 0, "models": 0}
    assert merged["since"] == min(a["since"], b["since"])
    assert merged["session"] is None
    assert merged["totals"]["stubs"] == {"used": 1, "of": 2}
    assert merged["totals"]["errors"] == {"used": 2, "of": 2}
    assert merged["totals"]["pairs"] == {"used": 2, "of": 2}
    # Neither input is changed, and merging from nothing is a copy.
    assert a["requests"] == b["requests"] == 3
    assert merge(None, a) == a
    assert merge(None, a) is not a


def test_merge_keeps_a_shared_session_and_the_newest_unmatched() -> None:
    many = [counted(i, "S", unmatched=True) for i in range(1, UNMATCHED_LIMIT + 1)]
    a = report_of([], *many, session="S")
    b = report_of([], counted(99, "S", unmatched=True), session="S")
    merged = merge(a, b)
    assert merged["session"] == "S"
    assert merged["unmatched"] == UNMATCHED_LIMIT + 1
    ids = [r["id"] for r in merged["unmatched_requests"]]
    assert ids == [*range(2, UNMATCHED_LIMIT + 1), 99]
    assert merge(a, report_of([], session="T"))["session"] is None


def test_merge_adds_the_others() -> None:
    def with_unknown(prefix: str) -> dict[str, Any]:
        body = {"model": "m1", **{f"{prefix}{i}": 1 for i in range(OTHER_LIMIT + 7)}}
        return report_of([], counted(1, body=body))

    a, b = with_unknown("a"), with_unknown("b")
    assert a["other"]["fields"] == 7
    merged = merge(a, b)
    assert merged["other"] == {"fields": 14, "models": 0}
    assert sum(1 for name in merged["unknown_fields"] if name[0] in "ab") == 2 * OTHER_LIMIT


def test_merged_per_session_reports_add_up_to_the_whole(mock: MockServer) -> None:
    run_mix(mock)
    whole = mock.coverage()
    merged = merge(mock.coverage("S1"), mock.coverage("default"))
    for kind in ("unmatched_requests", "since", "session"):
        del whole[kind], merged[kind]
    assert merged == whole


def test_outcomes_list_every_outcome() -> None:
    assert report_of([])["outcomes"] == dict.fromkeys(OUTCOMES, 0)


def test_a_chaos_fault_is_counted_as_one() -> None:
    with (
        MockServer(fault_rate=1.0, fault_names=["quota"], seed=1) as mock,
        openai.OpenAI(base_url=mock.api_base, api_key=mock.api_key, max_retries=0) as sdk,
    ):
        for _ in range(3):
            with pytest.raises(openai.RateLimitError):
                sdk.images.generate(model="jimeng-4.0", prompt="chaos", n=1)
        report = mock.coverage()
    assert report["fault_sources"] == {"header": 0, "queue": 0, "stub": 0, "chaos": 3}
    assert report["faults"]["quota"] == 3
    assert report["errors"]["insufficient_quota"] == 3
    assert report["unmatched"] == 0


def test_only_the_newest_sessions_have_counters() -> None:
    coverage = Coverage(NAMES, list)
    limit = SESSION_LIMIT
    coverage.count(counted(1, "first"))
    for i in range(limit - 1):
        coverage.count(counted(i + 2, f"s{i}"))
    coverage.count(counted(limit + 1, "first"))  # used again: the newest now
    coverage.count(counted(limit + 2, "one too many"))
    assert coverage.report("first")["requests"] == 2
    assert coverage.report("s0")["requests"] == 0  # the least recently used went
    assert coverage.report("s1")["requests"] == 1
    assert coverage.report("one too many")["requests"] == 1
    assert coverage.report()["requests"] == limit + 2


def test_made_up_names_of_any_length_keep_coverage_small(mock: MockServer) -> None:
    """Unknown field and model names over 200 characters are counted under `other`, so 100
    requests each with a new million-character name leave coverage, and its page, small."""
    huge = "f" * 1_000_000
    with httpx.Client(base_url=mock.url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        for index in range(20):
            body = {"model": "jimeng-4.0", "prompt": "a cat", "n": 1, f"{index}{huge}": 1}
            assert http.post("/v1/images/generations", json=body).status_code == 200
            model = {"model": f"{index}{huge}", "prompt": "a cat", "n": 1}
            assert http.post("/v1/images/generations", json=model).status_code == 404
        http.post("/v1/images/generations", json={"model": "m" * 200, "prompt": "a", "n": 1})
        served = http.get("/__admin/coverage")
        page = http.get("/__admin/")
    report = served.json()
    assert report["unknown_fields"] == {}
    assert report["unknown_models"] == {"m" * 200: 1}
    assert report["other"] == {"fields": 20, "models": 20}
    assert len(served.content) < 50_000
    assert len(page.content) < 2_000_000  # the page shows the journal's excerpts, not the names
