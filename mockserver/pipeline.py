"""The path every API request takes around its endpoint: one writer of the journal, the
error envelope for every way a request can fail, and a connection dropped on purpose.

`Journaled` wraps the app. For each request to `/v1/...` it opens an `Exchange` in the
scope, which the endpoint and the error handlers fill in (body, warnings, images, fault,
stub, error), and it writes the journal entry once, whatever the outcome: an answer (just
before its last byte goes out, so a client that has its answer finds it in the journal),
an error of the contract, a 401/404/405/413/415, a fault, a stub, a dropped connection or a
failure of the mock itself, which it answers in the envelope as a 500. The request's
journal id is taken when it begins, and every answer carries an `x-request-id` (`request_id`:
the journal id and a hash of the request), unless it has its own (a stub's, the upstream's),
which is recorded instead.

It records what the client saw: a client that left before its answer (while its body came,
or while a latency fault kept the answer waiting, which then stops) is `status` None with
`outcome` "client_disconnected", as is an answer the connection could no longer carry
(uvicorn answers bytes it cannot parse itself, and closes the connection); a request the
server cut at the end of its shutdown is "dropped". And it times every request's body read
against the server's read timeout (`serving.read_timeout_of`): a body late past it is a 408
`request_timeout`, and the connection is closed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mockserver.coverage import DEFAULT_SESSION, Answered
from mockserver.errors import ApiError, ErrorCatalogue
from mockserver.journal import ContractWarning, Epoch, RequestRecord, clip, redact_headers
from mockserver.serving import TRANSPORT, cut_by_server, drop_connection, read_timeout_of
from mockserver.sessions import session_of

if TYPE_CHECKING:
    from mockserver.state import MockState

logger = logging.getLogger("mockserver")

EXCHANGE = "jimeng.exchange"  # the scope key of the request's Exchange
JOURNALED = "/v1/"  # the routes whose requests are recorded
REQUEST_ID_HEADER = b"x-request-id"  # every answer to a journaled request has one
WARNINGS_HEADER_LIMIT = 2000
# How long an answer may take before a task watches for its client leaving.
WATCH_AFTER = 0.05


@dataclass
class Exchange:
    """What one API request turned out to be, filled in as it is answered."""

    epoch: Epoch  # the journal's when the request began
    started: float
    id: int = 0  # its id in the journal, taken when it began
    session: str = DEFAULT_SESSION  # its X-Mock-Session
    request_id: str | None = None  # the answer's x-request-id, once it starts
    body: Any = None
    warnings: list[ContractWarning] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    fault: str | None = None
    stub: str | None = None
    error: str | None = None
    error_message: str | None = None
    param: str | None = None
    exception: str | None = None
    status: int | None = None  # None until an answer starts; stays None if none is sent
    dropped: bool = False  # the mock closed the connection: the disconnect fault, a shutdown
    client_left: bool = False  # the connection was gone before the answer was all sent
    # Proxy mode and recording (see RequestRecord).
    upstream: dict[str, Any] | None = None
    mock_verdict: dict[str, Any] | None = None
    drift: str | None = None
    recorded: dict[str, Any] | None = None
    # What coverage counts besides the record.
    answered: Answered = field(default_factory=Answered)

    @property
    def outcome(self) -> str:
        if self.dropped:
            return "dropped"
        return "client_disconnected" if self.client_left else "answered"


class BodyTimeout(Exception):
    """The request's body did not all arrive within the server's read timeout."""


# A 408 leaves the rest of the body unread: the connection cannot serve another request.
_CLOSE = {"Connection": "close"}


class Journaled:
    """ASGI middleware: records every `/v1/...` request in the journal, once, and times the
    reading of every request's body (a body late past the server's read timeout is a 408)."""

    def __init__(self, app: ASGIApp, state: MockState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not scope["path"].startswith(JOURNALED):
            await self._unjournaled(scope, receive, send)
            return
        try:
            session, refused = session_of(scope["headers"]), None
        except ApiError as exc:
            session, refused = DEFAULT_SESSION, exc
        epoch, number = self.state.journal.begin(session)
        exchange = scope[EXCHANGE] = Exchange(
            epoch=epoch, started=time.time(), id=number, session=session
        )
        talk = _Talk(scope, receive, send, exchange, self.record)
        try:
            if refused is not None:  # a bad X-Mock-Session: the app does not see the request
                await talk.answer(refused)
            else:
                await self.app(scope, talk.receive, talk.send)
        except asyncio.CancelledError:
            if not talk.stopped_for_leaving():
                talk.lost(by_server=True)  # the server's cancellation: it is shutting down
                raise
        except ClientDisconnect:  # while the body was read
            talk.lost()
        except BodyTimeout:
            if exchange.status is not None:
                raise
            await talk.answer(_timeout_error(scope))
        except Exception as exc:
            if talk.gone:
                logger.debug("%r after the connection was gone", exc)
            elif exchange.dropped or exchange.status is not None:
                raise  # nothing more can be answered
            else:
                logger.exception("error while answering %s %s", scope["method"], scope["path"])
                exchange.exception = traceback.format_exc()
                await talk.answer(ApiError("server_error", detail=type(exc).__name__))
        finally:
            talk.close()

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

    def record(self, scope: Scope, exchange: Exchange) -> None:
        state = self.state
        headers = redact_headers(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
        )
        outcome = exchange.outcome
        record = RequestRecord(
            id=exchange.id,
            time=exchange.started,
            method=scope["method"],
            path=scope["path"],
            headers=headers,
            body=exchange.body,
            status=exchange.status if outcome == "answered" else None,
            error=exchange.error,
            error_message=exchange.error_message,
            param=exchange.param,
            images=tuple(exchange.images),
            warnings=tuple(exchange.warnings),
            fault=exchange.fault,
            stub=exchange.stub,
            duration_ms=round((time.time() - exchange.started) * 1000, 3),
            exception=exchange.exception,
            outcome=outcome,
            upstream=exchange.upstream,
            mock_verdict=exchange.mock_verdict,
            drift=exchange.drift,
            recorded=exchange.recorded,
            request_id=exchange.request_id or request_id(scope, exchange),
            client_request_id=client_request_id(headers),
            session=exchange.session,
        )
        # Coverage counts what the journal keeps: not a request begun before a reset.
        if state.journal.add(record, exchange.epoch):
            state.counters.count(record, exchange.answered)


async def receive_by(receive: Receive, deadline: float | None) -> Message:
    """`receive()`, raising `BodyTimeout` past `deadline` (the loop's clock; None: never)."""
    if deadline is None:
        return await receive()
    try:
        async with asyncio.timeout_at(deadline):
            return await receive()
    except TimeoutError:
        raise BodyTimeout from None


def _sleeping(task: asyncio.Task[Any]) -> bool:
    """Whether `task` is waiting in `asyncio.sleep`, where cancelling it stops nothing else:
    the innermost of the coroutines it awaits, one in another."""
    coroutine: Any = task.get_coro()
    while hasattr(inner := getattr(coroutine, "cr_await", None), "cr_code"):
        coroutine = inner
    return getattr(coroutine, "cr_code", None) is asyncio.sleep.__code__


def _timeout_error(scope: Scope) -> ApiError:
    seconds = read_timeout_of(scope) or 0
    return ApiError("request_timeout", headers=_CLOSE, timeout=f"{seconds:g}")


class _Talk:
    """One journaled request between the server and the app.

    Its body is read against the server's read timeout. Once it is in, and if the answer
    takes longer than `WATCH_AFTER` (a latency fault, a render), a task watches for the
    client leaving (`http.disconnect`): if the app is waiting out a latency (in
    `asyncio.sleep`) it is stopped there; anywhere else it is left to finish, as cancelling
    it could reach work other requests share (an image being drawn for several of them).
    A quick answer needs no watcher: a timer that is cancelled costs a fraction of a task.

    An answer goes out only while the connection is open: on one the client left, or that
    uvicorn closed (having answered bytes it could not parse itself), nothing more is sent,
    and the request is recorded as what the client saw. The journal entry is written once:
    just before the answer's last message, or at the end.
    """

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        exchange: Exchange,
        record: Callable[[Scope, Exchange], None],
    ) -> None:
        self.scope, self.exchange = scope, exchange
        self._receive, self._send, self._record = receive, send, record
        self.transport: asyncio.BaseTransport | None = scope.get(TRANSPORT)
        timeout = read_timeout_of(scope)
        loop = asyncio.get_running_loop()
        self.deadline = None if timeout is None else loop.time() + timeout
        self.body_read = False
        self.recorded = False
        self.finished = False  # the answer's last message is on its way
        self.gone = False  # the connection is gone: nothing more is sent on it
        self.task = asyncio.current_task()
        self.watcher: asyncio.Task[None] | None = None
        self.watch_timer: asyncio.TimerHandle | None = None
        self.cancelled = False  # the watcher cancelled the task

    async def receive(self) -> Message:
        if self.body_read:
            return await self._receive()
        message = await receive_by(self._receive, self.deadline)
        if message["type"] == "http.request" and not message.get("more_body", False):
            self.body_read = True
            if self.transport is not None and self.task is not None:
                loop = asyncio.get_running_loop()
                self.watch_timer = loop.call_later(WATCH_AFTER, self._start_watching)
        return message

    def _start_watching(self) -> None:
        self.watch_timer = None
        if not (self.finished or self.gone):
            self.watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        """After the body: until the client leaves (or the answer ends, which also ends
        uvicorn's `receive`)."""
        message = await self._receive()
        if message["type"] != "http.disconnect" or self.finished or self.gone:
            return
        self.lost()
        if self.exchange.status is None and self.task is not None and _sleeping(self.task):
            self.cancelled = True
            self.task.cancel()

    def stopped_for_leaving(self) -> bool:
        """On a CancelledError: whether it was the watcher's (the task is then uncancelled
        and the request ends as the client's leaving), not someone else's as well."""
        if not self.cancelled or self.task is None:
            return False
        self.cancelled = False
        return self.task.uncancel() == 0

    def lost(self, *, by_server: bool = False) -> None:
        """The connection is gone before the answer: nothing more is sent on it."""
        self.gone = True
        if by_server or cut_by_server(self.scope):
            self.exchange.dropped = True
        elif not self.exchange.dropped:
            self.exchange.client_left = True

    async def send(self, message: Message) -> None:
        if self.gone:
            return
        transport = self.transport
        if transport is not None and transport.is_closing() and not self.exchange.dropped:
            self.lost()  # the client left, or uvicorn answered and closed it itself
            return
        if message["type"] == "http.response.start":
            message = self._start(message)
        elif not message.get("more_body") and not self.recorded:
            self.finished = True
            self.record()
        try:
            await self._send(message)
        except Exception:
            if transport is None:
                raise
            self._refused(transport)

    def _start(self, message: Message) -> Message:
        """The answer's start, noted, with its `x-request-id` (unless it has its own: a
        stub's or the upstream's, which is recorded) and `x-mock-warnings`."""
        exchange = self.exchange
        exchange.status = message["status"]
        headers = list(message.get("headers", ()))
        own = next((v for k, v in headers if k.lower() == REQUEST_ID_HEADER), None)
        if own is None:
            exchange.request_id = request_id(self.scope, exchange)
            headers.append((REQUEST_ID_HEADER, exchange.request_id.encode()))
        else:
            exchange.request_id = own.decode("latin-1")
        if exchange.warnings:
            headers.append((b"x-mock-warnings", warnings_header(exchange.warnings).encode()))
        return {**message, "headers": headers}

    def _refused(self, transport: asyncio.BaseTransport) -> None:
        """The server refused a message of the answer: on a connection closed meanwhile,
        the client's leaving; on an open one, a failure of the mock, and the connection
        closed (no more of the answer can be sent)."""
        if transport.is_closing():
            logger.debug("the server refused an answer to a closed connection", exc_info=True)
            self.lost()
            return
        logger.exception("the server refused the answer to %s", self.scope["path"])
        self.exchange.exception = traceback.format_exc()
        self.exchange.dropped = self.gone = True
        transport.close()

    async def answer(self, error: ApiError) -> None:
        await error_response(self.scope, error)(self.scope, self.receive, self.send)

    def record(self) -> None:
        self.recorded = True
        self._record(self.scope, self.exchange)

    def close(self) -> None:
        if self.watch_timer is not None:
            self.watch_timer.cancel()
        if self.watcher is not None:
            self.watcher.cancel()
        if not self.recorded:
            self.record()


