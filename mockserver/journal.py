"""The request journal: what each API request sent and what the mock answered, newest kept."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

REDACTED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-admin-token"})


@dataclass(frozen=True)
class ContractWarning:
    """A request the real service would accept but that is probably a mistake."""

    code: str
    param: str | None
    message: str


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request to an API route and the mock's answer to it."""

    id: int
    time: float
    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    status: int | None  # None: no answer reached the client (see `outcome`)
    error: str | None = None
    error_message: str | None = None
    param: str | None = None
    images: tuple[str, ...] = ()
    warnings: tuple[ContractWarning, ...] = ()
    fault: str | None = None
    stub: str | None = None
    duration_ms: float = 0.0
    exception: str | None = field(default=None, repr=False)
    # "answered"; "dropped": the mock closed the connection on purpose (the disconnect fault);
    # "client_disconnected": the client left before its answer was sent.
    outcome: str = "answered"

    @property
    def model(self) -> Any:
        return self.body.get("model") if isinstance(self.body, dict) else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["headers"] = dict(self.headers)
        data["images"] = list(self.images)
        data["warnings"] = [asdict(w) for w in self.warnings]
        return data


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Request headers with secrets cut to their last 4 characters (`Bearer ...abcd`)."""
    shown: dict[str, str] = {}
    for name, value in headers:
        name = name.lower()
        if name in REDACTED_HEADERS:
            scheme, _, secret = value.partition(" ")
            if not secret:
                scheme, secret = "", value
            tail = secret.strip()[-4:] if len(secret.strip()) > 8 else ""
            value = f"{scheme} ...{tail}".strip() if tail else f"{scheme} ****".strip()
        shown[name] = f"{shown[name]}, {value}" if name in shown else value
    return shown


class Journal:
    """The newest `size` records, oldest first; safe to read from the test's thread."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._records: deque[RequestRecord] = deque(maxlen=size)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.dropped = 0
        # Bumped by clear(): a request that began before it is not recorded when it ends.
        self.epoch = 0

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def add(self, record: RequestRecord, epoch: int) -> None:
        """Keep `record`, unless the journal was cleared since its request began (`epoch`)."""
        with self._lock:
            if epoch != self.epoch:
                return
            if len(self._records) == self.size:
                self.dropped += 1
            self._records.append(record)

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self, *, restart_ids: bool = False) -> int:
        with self._lock:
            count = len(self._records)
            self._records.clear()
            self.dropped = 0
            self.epoch += 1
            if restart_ids:
                self._ids = itertools.count(1)
            return count

    def __len__(self) -> int:
        return len(self._records)
