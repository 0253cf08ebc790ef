"""Where the time goes: pyinstrument profiles of the hot route and of a 4K first render.

`python -m bench.profile [--requests N] [--seconds S] [--renders N] [--only ...]` prints
first a small table: the shares of the server's time, for a request with a new prompt,
by what the time is for (HTTP parsing and uvicorn, Starlette routing and middleware, JSON
parsing, validation with jsonschema and with jsonschema_rs, the journal, response
encoding, image URL signing, other); then, for each profile, the share of time of the
functions under the focus (merged over calls), the top functions by self time and the
same table for it. Full pyinstrument trees go to bench/results/profile-*.txt, the shares
to bench/results/profile-shares.json.

- `server`: the app served by uvicorn as the command serves it (its defaults: httptools
  and uvloop when installed) in this process's main thread, loaded with wrk (or
  bench.loadgen) at 32 connections for S seconds, a new prompt on every request: the whole
  server, HTTP parsing and the event loop included.
- `app`: `POST /v1/images/generations` driven straight into the ASGI app (no sockets),
  sequentially, N times, with a repeated body and with a new prompt each: the app's own
  cost (Starlette, validation, journal, JSON).
- `render`: `mockserver.images.render_placeholder` at 4096x4096, N times, fresh seeds.

How a sample is put in a category (`category_of`): its stack is read from the outside
in, and each frame that a rule knows may set the category. Rules for a purpose (JSON
parsing, validation, the journal, encoding, URL signing) hold for everything called
under them, so a `re` or `hashlib` call made while validating is validation; rules for
the plumbing (uvicorn, Starlette, the mock's own code otherwise) give way to anything more
precise under them, so a JSONResponse rendered from an endpoint is encoding. uvicorn's
receive and send take over even inside a purpose: reading a body off the socket is HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyinstrument import Profiler
from pyinstrument.frame import Frame

from bench.common import CLIENT_CPU, ROOT, SERVER_CPU, pinning
from bench.hello import bind
from bench.load import have_wrk, run_load
from bench.throughput import BODY, CONNECTIONS, PROMPT, new_prompts

OUT = ROOT / "bench" / "results"

# What the time of a request is for, in the order of the table; the indented rows split
# the one above them, which is their sum.
CATEGORIES: list[tuple[str, str, tuple[str, ...]]] = [
    ("http", "HTTP parsing / uvicorn", ("uvicorn", "loop")),
    ("uvicorn", "  uvicorn + httptools (protocol, parsing, writes)", ()),
    ("loop", "  event loop (uvloop/asyncio: epoll, socket reads, idle)", ()),
    ("starlette", "Starlette routing / middleware (the mock's too)", ()),
    ("json_parse", "JSON parsing (request body)", ()),
    ("validation", "validation", ("jsonschema", "jsonschema_rs", "contract")),
    ("jsonschema", "  jsonschema (Python)", ()),
    ("jsonschema_rs", "  jsonschema_rs (compiled)", ()),
    ("contract", "  the mock's contract code around them", ()),
    ("journal", "journal", ()),
    ("encoding", "response encoding (JSON, headers)", ()),
    ("signing", "image URL signing (seed, HMAC, base URL)", ()),
    ("harness", "the profile's own ASGI driver", ()),
    ("other", "other", ()),
]
_GROUP = {"jsonschema": "validation", "jsonschema_rs": "validation", "contract": "validation"}

try:
    import jsonschema_rs

    _RS_NAMES = {name for name in dir(jsonschema_rs) if not name.startswith("_")}
except ImportError:  # pragma: no cover - jsonschema_rs is a dependency
    _RS_NAMES = set()


@dataclass(frozen=True)
class Rule:
    """A category a frame sets. `kind`: "purpose" holds for the frame's callees too (those
    of the same group may refine it); "plumbing" gives way to any rule under it;
    "transport" takes over even under a purpose."""

    category: str
    kind: str = "purpose"


def _parts(frame: Frame) -> tuple[str, str]:
    """(package, module path) of a frame: ("starlette", "starlette/responses.py")."""
    short = (frame.file_path_short or frame.file_path or "").replace(os.sep, "/")
    return short.split("/", 1)[0].removesuffix(".py"), short


def rule_of(frame: Frame) -> Rule | None:
    """The rule a frame sets, if any (see the module's docstring)."""
    function = frame.function
    path = frame.file_path or ""
    if not path or path.startswith("<built-in>"):
        owner = function.split(".", 1)[0] if "." in function else ""
        if owner in _RS_NAMES or (not owner and function in _RS_NAMES):
            return Rule("jsonschema_rs")
        if owner == "HttpRequestParser":
            return Rule("uvicorn", "transport")
        if function in ("loads", "orjson.loads"):
            return Rule("json_parse")
        if function in ("dumps", "orjson.dumps"):
            return Rule("encoding")
        return None
    if path.startswith("<attrs generated"):
        return Rule("jsonschema")
    package, module = _parts(frame)
    if package in ("uvicorn", "httptools", "h11"):
        return Rule("uvicorn", "transport")
    if package in ("asyncio", "uvloop", "selectors"):
        return Rule("loop", "plumbing")
    if package == "starlette":
        if module.endswith("responses.py") and function in ("__init__", "render", "init_headers"):
            return Rule("encoding")
        if module.endswith("requests.py") and function == "base_url":
            return Rule("signing")
        if module.endswith("requests.py") and function in ("body", "stream"):
            return Rule("starlette", "transport")
        return Rule("starlette", "plumbing")
    if package == "json":
        if module.endswith(("decoder.py", "scanner.py")) or function in ("loads", "load"):
            return Rule("json_parse")
        if module.endswith("encoder.py") or function in ("dumps", "dump"):
            return Rule("encoding")
        return None
    if package in ("jsonschema", "referencing", "jsonschema_specifications", "rpds", "attr"):
        return Rule("jsonschema")
    if package == "jsonschema_rs":
        return Rule("jsonschema_rs")
    if package == "hmac":
        return Rule("signing")
    if package == "bench":
        return Rule("harness", "plumbing")
    if package == "mockserver":
        return _mockserver_rule(module, function)
    return None


def _mockserver_rule(module: str, function: str) -> Rule:
    """The rule a frame of the mock's own code sets."""
    name = module.rsplit("/", 1)[-1]
    if name == "journal.py" or function == "record":
        return Rule("journal")
    if name == "bodies.py":
        return Rule("json_parse")
    if name == "contract.py":
        if function == "seed":
            return Rule("signing")
        # The compiled validator's call is too short for the sampler to see on its own
        # (its time lands in the caller's): the one-line wrapper around it is its time.
        if "fast" in function:
            return Rule("jsonschema_rs")
        return Rule("contract")
    if name == "images.py" and function in ("path", "_sign", "sign", "key", "url"):
        return Rule("signing")
    if name == "serving.py" and function != "__call__":
        return Rule("uvicorn", "plumbing")
    if function == "__call__":  # the mock's own ASGI middleware
        return Rule("starlette", "plumbing")
    return Rule("other", "plumbing")


def _step(current: Rule | None, rule: Rule | None) -> Rule | None:
    if rule is None:
        return current
    if current is None or current.kind != "purpose" or rule.kind == "transport":
        return rule
    group = _GROUP.get(rule.category, rule.category)
    if rule.kind == "purpose" and group == _GROUP.get(current.category, current.category):
        return rule
    return current


@dataclass
class Shares:
    """Seconds by category within a focus, and the functions whose self time is "other"."""

    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    other: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def share(self, category: str) -> float:
        parts = dict((c, sub) for c, _, sub in CATEGORIES)[category] or (category,)
        return sum(self.seconds[p] for p in parts) / self.total if self.total else 0.0

    def as_json(self) -> dict[str, float]:
        return {c: round(self.share(c), 4) for c, _, _ in CATEGORIES}

    def table(self, title: str) -> list[str]:
        lines = [title, " share  what the time is for"]
        for category, label, _ in CATEGORIES:
            share = self.share(category)
            if category in ("harness",) and share < 0.0005:
                continue
            lines.append(f"{share:6.1%}  {label}")
        top = sorted(self.other.items(), key=lambda kv: -kv[1])[:5]
        if top and self.total:
            lines.append(
                "        other, mostly: "
                + "; ".join(
                    f"{key.split('  ')[0]} {seconds / self.total:.1%}" for key, seconds in top
                )
            )
        return lines


def shares(root: Frame, match: Callable[[Frame], bool]) -> Shares:
    """Every frame's self time within the focus, by category."""
    found = Shares()

    def add(frame: Frame, current: Rule | None) -> None:
        if frame.is_synthetic:
            return
        current = _step(current, rule_of(frame))
        category = current.category if current else "other"
        found.seconds[category] += frame.total_self_time
        if category == "other":
            found.other[_key(frame)] += frame.total_self_time
        for child in frame.children:
            add(child, current)

    def visit(frame: Frame) -> None:
        if not frame.is_synthetic and match(frame):
            add(frame, None)
            return
        for child in frame.children:
            visit(child)

    visit(root)
    return found


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
) -> tuple[str, Shares]:
    """Text: the focus tree with shares, the top self times and the shares by category, for
    one profile; and those shares."""
    session = profiler.last_session
    assert session is not None
    root = session.root_frame()
    assert root is not None
    tree = focus(root, match)
    by_category = shares(root, match)
    lines = [
        f"== {title}",
        note,
        f"profiled {session.duration:.2f} s ({session.cpu_time:.2f} s of CPU), "
        f"{session.sample_count} samples; the focus is {tree.time / root.time:.0%} of it.",
        "",
        *by_category.table("by what the time is for (share of the focus):"),
        "",
        "Shares are of the focus:",
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
    return "\n".join(lines), by_category


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
    """The app's outermost frame: the ASGI callable that `_drive` calls."""
    parent = frame.parent
    while parent is not None and parent.is_synthetic:
        parent = parent.parent
    return parent is not None and parent.function == "_drive" and frame.function == "__call__"


def profile_app(requests: int, vary: bool) -> tuple[str, Shares]:
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


def _is_server(frame: Frame) -> bool:
    return frame.function == "run" and (frame.file_path or "").endswith(
        os.path.join("uvicorn", "server.py")
    )


def _served_with(config: Any) -> tuple[str, str]:
    """The HTTP implementation and the loop uvicorn chose."""
    protocol = getattr(config, "http_protocol_class", None)
    http = getattr(protocol, "__module__", "?").rsplit(".", 1)[-1].removesuffix("_impl")
    loop = "uvloop" if config.loop in ("auto", "uvloop") and "uvloop" in sys.modules else "asyncio"
    return http, loop


def profile_server(seconds: float, tool: str) -> tuple[str, Shares]:
    """The app served by uvicorn in this thread, as the command serves it (uvicorn's "auto"
    HTTP implementation and loop), under load with a new prompt on every request."""
    import uvicorn

    from mockserver import create_app

    if pinning():
        os.sched_setaffinity(0, {SERVER_CPU})
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    url = f"http://127.0.0.1:{port}"
    results: list[Any] = []
    tag = uuid.uuid4().hex[:8]

    def load() -> None:
        while not server.started:
            time.sleep(0.01)
        host = f"127.0.0.1:{port}"
        try:
            warm = new_prompts(host, f"{tag}.warm")
            run_load(tool, url, warm, connections=CONNECTIONS, duration=1)
            measured = new_prompts(host, f"{tag}.run")
            results.append(run_load(tool, url, measured, connections=CONNECTIONS, duration=seconds))
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
    http, loop = _served_with(config)
    note = (
        f"{result.tool}: {result.rps:,.0f} req/s under the profiler, a new prompt each request "
        f"({result.sent:,} bodies), statuses {result.statuses}; served with {http} + {loop}; "
        "warm-up and shutdown included in the profile"
        if result
        else "the load run failed"
    )

    return report(
        "POST /v1/images/generations, the whole uvicorn server under load, a new prompt each",
        profiler,
        _is_server,
        4,
        note,
        "server",
    )


def profile_render(renders: int, width: int = 4096, height: int = 4096) -> tuple[str, Shares]:
    from mockserver.answers.images import render_placeholder

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
    parser.add_argument("--only", default="server,app,render")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    tool = "wrk" if have_wrk() else "python"
    if pinning():
        os.sched_setaffinity(0, {CLIENT_CPU})
    parts: dict[str, tuple[str, Shares]] = {}
    if "server" in only:
        parts["server"] = profile_server(args.seconds, tool)
    if "app" in only:
        parts["app-same"] = profile_app(args.requests, vary=False)
        parts["app-new"] = profile_app(args.requests, vary=True)
    if "render" in only:
        parts["render-4096x4096"] = profile_render(args.renders)
        parts["render-6048x2592"] = profile_render(args.renders, 6048, 2592)
    summary = next((parts[k] for k in ("server", "app-new") if k in parts), None)
    out = []
    if summary is not None:
        where = (
            "the whole server under wrk load"
            if "server" in parts
            else "straight into the ASGI app, no HTTP"
        )
        title = f"POST /v1/images/generations with a new prompt each, {where}: share of time"
        out.append("\n".join(summary[1].table(title)))
    out += [text for text, _ in parts.values()]
    print("\n\n".join(out))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "profile-shares.json").write_text(
        json.dumps({name: found.as_json() for name, (_, found) in parts.items()}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
