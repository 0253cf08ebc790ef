"""What the requests to a mock exercised: counters kept since start or reset, for the whole
mock and for each session, beyond the journal's window.

A report lists every error code of the catalogue, every fault, every stub file, every field
of the request schema, every model and every ratio x resolution pair of the size table, each
with its count (0: never), so `totals` says how many of them were used; the fields and
models the mock does not know are counted apart (`unknown_fields`, `unknown_models`), the
first OTHER_LIMIT of each by name (names of at most NAME_LIMIT characters) and the rest
together under `other`. Reports are plain JSON, and `merge` adds two of them up: the pytest
plugin sums the reports of its tests, and of its xdist workers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mockserver.contract.sessions import DEFAULT_SESSION
from mockserver.record.streamed import STREAM_ENDINGS

if TYPE_CHECKING:
    from mockserver.record.outcome import Outcome

OTHER_LIMIT = 100  # names of unknown fields and models counted one by one
# The longest unknown name counted by name; a longer one is counted under `other`, so what
# coverage keeps stays small whatever names requests make up (a million-character field name).
NAME_LIMIT = 200
SESSION_LIMIT = 1000  # sessions with counters of their own; the least recently used go first
UNMATCHED_LIMIT = 20  # unmatched requests named in a report, the newest
OUTCOMES = ("answered", "dropped", "client_disconnected")
FAULT_SOURCES = ("header", "queue", "stub", "chaos")
# The maps of a report whose names are all listed (count 0 included), and those of names
# the mock does not know, by the kind `other` counts them under.
LISTED = ("errors", "faults", "stubs", "fields", "models", "pairs", "warnings")
UNKNOWN = {"unknown_fields": "fields", "unknown_models": "models"}
# Streamed answers by how they ended (every ending listed), and their events by kind: in a
# report only once a stream was counted.
STREAMS = ("streams", "stream_events")


def pair_name(ratio: str, resolution: str) -> str:
    return f"{ratio} x {resolution}"


@dataclass(frozen=True, slots=True)
class Tally:
    """What coverage counts of one request (`tally` makes it from the request's outcome)."""

    id: int
    session: str = DEFAULT_SESSION
    request_id: str | None = None
    method: str = "POST"
    body: Any = None
    outcome: str = "answered"  # how its connection ended (`OUTCOMES`)
    status: int | None = None  # None: no answer reached the client
    error: str | None = None
    fault: str | None = None
    fault_source: str | None = None  # `FAULT_SOURCES`
    stub: str | None = None
    warnings: tuple[str, ...] = ()  # the codes
    pair: str | None = None  # the ratio x resolution of a valid request without a size
    unmatched: bool = False  # a valid generation request neither a stub nor a fault answered
    stream: str | None = None  # how a streamed answer ended (`STREAM_ENDINGS`)
    stream_events: tuple[str, ...] = ()  # the kinds of its events, in order


def tally(outcome: Outcome) -> Tally:
    """What coverage counts of a request, from its completed outcome: the one place the
    counts come from, a pure function of it."""
    arrival, error = outcome.arrival, outcome.error
    return Tally(
        id=arrival.id,
        session=arrival.session,
        request_id=outcome.answer_id,
        method=arrival.method,
        body=outcome.body,
        outcome=outcome.ending,
        status=outcome.status,
        error=None if error is None else error.code,
        fault=outcome.fault,
        fault_source=outcome.fault_source,
        stub=outcome.stub,
        warnings=tuple(warning.code for warning in outcome.warnings),
        pair=outcome.pair,
        unmatched=outcome.unmatched,
        stream=None if outcome.stream is None else outcome.stream.ending(outcome.ending),
        stream_events=() if outcome.stream is None else outcome.stream.kinds,
    )


class Counts:
    """The counters of one scope: the whole mock, or one session."""

    def __init__(self) -> None:
        self.since = time.time()
        self.requests = 0
        self.maps: dict[str, Counter[str]] = {
            name: Counter()
            for name in ("outcomes", "statuses", "fault_sources", *LISTED, *UNKNOWN, *STREAMS)
        }
        self.other: Counter[str] = Counter()
        self.unmatched = 0
        # (id, request id, session, the prompt's start) of the newest unmatched requests
        self.unmatched_requests: deque[tuple[Any, ...]] = deque(maxlen=UNMATCHED_LIMIT)

    def add(self, counted: Tally, known: Names) -> None:
        maps = self.maps
        self.requests += 1
        maps["outcomes"][counted.outcome] += 1
        maps["statuses"][_STATUS.get(counted.status) or str(counted.status)] += 1
        if counted.error:
            maps["errors"][counted.error] += 1
        if counted.fault:
            maps["faults"][counted.fault] += 1
            if counted.fault_source:
                maps["fault_sources"][counted.fault_source] += 1
        if counted.stub:
            maps["stubs"][counted.stub] += 1
        for code in counted.warnings:
            maps["warnings"][code] += 1
        body = counted.body
        if type(body) is dict and counted.method == "POST":
            if known.known_fields.issuperset(body):
                fields = maps["fields"]
                for name in body:
                    fields[name] += 1
            else:
                self._fields(body, known.known_fields)
            model = body.get("model")
            if type(model) is str:
                if model in known.known_models:
                    maps["models"][model] += 1
                else:
                    self._unknown("unknown_models", model)
        if counted.pair:
            maps["pairs"][counted.pair] += 1
        if counted.stream:
            maps["streams"][counted.stream] += 1
            maps["stream_events"].update(counted.stream_events)
        if counted.unmatched:
            self.unmatched += 1
            prompt = body.get("prompt") if type(body) is dict else None
            shown = prompt[:80] if type(prompt) is str else None
            entry = (counted.id, counted.request_id, counted.session, shown)
            self.unmatched_requests.append(entry)

    def _unknown(self, kind: str, name: str, by: int = 1) -> None:
        counter = self.maps[kind]
        if name in counter or (len(counter) < OTHER_LIMIT and len(name) <= NAME_LIMIT):
            counter[name] += by
        else:
            self.other[UNKNOWN[kind]] += by

    def _fields(self, body: dict[str, Any], known: frozenset[str]) -> None:
        """The fields of a body with unknown ones, at a cost that does not grow with their
        number past the names counted one by one (a body of 90,000 fields): each
        intersection walks its smaller side."""
        sent = body.keys()
        fields, unknown = self.maps["fields"], self.maps["unknown_fields"]
        for name in sent & known:
            fields[name] += 1
        for name in sent & unknown.keys():
            unknown[name] += 1
        room = OTHER_LIMIT - len(unknown)
        if room > 0:
            for name in body:  # in the body's order: the same names are kept every run
                if name not in known and name not in unknown and len(name) <= NAME_LIMIT:
                    unknown[name] += 1
                    room -= 1
                    if not room:
                        break
        left = len(sent) - len(sent & known) - len(sent & unknown.keys())
        if left:
            self.other["fields"] += left

    def absorb(self, other: Counts) -> None:
        """Add `other`'s counts to these (unknown names past OTHER_LIMIT under `other`)."""
        self.requests += other.requests
        self.unmatched += other.unmatched
        self.other.update(other.other)
        for kind, counter in other.maps.items():
            if kind in UNKNOWN:
                for name, count in counter.items():
                    self._unknown(kind, name, count)
            else:
                self.maps[kind].update(counter)
        newest = sorted([*self.unmatched_requests, *other.unmatched_requests])
        self.unmatched_requests = deque(newest, maxlen=UNMATCHED_LIMIT)


UNMATCHED_KEYS = ("id", "request_id", "session", "prompt")
_STATUS = {None: "none", 200: "200"}  # the usual ones, spared a str() each


@dataclass(frozen=True)
class Names:
    """The names a report lists with count 0 when nothing used them."""

    errors: tuple[str, ...]
    faults: tuple[str, ...]
    fields: tuple[str, ...]  # in the schema's order, as a report lists them
    models: tuple[str, ...]
    pairs: tuple[str, ...]
    warnings: tuple[str, ...]
    # The same fields and models as sets, for the counting of each request.
    known_fields: frozenset[str] = field(init=False)
    known_models: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "known_fields", frozenset(self.fields))
        object.__setattr__(self, "known_models", frozenset(self.models))


