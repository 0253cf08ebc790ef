"""Checks on the journal that read like a good assertion library: what was wanted, what came."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from operator import attrgetter
from typing import Any, Literal, get_args

from mockserver.answers.matching import MISSING, Match, Matcher, compile_python, show
from mockserver.record.journal import WHOLE_BODY, RequestRecord, as_recorded, is_excerpt

Strictness = Literal["ignore", "fail"]  # check()'s unused_stubs= and unmatched=


def _body_field(record: RequestRecord, name: str) -> Any:
    if not isinstance(record.body, dict) or _body_cut(record):
        return MISSING
    return record.body.get(name, MISSING)


def _body_cut(record: RequestRecord) -> bool:
    """Whether the journal kept only the excerpt of the body's JSON (it was too large)."""
    return record.cut == (WHOLE_BODY,) and is_excerpt(record.body)


def _cut_paths(record: RequestRecord, name: str) -> list[str]:
    """The paths under the body field `name` that the journal cut (`image[0]`, `prompt`)."""
    return [
        path
        for path in record.cut
        if path == name or (path.startswith(name) and path[len(name)] in ".[")
    ]


def _excerpts(value: Any) -> list[dict[str, Any]]:
    """The excerpts in a value of the journal, in order, walked without recursion."""
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if is_excerpt(item):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(reversed(item.values()))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found


def _cut_note(record: RequestRecord, name: str) -> str | None:
    """Why a field of `record` may not match: the journal cut it, and how to match it."""
    how = (
        "a value is compared by its excerpt's length and sha256; a regex or a predicate sees "
        'the excerpt {"$excerpt", "length", "sha256"}: match on its length or digest instead'
    )
    if _body_cut(record):
        return (
            "the body was too large for the journal (more than an eighth of --journal-mb), "
            f"which keeps only the excerpt of its JSON ({record.body['length']:,} characters, "
            f"sha256 {record.body['sha256']})"
        )
    paths = _cut_paths(record, name)
    if not paths:
        return None
    sizes = "; ".join(
        f"{e['length']:,} characters, sha256 {e['sha256']}"
        for e in _excerpts(_body_field(record, name))
    )
    return f"field {', '.join(paths)} was cut in the journal ({sizes}); {how}"


def _describe(record: RequestRecord, *, named: bool = False) -> str:
    """`#ID METHOD PATH -> STATUS [ERROR]`; `named`, with its request id after."""
    answer = "no response" if record.status is None else str(record.status)
    if record.error:
        answer += f" {record.error}"
    if named and record.request_id:
        answer += f" (request id {record.request_id})"
    return f"#{record.id} {record.method} {record.path} -> {answer}"


def _wanted(fields: Match) -> str:
    return ", ".join(f"{k}={m.describe()}" for k, m in fields.items()) or "(any)"


class _Fields:
    """The fields `assert_requested` asks for, matched against records of the journal."""

    def __init__(self, fields: Match, meta: Mapping[str, Callable[[RequestRecord], Any]]):
        self.fields, self.meta = fields, meta
        # A value matcher meets a field the journal cut as the journal keeps the value.
        self.as_kept = {
            name: Matcher("value", value=as_recorded(m.value))
            for name, m in fields.items()
            if m.kind == "value" and name not in meta
        }

    def value(self, record: RequestRecord, name: str) -> Any:
        return self.meta[name](record) if name in self.meta else _body_field(record, name)

    def matches(self, record: RequestRecord, name: str) -> bool:
        if record.cut and name in self.as_kept and _cut_paths(record, name):
            return self.as_kept[name].matches(self.value(record, name))
        return self.fields[name].matches(self.value(record, name))

    def missed(self, record: RequestRecord) -> list[str]:
        return [name for name in self.fields if not self.matches(record, name)]

    def nearest_miss(self, records: Sequence[RequestRecord]) -> list[str]:
        """The lines on the record that came nearest: fewest fields wrong, then the newest."""
        nearest = min(reversed(records), key=lambda r: len(self.missed(r)))
        lines = [f"Nearest: {_describe(nearest, named=True)}, which differs in:"]
        for name in self.missed(nearest):
            lines.append(f"  {name}: {self.fields[name].difference(self.value(nearest, name))}")
            note = None if name in self.meta else _cut_note(nearest, name)
            if note:
                lines.append(f"    ({note})")
        if isinstance(nearest.body, dict):
            lines.append(f"  its body: {show(nearest.body, 300)}")
        return lines


def assert_requested(
    records: Sequence[RequestRecord],
    fields: Match,
    count: int | None = None,
    *,
    meta: Mapping[str, Callable[[RequestRecord], Any]] | None = None,
) -> list[RequestRecord]:
    """The records whose body has `fields`; AssertionError with the nearest miss if none do.

    `count` None asks for at least one, a number for exactly that many. `meta` holds
    record attributes (status, error) asked for alongside the body fields.

    A field the journal cut (a string over 1,024 characters, kept as `{"$excerpt", "length",
    "sha256"}`; see `mockserver.record.journal`) matches a value matcher when the value, cut
    the same way, is equal: by its first characters, length and sha256. A regex or a predicate
    sees the excerpt, so a regex never matches a cut string. A failure says which fields were
    cut.
    """
    check = _Fields(fields, meta or {})
    matching = [r for r in records if not check.missed(r)]
    if count is None and matching:
        return matching
    if count is not None and len(matching) == count:
        return matching

    wanted = _wanted(fields)
    if matching:
        ids = ", ".join(_describe(r) for r in matching)
        raise AssertionError(
            f"expected {count} request(s) with {wanted}, found {len(matching)}:\n  {ids}"
        )
    expected = "at least 1" if count is None else str(count)
    lines = [
        f"expected {expected} request(s) with {wanted}; none of the "
        f"{len(records)} recorded request(s) matched."
    ]
    if records:
        lines += check.nearest_miss(records)
    raise AssertionError("\n".join(lines))


