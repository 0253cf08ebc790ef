"""Item 1: `POST /v1/images/generations` throughput and p99 latency at 32 connections."""

from __future__ import annotations

import json
from dataclasses import dataclass

from bench.common import (
    Figure,
    ServerProcess,
    Target,
    cpu_seconds,
    hello_cmd,
    median,
    mock_cmd,
    step,
)
from bench.load import LoadResult, raw_request, run_load

PROMPT = "a lighthouse"
BODY: dict[str, object] = {"model": "jimeng-4.5", "prompt": PROMPT, "n": 1, "size": "1024x1024"}
HEADERS = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
CONNECTIONS = 32
UNIQUE = 8_000


@dataclass
class Settings:
    runs: int = 7
    seconds: float = 3.0
    warmup: float = 2.0


def _measured(
    tool: str, server: ServerProcess, requests: list[bytes], seconds: float
) -> LoadResult:
    """One load run, with the share of a CPU the server had during it (1.0: all of one;
    less while it is saturated means other processes took its CPU)."""
    before = cpu_seconds(server.pid)
    result = run_load(tool, server.url, requests, connections=CONNECTIONS, duration=seconds)
    result.server_cpu = (cpu_seconds(server.pid) - before) / result.wall_s
    return result


def generation_request(host: str, prompt: str = PROMPT) -> bytes:
    body = json.dumps({**BODY, "prompt": prompt}, separators=(",", ":"))
    return raw_request("POST", "/v1/images/generations", host=host, headers=HEADERS, body=body)


def unique_requests(host: str) -> list[bytes]:
    """Bodies that differ by prompt, more than the mock keeps answers for (it replays a
    repeated body from memory): each request is answered the long way."""
    return [generation_request(host, f"{PROMPT} {i}") for i in range(UNIQUE)]


def _per_cpu(result: LoadResult) -> float:
    return result.rps / result.server_cpu if result.server_cpu else 0.0


def run(tool: str, settings: Settings) -> list[Figure]:
    """Alternate runs on the mock and on the hello-world floor, both up at once, both pinned."""
    mock_runs: list[LoadResult] = []
    floor_runs: list[LoadResult] = []
    unique_runs: list[LoadResult] = []
    with ServerProcess(mock_cmd()) as mock, ServerProcess(hello_cmd()) as hello:
        servers = ((mock, mock_runs), (hello, floor_runs))
        requests = {s.url: [generation_request(f"{s.host}:{s.port}")] for s, _ in servers}
        unique = unique_requests(f"{mock.host}:{mock.port}")
        with step(f"throughput: warm-up {settings.warmup:g} s each"):
            for server, _ in servers:
                run_load(
                    tool,
                    server.url,
                    requests[server.url],
                    connections=CONNECTIONS,
                    duration=settings.warmup,
                )
        with step(f"throughput: {settings.runs} x {settings.seconds:g} s, mock, floor, unique"):
            for _ in range(settings.runs):
                for server, results in servers:
                    results.append(_measured(tool, server, requests[server.url], settings.seconds))
                unique_runs.append(_measured(tool, mock, unique, settings.seconds))
    tool_name = mock_runs[0].tool
    how = f"{tool_name}, {settings.runs}x{settings.seconds:g}s, {CONNECTIONS} conns"
    unique_non_200 = sum(r.non_200 + sum(r.errors.values()) for r in unique_runs)
    non_200 = sum(r.non_200 + sum(r.errors.values()) for r in mock_runs)
    floor_non_200 = sum(r.non_200 + sum(r.errors.values()) for r in floor_runs)
    extra = {
        "mock": [r.as_json() for r in mock_runs],
        "floor": [r.as_json() for r in floor_runs],
        "unique_prompts": [r.as_json() for r in unique_runs],
        "non_200_or_socket_errors": non_200,
        "floor_non_200_or_socket_errors": floor_non_200,
        "body": BODY,
    }
    paired = [m.rps / f.rps for m, f in zip(mock_runs, floor_runs, strict=True) if f.rps]
    extra["paired_ratios"] = paired
    note = (
        f"non-200: {non_200}" + (f" (floor {floor_non_200})" if floor_non_200 else "") + "; "
        f"median of run-by-run ratios {median(paired) or 0:.2f}; server CPU use, median: "
        f"mock {median([r.server_cpu for r in mock_runs]) or 0:.0%}, "
        f"floor {median([r.server_cpu for r in floor_runs]) or 0:.0%}"
    )
    return [
        Figure(
            1,
            "generations.rps",
            "POST /v1/images/generations throughput",
            "req/s",
            runs=[r.rps for r in mock_runs],
            floor_runs=[r.rps for r in floor_runs],
            floor_label="bare ASGI hello-world, same uvicorn",
            target=Target(">=", 0.75, on="ratio"),
            tool=how,
            note=note,
            extra=extra,
        ),
        Figure(
            1,
            "generations.rps_per_cpu",
            "  the same per CPU-second of the server",
            "req/s",
            runs=[_per_cpu(r) for r in mock_runs],
            floor_runs=[_per_cpu(r) for r in floor_runs],
            floor_label="bare ASGI hello-world, same uvicorn",
            target=Target(">=", 0.75, on="ratio"),
            tool=how,
            note=(
                "answers per second of CPU the server used: steady when other processes "
                "share its CPU, which lowers the plain figure"
            ),
        ),
        Figure(
            1,
            "generations.p99",
            "POST /v1/images/generations p99 latency",
            "ms",
            runs=[r.latency_us["p99"] / 1000 for r in mock_runs],
            floor_runs=[r.latency_us["p99"] / 1000 for r in floor_runs],
            floor_label="bare ASGI hello-world, same uvicorn",
            target=Target("<", 10.0),
            tool=how,
        ),
        Figure(
            1,
            "generations.unique.rps",
            "POST generations, a prompt of its own each (no replay)",
            "req/s",
            runs=[r.rps for r in unique_runs],
            floor_runs=[r.rps for r in floor_runs],
            floor_label="bare ASGI hello-world, same uvicorn",
            tool=how,
            note=(
                f"no target; {UNIQUE:,} bodies in turn; per CPU-second "
                f"{median([_per_cpu(r) for r in unique_runs]) or 0:,.0f}/s; p99 "
                f"{median([r.latency_us['p99'] / 1000 for r in unique_runs]) or 0:.1f} ms; "
                f"non-200: {unique_non_200}"
            ),
        ),
    ]
