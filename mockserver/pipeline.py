"""The path every API request takes around its endpoint: one writer of the journal, the
error envelope for every way a request can fail, and a connection dropped on purpose.

`Journaled` wraps the app. For each request to `/v1/...` it opens an `Exchange` in the
scope, which the endpoint and the error handlers fill in (body, warnings, images, fault,
stub, error), and it writes the journal entry once, whatever the outcome: an answer (just
before its last byte goes out, so a client that has its answer finds it in the journal),
an error of the contract, a 401/404/405/413/415, a fault, a stub, a dropped connection or a
failure of the mock itself, which it answers in the envelope as a 500.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mockserver.errors import ApiError, ErrorCatalogue
from mockserver.journal import ContractWarning, RequestRecord, redact_headers
from mockserver.serving import drop_connection

if TYPE_CHECKING:
    from mockserver.state import MockState

logger = logging.getLogger("mockserver")

EXCHANGE = "jimeng.exchange"  # the scope key of the request's Exchange
JOURNALED = "/v1/"  # the routes whose requests are recorded
WARNINGS_HEADER_LIMIT = 2000


@dataclass
class Exchange:
    """What one API request turned out to be, filled in as it is answered."""

    epoch: int  # the journal's when the request began
    started: float
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
    dropped: bool = False


class Journaled:
    """ASGI middleware: records every `/v1/...` request in the journal, once."""

    def __init__(self, app: ASGIApp, state: MockState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(JOURNALED):
            await self.app(scope, receive, send)
            return
        journal = self.state.journal
        exchange = scope[EXCHANGE] = Exchange(epoch=journal.epoch, started=time.time())
        recorded = False

        async def journaled_send(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                if exchange.warnings:
                    header = warnings_header(exchange.warnings).encode()
                    message = {
                        **message,
                        "headers": [*message["headers"], (b"x-mock-warnings", header)],
                    }
            elif not message.get("more_body") and not recorded:
                recorded = True
                self.record(scope, exchange)
            await send(message)

        try:
            await self.app(scope, receive, journaled_send)
        except Exception as exc:
            if exchange.dropped or exchange.status is not None:
                raise  # nothing more can be answered
            logger.exception("error while answering %s %s", scope["method"], scope["path"])
            exchange.exception = traceback.format_exc()
            failure = ApiError("server_error", detail=type(exc).__name__)
            await error_response(scope, failure)(scope, receive, journaled_send)
        finally:
            if not recorded:
                recorded = True
                self.record(scope, exchange)

    def record(self, scope: Scope, exchange: Exchange) -> None:
        journal = self.state.journal
        headers = redact_headers(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
        )
        journal.add(
            RequestRecord(
                id=journal.next_id(),
                time=exchange.started,
                method=scope["method"],
                path=scope["path"],
                headers=headers,
                body=exchange.body,
                status=None if exchange.dropped else exchange.status,
                error=exchange.error,
                error_message=exchange.error_message,
                param=exchange.param,
                images=tuple(exchange.images),
                warnings=tuple(exchange.warnings),
                fault=exchange.fault,
                stub=exchange.stub,
                duration_ms=round((time.time() - exchange.started) * 1000, 3),
                exception=exchange.exception,
                outcome="dropped" if exchange.dropped else "answered",
            ),
            exchange.epoch,
        )


def exchange_of(request: Request) -> Exchange:
    """The Exchange of an API request (outside `Journaled`, as in a unit test: a new one)."""
    found = request.scope.get(EXCHANGE)
    if found is None:
        found = request.scope[EXCHANGE] = Exchange(epoch=-1, started=time.time())
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
