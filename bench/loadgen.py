"""A Python load generator for when wrk is missing: `python -m bench.loadgen CONFIG.json`.

CONFIG holds host, port, connections, duration (seconds) and/or count (answers), offset,
and either requests (raw HTTP/1.1 requests as latin-1 strings), sent in turn from `offset`
over keep-alive connections with asyncio streams, or unique (a request head, and a body's
prefix and suffix, with a counter put between them for every request: no body is sent
twice). Prints one `BENCH-RESULT {json}` line, like the wrk script.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import percentile
from bench.load import MARK


@dataclass
class _State:
    requests: list[bytes]
    count: int | None
    deadline: float | None
    offset: int = 0
    sent: int = 0
    answered: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    unique: dict[str, str] | None = None

    def next_request(self) -> bytes | None:
        if self.count is not None and self.sent >= self.count:
            return None
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return None
        self.sent += 1
        if self.unique is not None:
            body = f"{self.unique['prefix']}{self.sent}{self.unique['suffix']}".encode()
            head = f"{self.unique['head']}Content-Length: {len(body)}\r\n\r\n"
            return head.encode("latin-1") + body
        return self.requests[(self.offset + self.sent - 1) % len(self.requests)]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Status and whether the server will close the connection, after reading the body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, headers.get("connection", "").lower() == "close"


async def _connection(host: str, port: int, state: _State) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (raw := state.next_request()) is not None:
            started = time.perf_counter()
            try:
                writer.write(raw)
                status, close = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                state.errors[type(exc).__name__] += 1
                close = True
            else:
                state.latencies.append((time.perf_counter() - started) * 1e6)
                state.statuses[status] += 1
                state.answered += 1
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


async def run(config: dict[str, Any]) -> dict[str, Any]:
    duration = config.get("duration")
    started = time.perf_counter()
    state = _State(
        requests=[r.encode("latin-1") for r in config.get("requests", [])],
        count=config.get("count"),
        deadline=started + duration if duration else None,
        offset=config.get("offset", 0),
        unique=config.get("unique"),
    )
    await asyncio.gather(
        *(_connection(config["host"], config["port"], state) for _ in range(config["connections"]))
    )
    elapsed = time.perf_counter() - started
    latencies = sorted(state.latencies)
    return {
        "sent": state.sent,
        "answered": state.answered,
        "duration_s": elapsed,
        "statuses": {str(k): v for k, v in state.statuses.items()},
        "errors": dict(state.errors),
        "latency_us": {
            "p50": percentile(latencies, 50),
            "p90": percentile(latencies, 90),
            "p99": percentile(latencies, 99),
            "max": latencies[-1] if latencies else float("nan"),
            "mean": sum(latencies) / len(latencies) if latencies else float("nan"),
        },
    }


def main() -> int:
    config = json.loads(Path(sys.argv[1]).read_text())
    print(MARK + json.dumps(asyncio.run(run(config))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
