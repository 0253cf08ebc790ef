"""What a hostile tester sends cannot grow the journal past its bounds, nor break an answer.

The journal keeps at most `journal_size` records and `journal_mb` MiB of them (its own
estimate); a long string of a body is kept as an excerpt, long text elsewhere clipped, and
`GET /__admin/requests` is streamed and pages with `?after=`. Numbers too large for a double
are refused, so every admin answer stays JSON. Over a real socket unless the test says not.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from typing import Any

import httpx
import pytest

from mockserver import MockConfig, MockServer
from mockserver.answers.matching import compile_python
from mockserver.cli import build_parser, config_from
from mockserver.config import DEFAULT_JOURNAL_MB
from mockserver.errors import ConfigError
from mockserver.record.journal import (
    DEFAULT_MAX_BYTES,
    EXCERPT_LENGTH,
    MIB,
    WHOLE_BODY,
    ContractWarning,
    Journal,
    RequestRecord,
    as_recorded,
    bounded,
    excerpt,
)
from mockserver.record.verify import assert_requested, problems
from mockserver.web.admin import STREAM_CHUNK, _journal_chunks

GENERATIONS = "/v1/images/generations"
BODY = {"model": "jimeng-4.0", "prompt": "a cat", "n": 1, "size": "1024x1024"}
TIMEOUT = httpx.Timeout(30.0)


def data_uri(length: int, tag: str = "") -> str:
    """A `data:image/png;base64,` URI of about `length` characters, its payload led by `tag`."""
    head = "data:image/png;base64," + base64.b64encode(tag.encode()).decode().rstrip("=")
    return head + "A" * (length - len(head))


def post(
    mock: MockServer,
    body: Any,
    http: httpx.Client | None = None,
    headers: dict[str, str] | None = None,
) -> int:
    """POST `body` to the generations route (on `http`, if given); its status."""
    if http is None:
        with httpx.Client(timeout=TIMEOUT) as client:
            return post(mock, body, client, headers)
    answer = http.post(
        mock.api_base + "/images/generations",
        json=body,
        headers={"Authorization": f"Bearer {mock.api_key}", **(headers or {})},
    )
    return answer.status_code


def strict_json(text: str) -> Any:
    """JSON as a strict parser reads it: NaN, Infinity and -Infinity are errors."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} in an admin answer")

    return json.loads(text, parse_constant=refuse)


