"""Sessions: a client tags its requests with `X-Mock-Session: NAME`, and the journal, the
checks, queued faults, stub uses, coverage and reset can be scoped to that name, so that
test processes sharing one mock do not see each other's requests. Requests without the
header are the session named "default". Unscoped, each of them covers every session.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from mockserver.coverage import DEFAULT_SESSION
from mockserver.errors import ApiError
from mockserver.journal import RequestRecord
from mockserver.verify import Strictness, check, requested

HEADER = "X-Mock-Session"
_RAW_HEADER = HEADER.lower().encode()
NAME_LIMIT = 200  # characters of a session name


class SessionNameError(ValueError):
    """A session name that is not 1 to NAME_LIMIT printable ASCII characters; `problem`
    says how, for the error envelope (param X-Mock-Session or session)."""

    def __init__(self, problem: str, name: str) -> None:
        super().__init__(f"{problem}: {name!r}")
        self.problem = problem


def checked(name: str) -> str:
    """A session name, spaces at either end left out (as HTTP leaves them out of a header):
    1 to NAME_LIMIT printable ASCII characters, else a SessionNameError."""
    if not isinstance(name, str):
        raise TypeError(f"a session name is a str, not {type(name).__name__}")
    clean = name.strip(" \t")
    if not clean:
        raise SessionNameError("the session name is empty", name)
    if len(clean) > NAME_LIMIT:
        problem = f"the session name is {len(clean)} characters long; at most {NAME_LIMIT}"
        raise SessionNameError(problem, name)
    if not all(" " <= c <= "~" for c in clean):
        raise SessionNameError("the session name has a character that is not printable ASCII", name)
    return clean


def session_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The session of a request, from its raw ASGI headers (one value: the first)."""
    for key, value in headers:
        if key == _RAW_HEADER:
            try:
                return checked(value.decode("latin-1"))
            except SessionNameError as exc:
                raise ApiError("invalid_value", param=HEADER, detail=exc.problem) from None
    return DEFAULT_SESSION


def session_headers(name: str) -> dict[str, str]:
    """The default headers an HTTP client (the openai SDK's `default_headers`) sends so its
    requests belong to session `name`."""
    return {HEADER: checked(name)}


class Checked:
    """What `MockState`, `MockServer` and `RemoteMock` share: the checks on the journal,
    which each reads with its own `records()` and `coverage()`."""

    expected_errors: set[str]
    label = "the mock"  # how a failed check names the mock

    def records(self, session: str | None = None) -> list[RequestRecord]:
        """The recorded requests of one session (all of them: None), oldest first."""
        raise NotImplementedError

    def coverage(self, session: str | None = None) -> dict[str, Any]:
        """What the requests since start or reset exercised (`mockserver.coverage`): of the
        whole mock, or of one session."""
        raise NotImplementedError

    @property
    def requests(self) -> list[RequestRecord]:
        """Every recorded API request, oldest first (the newest `journal_size` of them)."""
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

        Values are matchers (`mockserver.matching`): equal with the same JSON type, a
        compiled regex that finds them (its flags kept), or a callable that says so. On a
        failure the message shows the nearest request and what differs.
        """
        return requested(self.records(session), count, status=status, error=error, fields=fields)

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
        check(
            self.records(session),
            self.expected_errors if expected_errors is None else expected_errors,
            lambda: self.coverage(session),
            session=session,
            unused_stubs=unused_stubs,
            unmatched=unmatched,
            mock=self.label,
        )


class Served(Checked):
    """A mock on a socket, in this process or another: where clients reach it, and its
    sessions."""

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def api_base(self) -> str:
        return self.url + "/v1"

    @property
    def api_key(self) -> str:
        raise NotImplementedError

    def reset(self, session: str | None = None) -> None:
        raise NotImplementedError

    def fail_next(self, fault: str, times: int = 1, **options: Any) -> Any:
        raise NotImplementedError

    @property
    def headers(self) -> dict[str, str]:
        """The headers a client sends besides its key: none (a session's has its own)."""
        return {}

    def client_options(self) -> dict[str, Any]:
        """`openai.OpenAI(**mock.client_options())`: the mock's base URL and key."""
        return {"base_url": self.api_base, "api_key": self.api_key}

    def session(self, name: str) -> MockSession:
        """Session `name` of this mock: its `headers` (or `client_options()`) for a client,
        and the journal, faults, checks and coverage scoped to it."""
        return MockSession(self, name)


class MockSession:
    """One session of a mock: what its requests send (`headers`, `client_options`), and the
    mock's journal, faults, checks, coverage and reset scoped to it. Errors a test expects
    (`expect_errors`) are the session's own."""

    def __init__(self, mock: Served, name: str) -> None:
        self.mock = mock
        self.name = checked(name)
        self.expected_errors: set[str] = set()

    @property
    def headers(self) -> dict[str, str]:
        """For an HTTP client's default headers: `X-Mock-Session: NAME`."""
        return session_headers(self.name)

    def client_options(self) -> dict[str, Any]:
        """`openai.OpenAI(**session.client_options())`: the mock's base URL and key, and the
        session's header on every request."""
        return {**self.mock.client_options(), "default_headers": self.headers}

    @property
    def url(self) -> str:
        return self.mock.url

    @property
    def api_base(self) -> str:
        return self.mock.api_base

    @property
    def api_key(self) -> str:
        return self.mock.api_key

    @property
    def requests(self) -> list[RequestRecord]:
        """The session's recorded requests, oldest first."""
        return self.mock.records(self.name)

    @property
    def last_request(self) -> RequestRecord | None:
        records = self.requests
        return records[-1] if records else None

    def reset(self) -> None:
        """The session's journal, queued faults, stub uses and coverage back to none."""
        self.mock.reset(self.name)
        self.expected_errors.clear()

    def fail_next(self, fault: str, times: int = 1, **options: Any) -> Any:
        """`fail_next`, for this session's requests only."""
        return self.mock.fail_next(fault, times, session=self.name, **options)

    def expect_errors(self, *codes: str) -> None:
        self.expected_errors.update(codes)

    def assert_requested(self, count: int | None = None, **fields: Any) -> list[RequestRecord]:
        return self.mock.assert_requested(count, session=self.name, **fields)

    def check(
        self, *, unused_stubs: Strictness = "ignore", unmatched: Strictness = "ignore"
    ) -> None:
        """`check()` on the session's requests, with the errors it expects."""
        self.mock.check(
            session=self.name,
            unused_stubs=unused_stubs,
            unmatched=unmatched,
            expected_errors=self.expected_errors,
        )

    def coverage(self) -> dict[str, Any]:
        return self.mock.coverage(self.name)

    def __repr__(self) -> str:
        return f"<MockSession {self.name!r} of {self.mock.url}>"
