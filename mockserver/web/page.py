"""The journal page at /__admin/, drawn from the Jinja2 templates in `templates/`.

Everything a request sent (a prompt, a field name, a stub's file name, a session name) reaches
the page only through the templates, whose environment escapes every value it prints: the
Python here builds plain data, never markup.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from mockserver.answers.images import thumbnail_size
from mockserver.contract.sessions import DEFAULT_SESSION
from mockserver.record.journal import RequestRecord

if TYPE_CHECKING:
    from mockserver.engine.state import MockState

PAGE_ROWS = 100
# autoescape=True rather than Starlette's default select_autoescape(): escaping then does not
# hang on a template's file name, and StrictUndefined makes a misspelt name an error, not "".
TEMPLATES = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
)
# The filter form's inputs: query parameter, label, placeholder. The page shows those the
# endpoint accepts, so that submitting the form never sends an unknown parameter.
FORM_FIELDS = (
    ("status", "status", "200, 429..."),
    ("model", "model", "jimeng-4.5"),
    ("error", "error", "invalid_value"),
    ("request_id", "request id", "req_000001_..."),
    ("session", "session", DEFAULT_SESSION),
)
# What the page says of a request that got no answer, by its outcome.
_NO_ANSWER = {"client_disconnected": "client left", "dropped": "dropped by the mock"}
# The coverage maps whose zero counts are worth a "never": names the mock knows in advance,
# with the word saying what using one means. The others are shown as plain counts.
NEVER_MARKED = (("errors", "seen"), ("faults", "exercised"), ("stubs", "used"), ("pairs", "sent"))
COUNTED = (
    "outcomes",
    "statuses",
    "fault_sources",
    "fields",
    "models",
    "warnings",
    "unknown_fields",
    "unknown_models",
)


def journal_page(
    request: Request,
    mock: MockState,
    query: Mapping[str, str],
    records: list[RequestRecord],
    *,
    total: int,
    megabytes: float,
    accepted: Collection[str],
) -> Response:
    """The page: `records` (those the filters kept, oldest first) newest first, out of the
    `total` in the journal, with the filter form and the coverage of the query's session."""
    journal = mock.journal
    summary = (
        f"{total} request(s) in the journal (it keeps the newest "
        f"{journal.size}, at most {megabytes} MB; {journal.dropped} dropped), "
        f"showing {len(records)}, "
        f"newest first. Page drawn at {time.strftime('%H:%M:%S', time.gmtime())} UTC."
    )
    context = {
        "count": total,
        "summary": summary,
        "refresh": "/__admin/" + (f"?{urlencode(query)}" if query else ""),
        "fields": [
            {"name": name, "label": label, "placeholder": hint, "value": query.get(name, "")}
            for name, label, hint in FORM_FIELDS
            if name in accepted
        ],
        "limit": query.get("limit"),
        "rows": [row_view(r) for r in reversed(records)],
        "empty": "No request matches the filter." if query else "No requests yet.",
        "coverage": coverage_view(mock.coverage(session=query.get("session"))),
    }
    return TEMPLATES.TemplateResponse(
        request, "page.html", context, headers={"Cache-Control": "no-store"}
    )


