"""What a streamed answer (Server-Sent Events) sent its client, kept as a digest: the kinds
of its events in order, the images they carried, whether its end marker went out and
whether its last byte did with the client still there. The journal keeps it as
`RequestRecord.stream` (`to_json`), coverage counts how streams ended and their events, and
`check()` names a stream its client left before the end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Literal

# How a stream ended: its last byte sent to a client still there; the client gone before
# it; the mock closing the connection (the `disconnect` fault, a server's shutdown).
StreamEnding = Literal["read_to_end", "client_left", "cut"]
STREAM_ENDINGS: tuple[StreamEnding, ...] = ("read_to_end", "client_left", "cut")
EVENT_LIMIT = 64  # event kinds and images kept; a longer stream's others are only counted


@dataclass(frozen=True, slots=True)
class StreamDigest:
    kinds: tuple[str, ...] = ()  # of the events sent, in order (the first EVENT_LIMIT)
    count: int = 0  # events sent
    images: tuple[str, ...] = ()  # the URLs of the images the events carried
    done: bool = False  # the end marker (`data: [DONE]`) was sent
    finished: bool = False  # the last byte went out with the client still there

    def sent(self, kind: str | None, image: str | None = None) -> StreamDigest:
        """The digest with one more event sent (`kind` None: the end marker)."""
        if kind is None:
            return replace(self, done=True)
        kinds = (*self.kinds, kind) if len(self.kinds) < EVENT_LIMIT else self.kinds
        keep = image is not None and len(self.images) < EVENT_LIMIT
        images = (*self.images, image) if keep and image is not None else self.images
        return replace(self, kinds=kinds, count=self.count + 1, images=images)

    def ending(self, outcome: str) -> StreamEnding:
        """How the stream ended, given how its request's connection did (`Outcome.ending`)."""
        if outcome == "dropped":
            return "cut"
        return "read_to_end" if self.finished and outcome == "answered" else "client_left"

    def to_json(self, outcome: str) -> dict[str, Any]:
        return {
            "events": self.count,
            "types": dict(Counter(self.kinds)),
            "order": list(self.kinds),
            "images": list(self.images),
            "done": self.done,
            "ending": self.ending(outcome),
        }
