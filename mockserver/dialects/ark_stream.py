"""Ark's answer as Server-Sent Events (`stream: true`): for each image, as soon as it is
ready, `event: image_generation.partial_succeeded` with one `data:` JSON line (or
`image_generation.partial_failed` with its `error`, for an image withheld); then
`image_generation.completed` with the usage, then `data: [DONE]`. The plan's delay is
waited before each image, so a client sees the first image before the last is made; with
the `disconnect` fault the connection is closed after the first event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from mockserver.web.connection import DroppedConnection, pause

SUCCEEDED = "image_generation.partial_succeeded"
FAILED = "image_generation.partial_failed"  # an image withheld while the others go on
COMPLETED = "image_generation.completed"
DONE = b"data: [DONE]\n\n"


def event(kind: str, fields: dict[str, Any]) -> bytes:
    line = json.dumps({"type": kind, **fields}, separators=(",", ":"))
    return f"event: {kind}\ndata: {line}\n\n".encode()


class EventStream(StreamingResponse):
    """The events of one answer, sent as they are made; `cut` closes the connection after
    the first."""

    def __init__(
        self,
        events: AsyncIterator[bytes],
        headers: dict[str, str],
        cut: bool = False,
    ) -> None:
        headers = {**headers, "Cache-Control": "no-cache"}
        super().__init__(events, headers=headers, media_type="text/event-stream")
        self.cut = cut

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        async for chunk in self.body_iterator:
            data = chunk if isinstance(chunk, bytes) else str(chunk).encode()
            await send({"type": "http.response.body", "body": data, "more_body": True})
            if self.cut:
                await DroppedConnection()(scope, receive, send)
                return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def events(
    scope: Scope,
    count: int,
    delay_s: float,
    image: Callable[[int], Any],
    common: dict[str, Any],
    usage: dict[str, int],
) -> AsyncIterator[bytes]:
    """Each image's event after its delay (none once the client is gone), then the end."""
    for index in range(count):
        if delay_s and not await pause(scope, delay_s):
            return
        fields = await image(index)
        kind = FAILED if "error" in fields else SUCCEEDED
        yield event(kind, {**common, "image_index": index, **fields})
    yield event(COMPLETED, {**common, "usage": usage})
    yield DONE
