"""The one API a test drives a mock with: its journal (`records`, `requests`, `last_request`),
`assert_requested`, `check`, `expect_errors`, `fail_next`, `coverage`, `reset` and `session`,
written once here over a `Transport`, the few things a mock does for it.

Two transports exist: `MockState`, the state of a mock in this process (`create_app`'s
`app.state.mock`, `MockServer`), and `mockserver.harness.remote.AdminRoutes`, the admin routes of a
mock in another process (`RemoteMock`). `Harness` is the API of a whole mock or, scoped, of one
of its sessions (`MockSession`); `Served` adds where clients reach the mock.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from mockserver.answers.matching import Match, compile_python
from mockserver.contract.sessions import checked, session_headers
from mockserver.record.journal import RequestRecord
from mockserver.record.verify import Strictness, check, requested

Queued = TypeVar("Queued")  # what a transport says of a fault it queued
Queued_co = TypeVar("Queued_co", covariant=True)


@dataclass(frozen=True)
class FaultOrder:
    """A fault to queue, as `fail_next` was asked: the fault's name, how many requests it
    answers, the matchers of their body, its options, and its session (None: any)."""

    fault: str
    times: int
    match: Match
    delay_ms: int | None = None
    retry_after_ms: int | None = None
    session: str | None = None


class Transport(Protocol[Queued_co]):
    """What `Harness` asks of a mock. `session` is a checked name, or None for every
    session; each transport checks the rest its own way (names of faults, `times`)."""

    @property
    def label(self) -> str:
        """How a failed check names the mock ("the mock", "the mock at URL")."""
        ...

    def read_records(self, session: str | None) -> list[RequestRecord]:
        """The journal's records of `session`, oldest first."""
        ...

    def read_coverage(self, session: str | None) -> dict[str, Any]:
        """The coverage report (`mockserver.record.coverage`) of the mock or of `session`."""
        ...

    def queue_fault(self, order: FaultOrder) -> Queued_co:
        """Queue the fault; ValueError or RuntimeError if the mock refuses it."""
        ...

    def clear(self, session: str | None) -> None:
        """Journal, queued faults, stub uses and coverage back to their start: of `session`,
        or (None) of the whole mock, with its rate limits and chaos draws."""
        ...


