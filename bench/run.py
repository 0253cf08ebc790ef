"""`make bench`: run the benchmarks, print one table, write bench/results.json.

`python -m bench.run [--quick] [--only 1,2,...] [--tool auto|wrk|python] [--json PATH]
[--no-install] [--no-wiremock]`
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import burst, journal, render, soak, startup, throughput, wiremock
from bench.common import (
    ROOT,
    Figure,
    ServerProcess,
    failed,
    hello_cmd,
    loaded_libraries,
    mock_cmd,
    pin_self,
    pinning,
)
from bench.hello import HTTP as FLOOR_HTTP
from bench.hello import LOOP as FLOOR_LOOP
from bench.load import have_wrk, wrk_version

ITEMS = {
    1: ("generations.new.rps", "POST /v1/images/generations throughput", "req/s"),
    2: ("image", "image first render and cached fetch", "ms"),
    3: ("mockserver.start_stop", "MockServer start() + stop()", "ms"),
    4: ("cli.ready", "jimeng-mock start to ready line", "ms"),
    5: ("soak", "soak", "MB"),
    6: ("burst.peak_rss", "burst of 4K fetches", "MB"),
    7: ("journal.image.peak_growth", "journal filled with 1 MB bodies", "MB"),
}


def served_with() -> dict[str, dict[str, str]]:
    """The HTTP parser and event loop that the mock (started with its defaults) and the
    floor actually use, read from their processes."""
    found: dict[str, dict[str, str]] = {}
    for name, cmd in (("mock", mock_cmd()), ("floor", hello_cmd())):
        try:
            with ServerProcess(cmd) as server:
                found[name] = loaded_libraries(server.pid)
        except Exception as exc:
            found[name] = {"http": "unknown", "loop": "unknown", "error": str(exc)[:200]}
    return found


def machine(tool: str) -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "missing"

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "pinned": pinning(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uvicorn": version("uvicorn"),
        "httptools": version("httptools"),
        "uvloop": version("uvloop"),
        "starlette": version("starlette"),
        "jsonschema": version("jsonschema"),
        "jsonschema_rs": version("jsonschema-rs"),
        "pillow": version("pillow"),
        "load_tool": wrk_version() if tool == "wrk" else "bench.loadgen (Python)",
    }


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "req/s":
        return f"{value:,.0f}/s"
    if unit == "MB":
        return f"{value:.1f} MB"
    if abs(value) < 10:
        return f"{value:.2f} ms"
    return f"{value:.1f} ms" if abs(value) < 100 else f"{value:,.0f} ms"


def _ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.2f}x" if ratio < 100 else f"{ratio:,.0f}x"


def table(figures: Sequence[Figure]) -> str:
    """The figures as one plain-text table, with the floors and notes under it."""
    head = ("#", "figure", "median", "floor", "ratio", "target", "met", "measured with")
    rows: list[tuple[str, ...]] = []
    for f in figures:
        if f.error:
            rows.append((str(f.item), f.label, "error", "", "", "", "-", f.error[:70]))
            continue
        if f.skipped:
            target = f.target.describe(f.unit) if f.target else "-"
            rows.append((str(f.item), f.label, "skipped", "", "", target, "-", f.skipped[:70]))
            continue
        value = _value(f.value, f.unit)
        floor = _value(f.floor, f.unit) if f.floor_runs else "-"
        if f.key.startswith("soak.rss_growth"):
            value = f"{f.value:+.1f} MB" if f.value is not None else "-"
            floor = f"{f.floor:+.1f} MB" if f.floor is not None else "-"
        met = {True: "yes", False: "NO", None: "-"}[f.met]
        if f.check_failed:
            met = "NO (check)"
        target = f.target.describe(f.unit) if f.target else "-"
        rows.append((str(f.item), f.label, value, floor, _ratio(f.ratio), target, met, f.tool))
    widths = [max(len(row[i]) for row in (head, *rows)) for i in range(len(head))]
    right = {2, 3, 4}

    def line(row: Sequence[str]) -> str:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    out = [line(head), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    floors: dict[int, list[str]] = {}
    for f in figures:
        if f.floor_label and f.floor_label not in floors.setdefault(f.item, []):
            floors[f.item].append(f.floor_label)
    out.append("")
    out += [f"floor {item}: {'; '.join(labels)}" for item, labels in floors.items() if labels]
    out += [
        f"note {f.item} ({f.label.strip()}): {f.note}" for f in figures if f.note and not f.error
    ]
    out += [
        f"FAILED CHECK {f.item} ({f.label.strip()}): {f.check_failed}"
        for f in figures
        if f.check_failed and not f.error
    ]
    return "\n".join(out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few, short runs: a smoke test")
    parser.add_argument("--only", default="1,2,3,4,5,6,7", help="items to run (default: all)")
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="install nothing: without Java or the WireMock jar already here, skip WireMock",
    )
    parser.add_argument("--no-wiremock", action="store_true", help="leave WireMock out")
    return parser


def _info(tool: str, load_before: float, with_wiremock: bool) -> dict[str, Any]:
    """The machine, the load and what the servers were run with, for the table and the JSON."""
    info = machine(tool)
    info["loadavg_before"], info["loadavg_after"] = load_before, _loadavg()
    uses = served_with()
    info["mock_http"], info["mock_loop"] = uses["mock"]["http"], uses["mock"]["loop"]
    info["floor_http"], info["floor_loop"] = FLOOR_HTTP, FLOOR_LOOP
    info["floor_http_seen"], info["floor_loop_seen"] = uses["floor"]["http"], uses["floor"]["loop"]
    info["mock_cmd"] = " ".join(
        Path(part).name if i == 0 else part for i, part in enumerate(mock_cmd())
    )
    info["wiremock"] = wiremock.describe() if with_wiremock else "not run"
    return info


def _items(
    tool: str, args: argparse.Namespace, quick: bool
) -> dict[int, Callable[[], list[Figure]]]:
    """Each item's run, as the options set it up."""
    runs: dict[int, Callable[[], list[Figure]]] = {
        1: lambda: throughput.run(
            tool,
            throughput.Settings(
                **(dict(runs=2, seconds=1, warmup=1, wiremock_warmup=3) if quick else {}),
                wiremock=not args.no_wiremock,
                install=not args.no_install,
            ),
        ),
        2: lambda: render.run(render.Settings(runs=2) if quick else render.Settings()),
        3: lambda: startup.run_inprocess(
            startup.Settings(cycles=5) if quick else startup.Settings()
        ),
        4: lambda: startup.run_cli(startup.Settings(launches=2) if quick else startup.Settings()),
        5: lambda: soak.run(tool, soak.Settings(total=5_000) if quick else soak.Settings()),
        6: lambda: burst.run(burst.Settings(runs=1, fetches=40) if quick else burst.Settings()),
        7: lambda: journal.run(
            journal.Settings(requests=60, warmup=10) if quick else journal.Settings()
        ),
    }
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    only = {int(part) for part in args.only.split(",") if part.strip()}
    tool = args.tool if args.tool != "auto" else ("wrk" if have_wrk() else "python")
    if tool == "wrk" and not have_wrk():
        parser.error("wrk is not installed")
    pin_self()
    load_before = _loadavg()
    started = time.perf_counter()
    began = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    quick = args.quick
    if tool == "python":
        print("note: wrk is missing: load comes from bench.loadgen (Python)", file=sys.stderr)

    runs = _items(tool, args, quick)
    figures: list[Figure] = []
    for item in sorted(only):
        try:
            figures += runs[item]()
        except Exception as exc:
            traceback.print_exc()
            key, label, unit = ITEMS[item]
            figures.append(failed(item, key, label, unit, exc))
    total = time.perf_counter() - started

    info = _info(tool, load_before, 1 in only and not args.no_wiremock)
    title = f"jimeng-mockserver benchmarks ({'quick' if quick else 'full'}), {began}"
    lines = [
        title,
        f"machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}"
        + (", servers on CPU 0, clients on CPU 1" if info["pinned"] else ""),
        f"python {info['python']}, uvicorn {info['uvicorn']}, starlette {info['starlette']}, "
        f"Pillow {info['pillow']}, jsonschema {info['jsonschema']}, jsonschema-rs "
        f"{info['jsonschema_rs']}, load: {info['load_tool']}",
        f"the mock (`{info['mock_cmd']}`, its defaults) serves with http {info['mock_http']}, "
        f"loop {info['mock_loop']}; the floor with http {FLOOR_HTTP}, loop {FLOOR_LOOP} "
        f"(explicit); WireMock: {info['wiremock']}",
        f"1-minute load average {load_before:.2f} before, {info['loadavg_after']:.2f} after "
        "(other processes on these CPUs add noise; the ratios are measured side by side)",
        "every figure is the median of its runs; ratio = figure / floor, measured in the same run",
        "",
        table(figures),
        "",
        f"total run time: {total:.0f} s",
    ]
    print("\n".join(lines), flush=True)
    results = {
        "title": title,
        "started_at": began,
        "mode": "quick" if quick else "full",
        "items": sorted(only),
        "machine": info,
        "total_s": total,
        "figures": [f.as_json() for f in figures],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}")
    return 1 if any(f.error for f in figures) else 0


if __name__ == "__main__":
    raise SystemExit(main())
