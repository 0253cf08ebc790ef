"""One mock: its contract and catalogues, what it remembers while it runs (journal, queued
faults, stubs, rate limits), and what a test can ask of it."""

from __future__ import annotations

import threading
from operator import attrgetter
from typing import Any

from mockserver.config import MockConfig, data_dir
from mockserver.contract import RequestContract
from mockserver.errors import ApiError, ConfigError, ErrorCatalogue
from mockserver.faults import Chaos, Fault, FaultCatalogue, FaultQueue, QueuedFault, RateLimiter
from mockserver.images import ImageSigner
from mockserver.journal import MIB, Journal, RequestRecord
from mockserver.matching import compile_python
from mockserver.plan import Asked, Plan, plan
from mockserver.recording import Recorder
from mockserver.render import Renderer
from mockserver.sizes import SizeTable
from mockserver.stubs import StubSet
from mockserver.upstream import Upstream
from mockserver.verify import assert_requested, problems


class MockState:
    """The journal, queued faults, stubs and rate limits of one mock, and the checks on them.

    `MockServer` and the `jimeng_mock` fixture hand these methods on; with `create_app`
    the state is `app.state.mock`.
    """

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.catalogue = ErrorCatalogue.from_file(config.errors_file)
        self.sizes = SizeTable.from_file(config.sizes_file)
        self.contract = RequestContract.from_dir(data_dir(), self.sizes, strict=config.strict)
        self.signer = ImageSigner(config.secret, self.sizes.issuable)
        self.renderer = Renderer(
            config.render_concurrency, config.render_queue, config.image_cache_mb * 1024 * 1024
        )
        self.faults = FaultCatalogue.from_file(config.fault_catalogue_file, self.catalogue.kinds)
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
        self.journal = Journal(config.journal_size, config.journal_mb * MIB)
        self.queue = FaultQueue()
        self.limiter = RateLimiter(config.rpm) if config.rpm else None
        self.stubs = StubSet(config.fixtures, self.faults) if config.fixtures else None
        self.upstream = (
            Upstream(config.upstream, config.upstream_api_key, config.upstream_timeout)
            if config.upstream
            else None
        )
        self.recorder = (
            Recorder(config.record, config.record_mode, self.upstream)
            if config.record is not None and self.upstream is not None
            else None
        )
        self.expected_errors: set[str] = set()
        self._rng = self.chaos.rng()
        self._rng_lock = threading.Lock()
        self._plan_lock = threading.Lock()

    # ------------------------------------------------------------------ used while serving

    def draw_chaos(self) -> tuple[float, Fault | None]:
        """The --latency and --fault-rate draws of one request (every request draws both)."""
        with self._rng_lock:
            delay, name = self.chaos.draw(self._rng)
        return delay, self.faults.get(name) if name else None

    def plan(self, asked: Asked) -> Plan:
        """How to answer `asked` (see `mockserver.plan`), spending the queued fault or stub
        use it takes; atomic, so concurrent requests never share one use."""
        if self.stubs is not None:
            self.stubs.refresh()
            if self.stubs.error:
                raise ApiError("stub_error", detail=self.stubs.error)
        if self.stubs is None and not self.queue:
            return plan(asked, (), (), self.faults.max_latency_ms)  # nothing to spend
        with self._plan_lock:
            while True:
                stubs = self.stubs.available() if self.stubs else []
                chosen = plan(asked, self.queue.pending(), stubs, self.faults.max_latency_ms)
                if chosen.queued is None or self.queue.use(chosen.queued):
                    break  # else the entry was cleared meanwhile: plan again without it
            if chosen.stub is not None and self.stubs is not None:
                self.stubs.use(chosen.stub)
        return chosen

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
        chosen = found.with_options(delay_ms=delay_ms, retry_after_ms=retry_after_ms)
        return self.queue.push(chosen, times, compile_python(match))

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

        Values are matchers (`mockserver.matching`): equal with the same JSON type, a
        compiled regex that finds them (its flags kept), or a callable that says so. On a
        failure the message shows the nearest request and what differs.
        """
        asked = {"status": status, "error": error}
        meta = {name: attrgetter(name) for name, value in asked.items() if value is not None}
        wanted = compile_python({**{name: asked[name] for name in meta}, **fields})
        return assert_requested(self.journal.records(), wanted, count, meta=meta)

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