def request_id(scope: Scope, exchange: Exchange) -> str:
    """The mock's id of a request: `req_`, its journal id (six digits or more), `_`, and 8 hex
    digits of a hash of its method, path, model and prompt (the first 1,024 characters: a
    bounded cost, whatever the body holds). Ids restart with the journal's (a reset): the same
    requests in the same order get the same ids."""
    body = exchange.body if isinstance(exchange.body, dict) else {}
    fields = [body.get("model"), body.get("prompt")]
    text = "\n".join(
        (scope["method"], scope["path"], *(f[:1024] if isinstance(f, str) else "" for f in fields))
    )
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"req_{exchange.id:06d}_{digest}"


def client_request_id(headers: Mapping[str, str]) -> str | None:
    """The id the client sent with its request, if any (as the journal keeps headers)."""
    found = headers.get("x-request-id", headers.get("x-client-request-id"))
    return None if found is None else clip(found)


def exchange_of(request: Request) -> Exchange:
    """The Exchange of an API request (outside `Journaled`, as in a unit test: a new one)."""
    found = request.scope.get(EXCHANGE)
    if found is None:
        found = request.scope[EXCHANGE] = Exchange(epoch=(-1, 0), started=time.time())
    assert isinstance(found, Exchange)
    return found


def error_response(scope: Scope, error: ApiError) -> Response:
    """The envelope for `error`, noted in the request's Exchange when it has one."""
    catalogue: ErrorCatalogue = scope["app"].state.mock.catalogue
    message = catalogue.message(error)
    exchange = scope.get(EXCHANGE)
    if exchange is not None:
        exchange.error, exchange.param, exchange.error_message = error.code, error.param, message
    return catalogue.response(error, message)


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


class DroppedConnection(Response):
    """No answer at all: the connection is closed, as by a proxy that gave up."""

    def __init__(self) -> None:
        super().__init__(status_code=599)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = scope.get(EXCHANGE)
        if exchange is not None:
            exchange.dropped = True
        if not drop_connection(scope):  # no connection: under an ASGI transport
            raise ConnectionAbortedError("the mock dropped the connection (fault 'disconnect')")


def warnings_header(warnings: list[ContractWarning]) -> str:
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
