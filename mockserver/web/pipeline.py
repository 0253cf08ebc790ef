"""The path every API request takes around its endpoint: the outcome of each request made
once and recorded once, the error envelope for every way a request can fail.

`Journaled` wraps the app. For each request under a dialect's prefix (`/v1/...`) it notes
the request's `Arrival` (its journal id, taken as it begins, and epoch; its session) and
opens its `Connection`
(`mockserver.web.connection`: the body read against the read timeout, the client's leaving).
The endpoint (`api`) returns the request's `Outcome`, or raises an ApiError carrying it,
which the error handlers answer in the envelope; either way the outcome is concluded in the
scope once (`conclude`). A 401/404/405/413/415 before any endpoint, a body late past the
server's read timeout (408 `request_timeout`, and the connection closed) and a failure of
the mock (500, its traceback kept) are answered here. The answer's start carries an
`x-request-id` (the outcome's `mock_request_id`), unless it has its own (a stub's, the
upstream's), and `x-mock-warnings`.

Once the answer is out (just before its last byte, so a client that has its answer finds it
in the journal; or at the end, when none went out), the outcome is completed with what the
client saw (the status sent, or None with the connection's ending: "client_disconnected",
"dropped") and its record (`journal.record_of`) and coverage's counts (`coverage.tally`)
are derived from it: the journal's one writer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mockserver.contract.sessions import DEFAULT_SESSION, session_of
from mockserver.contract.validation import ContractWarning
from mockserver.errors import ApiError, ErrorCatalogue
from mockserver.record.coverage import tally
from mockserver.record.journal import record_of
from mockserver.record.outcome import (
    ARRIVAL,
    Arrival,
    ErrorNote,
    Failed,
    Outcome,
    Refused,
    begun,
    refused,
)
from mockserver.web.connection import BodyTimeout, Connection, NoAnswer, State, receive_by
from mockserver.web.dialect import dialect_of
from mockserver.web.uvicorn_glue import read_timeout_of

if TYPE_CHECKING:
    from mockserver.engine.state import MockState

logger = logging.getLogger("mockserver")

OUTCOME = "jimeng.outcome"  # the scope key of the request's concluded Outcome
REQUEST_ID_HEADER = b"x-request-id"  # every answer to a journaled request has one
WARNINGS_HEADER_LIMIT = 2000

Endpoint = Callable[[Request], Awaitable[Response]]
ApiEndpoint = Callable[[Request], Awaitable[Outcome]]


def api(mock: ApiEndpoint, proxy: ApiEndpoint | None = None) -> Endpoint:
    """The route endpoint of an API operation: `mock` answers it (`proxy` in proxy mode),
    and the outcome it returns is concluded before its answer is sent."""

    @functools.wraps(mock)
    async def endpoint(request: Request) -> Response:
        upstream = request.app.state.mock.upstream
        outcome = await (proxy if proxy is not None and upstream is not None else mock)(request)
        conclude(request.scope, outcome)
        return outcome.response if outcome.response is not None else NoAnswer()

    return endpoint


def conclude(scope: Scope, outcome: Outcome) -> None:
    """What the request turned out to be, as its answer is sent (a later answer of the
    request path, a 500, replaces it)."""
    if ARRIVAL in scope:
        scope[OUTCOME] = outcome


def concluded(scope: Scope) -> Outcome:
    found = scope.get(OUTCOME)
    return found if isinstance(found, Outcome) else begun(scope)


# A 408 leaves the rest of the body unread: the connection cannot serve another request.
_CLOSE = {"Connection": "close"}


class Journaled:
    """ASGI middleware: records every request under one of `prefixes` (the dialects' API
    routes) in the journal, once, and times the reading of every request's body (a body
    late past the server's read timeout is a 408)."""

    def __init__(self, app: ASGIApp, state: MockState, prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.state = state
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not scope["path"].startswith(self.prefixes):
            await self._unjournaled(scope, receive, send)
            return
        try:
            session, refusal = session_of(scope["headers"]), None
        except ApiError as exc:
            session, refusal = DEFAULT_SESSION, exc
        epoch, number = self.state.journal.begin(session)
        scope[ARRIVAL] = Arrival(
            number,
            epoch,
            session,
            time.time(),
            scope["method"],
            scope["path"],
            tuple(scope["headers"]),
        )
        connection = Connection(scope, receive, send)
        answering = _Answering(scope, connection, self.record)
        try:
            if refusal is not None:  # a bad X-Mock-Session: the app does not see the request
                await answering.answer(refusal)
            else:
                await self.app(scope, connection.receive, answering.send)
        except asyncio.CancelledError:
            connection.cut()  # only the server cancels a request: it is shutting down
            raise
        except Exception as exc:
            await answering.failed(exc)
        finally:
            answering.close()

    async def _unjournaled(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A request to a route the journal does not keep: only its body read is timed."""
        timeout = read_timeout_of(scope)
        if timeout is None:
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + timeout

        async def receive_in_time() -> Message:
            return await receive_by(receive, deadline)

        try:
            await self.app(scope, receive_in_time, send)
        except BodyTimeout:
            await error_response(scope, _timeout_error(scope))(scope, receive, send)

    def record(self, outcome: Outcome) -> None:
        """The journal's one writer. Coverage counts what the journal keeps: not a request
        begun before a reset."""
        if self.state.journal.add(record_of(outcome), outcome.arrival.epoch):
            self.state.counters.count(tally(outcome))


def _timeout_error(scope: Scope) -> ApiError:
    seconds = read_timeout_of(scope) or 0
    return ApiError("request_timeout", headers=_CLOSE, timeout=f"{seconds:g}")


class _Answering:
    """One journaled request's answer on its way out through its connection: its start
    marked with the request's ids, its outcome completed and recorded once (just before the
    answer's last message, or at the end)."""

    def __init__(
        self, scope: Scope, connection: Connection, record: Callable[[Outcome], None]
    ) -> None:
        self.scope, self.connection, self._record = scope, connection, record
        self.status: int | None = None  # of the answer's start, once sent
        self.own_id: str | None = None  # the answer's own x-request-id (a stub's, upstream's)
        self.failure: str | None = None  # the traceback of a failure of the mock
        self.recorded = False

    async def send(self, message: Message) -> None:
        connection = self.connection
        if not connection.sendable():
            return
        if message["type"] == "http.response.start":
            message = self._start(message)
        elif not message.get("more_body", False):
            self.record()
        await connection.send(message)

    def _start(self, message: Message) -> Message:
        """The answer's start, noted, with its `x-request-id` (unless it has its own: a
        stub's or the upstream's, which is recorded) and `x-mock-warnings`."""
        outcome = concluded(self.scope)
        self.status = message["status"]
        headers = list(message.get("headers", ()))
        own = next((v for k, v in headers if k.lower() == REQUEST_ID_HEADER), None)
        if own is None:
            headers.append((REQUEST_ID_HEADER, outcome.mock_request_id.encode()))
        else:
            self.own_id = own.decode("latin-1")
        if outcome.warnings:
            headers.append((b"x-mock-warnings", warnings_header(outcome.warnings).encode()))
        return {**message, "headers": headers}

    async def answer(self, error: ApiError) -> None:
        await error_response(self.scope, error)(self.scope, self.connection.receive, self.send)

    async def failed(self, exc: Exception) -> None:
        """The app raised `exc` (`Failed`: its cause, with the outcome so far): the client's
        leaving, a body that came too late, or a failure of the mock, answered 500."""
        cause = exc.__cause__ if isinstance(exc, Failed) else exc
        connection, scope = self.connection, self.scope
        if isinstance(cause, ClientDisconnect):  # while the body was read
            connection.lost()
        elif isinstance(cause, BodyTimeout) and connection.state.answerable:
            await self.answer(_timeout_error(scope))
        elif connection.state in (State.CLIENT_LEFT, State.CUT):
            logger.debug("%r after the connection was gone", cause)
        elif not connection.state.answerable:
            raise exc  # nothing more can be answered
        else:
            logger.error(
                "error while answering %s %s", scope["method"], scope["path"], exc_info=cause
            )
            self.failure = "".join(traceback.format_exception(cause))
            so_far = exc.outcome if isinstance(exc, Failed) else begun(scope)
            await self.answer(
                refused(ApiError("server_error", detail=type(cause).__name__), so_far)
            )

    def record(self) -> None:
        """The outcome completed with what the client saw, recorded (once)."""
        if self.recorded:
            return
        self.recorded = True
        outcome, connection = concluded(self.scope), self.connection
        ending = connection.state.ending
        completed = replace(
            outcome,
            status=self.status if ending == "answered" else None,
            request_id=self.own_id or outcome.mock_request_id,
            ending=ending,
            exception=self.failure or connection.failure,
            duration_ms=round((time.time() - outcome.arrival.started) * 1000, 3),
            response=None,
        )
        self._record(completed)

    def close(self) -> None:
        self.connection.close()
        self.record()


def error_response(scope: Scope, error: ApiError) -> Response:
    """The envelope for `error`; for an API request, its outcome concluded with it (the
    outcome the error carries, `Refused`, or a new one)."""
    catalogue: ErrorCatalogue = scope["app"].state.mock.catalogue
    message = catalogue.message(error)
    so_far = error.outcome if isinstance(error, Refused) else begun(scope)
    outcome = replace(so_far, error=ErrorNote(error.code, message, error.param))
    conclude(scope, outcome)
    dialect = dialect_of(scope)
    if dialect is None or dialect.envelope is None:
        return catalogue.response(error, message)
    kind = catalogue.kinds[error.code]
    body = dialect.envelope(error, kind, message, outcome.mock_request_id)
    return JSONResponse(body, status_code=kind.status, headers=error.headers)


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(request.scope, exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's 404 and 405, in the envelope; a 405's Allow lists every method of the path."""
    assert isinstance(exc, HTTPException)
    method, path = request.method, request.url.path
    if exc.status_code == 405:
        allowed = ", ".join(request.app.state.routes.allowed(path))
        error = ApiError(
            "method_not_allowed",
            headers={"Allow": allowed},
            method=method,
            path=path,
            allowed=allowed,
        )
    else:
        error = ApiError("not_found", method=method, path=path)
    return error_response(request.scope, error)


async def on_server_error(request: Request, exc: Exception) -> Response:
    """A failure of the mock outside the API routes (those are answered by `Journaled`)."""
    return error_response(request.scope, ApiError("server_error", detail=type(exc).__name__))


def warnings_header(warnings: tuple[ContractWarning, ...]) -> str:
    """The warnings as one header line of printable ASCII (control characters in a field
    name would end the header), cut to a size every client and proxy reads."""
    text = "".join(
        c if " " <= c <= "~" else c.encode("unicode_escape").decode()
        for c in "; ".join(w.message for w in warnings)
    )
    if len(text) <= WARNINGS_HEADER_LIMIT:
        return text
    more = f" ... ({len(warnings)} warnings in all; the journal has every one)"
    return text[: WARNINGS_HEADER_LIMIT - len(more)] + more
