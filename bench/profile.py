"""Where the time goes: pyinstrument profiles of the hot route and of a 4K first render.

`python -m bench.profile [--requests N] [--seconds S] [--renders N]` prints, for each:
the share of time of the functions under the focus (merged over calls), and the top
functions by self time. Full pyinstrument trees go to bench/results/profile-*.txt.

- `app`: `POST /v1/images/generations` driven straight into the ASGI app (no sockets),
  sequentially, N times: the app's own cost (Starlette, validation, journal, JSON).
- `server`: the command's uvicorn serving the same app in this process's main thread,
  loaded with wrk (or bench.loadgen) at 32 connections for S seconds: the whole server,
  HTTP parsing and the event loop included.
- `render`: `mockserver.images.render_placeholder` at 4096x4096, N times, fresh seeds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyinstrument import Profiler
from pyinstrument.frame import Frame

from bench.common import CLIENT_CPU, ROOT, SERVER_CPU, pinning
from bench.hello import bind
from bench.load import have_wrk, run_load
from bench.throughput import BODY, CONNECTIONS, PROMPT, generation_request

OUT = ROOT / "bench" / "results"


def _key(frame: Frame) -> str:
    path = frame.file_path_short or frame.file_path or ""
    return f"{frame.function}  {path}:{frame.line_no}" if path else frame.function


def _top(times: dict[str, float], count: int) -> list[tuple[str, float]]:
    return sorted(times.items(), key=lambda item: -item[1])[:count]


def _walk(frame: Frame) -> Iterator[Frame]:
    yield frame
    for child in frame.children:
        yield from _walk(child)


def self_times(root: Frame) -> defaultdict[str, float]:
    """Seconds spent in each function itself (C functions it calls are their own entries)."""
    times: defaultdict[str, float] = defaultdict(float)
    for frame in _walk(root):
        if not frame.is_synthetic:
            times[_key(frame)] += frame.total_self_time
    return times


@dataclass
class Node:
    """Calls of one function merged across the tree: time, and callees by name."""

    time: float = 0.0
    children: dict[str, Node] = field(default_factory=dict)

    def add(self, frame: Frame) -> None:
        self.time += frame.time
        for child in frame.children:
            name = "[self]" if child.is_synthetic else _key(child)
            self.children.setdefault(name, Node()).add(child)

    def lines(self, total: float, depth: int, min_share: float, indent: str = "") -> list[str]:
        out = []
        for name, node in sorted(self.children.items(), key=lambda kv: -kv[1].time):
            share = node.time / total
            if share < min_share:
                continue
            out.append(f"{indent}{share:6.1%}  {name}")
            if depth > 1:
                out += node.lines(total, depth - 1, min_share, indent + "        ")
        return out


def focus(root: Frame, match: Callable[[Frame], bool]) -> Node:
    """The outermost calls `match` picks, merged into one tree."""
    node = Node()

    def visit(frame: Frame) -> None:
        if not frame.is_synthetic and match(frame):
            node.add(frame)
            return
        for child in frame.children:
            visit(child)

    visit(root)
    return node


def report(
    title: str,
    profiler: Profiler,
    match: Callable[[Frame], bool],
    depth: int,
    note: str,
    name: str,
) -> str:
    """Text: the focus tree with shares, then the top self times, for one profile."""
    session = profiler.last_session
    assert session is not None
    root = session.root_frame()
    assert root is not None
    tree = focus(root, match)
    lines = [
        f"== {title}",
        note,
        f"profiled {session.duration:.2f} s, {session.sample_count} samples; "
        f"the focus is {tree.time / root.time:.0%} of it. Shares are of the focus:",
        f"{1:6.1%}  (focus)",
        *tree.lines(tree.time, depth, 0.01),
        "",
        "top functions by self time (share of the focus):",
    ]
    focus_self = self_times_within(root, match)
    for key, seconds in _top(focus_self, 15):
        lines.append(f"{seconds / tree.time:6.1%}  {key}")
    lines += ["", "time in and under a function, wrappers of nearly everything left out:"]
    inner = [(k, t) for k, t in _top(inclusive_within(root, match), 60) if t < 0.85 * tree.time]
    for key, seconds in inner[:20]:
        lines.append(f"{seconds / tree.time:6.1%}  {key}")
    lines += ["", "self time by package, (C) for built-ins called from it (share of the focus):"]
    for package, seconds in _top(packages(root, match), 12):
        if seconds / tree.time >= 0.005:
            lines.append(f"{seconds / tree.time:6.1%}  {package}")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"profile-{name}.txt"
    path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    lines.append(f"(full tree: {path.relative_to(ROOT)})")
    return "\n".join(lines)


def _package(frame: Frame) -> str:
    """The package (or stdlib module) of a frame; built-ins are their caller's, with (C)."""
    if frame.file_path and not frame.file_path.startswith("<"):
        short = (frame.file_path_short or frame.file_path).replace(os.sep, "/")
        top = short.split("/")[0]
        return top.removesuffix(".py")
    parent = frame.parent
    while parent is not None and (parent.is_synthetic or not parent.file_path):
        parent = parent.parent
    caller = _package(parent) if parent is not None else "?"
    return f"{caller.removesuffix(' (C)')} (C)"