class Harness(Generic[Queued]):
    """The journal, faults, checks, coverage and reset of a mock (`scope` None) or of one of
    its sessions (`scope` its name: every method is of that session only). A subclass picks
    the `transport`, and the `expected_errors` that `check()` lets pass."""

    expected_errors: set[str]  # emptied by a reset of the whole scope
    scope: str | None = None

    @property
    def transport(self) -> Transport[Queued]:
        raise NotImplementedError

    def _scope(self, session: str | None) -> str | None:
        """The session a call is about: `session` checked, or the harness's own scope."""
        if session is None:
            return self.scope
        name = checked(session)
        if self.scope is not None and name != self.scope:
            raise ValueError(
                f"this is session {self.scope!r} of the mock; ask the mock itself about "
                f"session {name!r}"
            )
        return name

    def records(self, session: str | None = None) -> list[RequestRecord]:
        """The recorded requests of one session (all of them: None), oldest first."""
        return self.transport.read_records(self._scope(session))

    @property
    def requests(self) -> list[RequestRecord]:
        """Every recorded API request (of the scope), oldest first: the newest
        `journal_size` of them."""
        return self.records()

    @property
    def last_request(self) -> RequestRecord | None:
        records = self.records()
        return records[-1] if records else None

    def expect_errors(self, *codes: str) -> None:
        """Errors with these codes are what the test is after: `check()` lets them pass."""
        self.expected_errors.update(codes)

    def assert_requested(
        self,
        count: int | None = None,
        *,
        status: Any = None,
        error: Any = None,
        session: str | None = None,
        **fields: Any,
    ) -> list[RequestRecord]:
        """Assert that requests with these body fields were made (`count`: exactly that many),
        among those of `session` if given.

        Values are matchers (`mockserver.answers.matching`): equal with the same JSON type, a
        compiled regex that finds them (its flags kept), or a callable that says so. On a
        failure the message shows the nearest request and what differs.
        """
        records = self.records(session)
        return requested(records, count, status=status, error=error, fields=fields)

    def check(
        self,
        *,
        session: str | None = None,
        unused_stubs: Strictness = "ignore",
        unmatched: Strictness = "ignore",
        expected_errors: Collection[str] | None = None,
    ) -> None:
        """Fail if any request so far (of `session`, if given) had a warning, an unexpected
        error, or broke the mock; with `unused_stubs="fail"`, if a stub file was never used;
        with `unmatched="fail"`, if a valid generation request was answered by neither a
        stub nor a fault."""
        scope = self._scope(session)
        check(
            self.transport.read_records(scope),
            self.expected_errors if expected_errors is None else expected_errors,
            lambda: self.transport.read_coverage(scope),
            session=scope,
            unused_stubs=unused_stubs,
            unmatched=unmatched,
            mock=self.transport.label,
        )

    def fail_next(
        self,
        fault: str,
        times: int = 1,
        *,
        delay_ms: int | None = None,
        retry_after_ms: int | None = None,
        session: str | None = None,
        **match: Any,
    ) -> Queued:
        """Answer the next `times` generation requests whose body has `match` (of `session`
        only, if given) with `fault`; what the mock says of the queued entry."""
        scope = self._scope(session)
        order = FaultOrder(fault, times, compile_python(match), delay_ms, retry_after_ms, scope)
        return self.transport.queue_fault(order)

    def coverage(self, session: str | None = None) -> dict[str, Any]:
        """What the requests since start or reset exercised (`mockserver.record.coverage`): of the
        whole mock, or of one session."""
        return self.transport.read_coverage(self._scope(session))

    def reset(self, session: str | None = None) -> None:
        """Journal, queued faults, stub counts, coverage, rate limits and chaos back to their
        start; with `session`, only that session's journal, queued faults, stub counts and
        coverage (rate limits are per key, and chaos draws are the mock's). A reset of the
        harness's whole scope forgets the errors it expected too."""
        scope = self._scope(session)
        self.transport.clear(scope)
        if scope == self.scope:
            self.expected_errors.clear()


class Served(Harness[Queued]):
    """A mock on a socket, in this process or another: where clients reach it, and its
    sessions. A subclass says its `url` and `api_key`."""

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def api_key(self) -> str:
        raise NotImplementedError

    @property
    def api_base(self) -> str:
        return self.url + "/v1"

    @property
    def headers(self) -> dict[str, str]:
        """The headers a client sends besides its key: none, or a session's."""
        return {} if self.scope is None else session_headers(self.scope)

    def client_options(self) -> dict[str, Any]:
        """`openai.OpenAI(**mock.client_options())`: the mock's base URL and key, and in a
        session the session's header on every request."""
        options: dict[str, Any] = {"base_url": self.api_base, "api_key": self.api_key}
        if self.headers:
            options["default_headers"] = self.headers
        return options

    def session(self, name: str) -> MockSession:
        """Session `name` of this mock: its `headers` (or `client_options()`) for a client,
        and the journal, faults, checks and coverage scoped to it."""
        return MockSession(self, name)


class MockSession(Served[Any]):
    """One session of a mock: what its requests send (`headers`, `client_options`), and the
    mock's journal, faults, checks, coverage and reset scoped to it. Errors a test expects
    (`expect_errors`) are the session's own. Of a session, `session(name)` is another
    session of the same mock."""

    def __init__(self, mock: Served[Any], name: str) -> None:
        self.mock: Served[Any] = mock.mock if isinstance(mock, MockSession) else mock
        self.scope = self.name = checked(name)
        self.expected_errors: set[str] = set()

    @property
    def transport(self) -> Transport[Any]:
        return self.mock.transport

    @property
    def url(self) -> str:
        return self.mock.url

    @property
    def api_key(self) -> str:
        return self.mock.api_key

    def __repr__(self) -> str:
        return f"<MockSession {self.name!r} of {self.mock.url}>"
