"""Item 6: a burst of 200 concurrent fetches of different 4K images against the command.

Each is served or answered 503 with Retry-After; the figure is the server's peak RSS, next to
its RSS just before the burst (the floor), on a fresh server each run.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import httpx

from bench.common import Figure, ServerProcess, Target, mock_cmd, rss_kb, step

HEADERS = {"Authorization": "Bearer sk-bench"}
PEAK_TARGET_MB = 100.0


@dataclass
class Settings:
    runs: int = 3
    fetches: int = 200


async def _burst(urls: list[str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(urls))
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        return list(await asyncio.gather(*(client.get(url) for url in urls)))


def run(settings: Settings) -> list[Figure]:
    peaks: list[float] = []
    before: list[float] = []
    served: list[float] = []
    busy: list[float] = []
    nonce = uuid.uuid4().hex[:12]
    with step(f"burst: {settings.runs} x {settings.fetches} concurrent 4K fetches"):
        for run_index in range(settings.runs):
            with ServerProcess(mock_cmd()) as mock, httpx.Client(base_url=mock.url) as client:
                urls = []
                for i in range(settings.fetches):
                    body = {
                        "model": "jimeng-4.5",
                        "prompt": f"burst {run_index} {i} {nonce}",
                        "n": 1,
                        "size": "4096x4096",
                    }
                    answer = client.post("/v1/images/generations", json=body, headers=HEADERS)
                    answer.raise_for_status()
                    urls.append(answer.json()["data"][0]["url"])
                before.append(rss_kb(mock.pid)["VmRSS"] / 1024)
                responses = asyncio.run(_burst(urls))
                statuses = [r.status_code for r in responses]
                odd = [s for s in statuses if s not in (200, 503)]
                if odd:
                    raise ValueError(f"answers other than 200 and 503: {sorted(set(odd))}")
                if any("Retry-After" not in r.headers for r in responses if r.status_code == 503):
                    raise ValueError("a 503 without Retry-After")
                peaks.append(rss_kb(mock.pid)["VmHWM"] / 1024)
                served.append(statuses.count(200))
                busy.append(statuses.count(503))
    tool = f"httpx async, {settings.fetches} connections, {settings.runs} fresh servers"
    return [
        Figure(
            6,
            "burst.peak_rss",
            f"burst of {settings.fetches} different 4K fetches: peak RSS",
            "MB",
            runs=peaks,
            floor_runs=before,
            floor_label="the mock's RSS just before the burst",
            target=Target("<", PEAK_TARGET_MB),
            tool=tool,
            note=f"served (200) per run: {served}; told to retry (503 + Retry-After): {busy}",
        )
    ]