def packages(root: Frame, match: Callable[[Frame], bool]) -> defaultdict[str, float]:
    """Self time within the focus, by package."""
    times: defaultdict[str, float] = defaultdict(float)

    def add(frame: Frame) -> None:
        if not frame.is_synthetic:
            times[_package(frame)] += frame.total_self_time
        for child in frame.children:
            add(child)

    def visit(frame: Frame) -> None:
        if not frame.is_synthetic and match(frame):
            add(frame)
            return
        for child in frame.children:
            visit(child)

    visit(root)
    return times


def inclusive_within(root: Frame, match: Callable[[Frame], bool]) -> defaultdict[str, float]:
    """Seconds in and under each function within the focus (a recursive call counted once)."""
    times: defaultdict[str, float] = defaultdict(float)

    def add(frame: Frame, path: frozenset[str]) -> None:
        if frame.is_synthetic:
            return
        key = _key(frame)
        if key not in path:
            times[key] += frame.time
        for child in frame.children:
            add(child, path | {key})

    def visit(frame: Frame) -> None:
        if not frame.is_synthetic and match(frame):
            add(frame, frozenset())
            return
        for child in frame.children:
            visit(child)

    visit(root)
    return times


def self_times_within(root: Frame, match: Callable[[Frame], bool]) -> defaultdict[str, float]:
    times: defaultdict[str, float] = defaultdict(float)

    def visit(frame: Frame) -> None:
        if not frame.is_synthetic and match(frame):
            for key, seconds in self_times(frame).items():
                times[key] += seconds
            return
        for child in frame.children:
            visit(child)

    visit(root)
    return times


def _scope(body: bytes) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"authorization", b"Bearer sk-bench"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/images/generations",
        "raw_path": b"/v1/images/generations",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _drive(app: Any, requests: int, vary: bool = False) -> Counter[int]:
    """`requests` generations straight into the ASGI app, one after another; with `vary`,
    each with a prompt of its own."""
    statuses: Counter[int] = Counter()
    for i in range(requests):
        fields = {**BODY, "prompt": f"{PROMPT} {i}"} if vary else BODY
        body = json.dumps(fields, separators=(",", ":")).encode()
        scope = _scope(body)
        messages: list[dict[str, Any]] = [
            {"type": "http.request", "body": body, "more_body": False},
            {"type": "http.disconnect"},
        ]

        async def receive(messages: list[dict[str, Any]] = messages) -> dict[str, Any]:
            return messages.pop(0) if len(messages) > 1 else messages[0]

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] += 1

        await app(dict(scope), receive, send)
    return statuses


def _is_app(frame: Frame) -> bool:
    return frame.function == "__call__" and (frame.file_path or "").endswith(
        os.path.join("starlette", "applications.py")
    )


