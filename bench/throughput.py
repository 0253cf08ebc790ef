"""Item 1: `POST /v1/images/generations` throughput and p99 latency at 32 connections.

Four servers, all up at once and all on CPU 0, loaded in turn from CPU 1, round after round:
the floor (`bench.hello`, a bare ASGI app on uvicorn with httptools and uvloop), the mock
with a new prompt on every request (no body is sent twice in a benchmark run: every load
run has a tag of its own and a counter), the mock with one repeated body, and WireMock
serving the mock's own answer from a static stub, loaded with new prompts too.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def _wiremock_running(
    found: wiremock.Setup, answer: bytes
) -> Iterator[tuple[wiremock.WireMockServer | None, str | None]]:
    """WireMock serving `answer`, when it is set up and starts (stopped on the way out), and
    why it is not measured otherwise."""
    problem: str | None = None if found.ok else found.problem
    wm: wiremock.WireMockServer | None = None
    try:
        if found.ok:
            try:
                with step(f"throughput: starting {found.describe()}"):
                    wm = wiremock.WireMockServer(found, answer)
            except Exception as exc:
                problem = f"did not start: {type(exc).__name__}: {exc}"[:300]
        yield wm, problem
    finally:
        if wm is not None:
            wm.stop()


def _warm_up(
    tool: str, settings: Settings, targets: list[Loaded], wm_warm: tuple[str, Requests] | None
) -> None:
    """WireMock's JVM first (`wm_warm`: its URL and requests, when it is measured), then the
    floor and the mock."""
    if wm_warm is not None:
        url, requests = wm_warm
        with step(f"throughput: WireMock JVM warm-up, {settings.wiremock_warmup:g} s"):
            run_load(
                tool, url, requests, connections=CONNECTIONS, duration=settings.wiremock_warmup
            )
    with step(f"throughput: warm-up {settings.warmup:g} s each"):
        for target in targets[:3]:
            run_load(
                tool,
                target.server.url,
                target.requests(),
                connections=CONNECTIONS,
                duration=settings.warmup,
            )


def _rounds(tool: str, settings: Settings, targets: list[Loaded]) -> None:
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
    with ServerProcess(mock_cmd()) as mock, ServerProcess(hello_cmd()) as hello:
        mock_host, hello_host = f"{mock.host}:{mock.port}", f"{hello.host}:{hello.port}"
        repeated = [generation_request(mock_host)]
        floor = Loaded("floor", hello, fresh(hello_host))
        new = Loaded("new", mock, fresh(mock_host))
        same = Loaded("same", mock, lambda: repeated)
        targets = [floor, new, same]
        answer, content_type = _answer(mock)
        mock_libs = loaded_libraries(mock.pid)
        floor_libs = loaded_libraries(hello.pid)
        mock_log_before = len(mock.stderr().splitlines())
        with _wiremock_running(found, answer) as (wm, wiremock_problem):
            wm_warm = None
            if wm is not None:
                wm_host = f"{wm.host}:{wm.port}"
                targets.append(Loaded("wiremock", wm, fresh(wm_host)))
                wm_warm = (wm.url, new_prompts(wm_host, f"{tag}.warm"))
            _warm_up(tool, settings, targets, wm_warm)
            _rounds(tool, settings, targets)
        mock_log_lines = len(mock.stderr().splitlines()) - mock_log_before
    info = {
        "mock_uses": mock_libs,
        "floor_uses": floor_libs,
        "mock_cmd": mock_cmd(),
        "mock_log_lines_during_load": mock_log_lines,
        "answer": answer.decode(errors="replace"),
        "answer_content_type": content_type,
        "tag": tag,
    }
    wm_loaded = targets[3] if len(targets) > 3 else None
    measured = Rounds(tool, settings, floor, new, same, wm_loaded, found, wiremock_problem, info)
    return measured.figures()


@dataclass
class Rounds:
    """What the rounds got, and how they were run: the figures and the JSON are made of it."""

    tool: str
    settings: Settings
    floor: Loaded
    new: Loaded
    same: Loaded
    wm: Loaded | None
    found: wiremock.Setup
    wiremock_problem: str | None
    info: dict[str, Any]

    @property
    def how(self) -> str:
        tool_name = self.floor.results[0].tool
        return f"{tool_name}, {self.settings.runs}x{self.settings.seconds:g}s, {CONNECTIONS} conns"

    def extra(self) -> dict[str, Any]:
        loaded = [t for t in (self.floor, self.new, self.same, self.wm) if t]
        return {
            **self.info,
            "runs": {t.name: [r.as_json() for r in t.results] for t in loaded},
            "non_200_or_socket_errors": {t.name: _bad(t.results) for t in loaded},
            "distinct_bodies_sent": sum(r.sent for r in self.new.results),
            "body": BODY,
            "wiremock": {
                "setup": self.found.describe(),
                "installed_now": list(self.found.installed),
                "problem": self.wiremock_problem,
                "jvm_options": wiremock.JVM_OPTIONS,
                "options": wiremock.WIREMOCK_OPTIONS,
                "warmup_s": self.settings.wiremock_warmup,
            },
        }

    def cpu_note(self, results: list[LoadResult]) -> str:
        floor = self.floor.results
        return (
            f"server CPU use {median([r.server_cpu for r in results]) or 0:.0%} "
            f"(floor {median([r.server_cpu for r in floor]) or 0:.0%}), load tool's "
            f"{median([r.client_cpu for r in results]) or 0:.0%} "
            f"(floor {median([r.client_cpu for r in floor]) or 0:.0%}); per "
            f"CPU-second {median([_per_cpu(r) for r in results]) or 0:,.0f}/s "
            f"(floor {median([_per_cpu(r) for r in floor]) or 0:,.0f}/s)"
        )

    def bad_note(self, results: list[LoadResult]) -> str:
        floor_bad = _bad(self.floor.results)
        return f"non-200: {_bad(results)}" + (f" (floor {floor_bad})" if floor_bad else "")

    def mock_note(self) -> str:
        uses = self.info["mock_uses"]
        log_lines = self.info["mock_log_lines_during_load"]
        return (
            f"mock: `jimeng-mock --port 0` (defaults), served with {uses['http']} + "
            f"{uses['loop']}; it wrote {log_lines:,} log lines during the load"
            + (" (a log line per request?)" if log_lines > 100 else "")
        )

    def figures(self) -> list[Figure]:
        return self.new_figures() + self.same_figures() + self.wiremock_figures()

    def new_figures(self) -> list[Figure]:
        new, floor, how = self.new.results, self.floor.results, self.how
        extra = self.extra()
        return [
            Figure(
                1,
                "generations.new.rps",
                "POST generations, a new prompt each request",
                "req/s",
                runs=[r.rps for r in new],
                floor_runs=[r.rps for r in floor],
                floor_label=FLOOR_LABEL,
                target=Target(">=", FLOOR_RATIO, on="ratio"),
                tool=how,
                check_failed=_checked(new),
                note=(
                    f"{self.bad_note(new)}; {extra['distinct_bodies_sent']:,} bodies, none "
                    f"repeated; median run-by-run ratio {_paired(new, floor):.2f}; "
                    f"{self.cpu_note(new)}; {self.mock_note()}"
                ),
                extra=extra,
            ),
            _p99_figure("generations.new.p99", "a new prompt each request", new, floor, how),
            Figure(
                1,
                "generations.new.rps_per_cpu",
                "  the same per CPU-second of the server",
                "req/s",
                runs=[_per_cpu(r) for r in new],
                floor_runs=[_per_cpu(r) for r in floor],
                floor_label=FLOOR_LABEL,
                tool=how,
                note=(
                    "no target; answers per second of CPU the server used: steady when other "
                    "processes share its CPU, which lowers the plain figure"
                ),
            ),
        ]

    def same_figures(self) -> list[Figure]:
        same, floor, how = self.same.results, self.floor.results, self.how
        return [
            Figure(
                1,
                "generations.same.rps",
                "POST generations, one repeated body",
                "req/s",
                runs=[r.rps for r in same],
                floor_runs=[r.rps for r in floor],
                floor_label=FLOOR_LABEL,
                target=Target(">=", FLOOR_RATIO, on="ratio"),
                tool=how,
                check_failed=_checked(same),
                note=(
                    f"{self.bad_note(same)}; median run-by-run ratio "
                    f"{_paired(same, floor):.2f}; {self.cpu_note(same)}"
                ),
            ),
            _p99_figure("generations.same.p99", "one repeated body", same, floor, how),
        ]

    def wiremock_figures(self) -> list[Figure]:
        if self.wm is None:
            why = self.wiremock_problem or "not measured"
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
        return self.measured_wiremock_figures(self.wm.results)

    def measured_wiremock_figures(self, wm: list[LoadResult]) -> list[Figure]:
        new, floor, how, found = self.new.results, self.floor.results, self.how, self.found
        wm_label = f"WireMock {found.wiremock_version or wiremock.VERSION}, static stub, CPU 0"
        wm_runs = [r.rps for r in wm]
        return [
            Figure(
                1,
                "generations.wiremock.rps",
                "WireMock, static stub, a new prompt each request",
                "req/s",
                runs=wm_runs,
                floor_runs=[r.rps for r in floor],
                floor_label=FLOOR_LABEL,
                tool=how,
                check_failed=_checked(wm),
                note=(
                    f"no target; {found.describe()}; p99 {median(_p99(wm)) or 0:.2f} ms; "
                    f"{self.bad_note(wm)}; {self.cpu_note(wm)}; after a "
                    f"{self.settings.wiremock_warmup:g} s warm-up; "
                    f"{' '.join(wiremock.JVM_OPTIONS)} {' '.join(wiremock.WIREMOCK_OPTIONS)}"
                ),
            ),
            Figure(
                1,
                "generations.new_vs_wiremock",
                "  mock new-prompt req/s / WireMock's",
                "req/s",
                runs=[r.rps for r in new],
                floor_runs=wm_runs,
                floor_label=wm_label,
                target=Target(">=", WIREMOCK_RATIO, on="ratio"),
                tool=how,
                check_failed=_checked(new) or _checked(wm),
                note=f"median run-by-run ratio {_paired(new, wm):.2f}",
            ),
        ]


def _checked(results: list[LoadResult]) -> str | None:
    bad = _bad(results)
    return f"{bad:,} answers not 200 (or socket errors)" if bad else None


def _paired(results: list[LoadResult], against: list[LoadResult]) -> float:
    ratios = [m.rps / f.rps for m, f in zip(results, against, strict=True) if f.rps]
    return median(ratios) or 0.0


def _p99_figure(
    key: str, what: str, results: list[LoadResult], floor: list[LoadResult], how: str
) -> Figure:
    return Figure(
        1,
        key,
        f"  p99 latency, {what}",
        "ms",
        runs=_p99(results),
        floor_runs=_p99(floor),
        floor_label=FLOOR_LABEL,
        target=Target("<", P99_MS),
        tool=how,
        check_failed=_checked(results),
    )
