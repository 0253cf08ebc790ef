"""`jimeng-mock conform URL`: run the contract cases against any service and report drift.

The contract cases (fixtures/contract/*.json in the repository, `mockserver/contract` in a
wheel) say what the mock answers. Run against a real service, they say where the mock and the
service disagree: the status, the error code and param, and, for a generation, the size of
every image. Only cases the mock refuses run by default (they cost nothing); cases that
generate images run up to `--max-generations`; cases of the mock's own features are skipped.

Case paths are full paths (`/v1/images/generations`). URL is a base URL as the openai SDK
takes it (`https://host/v1`, or `https://host/prefix/v1`): a trailing `/v1` is dropped and
the case path is appended to what is left, so `https://host/prefix/v1` and
`https://host/prefix` both send a case to `https://host/prefix/v1/images/generations`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import fnmatch
import importlib.util
import json
import struct
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from mockserver.argtypes import amount, whole
from mockserver.config import DEFAULT_API_KEY

if TYPE_CHECKING:
    import httpx

GENERATIONS = "/v1/images/generations"
MOCK_ONLY_PATHS = ("/healthz", "/openapi.json")
MOCK_ONLY_PREFIXES = ("/__admin/", "/images/")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def contract_dir() -> Path:
    """The contract cases: a copy inside an installed wheel, else the repository's
    `fixtures/contract/` (as `mockserver.config.data_dir()` finds `schemas/`)."""
    packaged = Path(__file__).parent / "contract"
    if packaged.is_dir():
        return packaged
    return Path(__file__).parent.parent / "fixtures" / "contract"


@dataclass
class Case:
    id: str
    spec: Mapping[str, Any]
    skipped: str | None = None
    got: dict[str, Any] | None = None
    agree: bool | None = None

    @property
    def request(self) -> Mapping[str, Any]:
        request = self.spec.get("request", {})
        return request if isinstance(request, dict) else {}

    @property
    def method(self) -> str:
        return str(self.request.get("method", "POST"))

    @property
    def path(self) -> str:
        return str(self.request.get("path", GENERATIONS))

    @property
    def expected(self) -> dict[str, Any]:
        expect = self.spec.get("expect", {})
        out: dict[str, Any] = {"status": expect.get("status")}
        if "error" in expect:
            out["error"] = {"code": expect["error"]["code"], "param": expect["error"]["param"]}
        if "images" in expect:
            out["images"] = [list(size) for size in expect["images"]]
        return out

    @property
    def generates(self) -> bool:
        """Whether the mock answers this case with images (a cost on a real service)."""
        status = self.expected["status"]
        return (
            self.method == "POST" and self.path == GENERATIONS and isinstance(status, int)
        ) and status < 400


@dataclass
class Options:
    url: str
    api_key: str = DEFAULT_API_KEY
    cases: list[Path] = field(default_factory=list)
    select: list[str] = field(default_factory=list)
    report: Path | None = None
    max_generations: int = 0
    rate: float | None = None
    timeout: float = 60.0


# ------------------------------------------------------------------------------ the cases


def load_cases(directories: Iterable[Path]) -> list[Case]:
    """Every case of every `*.json` in `directories`, as `<file stem>::<name>`."""
    cases = []
    for directory in directories:
        for path in sorted(directory.glob("*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
                raise ValueError(f"{path}: not a case file (no 'cases' list)")
            for index, spec in enumerate(data["cases"]):
                if not isinstance(spec, dict) or not isinstance(spec.get("expect"), dict):
                    raise ValueError(f"{path}: case #{index} has no 'expect' object")
                cases.append(Case(f"{path.stem}::{spec.get('name', f'#{index}')}", spec))
    return cases


def mock_only(case: Case) -> str | None:
    """ "mock-only" for a route or header of the mock's own (X-Mock-*), else None."""
    path = case.path.split("?", 1)[0]
    if path in MOCK_ONLY_PATHS or path.startswith(MOCK_ONLY_PREFIXES):
        return "mock-only"
    if any(str(name).lower().startswith("x-mock-") for name in case.request.get("headers", {})):
        return "mock-only"
    return None


def any_key(case: Case) -> str | None:
    """ "mock-only" for a case that succeeds with a key of its own: the mock without
    api_keys takes any key, a real service only its own."""
    headers = {str(k).lower(): v for k, v in case.request.get("headers", {}).items()}
    if headers.get("authorization") and case.expected["status"] == 200:
        return "mock-only"
    return None


def plan(cases: Sequence[Case], max_generations: int) -> None:
    """Mark the cases not to run, with the reason."""
    budget = max_generations
    for case in cases:
        server = case.spec.get("server")
        if reason := mock_only(case):
            case.skipped = reason
        elif server:
            case.skipped = f"mock-options: {', '.join(sorted(server))}"
        elif reason := any_key(case):
            case.skipped = reason
        elif case.generates:
            if budget > 0:
                budget -= 1
            else:
                case.skipped = f"generates images (past --max-generations {max_generations})"


# ------------------------------------------------------------------------------ one request


def join(base: str, path: str) -> str:
    """A case's full path (`/v1/...`) on a base URL, with or without its trailing `/v1`."""
    parts = urlsplit(base)
    prefix = parts.path.rstrip("/")
    if prefix.endswith("/v1"):
        prefix = prefix[: -len("/v1")]
    route, _, query = path.partition("?")
    return urlunsplit((parts.scheme, parts.netloc, prefix + route, query, ""))


def request_parts(case: Case, api_key: str) -> tuple[dict[str, str], bytes | None]:
    request = case.request
    merged: dict[str, tuple[str, str | None]] = {
        "authorization": ("Authorization", f"Bearer {api_key}"),
        "content-type": ("Content-Type", "application/json"),
    }
    for name, value in request.get("headers", {}).items():
        merged[str(name).lower()] = (str(name), value)
    headers = {name: value for name, value in merged.values() if value is not None}
    if "body" in request:
        content = json.dumps(request["body"], ensure_ascii=False).encode("utf-8")
    elif "raw_body" in request:
        content = str(request["raw_body"]).encode("utf-8")
    elif "raw_body_base64" in request:
        content = base64.b64decode(request["raw_body_base64"])
    else:
        content = b""
    return headers, content or None


def png_size(data: bytes) -> list[int] | None:
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return [width, height]


def image_sizes(client: httpx.Client, body: Any) -> list[list[int] | None] | None:
    """[width, height] of each image of a generation answer (None where unreadable)."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return None
    sizes: list[list[int] | None] = []
    for entry in data:
        png = b""
        if isinstance(entry, dict) and isinstance(entry.get("b64_json"), str):
            try:
                png = base64.b64decode(entry["b64_json"], validate=True)
            except binascii.Error:
                png = b""
        elif isinstance(entry, dict) and isinstance(entry.get("url"), str):
            try:
                image = client.get(entry["url"])  # as a browser would: no Authorization
                png = image.content if image.status_code == 200 else b""
            except Exception:  # a URL that does not answer is an image we cannot read
                png = b""
        sizes.append(png_size(png))
    return sizes


def answer(client: httpx.Client, case: Case, options: Options) -> dict[str, Any]:
    """What the service says to this case, in the shape of `Case.expected`."""
    import httpx

    headers, content = request_parts(case, options.api_key)
    try:
        response = client.request(
            case.method, join(options.url, case.path), headers=headers, content=content
        )
    except httpx.HTTPError as exc:
        return {"status": None, "failure": f"{type(exc).__name__}: {exc}"}
    got: dict[str, Any] = {"status": response.status_code}
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        got["error"] = {"code": error.get("code"), "param": error.get("param")}
    elif "images" in case.expected:
        got["images"] = image_sizes(client, body)
    return got


def agrees(expected: Mapping[str, Any], got: Mapping[str, Any]) -> bool:
    return all(got.get(key) == value for key, value in expected.items())


# ------------------------------------------------------------------------------ the run


def run(cases: Sequence[Case], options: Options, progress: TextIO) -> None:
    import httpx

    todo = [case for case in cases if case.skipped is None]
    interval = 1.0 / options.rate if options.rate else 0.0
    last = -float("inf")
    with httpx.Client(timeout=httpx.Timeout(options.timeout)) as client:
        for number, case in enumerate(todo, 1):
            print(f"[{number}/{len(todo)}] {case.id}", file=progress, flush=True)
            wait = last + interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            last = time.monotonic()
            case.got = answer(client, case, options)
            case.agree = agrees(case.expected, case.got)


def totals(cases: Sequence[Case]) -> dict[str, int]:
    return {
        "cases": len(cases),
        "ran": sum(case.skipped is None for case in cases),
        "agree": sum(case.agree is True for case in cases),
        "disagree": sum(case.agree is False for case in cases),
        "skipped": sum(case.skipped is not None for case in cases),
    }


def report(cases: Sequence[Case], options: Options) -> dict[str, Any]:
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
    return text


def clip(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def table(cases: Sequence[Case], out: TextIO) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jimeng-mock conform",
        description="Run the mock's contract cases against a service (a real one) and report "
        "where its answers differ from the mock's. Exit 0 when all that ran agree, 1 when any "
        "disagrees, 2 on bad usage.",
    )
    add = parser.add_argument
    add("url", metavar="URL", help="base URL as the openai SDK takes it, e.g. https://host/v1")
    add(
        "--api-key",
        default=DEFAULT_API_KEY,
        metavar="KEY",
        help="sent as 'Authorization: Bearer KEY' (a case's own header wins; default: the "
        "mock's %(default)s)",
    )
    add(
        "--cases",
        dest="cases",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="also run the case files (*.json) of DIR, in the contract's format (repeatable)",
    )
    add(
        "--select",
        action="append",
        default=[],
        metavar="GLOB",
        help="run only the cases whose id (<file stem>::<name>) matches GLOB, e.g. "
        "'size::*' (repeatable; default: all)",
    )
    add("--report", type=Path, metavar="PATH", help="write the results as JSON to PATH")
    add(
        "--max-generations",
        type=whole(0),
        default=0,
        metavar="N",
        help="run up to N cases that generate images (they cost on a real service; "
        "default: %(default)s, only the cases the mock refuses)",
    )
    add("--rate", type=amount("requests a second"), metavar="N", help="at most N requests a second")
    add(
        "--timeout",
        type=amount("seconds"),
        default=60.0,
        metavar="S",
        help="seconds to wait for each answer (default: %(default)g)",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)  # bad usage: exit 2
    if importlib.util.find_spec("httpx") is None:
        print("jimeng-mock conform: needs the httpx package (pip install httpx)", file=sys.stderr)
        return 2
    if urlsplit(args.url).scheme not in ("http", "https") or not urlsplit(args.url).netloc:
        print(f"jimeng-mock conform: expected an http(s) URL, not {args.url!r}", file=sys.stderr)
        return 2
    options = Options(
        url=args.url,
        api_key=args.api_key,
        cases=args.cases,
        select=args.select,
        report=args.report,
        max_generations=args.max_generations,
        rate=args.rate,
        timeout=args.timeout,
    )
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
    plan(cases, options.max_generations)
    run(cases, options, sys.stderr)
    table(cases, sys.stdout)
    if options.report is not None:
        text = json.dumps(report(cases, options), indent=2, ensure_ascii=False)
        options.report.write_text(text + "\n", encoding="utf-8")
    disagree = [case.id for case in cases if case.agree is False]
    if disagree:
        print(f"disagree: {' '.join(disagree)}", file=sys.stderr)
    return 1 if disagree else 0
