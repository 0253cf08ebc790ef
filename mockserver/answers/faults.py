"""Faults: the catalogue in schemas/faults.json, the queue of faults asked for, chaos and --rpm."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from mockserver.answers.matching import Match, match_json
from mockserver.contract.schemas import read_data_file
from mockserver.errors import ConfigError

Action = Literal["error", "answer", "partial", "malformed", "disconnect", "filtered"]


@dataclass(frozen=True)
class Fault:
    """What the mock does instead of its normal answer; see schemas/faults.json."""

    name: str
    action: Action
    error: str | None = None
    param: str | None = None
    delay_ms: int = 0
    retry_after_ms: int | None = None
    retry: bool | None = None
    keep: float = 0.5
    description: str = ""

    def headers(self) -> dict[str, str]:
        headers = {"X-Mock-Fault": self.name}
        if self.retry_after_ms is not None:
            headers["Retry-After"] = str(math.ceil(self.retry_after_ms / 1000))
            headers["retry-after-ms"] = str(self.retry_after_ms)
        if self.retry is not None:
            headers["x-should-retry"] = "true" if self.retry else "false"
        return headers

    def with_options(
        self, *, delay_ms: int | None = None, retry_after_ms: int | None = None
    ) -> Fault:
        changes: dict[str, Any] = {}
        if delay_ms is not None:
            changes["delay_ms"] = delay_ms
        if retry_after_ms is not None:
            changes["retry_after_ms"] = retry_after_ms
        return replace(self, **changes) if changes else self


class FaultCatalogue:
    def __init__(self, faults: Mapping[str, Fault], max_latency_ms: int) -> None:
        self.faults = dict(faults)
        self.max_latency_ms = max_latency_ms

    @classmethod
    def from_file(cls, path: Path, error_codes: Iterable[str]) -> FaultCatalogue:
        data = read_data_file(path, "faults.schema.json", "fault catalogue")
        codes = set(error_codes)
        faults = {}
        for name, entry in data["faults"].items():
            if entry.get("error") is not None and entry["error"] not in codes:
                raise ConfigError(
                    f"fault catalogue {path}: fault {name!r} answers {entry['error']!r}, "
                    "which the error catalogue does not have"
                )
            faults[name] = Fault(name=name, **entry)
        return cls(faults, data["max_latency_ms"])

    def get(self, name: str) -> Fault | None:
        return self.faults.get(name)

    def names(self) -> list[str]:
        return list(self.faults)

    def cap(self, delay_ms: float) -> float:
        return min(max(delay_ms, 0.0), float(self.max_latency_ms))


@dataclass(eq=False)
class QueuedFault:
    fault: Fault
    times: int
    match: Match
    session: str | None = None  # only for requests of this session; None: of any

    def takes(self, session: str) -> bool:
        return self.session is None or self.session == session

    def to_json(self) -> dict[str, Any]:
        return {
            "fault": self.fault.name,
            "times": self.times,
            "match": match_json(self.match),
            "delay_ms": self.fault.delay_ms,
            "retry_after_ms": self.fault.retry_after_ms,
            "session": self.session,
        }


class FaultQueue:
    """Faults asked for ahead of time: each answers the next `times` matching requests."""

    def __init__(self) -> None:
        self._queue: list[QueuedFault] = []
        self._lock = threading.Lock()

    def push(
        self, fault: Fault, times: int, match: Match, session: str | None = None
    ) -> QueuedFault:
        entry = QueuedFault(fault, times, dict(match), session)
        with self._lock:
            self._queue.append(entry)
        return entry

    def use(self, entry: QueuedFault) -> bool:
        """Spend one of the entry's times; False if it is no longer queued (used up, cleared)."""
        with self._lock:
            if not any(queued is entry for queued in self._queue):
                return False
            entry.times -= 1
            if entry.times <= 0:
                self._queue.remove(entry)
            return True

    def pending(self, session: str | None = None) -> list[QueuedFault]:
        """The entries queued, oldest first: all of them, or those of one session."""
        with self._lock:
            return [q for q in self._queue if session is None or q.session == session]

    def clear(self, session: str | None = None) -> int:
        """Drop every entry, or those queued for one session."""
        with self._lock:
            kept = [q for q in self._queue if session is not None and q.session != session]
            count = len(self._queue) - len(kept)
            self._queue[:] = kept
            return count

    def __len__(self) -> int:
        return len(self._queue)


@dataclass(frozen=True)
class Chaos:
    """--latency and --fault-rate: added delay and random faults, repeatable with a seed."""

    latency_ms: tuple[int, int] = (0, 0)
    fault_rate: float = 0.0
    faults: Sequence[str] = ()
    seed: int | None = None

    def rng(self) -> random.Random:
        return random.Random(self.seed)

    @property
    def off(self) -> bool:
        return not self.fault_rate and self.latency_ms == (0, 0)

    def draw(self, rng: random.Random) -> tuple[float, str | None]:
        low, high = self.latency_ms
        delay = float(low) if low == high else rng.uniform(low, high)
        fault = None
        if self.fault_rate and self.faults and rng.random() < self.fault_rate:
            fault = rng.choice(list(self.faults))
        return delay, fault


class RateLimiter:
    """At most `rpm` requests per key in any 60 s window; the oldest keys are forgotten first."""

    WINDOW = 60.0

    def __init__(
        self, rpm: int, *, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rpm = rpm
        self.max_keys = max_keys
        self._clock = clock
        self._windows: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float | None:
        """None if the request may go on, else the seconds until the key may send again."""
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = deque()
                while len(self._windows) > self.max_keys:
                    self._windows.popitem(last=False)
            else:
                self._windows.move_to_end(key)
            while window and window[0] <= now - self.WINDOW:
                window.popleft()
            if len(window) >= self.rpm:
                return window[0] + self.WINDOW - now
            window.append(now)
            return None

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()