def profile_app(requests: int, vary: bool) -> str:
    from mockserver import create_app

    app = create_app()
    asyncio.run(_drive(app, 200, vary))  # warm-up
    profiler = Profiler(interval=0.0002, async_mode="disabled")
    started = time.perf_counter()
    profiler.start()
    statuses = asyncio.run(_drive(app, requests, vary))
    profiler.stop()
    seconds = time.perf_counter() - started
    what = "a prompt of its own each" if vary else "the same body each time (as item 1 sends)"
    note = (
        f"{requests:,} requests, {what}, in {seconds:.2f} s under the profiler "
        f"({seconds / requests * 1e6:.0f} us each), statuses {dict(statuses)}"
    )
    return report(
        f"POST /v1/images/generations straight into the ASGI app, {what}",
        profiler,
        _is_app,
        6,
        note,
        "app-varied" if vary else "app-same",
    )


def profile_server(seconds: float, tool: str) -> str:
    """The app served by uvicorn in this thread, as the command serves it, under load."""
    import uvicorn

    from mockserver import create_app

    if pinning():
        os.sched_setaffinity(0, {SERVER_CPU})
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), log_level="warning", lifespan="off"))
    url = f"http://127.0.0.1:{port}"
    results: list[Any] = []

    def load() -> None:
        while not server.started:
            time.sleep(0.01)
        requests = [generation_request(f"127.0.0.1:{port}")]
        try:
            run_load(tool, url, requests, connections=CONNECTIONS, duration=1)  # warm-up
            results.append(run_load(tool, url, requests, connections=CONNECTIONS, duration=seconds))
        finally:
            server.should_exit = True

    profiler = Profiler(interval=0.0002, async_mode="disabled")
    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    profiler.start()
    server.run(sockets=[sock])
    profiler.stop()
    thread.join()
    if pinning():
        os.sched_setaffinity(0, {CLIENT_CPU})
    result = results[0] if results else None
    note = (
        f"{result.tool}: {result.rps:,.0f} req/s under the profiler, "
        f"statuses {result.statuses} (warm-up and shutdown included in the profile)"
        if result
        else "the load run failed"
    )

    def is_cycle(frame: Frame) -> bool:
        return frame.function == "_run_once"

    return report(
        "POST /v1/images/generations, the whole uvicorn server under load",
        profiler,
        is_cycle,
        4,
        note,
        "server",
    )


def profile_render(renders: int, width: int = 4096, height: int = 4096) -> str:
    from mockserver.images import render_placeholder

    lines = ["jimeng-4.5", f"{width} x {height}", "#1  0123abcd"]
    render_placeholder(width, height, "warm-up", lines)
    profiler = Profiler(interval=0.0001, async_mode="disabled")
    took = []
    profiler.start()
    for i in range(renders):
        started = time.perf_counter()
        render_placeholder(width, height, f"{i:016x}-1", lines)
        took.append((time.perf_counter() - started) * 1000)
    profiler.stop()
    took.sort()
    note = (
        f"{renders} renders of {width}x{height} with fresh seeds; median "
        f"{took[len(took) // 2]:.1f} ms each under the profiler"
    )
    return report(
        f"render_placeholder({width}, {height}): a first render",
        profiler,
        lambda frame: frame.function == "render_placeholder",
        4,
        note,
        f"render-{width}x{height}",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--renders", type=int, default=20)
    parser.add_argument("--only", default="app,server,render")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    tool = "wrk" if have_wrk() else "python"
    if pinning():
        os.sched_setaffinity(0, {CLIENT_CPU})
    parts = []
    if "app" in only:
        parts.append(profile_app(args.requests, vary=False))
        parts.append(profile_app(args.requests, vary=True))
    if "server" in only:
        parts.append(profile_server(args.seconds, tool))
    if "render" in only:
        parts.append(profile_render(args.renders))
        parts.append(profile_render(args.renders, 6048, 2592))
    print("\n\n".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
