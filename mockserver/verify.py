"""Checks on the journal that read like a good assertion library: what was wanted, what came."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from mockserver.journal import RequestRecord
from mockserver.matching import MISSING, Match, misses, show


def _body_field(record: RequestRecord, name: str) -> Any:
    return record.body.get(name, MISSING) if isinstance(record.body, dict) else MISSING


def _describe(record: RequestRecord) -> str:
    answer = "no response" if record.status is None else str(record.status)
    if record.error:
        answer += f" {record.error}"
    return f"#{record.id} {record.method} {record.path} -> {answer}"


def _wanted(fields: Match) -> str:
    return ", ".join(f"{k}={m.describe()}" for k, m in fields.items()) or "(any)"


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
    """
    meta = meta or {}

    def value(record: RequestRecord, name: str) -> Any:
        return meta[name](record) if name in meta else _body_field(record, name)

    def missed(record: RequestRecord) -> list[str]:
        return misses(fields, lambda name: value(record, name))

    matching = [r for r in records if not missed(r)]
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
        nearest = min(reversed(records), key=lambda r: len(missed(r)))
        lines.append(f"Nearest: {_describe(nearest)}, which differs in:")
        lines += [f"  {n}: {fields[n].difference(value(nearest, n))}" for n in missed(nearest)]
        if isinstance(nearest.body, dict):
            lines.append(f"  its body: {show(nearest.body, 300)}")
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
