"""Items 3 and 4: `MockServer` start plus stop in-process, and the command's time to ready."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.common import Figure, ServerProcess, Target, hello_cmd, mock_cmd, step
from bench.hello import ThreadServer


@dataclass
class Settings:
    cycles: int = 20
    launches: int = 5


def _mock_cycle() -> tuple[float, float, float]:
    """Seconds to construct, start and stop one `MockServer`."""
    from mockserver import MockServer

    t0 = time.perf_counter()
    server = MockServer()
    t1 = time.perf_counter()
    server.start()
    t2 = time.perf_counter()
    server.stop()
    t3 = time.perf_counter()
    if server.running:
        raise RuntimeError("MockServer still running after stop()")
    return t1 - t0, t2 - t1, t3 - t2


def _floor_cycle() -> tuple[float, float, float]:
    t0 = time.perf_counter()
    server = ThreadServer()
    t1 = time.perf_counter()
    server.start()
    t2 = time.perf_counter()
    server.stop()
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def run_inprocess(settings: Settings) -> list[Figure]:
    mock: list[tuple[float, float, float]] = []
    floor: list[tuple[float, float, float]] = []
    with step(f"MockServer start+stop: {settings.cycles} cycles, and the floor's"):
        for _ in range(2):  # warm-up: imports, first app
            _mock_cycle()
            _floor_cycle()
        for _ in range(settings.cycles):
            mock.append(_mock_cycle())
            floor.append(_floor_cycle())

    def ms(rows: list[tuple[float, float, float]], *parts: int) -> list[float]:
        return [sum(row[i] for i in parts) * 1000 for row in rows]

    extra = {
        "mock_construct_ms": ms(mock, 0),
        "mock_start_ms": ms(mock, 1),
        "mock_stop_ms": ms(mock, 2),
        "floor_start_ms": ms(floor, 1),
        "floor_stop_ms": ms(floor, 2),
    }
    floor_label = "bare uvicorn.Server of the hello-world (httptools, uvloop) in a thread"
    tool = f"in-process, {settings.cycles} cycles"
    return [
        Figure(
            3,
            "mockserver.start_stop",
            "MockServer start() + stop()",
            "ms",
            runs=ms(mock, 1, 2),
            floor_runs=ms(floor, 1, 2),
            floor_label=floor_label,
            target=Target("<", 100.0),
            tool=tool,
            note=(
                "the floor's stop() waits for uvicorn's next 0.1 s tick and a 0.1 s grace; "
                "MockServer wakes its loop and, with no connection open, has no grace to wait"
            ),
            extra=extra,
        ),
        Figure(
            3,
            "mockserver.construct",
            "MockServer() construction (create_app)",
            "ms",
            runs=ms(mock, 0),
            tool=tool,
            note="no target, no floor",
        ),
    ]


def run_cli(settings: Settings) -> list[Figure]:
    mock: list[float] = []
    floor: list[float] = []
    with step(f"command to ready line: {settings.launches} launches, and the floor's"):
        for index in range(settings.launches + 1):
            for cmd, results in ((mock_cmd(), mock), (hello_cmd(), floor)):
                with ServerProcess(cmd) as server:
                    if index:  # the first launch of each only warms the file cache
                        results.append(server.ready_s * 1000)
    return [
        Figure(
            4,
            "cli.ready",
            "jimeng-mock start to ready line",
            "ms",
            runs=mock,
            floor_runs=floor,
            floor_label="python -m bench.hello (uvicorn hello-world, httptools, uvloop) to ready",
            target=Target("<", 1000.0),
            tool=f"subprocess on CPU 0, {settings.launches} launches",
        )
    ]
