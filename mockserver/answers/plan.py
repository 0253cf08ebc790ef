"""How a valid generation request is answered: which fault or stub, how late, how many images.

`plan()` is a pure function of what the request asks for and what the mock holds (queued
faults, stubs with uses left); `MockState.plan()` calls it under a lock and spends what the
plan uses, so a fault queued for `times` requests answers exactly that many.

Precedence, highest first: the request's `X-Mock-Fault` header, then the fault queue (oldest
entry first; an entry queued for a session takes only that session's requests), then the
stub files (in file-name order), then the `--fault-rate` draw. The delay is the request's
`X-Mock-Latency-Ms` if it has one, else the answering fault's or stub's own `delay_ms`; the
`--latency` draw adds to either, and the sum is capped at the catalogue's `max_latency_ms`.
A `partial` fault keeps `keep` of the images, rounded down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mockserver.answers.faults import Fault, QueuedFault
from mockserver.answers.matching import matches_all
from mockserver.answers.stubs import Stub
from mockserver.contract.sessions import DEFAULT_SESSION


@dataclass(frozen=True)
class Asked:
    """What one valid generation request asks of the mock."""

    body: Mapping[str, Any]
    headers: Mapping[str, str]
    n: int
    fault: Fault | None = None  # X-Mock-Fault
    latency_ms: float | None = None  # X-Mock-Latency-Ms
    chaos_delay_ms: float = 0.0  # the --latency draw
    chaos_fault: Fault | None = None  # the --fault-rate draw
    session: str = DEFAULT_SESSION  # X-Mock-Session: queued faults of another are not taken


@dataclass(frozen=True)
class Plan:
    """The answer decided for one request."""

    fault: Fault | None = None
    stub: Stub | None = None
    queued: QueuedFault | None = None  # the queue entry that answers: one of its times is spent
    delay_ms: float = 0.0
    count: int = 0  # images in the answer's data
    urls: int = 0  # image URLs made: a stub's placeholders may use more than `count`
    source: str | None = None  # "header", "queue", "stub" or "chaos": where the fault came from


def plan(
    asked: Asked,
    queued: Sequence[QueuedFault],
    stubs: Sequence[Stub],
    max_latency_ms: float,
) -> Plan:
    """The plan for `asked`, given the queue (oldest first) and the stubs that have uses left."""
    fault, source = asked.fault, "header" if asked.fault else None
    entry = stub = None
    if fault is None:
        entry = next(
            (q for q in queued if q.takes(asked.session) and matches_all(q.match, asked.body)),
            None,
        )
        if entry is not None:
            fault, source = entry.fault, "queue"
    if fault is None:
        stub = next((s for s in stubs if s.matches(asked.body, asked.headers)), None)
        if stub is not None:
            fault, source = stub.fault, "stub"
    if fault is None and stub is None and asked.chaos_fault is not None:
        fault, source = asked.chaos_fault, "chaos"

    own = fault.delay_ms if fault else (stub.delay_ms or 0) if stub else 0
    delay = (own if asked.latency_ms is None else asked.latency_ms) + asked.chaos_delay_ms
    count = asked.n
    if fault is not None and fault.action == "partial":
        count = math.floor(asked.n * fault.keep)
    return Plan(
        fault=fault,
        stub=stub,
        queued=entry,
        delay_ms=min(max(delay, 0.0), float(max_latency_ms)),
        count=count,
        urls=max(count, stub.url_count if stub else 0),
        source=source,
    )
