"""Bounded rendering: a few renders at once, a bounded queue, and a byte-bounded PNG cache."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from mockserver.errors import ApiError

V = TypeVar("V")


class BoundedCache(Generic[V]):
    """Values by key, least recently used first out, their costs (bytes) at most `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: Hashable, value: V, cost: int) -> None:
        if cost > self.limit or key in self._items:
            return
        self._items[key] = (value, cost)
        self.size += cost
        while self.size > self.limit:
            _, (_, old) = self._items.popitem(last=False)
            self.size -= old

    def __len__(self) -> int:
        return len(self._items)


class Renderer:
    """Draws PNGs in `concurrency` threads; up to `queue` more wait their turn.

    Requests for an image already being drawn wait for that render instead of starting
    another. Past the queue, `png` raises a 503 `server_busy` with Retry-After, so a burst
    of 4K fetches costs at most `concurrency` images' working memory plus the cache.
    Thread-safe and free of any event loop, so one app can serve several loops.
    """

    def __init__(self, concurrency: int, queue: int, cache_bytes: int) -> None:
        self.concurrency = concurrency
        self.queue = queue
        self.cache: BoundedCache[bytes] = BoundedCache(cache_bytes)
        self._lock = threading.Lock()
        self._pending: dict[Hashable, Future[bytes]] = {}
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="jimeng-render")
        self._seconds = 0.05  # a running mean of render times, for Retry-After

    async def png(self, key: Hashable, draw: Callable[[], bytes]) -> bytes:
        with self._lock:
            png = self.cache.get(key)
            if png is not None:
                return png
            future = self._pending.get(key)
            if future is None:
                if len(self._pending) >= self.concurrency + self.queue:
                    raise self._busy()
                future = self._pool.submit(self._render, key, draw)
                self._pending[key] = future
        # Shielded: a request that gives up (its client left) must not cancel a render that
        # other requests wait on, or that has not started yet and would then never run.
        return await asyncio.shield(asyncio.wrap_future(future))

    def _render(self, key: Hashable, draw: Callable[[], bytes]) -> bytes:
        started = time.perf_counter()
        try:
            png = draw()
        except BaseException:
            with self._lock:
                del self._pending[key]
            raise
        with self._lock:
            # Cached before it stops pending, so no request in between draws it again.
            self.cache.put(key, png, len(png))
            del self._pending[key]
            self._seconds += (time.perf_counter() - started - self._seconds) / 8
        return png

    def _busy(self) -> ApiError:
        waiting = len(self._pending)
        seconds = max(1, math.ceil(waiting * self._seconds / self.concurrency))
        return ApiError(
            "server_busy",
            headers={"Retry-After": str(seconds)},
            detail=f"{waiting} renders are running or waiting, the most this mock takes",
            retry_after=f"{seconds}s",
        )

    @property
    def pending(self) -> int:
        return len(self._pending)
