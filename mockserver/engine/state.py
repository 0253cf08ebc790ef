"""One mock: its contract and catalogues, what it remembers while it runs (journal, queued
faults, stubs, rate limits), and what a test can ask of it."""

from __future__ import annotations

import threading
from typing import Any

from mockserver.answers.faults import (
    Chaos,
    Fault,
    FaultCatalogue,
    FaultQueue,
    QueuedFault,
    RateLimiter,
)
from mockserver.answers.images import ImageSigner
from mockserver.answers.plan import Asked, Plan, plan
from mockserver.answers.recording import Recorder
from mockserver.answers.render import Renderer
from mockserver.answers.stubs import StubSet
from mockserver.answers.upstream import Upstream
from mockserver.config import MockConfig
from mockserver.contract.sizes import SizeTable
from mockserver.contract.validation import WARNING_CODES, RequestContract
from mockserver.engine.api import FaultOrder, Harness
from mockserver.errors import ApiError, ConfigError, ErrorCatalogue
from mockserver.paths import data_dir
from mockserver.record.coverage import Coverage, Names, pair_name
from mockserver.record.journal import MIB, Journal, RequestRecord


class MockState(Harness[QueuedFault]):
    """The journal, queued faults, stubs and rate limits of one mock, and the test-facing
    API on them (`mockserver.engine.api.Harness`).

    `MockServer` drives the same state; with `create_app` the state is `app.state.mock`.
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
            Upstream(
                config.upstream,
                config.upstream_api_key,
                config.upstream_timeout,
                max_bytes=config.upstream_max_mb * MIB,
            )
            if config.upstream
            else None
        )
        self.recorder = (
            Recorder(config.record, config.record_mode, self.upstream)
            if config.record is not None and self.upstream is not None
            else None
        )
        self.counters = Coverage(self._names(), self.stubs.names if self.stubs else list)
        self.expected_errors: set[str] = set()
        self._rng = self.chaos.rng()
        self._rng_lock = threading.Lock()
        self._plan_lock = threading.Lock()

    def _names(self) -> Names:
        """What coverage lists with count 0 when nothing used it."""
        return Names(
            errors=tuple(self.catalogue.kinds),
            faults=tuple(self.faults.names()),
            fields=tuple(self.contract.schema["properties"]),
            models=self.contract.models,
            pairs=tuple(
                pair_name(ratio, resolution)
                for ratio, row in self.sizes.table.items()
                for resolution in row
            ),
            warnings=tuple(sorted(WARNING_CODES)),
        )

    # ------------------------------------------------------------------ used while serving

    def draw_chaos(self) -> tuple[float, Fault | None]:
        """The --latency and --fault-rate draws of one request (every request draws both)."""
        with self._rng_lock:
            delay, name = self.chaos.draw(self._rng)
        return delay, self.faults.get(name) if name else None

    def plan(self, asked: Asked) -> Plan:
        """How to answer `asked` (see `mockserver.answers.plan`), spending the queued fault or stub
        use it takes; atomic, so concurrent requests never share one use."""
        if self.stubs is not None:
            self.stubs.refresh()
            if self.stubs.error:
                raise ApiError("stub_error", detail=self.stubs.error)
        if self.stubs is None and not self.queue:
            return plan(asked, (), (), self.faults.max_latency_ms)  # nothing to spend
        with self._plan_lock:
            while True:
                stubs = self.stubs.available(asked.session) if self.stubs else []
                chosen = plan(asked, self.queue.pending(), stubs, self.faults.max_latency_ms)
                if chosen.queued is None or self.queue.use(chosen.queued):
                    break  # else the entry was cleared meanwhile: plan again without it
            if chosen.stub is not None and self.stubs is not None:
                self.stubs.use(chosen.stub, asked.session)
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
    # The in-process transport of `Harness`, whose methods (fail_next, reset, check, ...)
    # this state has: it is itself what they drive.

    label = "the mock"

    @property
    def transport(self) -> MockState:
        return self

    def read_records(self, session: str | None) -> list[RequestRecord]:
        return self.journal.records(session)

    def read_coverage(self, session: str | None) -> dict[str, Any]:
        return self.counters.report(session)

    def queue_fault(self, order: FaultOrder) -> QueuedFault:
        found = self.faults.get(order.fault)
        if found is None:
            known = ", ".join(self.faults.names())
            raise ValueError(f"unknown fault {order.fault!r}; known: {known}")
        times = order.times
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be a whole number of at least 1, not {times!r}")
        chosen = found.with_options(delay_ms=order.delay_ms, retry_after_ms=order.retry_after_ms)
        return self.queue.push(chosen, times, order.match, order.session)

    def clear(self, session: str | None) -> None:
        if session is not None:
            self.journal.clear(session=session)
            self.queue.clear(session)
            if self.stubs:
                self.stubs.restart(session)
            self.counters.reset(session)
            return
        self.journal.clear(restart_ids=True)
        self.queue.clear()
        if self.limiter:
            self.limiter.clear()
        if self.stubs:
            self.stubs.refresh(force=True)
        self.counters.reset()
        with self._rng_lock:
            self._rng = self.chaos.rng()
