"""What a running mock remembers and what a test can ask of it: journal, faults, stubs, checks."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from mockserver.config import MockConfig, data_dir
from mockserver.errors import ApiError, ConfigError
from mockserver.faults import Chaos, Fault, FaultCatalogue, FaultQueue, QueuedFault, RateLimiter
from mockserver.journal import ContractWarning, Journal, RequestRecord
from mockserver.stubs import StubSet
from mockserver.verify import assert_requested, problems


@dataclass
class Exchange:
    """What one API request turned out to be, filled in as it is answered."""

    epoch: int  # the journal's when the request began
    body: Any = None
    warnings: list[ContractWarning] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    fault: str | None = None
    stub: str | None = None
    error: str | None = None
    error_message: str | None = None
    param: str | None = None
    exception: str | None = None


class MockState:
    """The journal, queued faults, stubs and rate limits of one mock, and the checks on them.

    `MockServer` and the `jimeng_mock` fixture hand these methods on; with `create_app`
    the state is `app.state.mock`.
    """

    def __init__(self, config: MockConfig, error_codes: Iterable[str]) -> None:
        self.config = config
        self.faults = FaultCatalogue.from_file(config.fault_catalogue_file, error_codes)
        for name in config.fault_names:
            if self.faults.get(name) is None:
                known = ", ".join(self.faults.names())
                raise ConfigError(f"unknown fault {name!r}; the fault catalogue has {known}")
        self.chaos = Chaos(
            latency_ms=config.latency_range,
            fault_rate=config.fault_rate,
            faults=config.fault_names,
            seed=config.seed,
        )
        self.journal = Journal(config.journal_size)
        self.queue = FaultQueue()
        self.limiter = RateLimiter(config.rpm) if config.rpm else None
        self.stubs = (
            StubSet(config.fixtures, data_dir() / "stub.schema.json", set(self.faults.names()))
            if config.fixtures
            else None
        )
        self.expected_errors: set[str] = set()
        self._rng = self.chaos.rng()
        self._rng_lock = threading.Lock()

    # ------------------------------------------------------------------ used while serving

    def draw_chaos(self) -> tuple[float, str | None]:
        with self._rng_lock:
            return self.chaos.draw(self._rng)

    def fault(self, name: str, *, param: str = "fault") -> Fault:
        found = self.faults.get(name)
        if found is None:
            raise ApiError(
                "invalid_value",
                param=param,
                detail=f"{name!r} is not a fault; known: {', '.join(self.faults.names())}",
            )
        return found

    # ------------------------------------------------------------------ for tests

    @property
    def requests(self) -> list[RequestRecord]:
        """Every recorded API request, oldest first (the newest `journal_size` of them)."""
        return self.journal.records()

    @property
    def last_request(self) -> RequestRecord | None:
        records = self.journal.records()
        return records[-1] if records else None

    def reset(self) -> None:
        """Journal, queued faults, stub counts, rate limits and chaos back to their start."""
        self.journal.clear(restart_ids=True)
        self.queue.clear()
        if self.limiter:
            self.limiter.clear()
        if self.stubs:
            self.stubs.refresh(force=True)
        self.expected_errors.clear()
        with self._rng_lock:
            self._rng = self.chaos.rng()

    def fail_next(
        self,
        fault: str,
        times: int = 1,
        *,
        delay_ms: int | None = None,
        retry_after_ms: int | None = None,
        **match: Any,
    ) -> QueuedFault:
        """Answer the next `times` generation requests whose body has `match` with `fault`."""
        found = self.faults.get(fault)
        if found is None:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(self.faults.names())}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be a whole number of at least 1, not {times!r}")
        fields = {
            k: {"regex": v.pattern} if isinstance(v, re.Pattern) else v for k, v in match.items()
        }
        chosen = found.with_options(delay_ms=delay_ms, retry_after_ms=retry_after_ms)
        return self.queue.push(chosen, times, fields)

    def expect_errors(self, *codes: str) -> None:
        """Errors with these codes are what the test is after: `check()` lets them pass."""
        self.expected_errors.update(codes)

    def assert_requested(
        self,
        count: int | None = None,
        *,
        status: Any = None,
        error: Any = None,
        **fields: Any,
    ) -> list[RequestRecord]:
        """Assert that requests with these body fields were made (`count`: exactly that many).

        Values match when equal, when a compiled regex finds them, or when a callable
        says so. On a failure the message shows the nearest request and what differs.
        """
        asked = {"status": status, "error": error}
        meta = {name: attrgetter(name) for name, value in asked.items() if value is not None}
        fields = {**{name: asked[name] for name in meta}, **fields}
        return assert_requested(self.journal.records(), fields, count, meta=meta)

    def check(self) -> None:
        """Fail if any request so far had a warning, an unexpected error, or broke the mock."""
        found = problems(self.journal.records(), self.expected_errors)
        if found:
            total = len(self.journal)
            raise AssertionError(
                f"{len(found)} problem(s) in {total} request(s) to the mock:\n"
                + "\n".join(f"- {line}" for line in found)
                + "\nErrors a test provokes on purpose: call expect_errors(CODE, ...) first."
            )
