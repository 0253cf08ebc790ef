"""Answers to repeated generation requests, replayed from memory.

The mock is deterministic: the same body, key and host get the same answer. When nothing
could make this answer differ (no queued fault, stub folder, --latency, --fault-rate or
--rpm, no X-Mock-* header), a repeat of a request already answered 200 is replayed as
bytes, without parsing or validating it again. It is still recorded in the journal as
the request it is; only the work of reaching the same answer is skipped.
"""

from __future__ import annotations

import json
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mockserver.journal import ContractWarning, RequestRecord, redact_headers
from mockserver.render import BoundedCache
from mockserver.state import MockState

PATH = "/v1/images/generations"
# Where the generation handler leaves what a replay must record: images and warnings.
SCOPE_KEY = "jimeng.replay"
MAX_BODY = 16 * 1024
CACHE_BYTES = 1024 * 1024
_KEYED_HEADERS = frozenset({b"authorization", b"host", b"content-type"})


@dataclass(frozen=True)
class Answer:
    start: Message
    content: bytes
    images: tuple[str, ...]
    warnings: tuple[ContractWarning, ...]


class Replay:
    """ASGI middleware in front of the app: replays repeated plain generation answers."""

    def __init__(self, app: ASGIApp, state: MockState) -> None:
        self.app = app
        self.state = state
        self.answers: BoundedCache[Answer] = BoundedCache(CACHE_BYTES)
        # Stubs, --rpm and chaos are set for the app's life; only the fault queue changes.
        self._replayable = state.stubs is None and state.limiter is None and state.chaos.off

    def _plain(self) -> bool:
        return self._replayable and not len(self.state.queue)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or not self._plain()
        ):
            await self.app(scope, receive, send)
            return
        started = time.time()
        epoch = self.state.journal.epoch
        message = await receive()
        content = message.get("body", b"")
        if message.get("more_body") or len(content) > MAX_BODY:
            await self.app(scope, _replaying(message, receive), send)
            return
        # An ASGI server may give its address as any pair, a list included: a tuple hashes.
        server = tuple(scope.get("server") or ())
        key: list[Any] = [content, scope.get("scheme"), server, scope.get("root_path")]
        for name, value in scope["headers"]:
            if name.startswith(b"x-mock-"):
                await self.app(scope, _replaying(message, receive), send)
                return
            if name in _KEYED_HEADERS:
                key.append((name, value))
        key.append(self.state.config.created_at())
        cache_key = tuple(key)
        answer = self.answers.get(cache_key)
        if answer is None:
            await self._answer_and_keep(cache_key, scope, message, receive, send)
            return
        # Recorded before it is answered: a client that has its answer finds it in the journal.
        journal = self.state.journal
        journal.add(
            RequestRecord(
                id=journal.next_id(),
                time=started,
                method="POST",
                path=PATH,
                headers=redact_headers(
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in scope["headers"]
                ),
                # Parsed afresh: a test may edit the body it reads, and none shares another's.
                body=json.loads(content),
                status=200,
                images=answer.images,
                warnings=answer.warnings,
                duration_ms=round((time.time() - started) * 1000, 3),
            ),
            epoch,
        )
        await send(answer.start)
        await send({"type": "http.response.body", "body": answer.content})

    async def _answer_and_keep(
        self, key: tuple[Any, ...], scope: Scope, first: Message, receive: Receive, send: Send
    ) -> None:
        scope = dict(scope)
        sent: list[Message] = []

        async def keep(message: Message) -> None:
            sent.append(message)
            await send(message)

        await self.app(scope, _replaying(first, receive), keep)
        kept: MutableMapping[str, Any] | None = scope.get(SCOPE_KEY)
        if (
            kept is None
            or len(sent) != 2
            or sent[0].get("status") != 200
            or sent[1].get("more_body")
        ):
            return
        content = sent[1].get("body", b"")
        answer = Answer(
            start=sent[0],
            content=content,
            images=tuple(kept["images"]),
            warnings=tuple(kept["warnings"]),
        )
        # The bytes, and about what the objects around them take.
        self.answers.put(key, answer, 2 * (len(content) + len(key[0])) + 2048)


def _replaying(first: Message, receive: Receive) -> Receive:
    """`receive` again, its first message given back once more."""
    pending = [first]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay
