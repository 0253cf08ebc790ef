"""`jimeng-mock conform URL`: run the contract cases against any service and report drift.

The contract cases (fixtures/contract/*.json in the repository, `mockserver/contract` in a
wheel) say what the mock answers. Run against a real service, they say where the mock and the
service disagree: the status, the error code and param, the headers a case names (but the
mock's own, X-Mock-*), and, for a generation, the size of every image (mockserver/contract/cases.py
judges them). Only cases the mock refuses run by default (they cost nothing); cases that
generate images run up to `--max-generations`; cases of the mock's own features are skipped.

Case paths are full paths (`/v1/images/generations`). URL is a base URL as the openai SDK
takes it (`https://host/v1`, or `https://host/prefix/v1`): a trailing `/v1` is dropped and
the case path is appended to what is left, so `https://host/prefix/v1` and
`https://host/prefix` both send a case to `https://host/prefix/v1/images/generations`. A
case file may say the API base its paths are under (`api`, Ark's `/api/v3`): a URL ending in
it runs that file's cases only, the others being another API's (`api_of`).
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from mockserver.contract.cases import DEFAULT_API, Case, Target, judge, read_cases, send
from mockserver.options import CONFORM, declared
from mockserver.options import field as option
from mockserver.paths import contract_dir


@dataclass
class Entry:
    """One case in a run: why it was skipped, or what the service said and whether it agrees."""

    case: Case
    skipped: str | None = None
    got: dict[str, Any] | None = None
    agree: bool | None = None

    @property
    def id(self) -> str:
        return self.case.id

    @property
    def expected(self) -> dict[str, Any]:
        return self.case.expected


@declared("conform")
@dataclass
class Options:
    """What a run is asked: the options of `jimeng-mock conform` (`mockserver.options`)."""

    url: str = option("url")
    api_key: str = option("api_key")
    cases: Sequence[Path] = option("cases")
    select: Sequence[str] = option("select")
    report: Path | None = option("report")
    max_generations: int = option("max_generations")
    rate: float | None = option("rate")
    timeout: float = option("timeout")


# ------------------------------------------------------------------------------ the cases


def load_cases(directories: Iterable[Path]) -> list[Entry]:
    """Every case of every `*.json` in `directories`, as `<file stem>::<name>`; ValueError
    naming each file that does not match the case schema."""
    return [Entry(case) for case in read_cases(directories)]


def api_of(url: str, entries: Sequence[Entry]) -> str:
    """The API base `url` stands for: the longest of the cases' that its path ends with,
    else the default (`https://host/prefix` is `https://host/prefix/v1`)."""
    path = urlsplit(url).path.rstrip("/")
    apis = sorted({entry.case.api for entry in entries}, key=len, reverse=True)
    return next((api for api in apis if path.endswith(api)), DEFAULT_API)


def plan(entries: Sequence[Entry], max_generations: int, url: str | None = None) -> None:
    """Mark the cases not to run, with the reason: with `url`, those of another API too."""
    budget = max_generations
    api = DEFAULT_API if url is None else api_of(url, entries)
    for entry in entries:
        case = entry.case
        if case.mock_only:
            entry.skipped = "mock-only"
        elif case.api != api:
            entry.skipped = f"another API: {case.api} (the URL is of {api})"
        elif case.mock_options:
            entry.skipped = f"mock-options: {', '.join(case.mock_options)}"
        elif case.takes_any_key:
            entry.skipped = "mock-only"
        elif case.generates:
            if budget > 0:
                budget -= 1
            else:
                entry.skipped = f"generates images (past --max-generations {max_generations})"


# ------------------------------------------------------------------------------ the run


def run(entries: Sequence[Entry], options: Options, progress: TextIO) -> None:
    import httpx

    todo = [entry for entry in entries if entry.skipped is None]
    target = Target(options.url, options.api_key)
    interval = 1.0 / options.rate if options.rate else 0.0
    last = -float("inf")
    with httpx.Client(timeout=httpx.Timeout(options.timeout)) as client:
        for number, entry in enumerate(todo, 1):
            print(f"[{number}/{len(todo)}] {entry.id}", file=progress, flush=True)
            wait = last + interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            last = time.monotonic()
            verdict = judge(entry.case, send(client, target, entry.case))
            entry.got, entry.agree = verdict.got, verdict.agree


def totals(cases: Sequence[Entry]) -> dict[str, int]:
    return {
        "cases": len(cases),
        "ran": sum(case.skipped is None for case in cases),
        "agree": sum(case.agree is True for case in cases),
        "disagree": sum(case.agree is False for case in cases),
        "skipped": sum(case.skipped is not None for case in cases),
    }


def report(cases: Sequence[Entry], options: Options) -> dict[str, Any]:
    return {
        "url": options.url,
        "totals": totals(cases),
        "cases": [
            {
                "case": case.id,
                "expected": case.expected,
                "got": case.got,
                "agree": case.agree,
                "skipped": case.skipped,
            }
            for case in cases
        ],
    }


def short(result: Mapping[str, Any] | None) -> str:
    if result is None:
        return "-"
    if result.get("failure"):
        return str(result["failure"])[:60]
    text = str(result.get("status"))
    if error := result.get("error"):
        text += f" {error.get('code')}"
        if error.get("param") is not None:
            text += f"({error['param']})"
    if (images := result.get("images")) is not None:
        text += " " + ",".join("?" if s is None else f"{s[0]}x{s[1]}" for s in images)
    for name, value in (result.get("headers") or {}).items():
        text += f" {name}: {'-' if value is None else value}"
    return text


def clip(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def table(cases: Sequence[Entry], out: TextIO) -> None:
    rows = [("case", "expected", "got", "agree")]
    for case in cases:
        verdict = f"skipped: {case.skipped}" if case.skipped else ("yes" if case.agree else "NO")
        rows.append((case.id, clip(short(case.expected)), clip(short(case.got)), verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[3]]), file=out)
    counts = totals(cases)
    print(
        f"{counts['agree']} agree, {counts['disagree']} disagree, {counts['skipped']} skipped "
        f"of {counts['cases']} cases",
        file=out,
    )


# ------------------------------------------------------------------------------ the command


def options_of(args: argparse.Namespace) -> Options:
    """The run's options from the command line's (`jimeng-mock conform`, parsed by cli.py)."""
    given: dict[str, Any] = {}
    for row in CONFORM:
        value = getattr(args, row.name)
        given[row.name] = tuple(value) if row.form == "repeat" else value
    return Options(**given)


def main(options: Options) -> int:
    """The run, its table on stdout, its progress and verdict on stderr; the exit code."""
    if importlib.util.find_spec("httpx") is None:
        print("jimeng-mock conform: needs the httpx package (pip install httpx)", file=sys.stderr)
        return 2
    url = urlsplit(options.url)
    if url.scheme not in ("http", "https") or not url.netloc:
        print(f"jimeng-mock conform: expected an http(s) URL, not {options.url!r}", file=sys.stderr)
        return 2
    missing = [str(d) for d in options.cases if not d.is_dir()]
    if missing:
        print(f"jimeng-mock conform: --cases: no folder {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        cases = load_cases([contract_dir(), *options.cases])
    except (OSError, ValueError) as exc:
        print(f"jimeng-mock conform: {exc}", file=sys.stderr)
        return 2
    if options.select:
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c.id, g) for g in options.select)]
        if not cases:
            print("jimeng-mock conform: no case matches --select", file=sys.stderr)
            return 2
    plan(cases, options.max_generations, options.url)
    run(cases, options, sys.stderr)
    table(cases, sys.stdout)
    if options.report is not None:
        text = json.dumps(report(cases, options), indent=2, ensure_ascii=False)
        options.report.write_text(text + "\n", encoding="utf-8")
    disagree = [case.id for case in cases if case.agree is False]
    if disagree:
        print(f"disagree: {' '.join(disagree)}", file=sys.stderr)
    return 1 if disagree else 0
