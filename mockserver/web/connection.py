"""What one request's connection did, as an explicit state, from its first byte to its end.

A `Connection` stands between the server and the app for one journaled request. Its body
is read against the server's read timeout (`serving.read_timeout_of`): a body late past it
is `BodyTimeout` (answered 408 by the request path). Once the body is in, and if the answer
takes longer than WATCH_AFTER (a latency fault, a render), a task watches for the client
leaving (`http.disconnect`); a quick answer needs no watcher. When the connection goes
before its answer is all sent, its `gone` event is set: `pause`, the latency wait, waits
on it next to its timer and ends early. Nothing else is stopped: work other requests share
(an image being drawn for several of them) is left to finish, and whatever the app still
sends on a connection that is gone is not sent.

The states and their moves (`State`, `MOVES`):

    OPEN ──> READ_TIMED_OUT ──> ANSWERING ──> ANSWERED
      │            │                │
      └────────────┴────────────────┴──> CLIENT_LEFT | DROPPED | CUT

CLIENT_LEFT: the client left, or uvicorn closed the connection having answered bytes it
could not parse itself; DROPPED: the mock closed it (the `disconnect` fault, an answer the
server refused on an open connection); CUT: the server cut it at the end of its shutdown.
ANSWERED (the answer's last message is on its way) and the three ways of going are final.

What needs uvicorn's internals (the transport behind `receive`, whether the server cut a
request) is asked of `mockserver.web.uvicorn_glue`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import traceback
from typing import Any

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from mockserver.record.outcome import Ending
from mockserver.web.uvicorn_glue import (
    cut_by_server,
    drop_connection,
    kept_transport,
    read_timeout_of,
)

logger = logging.getLogger("mockserver")

CONNECTION = "jimeng.connection"  # the scope key of the request's Connection
# How long an answer may take before a task watches for its client leaving.
WATCH_AFTER = 0.05


class State(enum.Enum):
    OPEN = "open"  # being read or answered; nothing of the answer sent yet
    READ_TIMED_OUT = "read_timed_out"  # the body came too late: a 408 is to be answered
    ANSWERING = "answering"  # the answer's start is sent
    ANSWERED = "answered"  # the answer's last message is on its way
    CLIENT_LEFT = "client_left"
    DROPPED = "dropped"
    CUT = "cut"

    @property
    def gone(self) -> bool:
        """The connection is gone before its answer: nothing more is sent on it."""
        return self in _GONE

    @property
    def answerable(self) -> bool:
        """Nothing has been sent yet, and something still can be."""
        return self in (State.OPEN, State.READ_TIMED_OUT)

    @property
    def ending(self) -> Ending:
        """The state as the journal's `outcome` says it."""
        if self is State.CLIENT_LEFT:
            return "client_disconnected"
        return "dropped" if self in (State.DROPPED, State.CUT) else "answered"


_GONE = frozenset({State.CLIENT_LEFT, State.DROPPED, State.CUT})
MOVES: dict[State, frozenset[State]] = {
    State.OPEN: frozenset({State.READ_TIMED_OUT, State.ANSWERING, *_GONE}),
    State.READ_TIMED_OUT: frozenset({State.ANSWERING, *_GONE}),
    State.ANSWERING: frozenset({State.ANSWERED, *_GONE}),
    State.ANSWERED: frozenset(),
    **{state: frozenset() for state in _GONE},
}


class BodyTimeout(Exception):
    """The request's body did not all arrive within the server's read timeout."""


async def receive_by(receive: Receive, deadline: float | None) -> Message:
    """`receive()`, raising `BodyTimeout` past `deadline` (the loop's clock; None: never)."""
    if deadline is None:
        return await receive()
    try:
        async with asyncio.timeout_at(deadline):
            return await receive()
    except TimeoutError:
        raise BodyTimeout from None


def deadline_of(scope: Scope) -> float | None:
    """When the request's body must be in, by the loop's clock (None: no read timeout)."""
    timeout = read_timeout_of(scope)
    return None if timeout is None else asyncio.get_running_loop().time() + timeout


