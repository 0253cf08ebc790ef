"""Checks on the journal that read like a good assertion library: what was wanted, what came."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from mockserver.journal import RequestRecord

_MISSING = object()


def field_matches(want: Any, got: Any) -> bool:
    """A field wanted as a value (equal, with the same JSON type), a regex, or a predicate."""
    if got is _MISSING:
        return False
    if isinstance(want, re.Pattern):
        return isinstance(got, str) and want.search(got) is not None
    if callable(want):
        return bool(want(got))
    return bool(got == want) and type(got) is type(want)


def _show(value: Any, limit: int = 80) -> str:
    if value is _MISSING:
        return "(absent)"
    if isinstance(value, re.Pattern):
        return f"a match for /{value.pattern}/"
    if callable(value):
        return f"a value for which {getattr(value, '__name__', 'the predicate')} is true"
    text = json.dumps(value, ensure_ascii=False) if _is_json(value) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _difference(name: str, want: Any, got: Any) -> str:
    line = f"  {name}: expected {_show(want)}, got {_show(got)}"
    if isinstance(want, str) and isinstance(got, str):
        at = next(
            (i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b),
            min(len(want), len(got)),
        )
        line += f" (first difference at character {at})"
    elif not callable(want) and want == got:
        # Equal but no match: field_matches also wants the same JSON type.
        line += f" (same value, but {type(got).__name__} instead of {type(want).__name__})"
    return line


def _body_field(record: RequestRecord, name: str) -> Any:
    return record.body.get(name, _MISSING) if isinstance(record.body, dict) else _MISSING


def _describe(record: RequestRecord) -> str:
    answer = "no response" if record.status is None else str(record.status)
    if record.error:
        answer += f" {record.error}"
    return f"#{record.id} {record.method} {record.path} -> {answer}"


def _wanted(fields: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_show(v)}" for k, v in fields.items()) or "(any)"


def assert_requested(
    records: Sequence[RequestRecord],
    fields: Mapping[str, Any],
    count: int | None = None,
    *,
    meta: Mapping[str, Callable[[RequestRecord], Any]] | None = None,
) -> list[RequestRecord]:
    """The records whose body has `fields`; AssertionError with the nearest miss if none do.

    `count` None asks for at least one, a number for exactly that many. `meta` holds
    record attributes (status, error) asked for alongside the body fields.
    """
    meta = meta or {}

    def value(record: RequestRecord, name: str) -> Any:
        return meta[name](record) if name in meta else _body_field(record, name)

    def misses(record: RequestRecord) -> list[str]:
        return [
            name for name, want in fields.items() if not field_matches(want, value(record, name))
        ]

    matching = [r for r in records if not misses(r)]
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
        # The nearest miss: fewest fields wrong, and of those the newest.
        nearest = min(reversed(records), key=lambda r: len(misses(r)))
        lines.append(f"Nearest: {_describe(nearest)}, which differs in:")
        lines += [_difference(n, fields[n], value(nearest, n)) for n in misses(nearest)]
        if isinstance(nearest.body, dict):
            lines.append(f"  its body: {_show(nearest.body, 300)}")
    raise AssertionError("\n".join(lines))


def problems(records: Sequence[RequestRecord], expected_errors: Collection[str]) -> list[str]:
    """Each request with a warning, an error the test did not expect, or a fault of the mock."""
    found = []
    for record in records:
        if record.exception:
            found.append(f"{_describe(record)}: the mock failed:\n{record.exception}")
        elif (
            record.error
            and record.fault is None
            and record.stub is None
            and record.error not in expected_errors
        ):
            where = f" ({record.param})" if record.param else ""
            found.append(f"{_describe(record)}{where}: {record.error_message}")
        found += [f"{_describe(record)}: warning {w.code}: {w.message}" for w in record.warnings]
    return found