def shorten(value: Any, limit: int = 300) -> Any:
    """The body as shown on the page: long strings (data URIs, say) cut down."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}... ({len(value):,} characters)"
    if isinstance(value, list):
        return [shorten(v, limit) for v in value[:50]] + (
            [f"... {len(value)} items"] * (len(value) > 50)
        )
    if isinstance(value, dict):
        return {k: shorten(v, limit) for k, v in value.items()}
    return value


def row_view(record: RequestRecord) -> dict[str, Any]:
    """What a row of the table shows of one record, as plain values for `row.html`."""
    status = (
        str(record.status)
        if record.status is not None
        else _NO_ANSWER.get(record.outcome, "no response")
    )
    clock = (
        time.strftime("%H:%M:%S", time.gmtime(record.time)) + f".{int(record.time % 1 * 1000):03d}"
    )
    body = (
        ""
        if record.body is None
        else json.dumps(shorten(record.body), indent=2, ensure_ascii=False)
    )
    return {
        "id": record.id,
        "request_id": record.request_id or "",
        "session": None if record.session == DEFAULT_SESSION else record.session,
        "clock": clock,
        "duration": f"{record.duration_ms:.1f} ms",
        "request": f"{record.method} {record.path}",
        "status": status,
        "shade": f"s{str(record.status or 0)[0]} {record.outcome}",
        "error": record.error,
        "param": record.param,
        "message": record.error_message or "",
        "tags": _tags(record),
        "drift": record.drift,
        "warnings": [f"warning {w.code}: {w.message}" for w in record.warnings],
        "body": body,
        "thumbnails": _thumbnails(record),
    }


def _tags(record: RequestRecord) -> list[str]:
    """The fault or stub that answered, and in proxy mode the upstream's answer, the mock's
    verdict and the stub file recorded."""
    tags = []
    if record.fault:
        tags.append(f"fault {record.fault}")
    if record.stub:
        tags.append(f"stub {record.stub}")
    upstream = record.upstream
    if upstream is not None:
        tags.append(f"upstream {upstream.get('failure') or upstream.get('status')}")
    verdict = record.mock_verdict
    if verdict is not None and verdict.get("error"):
        tags.append(f"mock would answer {verdict['error']}")
    if record.recorded is not None:
        tags.append(f"recorded {record.recorded.get('file')}")
    return tags


def _thumbnails(record: RequestRecord) -> list[dict[str, Any]]:
    """A thumbnail per image returned, drawn at the size the thumbnail route renders it,
    linking to the image: if its URL is http(s). In proxy mode the URLs are the upstream's,
    and escaping does not stop a `javascript:` link from running when clicked."""
    thumbs = []
    for index, url in enumerate(record.images, 1):
        path = url.partition("/images/")[2]
        size = path.split("/")[1] if path.count("/") == 2 else ""
        width, height = (int(x) for x in size.split("x")) if "x" in size else (1, 1)
        tw, th = thumbnail_size(width, height)
        thumbs.append(
            {
                "href": url if urlsplit(url).scheme in ("http", "https") else None,
                "src": f"/__admin/thumbnails/{path}",
                "width": tw,
                "height": th,
                "alt": f"image {index} of request {record.id}",
            }
        )
    return thumbs


@dataclass(frozen=True)
class Group:
    """One map of a coverage report: its entries (name, count), and for a map of names
    known in advance the report's tally of them (`totals`)."""

    name: str
    entries: tuple[tuple[str, int], ...]
    verb: str | None = None  # set: a zero count is marked "never"
    used: int = 0
    of: int = 0

    @property
    def tally(self) -> str:
        return f"{self.used} of {self.of} {self.verb or 'used'}"

    @property
    def line(self) -> str:
        return f"{self.name} {self.tally}"


@dataclass(frozen=True)
class CoverageView:
    """A coverage report as the page shows it."""

    session: str | None
    since: str
    requests: int
    unmatched: int
    summary: str
    marked: tuple[Group, ...]
    counted: tuple[Group, ...]
    other: tuple[tuple[str, int], ...]
    unmatched_requests: tuple[str, ...]


def _entries(value: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, Mapping):
        return ()
    return tuple((str(name), int(count)) for name, count in value.items())


def coverage_view(report: Mapping[str, Any]) -> CoverageView:
    """What the page shows of `MockState.coverage()`: the maps of names known in advance
    (errors, faults, stubs, pairs) with their unused names marked, the one-line summary
    of them, and the plain counts of the rest."""
    totals = report["totals"]
    marked = tuple(
        Group(name, _entries(report[name]), verb, totals[name]["used"], totals[name]["of"])
        for name, verb in NEVER_MARKED
    )
    since = report.get("since")
    return CoverageView(
        session=report.get("session"),
        since=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since))
        if isinstance(since, int | float)
        else "?",
        requests=int(report.get("requests", 0)),
        unmatched=int(report.get("unmatched", 0)),
        summary=", ".join(group.line for group in marked),
        marked=marked,
        counted=tuple(Group(name, _entries(report[name])) for name in COUNTED if name in report),
        other=tuple((name, count) for name, count in _entries(report.get("other")) if count),
        unmatched_requests=tuple(_unmatched(report.get("unmatched_requests"))),
    )


def _unmatched(named: Any) -> list[str]:
    """The newest requests answered by neither a stub nor a fault, as the report names them."""
    if not isinstance(named, list):
        return []
    return [
        f"#{one.get('id')} {one.get('request_id') or ''} {one.get('prompt') or ''}".strip()
        for one in named
        if isinstance(one, Mapping)
    ]
