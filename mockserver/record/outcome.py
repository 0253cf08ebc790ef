"""What one API request turned out to be: one immutable value.

An API endpoint returns an `Outcome` (or raises an ApiError that carries one: `Refused`),
made from the request's `Arrival` (its journal id and epoch, session, method, path and
headers, noted once as it came in). It says what was asked (the body, its warnings, the
ratio x resolution pair), the plan (fault, where it came from, stub, delay), the answer
(error, images, the response to send) and, in proxy mode, what the upstream said. The
request path completes it once the answer is out (`pipeline`): the status the client got,
the `x-request-id`, how the connection ended, a failure of the mock, the duration.

The journal's record (`journal.record_of`) and coverage's counts (`coverage.tally`) are
each derived from a completed outcome by one pure function, so either can be made when it
is read rather than when the request ends.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mockserver.contract.sessions import DEFAULT_SESSION
from mockserver.contract.validation import ContractWarning
from mockserver.errors import ApiError
from mockserver.record.journal import Epoch
from mockserver.record.streamed import StreamDigest

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.types import Scope

    from mockserver.answers.plan import Plan

ARRIVAL = "jimeng.arrival"  # the scope key of the request's Arrival
PROMPT_HASHED = 1024  # characters of the model and prompt a request id is a hash of

# How the request's connection ended, as the journal says it (see `connection.State`).
Ending = Literal["answered", "dropped", "client_disconnected"]


@dataclass(frozen=True, slots=True)
class Arrival:
    """A request as it came in, before anything was made of it."""

    id: int  # its id in the journal, taken as it began
    epoch: Epoch  # the journal's (and its session's) when it began
    session: str
    started: float  # the wall clock's
    method: str
    path: str
    headers: tuple[tuple[bytes, bytes], ...] = field(repr=False)  # as sent: secrets too


def arrival_of(scope: Scope) -> Arrival:
    """The request's Arrival; outside the request path (an endpoint called on its own, in a
    unit test), a new one numbered 0."""
    found = scope.get(ARRIVAL)
    if isinstance(found, Arrival):
        return found
    headers = tuple(scope.get("headers", ()))
    return Arrival(
        0, (-1, 0), DEFAULT_SESSION, time.time(), scope["method"], scope["path"], headers
    )


@dataclass(frozen=True, slots=True)
class ErrorNote:
    """The error an answer carries: the mock's envelope, a stub's or the upstream's."""

    code: str
    message: str | None = None
    param: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one API request turned out to be (see the module's docstring)."""

    arrival: Arrival
    # What was asked.
    body: Any = None  # the JSON object read; None if none was
    warnings: tuple[ContractWarning, ...] = ()
    pair: str | None = None  # the ratio x resolution of a valid request without a size
    # What the mock decided for a valid generation request.
    plan: Plan | None = None
    # The answer.
    error: ErrorNote | None = None
    images: tuple[str, ...] = ()
    # Proxy mode and recording (see `journal.RequestRecord`).
    upstream: Mapping[str, Any] | None = None
    mock_verdict: Mapping[str, Any] | None = None
    drift: str | None = None
    recorded: Mapping[str, Any] | None = None
    # A streamed answer: what it has sent so far (its stream updates it as events go out).
    stream: StreamDigest | None = None
    # Completed by the request path once the answer is out.
    status: int | None = None  # None: no answer reached the client
    request_id: str | None = None  # the answer's own (a stub's, the upstream's); else None
    ending: Ending = "answered"
    exception: str | None = field(default=None, repr=False)
    duration_ms: float = 0.0
    # What to send: never kept once it is sent (`pipeline` completes the outcome without it).
    response: Response | None = field(default=None, compare=False, repr=False)

    @property
    def fault(self) -> str | None:
        return self.plan.fault.name if self.plan is not None and self.plan.fault else None

    @property
    def fault_source(self) -> str | None:
        """Where the fault came from: "header", "queue", "stub" or "chaos"."""
        return self.plan.source if self.plan is not None and self.plan.fault else None

    @property
    def stub(self) -> str | None:
        return self.plan.stub.name if self.plan is not None and self.plan.stub else None

    @property
    def unmatched(self) -> bool:
        """A valid generation request that neither a stub nor a fault answered."""
        plan = self.plan
        return plan is not None and plan.fault is None and plan.stub is None

    @property
    def answer_id(self) -> str:
        """The answer's `x-request-id`: its own, else the mock's."""
        return self.request_id or self.mock_request_id

    @property
    def mock_request_id(self) -> str:
        """The mock's id of the request: `req_`, its journal id (six digits or more), `_`,
        and 8 hex digits of a hash of its method, path, model and prompt (their first
        PROMPT_HASHED characters: a bounded cost, whatever the body holds). Ids restart
        with the journal's: the same requests in the same order get the same ids."""
        body = self.body if isinstance(self.body, dict) else {}
        fields = [body.get("model"), body.get("prompt")]
        hashed = (f[:PROMPT_HASHED] if isinstance(f, str) else "" for f in fields)
        text = "\n".join((self.arrival.method, self.arrival.path, *hashed))
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        return f"req_{self.arrival.id:06d}_{digest}"


def begun(scope: Scope) -> Outcome:
    """The outcome of a request nothing has been made of yet."""
    return Outcome(arrival_of(scope))


class Refused(ApiError):
    """An ApiError raised with the outcome of its request so far (what it asked, its plan):
    the error's answer completes that outcome."""

    def __init__(self, error: ApiError, outcome: Outcome) -> None:
        super().__init__(error.code, param=error.param, headers=error.headers, **error.fields)
        self.outcome = outcome


class Failed(Exception):
    """A failure of the mock (its cause, `__cause__`) while it answered the request, with
    the outcome of the request so far."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__("the mock failed while answering")
        self.outcome = outcome


def refused(error: ApiError, outcome: Outcome) -> Refused:
    """`error`, carrying `outcome` (an error that carries a later one is left as it is)."""
    return error if isinstance(error, Refused) else Refused(error, outcome)


@contextmanager
def carrying(outcome: Outcome) -> Iterator[None]:
    """What is raised inside carries `outcome`: an ApiError as `Refused`, any other failure
    as `Failed` (unless it already carries a later one)."""
    try:
        yield
    except ApiError as exc:
        raise refused(exc, outcome) from None
    except Failed:
        raise
    except Exception as exc:
        raise Failed(outcome) from exc