class Connection:
    """The connection of one journaled request (see the module's docstring)."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self._receive, self._send = receive, send
        self.transport = kept_transport(scope)
        self.deadline = deadline_of(scope)
        self.state = State.OPEN
        self.gone = asyncio.Event()  # set as the state becomes one of the ways of going
        self.failure: str | None = None  # the traceback of an answer the server refused
        self._body_in = False
        self._watcher: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        scope[CONNECTION] = self

    def move(self, to: State) -> bool:
        """Go to state `to`, if the state it is in may (MOVES); whether it did."""
        if to not in MOVES[self.state]:
            return False
        self.state = to
        if to.gone:
            self.gone.set()
        return True

    def lost(self) -> None:
        """The connection closed under the request: cut by the server, or the client's."""
        self.move(State.CUT if cut_by_server(self.scope) else State.CLIENT_LEFT)

    def cut(self) -> None:
        """The server cancelled the request: it is shutting down."""
        self.move(State.CUT)

    def drop(self) -> bool:
        """Close the connection with no answer (the `disconnect` fault); whether there was
        one to close (under an ASGI transport there is none)."""
        self.move(State.DROPPED)
        return drop_connection(self.scope)

    async def receive(self) -> Message:
        if self._body_in:
            return await self._receive()
        try:
            message = await receive_by(self._receive, self.deadline)
        except BodyTimeout:
            self.move(State.READ_TIMED_OUT)
            raise
        if message["type"] == "http.disconnect":
            self.lost()
        elif not message.get("more_body", False):
            self._body_in = True
            if self.transport is not None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(WATCH_AFTER, self._start_watching)
        return message

    def _start_watching(self) -> None:
        self._timer = None
        if self.state in (State.OPEN, State.ANSWERING):
            self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        """After the body: until the client leaves (or the answer ends, which also ends
        uvicorn's `receive`: then the state is ANSWERED, and stays)."""
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.lost()

    async def pause(self, seconds: float) -> bool:
        """Wait `seconds`, or until the connection goes; whether it is still there."""
        if not self.state.gone:
            gone = asyncio.ensure_future(self.gone.wait())
            try:
                await asyncio.wait({gone}, timeout=seconds)
            finally:
                gone.cancel()
        return not self.state.gone

    def sendable(self) -> bool:
        """Whether a message of the answer may go out: not on a connection that is gone,
        nor on one whose transport is closing (the client left, or uvicorn answered bytes
        it could not parse and closes it), which is then lost."""
        if self.state.gone or self.state is State.ANSWERED:
            return False
        if self.transport is not None and self.transport.is_closing():
            self.lost()
            return False
        return True

    async def send(self, message: Message) -> None:
        """Send a message of the answer (see `sendable`); the last moves to ANSWERED."""
        if message["type"] == "http.response.start":
            self.move(State.ANSWERING)
        elif not message.get("more_body", False):
            self.move(State.ANSWERED)
        try:
            await self._send(message)
        except Exception:
            if self.transport is None:
                raise
            self._refused(self.transport)

    def _refused(self, transport: Any) -> None:
        """The server refused a message of the answer: on a connection closed meanwhile,
        the client's leaving; on an open one, a failure of the mock, and the connection
        closed (no more of the answer can be sent)."""
        if transport.is_closing():
            logger.debug("the server refused an answer to a closed connection", exc_info=True)
            self.lost()
            return
        logger.exception("the server refused the answer to %s", self.scope["path"])
        self.failure = traceback.format_exc()
        self.move(State.DROPPED)
        transport.close()

    def close(self) -> None:
        """The request is over: stop watching."""
        if self._timer is not None:
            self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()


def connection_of(scope: Scope) -> Connection | None:
    found = scope.get(CONNECTION)
    return found if isinstance(found, Connection) else None


async def pause(scope: Scope, seconds: float) -> bool:
    """Wait `seconds` for the request, or until its connection goes; whether it is still
    there (outside the request path, always: the whole wait)."""
    connection = connection_of(scope)
    if connection is None:
        await asyncio.sleep(seconds)
        return True
    return await connection.pause(seconds)


class DroppedConnection(Response):
    """No answer at all: the connection is closed, as by a proxy that gave up."""

    def __init__(self) -> None:
        super().__init__(status_code=599)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = connection_of(scope)
        closed = connection.drop() if connection is not None else drop_connection(scope)
        if not closed:  # no connection: under an ASGI transport
            raise ConnectionAbortedError("the mock dropped the connection (fault 'disconnect')")


class NoAnswer(Response):
    """Nothing to send: the request's connection went before its answer was made."""

    def __init__(self) -> None:
        super().__init__(status_code=599)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None
