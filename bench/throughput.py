"""Item 1: `POST /v1/images/generations` throughput and p99 latency at 32 connections.

Four servers, all up at once and all on CPU 0, loaded in turn from CPU 1, round after round:
the floor (`bench.hello`, a bare ASGI app on uvicorn with httptools and uvloop), the mock
with a new prompt on every request (no body is sent twice in a benchmark run: every load
run has a tag of its own and a counter), the mock with one repeated body, and WireMock
serving the mock's own answer from a static stub, loaded with new prompts too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import httpx

from bench import wiremock
from bench.common import (
    Figure,
    ServerProcess,
    Target,
    cpu_seconds,
    hello_cmd,
    loaded_libraries,
    median,
    mock_cmd,
    step,
)
from bench.hello import LABEL as FLOOR_LABEL
from bench.load import LoadResult, Requests, Unique, raw_request, run_load

PROMPT = "a lighthouse"
BODY: dict[str, object] = {"model": "jimeng-4.5", "prompt": PROMPT, "n": 1, "size": "1024x1024"}
HEADERS = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
PATH = "/v1/images/generations"
CONNECTIONS = 32

FLOOR_RATIO = 0.2  # new-body and repeated-body req/s, each at least this share of the floor
P99_MS = 5.0
WIREMOCK_RATIO = 1.5  # new-body req/s at least this many times WireMock's


@dataclass
class Settings:
    runs: int = 7
    seconds: float = 3.0
    warmup: float = 2.0
    # The JVM compiles its hot code only after a while under load: measure after that.
    wiremock_warmup: float = 20.0
    wiremock: bool = True  # measure WireMock too
    install: bool = True  # let bench.wiremock install Java and the jar when missing


def generation_request(host: str, prompt: str = PROMPT) -> bytes:
    body = json.dumps({**BODY, "prompt": prompt}, separators=(",", ":"))
    return raw_request("POST", PATH, host=host, headers=HEADERS, body=body)


def new_prompts(host: str, tag: str) -> Unique:
    """A template of requests each with a prompt never sent before: `a lighthouse TAG-N`."""
    body = json.dumps({**BODY, "prompt": f"{PROMPT} {{n}}"}, separators=(",", ":"))
    return Unique("POST", PATH, host, HEADERS, body, tag)


@dataclass
class Loaded:
    """One server under load: how to load it, and what each measured run got."""

    name: str
    server: ServerProcess
    requests: Callable[[], Requests]
    results: list[LoadResult] = field(default_factory=list)

    def measure(self, tool: str, seconds: float) -> LoadResult:
        """One load run, with the share of a CPU the server had during it (1.0: all of one;
        less while it is saturated means other processes took its CPU)."""
        before = cpu_seconds(self.server.pid)
        result = run_load(
            tool, self.server.url, self.requests(), connections=CONNECTIONS, duration=seconds
        )
        result.server_cpu = (cpu_seconds(self.server.pid) - before) / result.wall_s
        return result


def _bad(results: list[LoadResult]) -> int:
    """Answers other than 200, and socket errors (a connection that failed or timed out)."""
    return sum(r.non_200 + sum(r.errors.values()) for r in results)


def _per_cpu(result: LoadResult) -> float:
    return result.rps / result.server_cpu if result.server_cpu else 0.0


def _p99(results: list[LoadResult]) -> list[float]:
    return [r.latency_us["p99"] / 1000 for r in results]


def _answer(mock: ServerProcess) -> tuple[bytes, str]:
    """The mock's own answer to the benchmark's body, for WireMock to serve."""
    with httpx.Client(base_url=mock.url, timeout=30) as client:
        got = client.post(PATH, content=json.dumps(BODY).encode(), headers=HEADERS)
    got.raise_for_status()
    return got.content, got.headers.get("content-type", "application/json")


def _warm_wiremock(
    tool: str, settings: Settings, wm: wiremock.WireMockServer, requests: Requests
) -> None:
    with step(f"throughput: WireMock JVM warm-up, {settings.wiremock_warmup:g} s"):
        run_load(tool, wm.url, requests, connections=CONNECTIONS, duration=settings.wiremock_warmup)


def _measure(tool: str, settings: Settings, targets: list[Loaded]) -> None:
    """A warm-up of the first three targets, then the rounds, each target loaded in turn."""
    with step(f"throughput: warm-up {settings.warmup:g} s each"):
        for target in targets[:3]:
            run_load(
                tool,
                target.server.url,
                target.requests(),
                connections=CONNECTIONS,
                duration=settings.warmup,
            )
    names = ", ".join(t.name for t in targets)
    with step(f"throughput: {settings.runs} rounds of {settings.seconds:g} s: {names}"):
        for _ in range(settings.runs):
            for target in targets:
                target.results.append(target.measure(tool, settings.seconds))


def run(tool: str, settings: Settings) -> list[Figure]:
    """Round after round, each server loaded in turn, all of them up at once and pinned."""
    tag = uuid.uuid4().hex[:8]  # this benchmark run's: no prompt of another run is reused
    runs = count(1)

    def fresh(host: str) -> Callable[[], Requests]:
        return lambda: new_prompts(host, f"{tag}.{next(runs)}")

    found = (
        wiremock.setup(settings.install)
        if settings.wiremock
        else wiremock.Setup(problem="left out (--no-wiremock)")
    )
    wiremock_problem: str | None = None if found.ok else found.problem
    with ServerProcess(mock_cmd()) as mock, ServerProcess(hello_cmd()) as hello:
        mock_host, hello_host = f"{mock.host}:{mock.port}", f"{hello.host}:{hello.port}"
        repeated = [generation_request(mock_host)]
        floor = Loaded("floor", hello, fresh(hello_host))
        new = Loaded("new", mock, fresh(mock_host))
        same = Loaded("same", mock, lambda: repeated)
        targets = [floor, new, same]
        answer, content_type = _answer(mock)
        mock_libs, floor_libs = loaded_libraries(mock.pid), loaded_libraries(hello.pid)
        mock_log_before = len(mock.stderr().splitlines())
        wm: wiremock.WireMockServer | None = None
        try:
            if found.ok:
                try:
                    with step(f"throughput: starting {found.describe()}"):
                        wm = wiremock.WireMockServer(found, answer)
                except Exception as exc:
                    wiremock_problem = f"did not start: {type(exc).__name__}: {exc}"[:300]
            if wm is not None:
                wm_host = f"{wm.host}:{wm.port}"
                targets.append(Loaded("wiremock", wm, fresh(wm_host)))
                _warm_wiremock(tool, settings, wm, new_prompts(wm_host, f"{tag}.warm"))
            _measure(tool, settings, targets)
        finally:
            if wm is not None:
                wm.stop()
        mock_log_lines = len(mock.stderr().splitlines()) - mock_log_before
    return _figures(
        tool,
        settings,
        floor,
        new,
        same,
        targets[3] if len(targets) > 3 else None,
        found,
        wiremock_problem,
        {
            "mock_uses": mock_libs,
            "floor_uses": floor_libs,
            "mock_cmd": mock_cmd(),
            "mock_log_lines_during_load": mock_log_lines,
            "answer": answer.decode(errors="replace"),
            "answer_content_type": content_type,
            "tag": tag,
        },
    )


class _Notes:
    """What the figures say of a target's runs, beside the floor's."""

    def __init__(self, floor: Loaded) -> None:
        self.floor = floor.results
        self.floor_bad = _bad(floor.results)

    def checked(self, results: list[LoadResult]) -> str | None:
        bad = _bad(results)
        return f"{bad:,} answers not 200 (or socket errors)" if bad else None

    def paired(self, results: list[LoadResult], against: list[LoadResult]) -> float:
        ratios = [m.rps / f.rps for m, f in zip(results, against, strict=True) if f.rps]
        return median(ratios) or 0.0

    def cpu_note(self, results: list[LoadResult]) -> str:
        floor = self.floor
        return (
            f"server CPU use {median([r.server_cpu for r in results]) or 0:.0%} "
            f"(floor {median([r.server_cpu for r in floor]) or 0:.0%}), load tool's "
            f"{median([r.client_cpu for r in results]) or 0:.0%} "
            f"(floor {median([r.client_cpu for r in floor]) or 0:.0%}); per "
            f"CPU-second {median([_per_cpu(r) for r in results]) or 0:,.0f}/s "
            f"(floor {median([_per_cpu(r) for r in floor]) or 0:,.0f}/s)"
        )

    def bad_note(self, results: list[LoadResult]) -> str:
        bad = self.floor_bad
        return f"non-200: {_bad(results)}" + (f" (floor {bad})" if bad else "")


def _figures(
    tool: str,
    settings: Settings,
    floor: Loaded,
    new: Loaded,
    same: Loaded,
    wm: Loaded | None,
    found: wiremock.Setup,
    wiremock_problem: str | None,
    info: dict[str, Any],
) -> list[Figure]:
    tool_name = floor.results[0].tool
    how = f"{tool_name}, {settings.runs}x{settings.seconds:g}s, {CONNECTIONS} conns"
    uses = info["mock_uses"]
    extra: dict[str, Any] = {
        **info,
        "runs": {t.name: [r.as_json() for r in t.results] for t in (floor, new, same, wm) if t},
        "non_200_or_socket_errors": {t.name: _bad(t.results) for t in (floor, new, same, wm) if t},
        "distinct_bodies_sent": sum(r.sent for r in new.results),
        "body": BODY,
        "wiremock": {
            "setup": found.describe(),
            "installed_now": list(found.installed),
            "problem": wiremock_problem,
            "jvm_options": wiremock.JVM_OPTIONS,
            "options": wiremock.WIREMOCK_OPTIONS,
            "warmup_s": settings.wiremock_warmup,
        },
    }

    notes = _Notes(floor)
    log_lines = info["mock_log_lines_during_load"]
    mock_note = (
        f"mock: `jimeng-mock --port 0` (defaults), served with {uses['http']} + {uses['loop']}; "
        f"it wrote {log_lines:,} log lines during the load"
        + (" (a log line per request?)" if log_lines > 100 else "")
    )
    return [
        *_new_figures(new, floor, how, notes, extra, mock_note),
        *_same_figures(same, floor, how, notes),
        *_wiremock_figures(settings, new, floor, wm, found, wiremock_problem, how, notes),
    ]


def _new_figures(
    new: Loaded, floor: Loaded, how: str, notes: _Notes, extra: dict[str, Any], mock_note: str
) -> list[Figure]:
    """A new prompt each request: throughput, p99, throughput per CPU-second."""
    return [
        Figure(
            1,
            "generations.new.rps",
            "POST generations, a new prompt each request",
            "req/s",
            runs=[r.rps for r in new.results],
            floor_runs=[r.rps for r in floor.results],
            floor_label=FLOOR_LABEL,
            target=Target(">=", FLOOR_RATIO, on="ratio"),
            tool=how,
            check_failed=notes.checked(new.results),
            note=(
                f"{notes.bad_note(new.results)}; {extra['distinct_bodies_sent']:,} bodies, none "
                f"repeated; median run-by-run ratio "
                f"{notes.paired(new.results, floor.results):.2f}; "
                f"{notes.cpu_note(new.results)}; {mock_note}"
            ),
            extra=extra,
        ),
        Figure(
            1,
            "generations.new.p99",
            "  p99 latency, a new prompt each request",
            "ms",
            runs=_p99(new.results),
            floor_runs=_p99(floor.results),
            floor_label=FLOOR_LABEL,
            target=Target("<", P99_MS),
            tool=how,
            check_failed=notes.checked(new.results),
        ),
        Figure(
            1,
            "generations.new.rps_per_cpu",
            "  the same per CPU-second of the server",
            "req/s",
            runs=[_per_cpu(r) for r in new.results],
            floor_runs=[_per_cpu(r) for r in floor.results],
            floor_label=FLOOR_LABEL,
            tool=how,
            note=(
                "no target; answers per second of CPU the server used: steady when other "
                "processes share its CPU, which lowers the plain figure"
            ),
        ),
    ]


def _same_figures(same: Loaded, floor: Loaded, how: str, notes: _Notes) -> list[Figure]:
    """One repeated body: throughput and p99."""
    return [
        Figure(
            1,
            "generations.same.rps",
            "POST generations, one repeated body",
            "req/s",
            runs=[r.rps for r in same.results],
            floor_runs=[r.rps for r in floor.results],
            floor_label=FLOOR_LABEL,
            target=Target(">=", FLOOR_RATIO, on="ratio"),
            tool=how,
            check_failed=notes.checked(same.results),
            note=(
                f"{notes.bad_note(same.results)}; median run-by-run ratio "
                f"{notes.paired(same.results, floor.results):.2f}; {notes.cpu_note(same.results)}"
            ),
        ),
        Figure(
            1,
            "generations.same.p99",
            "  p99 latency, one repeated body",
            "ms",
            runs=_p99(same.results),
            floor_runs=_p99(floor.results),
            floor_label=FLOOR_LABEL,
            target=Target("<", P99_MS),
            tool=how,
            check_failed=notes.checked(same.results),
        ),
    ]


def _wiremock_skipped(why: str) -> list[Figure]:
    return [
        Figure(
            1,
            "generations.wiremock.rps",
            "WireMock, static stub, a new prompt each request",
            "req/s",
            skipped=f"WireMock not measured: {why}",
        ),
        Figure(
            1,
            "generations.new_vs_wiremock",
            "  mock new-prompt req/s / WireMock's",
            "req/s",
            target=Target(">=", WIREMOCK_RATIO, on="ratio"),
            skipped=f"WireMock not measured: {why}",
        ),
    ]


def _wiremock_figures(
    settings: Settings,
    new: Loaded,
    floor: Loaded,
    wm: Loaded | None,
    found: wiremock.Setup,
    wiremock_problem: str | None,
    how: str,
    notes: _Notes,
) -> list[Figure]:
    """WireMock's throughput and the mock's beside it, or why they were not measured."""
    figures: list[Figure] = []
    wm_label = f"WireMock {found.wiremock_version or wiremock.VERSION}, static stub, CPU 0"
    if wm is None:
        return _wiremock_skipped(wiremock_problem or "not measured")
    wm_runs = [r.rps for r in wm.results]
    figures += [
        Figure(
            1,
            "generations.wiremock.rps",
            "WireMock, static stub, a new prompt each request",
            "req/s",
            runs=wm_runs,
            floor_runs=[r.rps for r in floor.results],
            floor_label=FLOOR_LABEL,
            tool=how,
            check_failed=notes.checked(wm.results),
            note=(
                f"no target; {found.describe()}; p99 {median(_p99(wm.results)) or 0:.2f} ms; "
                f"{notes.bad_note(wm.results)}; {notes.cpu_note(wm.results)}; after a "
                f"{settings.wiremock_warmup:g} s warm-up; {' '.join(wiremock.JVM_OPTIONS)} "
                f"{' '.join(wiremock.WIREMOCK_OPTIONS)}"
            ),
        ),
        Figure(
            1,
            "generations.new_vs_wiremock",
            "  mock new-prompt req/s / WireMock's",
            "req/s",
            runs=[r.rps for r in new.results],
            floor_runs=wm_runs,
            floor_label=wm_label,
            target=Target(">=", WIREMOCK_RATIO, on="ratio"),
            tool=how,
            check_failed=notes.checked(new.results) or notes.checked(wm.results),
            note=f"median run-by-run ratio {notes.paired(new.results, wm.results):.2f}",
        ),
    ]
    return figures