class Coverage:
    """The counters of a mock, kept by session (the newest SESSION_LIMIT sessions used:
    those of a suite that runs a session per test come and go). A request is counted once,
    in its session; the whole mock's report adds the sessions up, with those reset or
    forgotten since the mock's own start or reset."""

    def __init__(self, names: Names, stubs: Callable[[], list[str]]) -> None:
        self.names = names
        self._stubs = stubs  # the stub files loaded now
        self._lock = threading.Lock()
        self._retired = Counts()  # of the sessions reset or forgotten
        self._sessions: OrderedDict[str, Counts] = OrderedDict()

    def count(self, counted: Tally) -> None:
        with self._lock:
            sessions = self._sessions
            counts = sessions.get(counted.session)
            if counts is None:
                counts = sessions[counted.session] = Counts()
                if len(sessions) > SESSION_LIMIT:
                    self._retired.absorb(sessions.popitem(last=False)[1])
            elif len(sessions) > 1:
                sessions.move_to_end(counted.session)
            counts.add(counted, self.names)

    def reset(self, session: str | None = None) -> None:
        with self._lock:
            if session is None:
                self._retired = Counts()
                self._sessions.clear()
            elif session in self._sessions:
                self._retired.absorb(self._sessions.pop(session))

    def _counts(self, session: str | None) -> Counts:
        if session is not None:
            return self._sessions.get(session) or Counts()
        whole = Counts()
        whole.since = self._retired.since
        for counts in (self._retired, *self._sessions.values()):
            whole.absorb(counts)
        return whole

    def report(self, session: str | None = None) -> dict[str, Any]:
        """The report of the whole mock, or of one session (all 0 for a session unseen)."""
        with self._lock:
            counts = self._counts(session)
            maps = {name: Counter(c) for name, c in counts.maps.items()}
            since, requests, unmatched = counts.since, counts.requests, counts.unmatched
            other = dict(counts.other)
            named = [dict(zip(UNMATCHED_KEYS, r, strict=True)) for r in counts.unmatched_requests]
        n = self.names
        listed = {
            "errors": n.errors,
            "faults": n.faults,
            "stubs": tuple(self._stubs()),
            "fields": n.fields,
            "models": n.models,
            "pairs": n.pairs,
            "warnings": n.warnings,
        }
        report: dict[str, Any] = {
            "session": session,
            "since": since,
            "requests": requests,
            "outcomes": {name: maps["outcomes"][name] for name in OUTCOMES}
            | dict(maps["outcomes"]),
            "statuses": dict(sorted(maps["statuses"].items())),
            "fault_sources": {name: maps["fault_sources"][name] for name in FAULT_SOURCES},
        }
        for kind, names in listed.items():
            report[kind] = _listed(names, maps[kind])
        for kind in UNKNOWN:
            report[kind] = dict(sorted(maps[kind].items()))
        if maps["streams"]:  # only Ark's route streams: a /v1 mock's report stays as it was
            report["streams"] = {name: maps["streams"][name] for name in STREAM_ENDINGS}
            report["stream_events"] = dict(sorted(maps["stream_events"].items()))
        report["unmatched"] = unmatched
        report["unmatched_requests"] = named
        report["other"] = {kind: other.get(kind, 0) for kind in UNKNOWN.values()}
        report["totals"] = totals(report)
        return report