def admin_requests(mock: MockServer, **query: Any) -> Any:
    answer = httpx.get(mock.url + "/__admin/requests", params=query, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return strict_json(answer.text)


# ------------------------------------------------------------------------------ excerpts


def test_a_long_string_of_a_body_is_kept_as_an_excerpt(jimeng_mock: MockServer) -> None:
    image = data_uri(200_000, "one")
    prompt = "a lighthouse at dusk, " * 100  # 2,200 characters: valid, and long
    assert post(jimeng_mock, {**BODY, "prompt": prompt, "image": [image, "https://x.test/a.png"]})

    (record,) = jimeng_mock.requests
    assert record.status == 200
    assert record.cut == ("prompt", "image[0]")
    assert record.body["image"] == [
        {
            "$excerpt": image[:EXCERPT_LENGTH],
            "length": 200_000,
            "sha256": hashlib.sha256(image.encode()).hexdigest(),
        },
        "https://x.test/a.png",
    ]
    assert record.body["prompt"] == excerpt(prompt)
    assert record.body["model"] == "jimeng-4.0"
    (listed,) = admin_requests(jimeng_mock)["requests"]
    assert listed["body"] == record.body
    assert listed["cut"] == ["prompt", "image[0]"]


def test_long_text_outside_the_body_is_clipped(jimeng_mock: MockServer) -> None:
    """Header values and error messages that echo what was sent are cut to an excerpt too."""
    model = "m" * 50_000
    assert post(jimeng_mock, {**BODY, "model": model}, headers={"X-Long": "v" * 5_000}) == 404

    (record,) = jimeng_mock.requests
    assert record.error == "model_not_found"
    assert record.error_message is not None
    assert re.fullmatch(
        r"The model 'm{245}… \[50,\d{3} characters, sha256 [0-9a-f]{64}\]", record.error_message
    )
    header = record.headers["x-long"]
    sha = hashlib.sha256(b"v" * 5_000).hexdigest()
    assert header == "v" * EXCERPT_LENGTH + f"… [5,000 characters, sha256 {sha}]"
    assert record.body["model"] == excerpt(model)


def test_an_unchanged_plain_record_is_kept_as_it_is() -> None:
    """In-process: a plain request costs the journal no copy, only its estimate."""
    record = _record(1)
    kept, size = bounded(record, DEFAULT_MAX_BYTES)

    assert kept is record
    assert 1_000 < size < 4_000


def test_long_keys_many_headers_and_warnings_are_cut_and_counted() -> None:
    """In-process (the contract itself names at most 100 warnings, the server's parser
    limits what headers can be): the journal's own caps."""
    key = "k" * 3_000
    warnings = tuple(ContractWarning("unknown_field", f"f{i}", "w" * 2_000) for i in range(150))
    headers = {f"x-h{i}": "v" for i in range(250)}
    journal = Journal(10)
    journal.add(
        _record(1, body={key: 1}, warnings=warnings, headers=headers), journal.current("default")
    )

    (record,) = journal.records()
    (name,) = record.body
    assert name.startswith("k" * EXCERPT_LENGTH + "… [3,000 characters, sha256 ")
    assert record.cut == (name,)
    assert (len(record.warnings), record.warnings_dropped) == (100, 50)
    assert all(len(w.message) < 400 for w in record.warnings)
    assert (len(record.headers), record.headers_dropped) == (100, 150)
    assert "50 more warning(s), which the journal did not keep" in problems([record], ())[-1]


def test_a_body_too_large_for_the_journal_is_kept_as_the_excerpt_of_its_json() -> None:
    """In-process, with a small bound: a body of many small values, which no excerpt of a
    string makes small, stands as the excerpt of its compact JSON."""
    body = {**BODY, "user": ["x" * 100] * 20_000}
    journal = Journal(10, max_bytes=MIB)
    journal.add(_record(1, body=body), journal.current("default"))

    (record,) = journal.records()
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    assert record.body == excerpt(text)
    assert record.cut == (WHOLE_BODY,)
    assert journal.bytes < 10_000
    with pytest.raises(AssertionError) as raised:
        assert_requested([record], compile_python({"model": "jimeng-4.0"}))
    assert "the body was too large for the journal" in str(raised.value)
    assert f"{len(text):,} characters, sha256 {hashlib.sha256(text.encode()).hexdigest()}" in str(
        raised.value
    )


# ------------------------------------------------------------------------------ assert_requested


def test_assert_requested_compares_a_cut_value_by_its_excerpt(jimeng_mock: MockServer) -> None:
    image = data_uri(300_000, "two")
    post(jimeng_mock, {**BODY, "image": [image]})

    jimeng_mock.assert_requested(1, image=[image])
    jimeng_mock.assert_requested(image=[as_recorded(image)])
    jimeng_mock.assert_requested(image=lambda got: got[0]["length"] == len(image))

    other = image[:-1] + "B"  # the same excerpt's head, another string
    with pytest.raises(AssertionError) as raised:
        jimeng_mock.assert_requested(image=[other])
    message = str(raised.value)
    sha = hashlib.sha256(image.encode()).hexdigest()
    assert f"field image[0] was cut in the journal (300,000 characters, sha256 {sha})" in message
    assert "match on its length or digest instead" in message


def test_a_regex_never_matches_a_cut_string(jimeng_mock: MockServer) -> None:
    """A regex sees the excerpt, an object, so it cannot match part of a string it lacks."""
    prompt = "a lighthouse " * 150 + "at dusk"
    post(jimeng_mock, {**BODY, "prompt": prompt})

    with pytest.raises(AssertionError) as raised:
        jimeng_mock.assert_requested(prompt=re.compile("at dusk$"))
    assert "field prompt was cut in the journal (1,957 characters, sha256 " in str(raised.value)
    jimeng_mock.assert_requested(prompt=prompt)


# ------------------------------------------------------------------------------ the bounds


def test_1_mb_data_uris_leave_a_small_journal_and_a_small_answer(
    jimeng_mock: MockServer,
) -> None:
    """60 requests of a 1 MB image each: the journal keeps them all, in kilobytes."""
    with httpx.Client(timeout=TIMEOUT) as http:
        for index in range(60):
            image = data_uri(1_000_000, f"request {index}")
            assert post(jimeng_mock, {**BODY, "image": [image]}, http) == 200

    journal = jimeng_mock.state.journal
    assert len(journal) == 60
    assert journal.bytes < 60 * 5_000
    answer = httpx.get(jimeng_mock.url + "/__admin/requests", timeout=TIMEOUT)
    assert len(answer.content) < 60 * 3_000
    listed = strict_json(answer.text)
    assert listed["journal_bytes"] == journal.bytes
    assert all(r["cut"] == ["image[0]"] for r in listed["requests"])


def test_long_integers_are_kept_as_excerpts_and_counted(jimeng_mock: MockServer) -> None:
    """Bodies of 200 integers of 4,300 digits (JSON allows no longer): each integer is kept
    as the excerpt of its digits, so 40 such requests leave a small journal and a small
    answer; an integer of 1,024 digits is kept whole."""
    huge = int("7" * 4300)
    with httpx.Client(timeout=TIMEOUT) as http:
        for index in range(40):
            body = {**BODY, "prompt": f"request {index}", "x": [huge] * 200}
            assert post(jimeng_mock, body, http) == 200
        edge = {**BODY, "prompt": "edge", "x": [10**1024 - 1, -(10**1024)]}
        assert post(jimeng_mock, edge, http) == 200

    journal = jimeng_mock.state.journal
    assert len(journal) == 41
    assert journal.bytes < 41 * 200 * 1_000
    first, last = journal.records()[0], journal.records()[-1]
    assert first.body["x"][0] == excerpt(str(huge))
    assert first.cut[:2] == ("x[0]", "x[1]")
    assert last.body["x"][0] == 10**1024 - 1
    assert last.body["x"][1] == excerpt(str(-(10**1024)))
    answer = httpx.get(jimeng_mock.url + "/__admin/requests", timeout=TIMEOUT)
    assert len(answer.content) < 41 * 200 * 600
    jimeng_mock.assert_requested(1, x=[huge] * 200, prompt="request 0")


def test_the_journal_keeps_within_its_megabytes(jimeng_mock: MockServer) -> None:
    """Bodies of 1,000 strings of 900 characters (none cut): about 1 MB each in memory, so
    the default 32 MiB holds some 34 of 45, the newest."""
    sent = 45
    with httpx.Client(timeout=TIMEOUT) as http:
        for index in range(sent):
            body = {**BODY, "prompt": f"request {index}", "user": ["u" * 900] * 1_000}
            assert post(jimeng_mock, body, http) == 200

    journal = jimeng_mock.state.journal
    records = journal.records()
    assert journal.max_bytes == DEFAULT_JOURNAL_MB * MIB == DEFAULT_MAX_BYTES
    assert 0 < journal.bytes <= journal.max_bytes
    assert journal.bytes > journal.max_bytes - 2 * MIB  # full to within two records
    assert 25 < len(records) < sent
    assert journal.dropped == sent - len(records)
    assert [r.body["prompt"] for r in records][-1] == f"request {sent - 1}"
    assert [r.id for r in records] == list(range(sent - len(records) + 1, sent + 1))
    listed = admin_requests(jimeng_mock, limit=1)
    assert (listed["journal_bytes"], listed["dropped"]) == (journal.bytes, journal.dropped)
    assert listed["journal_mb"] == DEFAULT_JOURNAL_MB


def test_one_request_cannot_push_the_others_out(jimeng_mock: MockServer) -> None:
    """300,000 empty arrays (900 KB of JSON) would take some 20 MB in memory, most of the
    journal: no record may take more than an eighth of it, so its body is its JSON's
    excerpt, and the requests before it stay."""
    for index in range(5):
        post(jimeng_mock, {**BODY, "prompt": f"request {index}"})
    hostile = {**BODY, "user": [[]] * 300_000}
    assert post(jimeng_mock, hostile) == 200

    records = jimeng_mock.requests
    assert [r.body.get("prompt") for r in records[:5]] == [f"request {i}" for i in range(5)]
    assert records[-1].cut == (WHOLE_BODY,)
    text = json.dumps(hostile, ensure_ascii=False, separators=(",", ":"))
    assert records[-1].body == excerpt(text)
    assert jimeng_mock.state.journal.bytes < 50_000


def test_journal_mb_is_an_option_that_reaches_the_journal() -> None:
    with pytest.raises(ConfigError, match="journal MB must be a whole number of at least 1"):
        MockConfig(journal_mb=0)
    args = build_parser().parse_args(["--journal-mb", "5"])
    assert config_from(args).journal_mb == 5
    assert build_parser().parse_args([]).journal_mb == DEFAULT_JOURNAL_MB

    with MockServer(journal_mb=1) as mock, httpx.Client(timeout=TIMEOUT) as http:
        assert mock.state.journal.max_bytes == MIB, (
            "MockState must build its Journal with config.journal_mb (mockserver/engine/state.py)"
        )
        # About 100 KB each in memory, under an eighth of 1 MiB: some 10 fit.
        for index in range(15):
            body = {**BODY, "prompt": f"request {index}", "user": ["u" * 900] * 100}
            assert post(mock, body, http) == 200
        kept = [r.body["prompt"] for r in mock.requests]
        assert 5 < len(kept) < 15
        assert kept == [f"request {i}" for i in range(15 - len(kept), 15)]
        assert mock.state.journal.bytes <= MIB
        # About 1 MB: more than an eighth of the journal, so only its JSON's excerpt is kept.
        assert post(mock, {**BODY, "user": ["u" * 900] * 1_000}, http) == 200
        assert mock.last_request is not None
        assert mock.last_request.cut == (WHOLE_BODY,)
        assert len(mock.requests) == len(kept) + 1
        assert admin_requests(mock)["journal_mb"] == 1


# ------------------------------------------------------------------------------ paging


def test_the_journal_pages_with_after_and_limit(jimeng_mock: MockServer) -> None:
    for index in range(5):
        post(jimeng_mock, {**BODY, "n": 0 if index == 3 else 1})

    def ids(**query: Any) -> tuple[list[int], int]:
        listed = admin_requests(jimeng_mock, **query)
        assert listed["count"] == len(listed["requests"])
        return [r["id"] for r in listed["requests"]], listed["next"]

    assert ids() == ([1, 2, 3, 4, 5], 5)
    assert ids(limit=2) == ([4, 5], 5)
    assert ids(after=2) == ([3, 4, 5], 5)
    assert ids(after=0, limit=2) == ([1, 2], 2)
    assert ids(after=2, limit=1) == ([3], 3)
    assert ids(after=5) == ([], 5)
    assert ids(after=1, status=200) == ([2, 3, 5], 5)
    assert ids(after=1, error="invalid_value") == ([4], 4)
    bad = httpx.get(jimeng_mock.url + "/__admin/requests", params={"after": "-1"})
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "after")


