"""Ark's answer as Server-Sent Events (`stream: true`): for each image, as soon as it is
ready, `event: image_generation.partial_succeeded` with one `data:` JSON line (or
`image_generation.partial_failed` with its `error`, for an image withheld); then
`image_generation.completed` with the usage, then `data: [DONE]`. The plan's delay is
waited before each image, so a client sees the first image before the last is made; with
the `disconnect` fault the connection is closed after the first event, with `malformed`
the first event's JSON is cut off and the stream ends there.

As each event goes out, the request's outcome is given the stream's digest so far
(`mockserver.record.streamed`), so the journal says what the client was sent, and whether
it was there for the end."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from mockserver.record.streamed import StreamDigest
from mockserver.web.connection import DroppedConnection, connection_of, pause
from mockserver.web.pipeline import conclude, concluded

SUCCEEDED = "image_generation.partial_succeeded"
FAILED = "image_generation.partial_failed"  # an image withheld while the others go on
COMPLETED = "image_generation.completed"
DONE = b"data: [DONE]\n\n"

Fault = Literal["disconnect", "malformed"] | None


@dataclass(frozen=True)
class Event:
    kind: str | None  # None: the end marker
    data: bytes
    image: str | None = None  # the URL of the image it carries


def event(kind: str, fields: dict[str, Any], image: str | None = None) -> Event:
    line = json.dumps({"type": kind, **fields}, separators=(",", ":"))
    return Event(kind, f"event: {kind}\ndata: {line}\n\n".encode(), image)


def cut_off(sent: Event) -> Event:
    """The event with its JSON cut in half: a `data:` line no client can parse."""
    head, _, line = sent.data.rstrip(b"\n").partition(b"\ndata: ")
    return replace(sent, data=head + b"\ndata: " + line[: len(line) // 2] + b"\n\n")


class EventStream(StreamingResponse):
    """The events of one answer, sent as they are made, each noted in the request's
    outcome; `fault` cuts the connection after the first (`disconnect`) or ends the stream
    with the first cut off (`malformed`)."""

    def __init__(
        self,
        events: AsyncIterator[Event],
        headers: dict[str, str],
        fault: Fault = None,
        status: int = 200,
    ) -> None:
        headers = {**headers, "Cache-Control": "no-cache"}
        # The events are sent by `__call__`, each noted as it goes.
        super().__init__((), status, headers, media_type="text/event-stream")
        self.events, self.fault = events, fault

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        note(scope, lambda digest: digest)
        async for sent in self.events:
            if gone(scope):
                break  # no one to make the rest for
            if self.fault == "malformed":
                sent = cut_off(sent)
            await send({"type": "http.response.body", "body": sent.data, "more_body": True})
            note(scope, functools.partial(one_more, sent))
            if self.fault == "disconnect":
                await DroppedConnection()(scope, receive, send)
                return
            if self.fault == "malformed":
                break
        if not gone(scope):
            note(scope, lambda digest: replace(digest, finished=True))
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def one_more(sent: Event, digest: StreamDigest) -> StreamDigest:
    return digest.sent(sent.kind, sent.image)


def gone(scope: Scope) -> bool:
    connection = connection_of(scope)
    return connection is not None and connection.state.gone


def note(scope: Scope, change: Callable[[StreamDigest], StreamDigest]) -> None:
    """The request's outcome with its stream's digest changed."""
    outcome = concluded(scope)
    conclude(scope, replace(outcome, stream=change(outcome.stream or StreamDigest())))


async def events(
    scope: Scope,
    count: int,
    delay_s: float,
    image: Callable[[int], Any],
    common: dict[str, Any],
    usage: dict[str, int],
    urls: Sequence[str] = (),
) -> AsyncIterator[Event]:
    """Each image's event after its delay (none once the client is gone), then the end."""
    for index in range(count):
        if delay_s and not await pause(scope, delay_s):
            return
        fields = await image(index)
        failed = "error" in fields
        url = None if failed or index >= len(urls) else urls[index] or None
        yield event(
            FAILED if failed else SUCCEEDED, {**common, "image_index": index, **fields}, url
        )
    yield event(COMPLETED, {**common, "usage": usage})
    yield Event(None, DONE)