def _listed(names: Iterable[str], counts: Mapping[str, int]) -> dict[str, int]:
    """Every name with its count, in their order, then the others counted, by name."""
    listed = {name: counts.get(name, 0) for name in names}
    listed.update(sorted((k, v) for k, v in counts.items() if k not in listed))
    return listed


def totals(report: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Of each listed kind, how many names were used and how many there are."""
    return {
        kind: {"used": sum(1 for v in report[kind].values() if v), "of": len(report[kind])}
        for kind in LISTED
    }


def merge(first: Mapping[str, Any] | None, second: Mapping[str, Any]) -> dict[str, Any]:
    """The report of both runs together: every count added, every name of either listed."""
    if first is None:
        return dict(second)
    merged: dict[str, Any] = {
        "session": first["session"] if first["session"] == second["session"] else None,
        "since": min(first["since"], second["since"]),
        "requests": first["requests"] + second["requests"],
        "unmatched": first["unmatched"] + second["unmatched"],
        "unmatched_requests": [*first["unmatched_requests"], *second["unmatched_requests"]][
            -UNMATCHED_LIMIT:
        ],
    }
    for kind in ("outcomes", "statuses", "fault_sources", *LISTED, *UNKNOWN, "other", *STREAMS):
        if kind in STREAMS and kind not in first and kind not in second:
            continue  # a report without streams has none of their counts
        a, b = first.get(kind, {}), second.get(kind, {})
        merged[kind] = {name: a.get(name, 0) + b.get(name, 0) for name in {**a, **b}}
    merged["totals"] = totals(merged)
    return merged


# ---------------------------------------------------------------------------- said in short

NEVER_SHOWN = 12  # names listed in a "never" line; the others counted


def _counted(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} x{count}" for name, count in counts.items() if count) or "none"


def _never(counts: Mapping[str, int]) -> str:
    names = [name for name, count in counts.items() if not count]
    shown = ", ".join(names[:NEVER_SHOWN])
    return shown + (f" and {len(names) - NEVER_SHOWN} more" if len(names) > NEVER_SHOWN else "")


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """The report in a few lines: the pytest plugin's section of the terminal summary."""
    total = report["totals"]
    outcomes = {k: v for k, v in report["outcomes"].items() if v}
    lines = [
        f"requests: {report['requests']} ({_counted(outcomes)}); "
        f"statuses: {_counted(report['statuses'])}",
        f"error codes seen ({total['errors']['used']} of {total['errors']['of']}): "
        f"{_counted(report['errors'])}",
        f"faults exercised ({total['faults']['used']} of {total['faults']['of']}): "
        f"{_counted(report['faults'])}",
    ]
    if total["faults"]["used"] < total["faults"]["of"]:
        lines.append(f"faults never exercised: {_never(report['faults'])}")
    if report["stubs"]:
        lines.append(
            f"stubs used ({total['stubs']['used']} of {total['stubs']['of']}): "
            f"{_counted(report['stubs'])}"
        )
        if total["stubs"]["used"] < total["stubs"]["of"]:
            lines.append(f"stubs never used: {_never(report['stubs'])}")
    lines.append(
        f"ratio x resolution pairs sent ({total['pairs']['used']} of {total['pairs']['of']}): "
        f"{_counted(report['pairs'])}"
    )
    lines.append(f"warnings: {_counted(report['warnings'])}")
    if report["stubs"] and report["unmatched"]:
        lines.append(f"requests no stub or fault answered: {report['unmatched']}")
    return lines