def test_the_journal_is_streamed_in_chunks(jimeng_mock: MockServer) -> None:
    """Each record is serialized on its own: no chunk holds much more than STREAM_CHUNK."""
    records = [_record(i, body={**BODY, "user": "u" * 1_000}) for i in range(1, 301)]

    async def collect() -> list[bytes]:
        return [chunk async for chunk in _journal_chunks(records, {"count": 300})]

    chunks = asyncio.run(collect())
    assert len(chunks) >= 4
    assert max(map(len, chunks)) < STREAM_CHUNK + 3_000
    whole = strict_json(b"".join(chunks).decode())
    assert [r["id"] for r in whole["requests"]] == list(range(1, 301))
    assert whole["count"] == 300

    post(jimeng_mock, BODY)
    answer = httpx.get(jimeng_mock.url + "/__admin/requests")
    assert answer.headers["transfer-encoding"] == "chunked"
    assert answer.headers["content-type"] == "application/json"


# ------------------------------------------------------------------------------ non-finite numbers

NON_FINITE = [
    '{"model": "jimeng-4.0", "prompt": "a cat", "n": 1e999}',
    '{"model": "jimeng-4.0", "prompt": "a cat", "n": -1e999}',
    '{"model": "jimeng-4.0", "prompt": "a cat", "n": 1, "user": {"a": [0.5, 1E400]}}',
    '{"model": "jimeng-4.0", "prompt": "a cat", "n": 1, "quality": -' + "9" * 400 + ".0}",
    '{"model": "jimeng-4.0", "prompt": "a cat", "n": 1, "x": [[[NaN]]]}',
    '{"model": "jimeng-4.0", "prompt": "a cat", "n": 1, "x": -Infinity}',
]