def _left_stream(record: RequestRecord) -> bool:
    """A streamed answer its client left before the end, unasked: code that gives up on a
    stream part-way (a fault or a stub may make it, on purpose)."""
    stream = record.stream
    return (
        stream is not None
        and stream.get("ending") == "client_left"
        and record.fault is None
        and record.stub is None
    )


def problems(records: Sequence[RequestRecord], expected_errors: Collection[str]) -> list[str]:
    """Each request with a warning, an error the test did not expect, or a fault of the mock.

    A request marked with drift (proxy mode, `--upstream`) is one too, with the drift's message.
    A request whose client left before its answer (`outcome` "client_disconnected") is none
    of the test's problems, unless the mock failed on it: its client saw no answer to check;
    but a streamed answer whose client left after some of its events is, unless a fault or
    a stub answered it: the client saw part of it, and gave up.
    """
    found = []
    for record in records:
        if record.exception:
            found.append(f"{_describe(record)}: the mock failed:\n{record.exception}")
        elif _left_stream(record):
            assert record.stream is not None
            found.append(
                f"{_describe(record)}: the client left its streamed answer after "
                f"{record.stream['events']} event(s) {record.stream['order']}, before its end"
            )
        elif record.outcome == "client_disconnected":
            continue
        elif (
            record.error
            and record.fault is None
            and record.stub is None
            and record.error not in expected_errors
        ):
            where = f" ({record.param})" if record.param else ""
            found.append(f"{_describe(record)}{where}: {record.error_message}")
        if record.drift:
            said = (w.message for w in record.warnings if w.code == "drift")
            found.append(f"{_describe(record)}: {next(said, f'drift {record.drift}')}")
        found += [
            f"{_describe(record)}: warning {w.code}: {w.message}"
            for w in record.warnings
            if not (record.drift and w.code == "drift")
        ]
        if record.warnings_dropped:
            found.append(
                f"{_describe(record)}: {record.warnings_dropped} more warning(s), "
                "which the journal did not keep"
            )
    return found


def strictness(value: Any, name: str) -> Strictness:
    """`value` as an option `unused_stubs` or `unmatched`: a ValueError if it is neither."""
    if value not in get_args(Strictness):
        raise ValueError(f"{name} is 'ignore' or 'fail', not {value!r}")
    found: Strictness = value
    return found


def strict_problems(
    report: Mapping[str, Any], *, unused_stubs: Strictness, unmatched: Strictness
) -> list[str]:
    """What a coverage report (`mockserver.record.coverage`) fails under strictness: each stub file
    never used (`unused_stubs="fail"`), each request no stub or fault answered (`unmatched`)."""
    strictness(unused_stubs, "unused_stubs")
    strictness(unmatched, "unmatched")
    found = []
    if unused_stubs == "fail":
        found += [
            f"stub {name} was never used (unused_stubs='fail')"
            for name, uses in report["stubs"].items()
            if not uses
        ]
    if unmatched == "fail" and report["unmatched"]:
        named = report["unmatched_requests"]
        found += [
            f"#{r['id']} POST /v1/images/generations (request id {r['request_id']}) matched "
            f"no stub (unmatched='fail'): prompt {r['prompt']!r}"
            for r in named
        ]
        if report["unmatched"] > len(named):
            found.append(f"{report['unmatched'] - len(named)} more request(s) matched no stub")
    return found


def requested(
    records: Sequence[RequestRecord],
    count: int | None,
    *,
    status: Any,
    error: Any,
    fields: Mapping[str, Any],
) -> list[RequestRecord]:
    """`Harness.assert_requested` (`mockserver.engine.api`): Python matchers of the body's
    fields, and of the answer's status and error when they are given."""
    asked = {"status": status, "error": error}
    meta = {name: attrgetter(name) for name, value in asked.items() if value is not None}
    wanted = compile_python({**{name: asked[name] for name in meta}, **fields})
    return assert_requested(records, wanted, count, meta=meta)


def check(
    records: Sequence[RequestRecord],
    expected_errors: Collection[str],
    coverage: Callable[[], Mapping[str, Any]],
    *,
    session: str | None,
    unused_stubs: Strictness,
    unmatched: Strictness,
    mock: str = "the mock",
) -> None:
    """`Harness.check()` (`mockserver.engine.api`): an AssertionError listing the `problems`
    of the records, and under strictness those of the coverage report."""
    found = problems(records, expected_errors)
    if unused_stubs != "ignore" or unmatched != "ignore":
        found += strict_problems(coverage(), unused_stubs=unused_stubs, unmatched=unmatched)
    if found:
        where = "" if session is None else f" of session {session!r}"
        raise AssertionError(
            f"{len(found)} problem(s) in {len(records)} request(s){where} to {mock}:\n"
            + "\n".join(f"- {line}" for line in found)
            + "\nErrors a test provokes on purpose: call expect_errors(CODE, ...) first."
        )