@pytest.mark.parametrize(
    "raw", NON_FINITE, ids=["inf-n", "minus-inf-n", "nested", "digits", "nan", "constant"]
)
def test_a_number_json_cannot_hold_is_invalid_json(jimeng_mock: MockServer, raw: str) -> None:
    headers = {"Authorization": "Bearer sk-x", "Content-Type": "application/json"}
    answer = httpx.post(jimeng_mock.api_base + "/images/generations", content=raw, headers=headers)

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_json"
    assert "not a JSON value" in answer.json()["error"]["message"]


def test_a_queued_fault_cannot_match_on_infinity(jimeng_mock: MockServer) -> None:
    for raw in ('{"n": 1e999}', '{"user": [-1e999]}'):
        fault = httpx.post(
            jimeng_mock.url + "/__admin/faults",
            content='{"fault": "quota", "match": ' + raw + "}",
            headers={"Content-Type": "application/json"},
        )
        assert (fault.status_code, fault.json()["error"]["code"]) == (400, "invalid_json")
    assert strict_json(httpx.get(jimeng_mock.url + "/__admin/faults").text)["queued"] == []


def test_every_admin_answer_is_json_whatever_was_sent(jimeng_mock: MockServer) -> None:
    headers = {"Authorization": "Bearer sk-x", "Content-Type": "application/json"}
    for raw in NON_FINITE:
        httpx.post(jimeng_mock.api_base + "/images/generations", content=raw, headers=headers)
    post(jimeng_mock, {**BODY, "prompt": "一只猫 \u2028", "user": "\U0001f600" * 2_000})

    listed = admin_requests(jimeng_mock)
    assert listed["count"] == len(NON_FINITE) + 1
    assert all(r["status"] == 400 for r in listed["requests"][:-1])
    for path in ("/__admin/faults", "/__admin/stubs"):
        strict_json(httpx.get(jimeng_mock.url + path).text)


def _record(id: int, **fields: Any) -> RequestRecord:
    values: dict[str, Any] = {
        "id": id,
        "time": 0.0,
        "method": "POST",
        "path": GENERATIONS,
        "headers": {"host": "127.0.0.1:8000", "content-type": "application/json"},
        "body": {"model": "jimeng-4.0", "prompt": "a cat", "n": 1},
        "status": 200,
    }
    return RequestRecord(**{**values, **fields})
