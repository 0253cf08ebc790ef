"""The /__admin/ endpoints: the journal as JSON and as a page, the fault queue, stubs and
reset. Each reads the mock from `request.app.state.mock`; `mockserver.routes` routes them."""

from __future__ import annotations

import functools
import hmac
import html
import json
import string
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from jsonschema import ValidationError
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from mockserver.bodies import read_json_object
from mockserver.config import MockConfig, schema_validator
from mockserver.contract import param_path
from mockserver.errors import ApiError
from mockserver.images import render_thumbnail, thumbnail_size
from mockserver.journal import MIB, Journal, RequestRecord, excerpt
from mockserver.matching import Matcher, MatcherError

if TYPE_CHECKING:
    from mockserver.state import MockState

Endpoint = Callable[[Request], Awaitable[Response]]
PAGE = string.Template((Path(__file__).parent / "admin.html").read_text(encoding="utf-8"))
PAGE_ROWS = 100
ADMIN_BODY_LIMIT = 64 * 1024
_FILTERS = {"status", "model", "error", "drift", "request_id", "limit"}
DRIFT_KINDS = ("upstream_refuses", "mock_refuses", "different_error")
_PAGING = _FILTERS | {"after"}  # GET /__admin/requests pages on, the page does not
STREAM_CHUNK = 64 * 1024  # the journal is sent in chunks of about this many bytes
ADMIN_FAULTS_SCHEMA = "admin-faults.request.json"


def _query(request: Request, allowed: set[str]) -> dict[str, str]:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise ApiError(
            "unknown_parameter", param=unknown[0], known=", ".join(sorted(allowed)) or "(none)"
        )
    return {k: v for k, v in request.query_params.items() if v != ""}


def _whole(query: dict[str, str], name: str, minimum: int) -> int | None:
    if name not in query:
        return None
    value = query[name].strip()
    if not (value.isascii() and value.isdigit()) or int(value) < minimum:
        raise ApiError(
            "invalid_value",
            param=name,
            detail=f"{query[name]!r} is not a whole number of at least {minimum}",
        )
    return int(value)


def filtered(records: list[RequestRecord], query: dict[str, str]) -> list[RequestRecord]:
    """The records that pass ?status=&model=&error=&drift=&request_id= (the mock's id or the
    client's); of them, with ?after=ID those with a greater id, oldest first, the first
    ?limit= of them; without it, the newest ?limit=."""
    status = _whole(query, "status", 0)
    limit = _whole(query, "limit", 1)
    after = _whole(query, "after", 0)
    if after is not None:
        records = [r for r in records if r.id > after]
    if status is not None:
        records = [r for r in records if r.status == status]
    if "model" in query:
        records = [r for r in records if r.model == query["model"]]
    if "error" in query:
        records = [r for r in records if r.error == query["error"]]
    if "drift" in query:
        records = _drifted(records, query["drift"])
    if "request_id" in query:
        wanted = query["request_id"]
        records = [r for r in records if wanted in (r.request_id, r.client_request_id)]
    if not limit:
        return records
    return records[:limit] if after is not None else records[-limit:]


def _drifted(records: list[RequestRecord], wanted: str) -> list[RequestRecord]:
    """?drift=true: the records marked with drift; false: those without; or of one kind."""
    if wanted == "true":
        return [r for r in records if r.drift is not None]
    if wanted == "false":
        return [r for r in records if r.drift is None]
    if wanted in DRIFT_KINDS:
        return [r for r in records if r.drift == wanted]
    raise ApiError(
        "invalid_value",
        param="drift",
        detail=f"{wanted!r} is not true, false or one of {', '.join(DRIFT_KINDS)}",
    )


def _schema_error(error: ValidationError) -> ApiError:
    path = list(error.absolute_path)
    instance: Any = error.instance
    schema: Any = error.schema
    if error.validator == "required":
        wanted: Any = error.validator_value
        missing = next(name for name in wanted if name not in instance)
        return ApiError("missing_required_parameter", param=param_path([*path, missing]))
    if error.validator == "additionalProperties":
        properties = schema.get("properties", {})
        extra = next(k for k in instance if k not in properties)
        known = ", ".join(properties)
        return ApiError("unknown_parameter", param=param_path([*path, extra]), known=known)
    return ApiError("invalid_value", param=param_path(path), detail=error.message)


def mock_of(request: Request) -> MockState:
    mock: MockState = request.app.state.mock
    return mock


def admin(endpoint: Endpoint) -> Endpoint:
    """An admin endpoint: open on loopback, or to the holder of --admin-token."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        _admit(mock_of(request).config, request)
        return await endpoint(request)

    return guarded


@admin
async def list_requests(request: Request) -> Response:
    """The journal as JSON, streamed a record at a time: never built whole in memory."""
    query = _query(request, _PAGING)
    journal = mock_of(request).journal
    records = filtered(journal.records(), query)
    after = _whole(query, "after", 0) or 0
    tail = {
        "count": len(records),
        "journal_size": journal.size,
        "journal_mb": _megabytes(journal),
        "journal_bytes": journal.bytes,
        "dropped": journal.dropped,
        "next": records[-1].id if records else after,
    }
    # A HEAD gets the GET's headers: without a length, the GET's stream goes out chunked.
    framing = {"Transfer-Encoding": "chunked"} if request.method == "HEAD" else None
    return StreamingResponse(
        _journal_chunks(records, tail), media_type="application/json", headers=framing
    )


def _megabytes(journal: Journal) -> int | float:
    mb = journal.max_bytes / MIB
    return int(mb) if mb.is_integer() else mb


async def _journal_chunks(
    records: list[RequestRecord], tail: dict[str, Any]
) -> AsyncIterator[bytes]:
    """`{"requests": [...], **tail}` in chunks of about STREAM_CHUNK bytes, each record
    serialized on its own."""
    parts = [b'{"requests":[']
    size = 0
    for index, record in enumerate(records):
        text = _record_json(record)
        parts.append(b"," + text if index else text)
        size += len(text)
        if size >= STREAM_CHUNK:
            yield b"".join(parts)
            parts, size = [], 0
    parts.append(b"]," + _json_bytes(tail)[1:])
    yield b"".join(parts)


def _json_bytes(value: Any, *, ascii: bool = False) -> bytes:
    text = json.dumps(value, ensure_ascii=ascii, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8")


def _record_json(record: RequestRecord) -> bytes:
    """One record as JSON; valid JSON whatever a record made in-process holds (a body that is
    not JSON is shown as the excerpt of its repr, a lone surrogate escaped)."""
    data = record.to_json()
    try:
        return _json_bytes(data)
    except UnicodeEncodeError:
        return _json_bytes(data, ascii=True)
    except (TypeError, ValueError):
        data["body"] = excerpt(repr(record.body))
        return _json_bytes(data, ascii=True)


@admin
async def delete_requests(request: Request) -> Response:
    _query(request, set())
    return JSONResponse({"deleted": mock_of(request).journal.clear()})


@admin
async def reset(request: Request) -> Response:
    _query(request, set())
    mock_of(request).reset()
    if "form" in request.headers.get("content-type", ""):
        return RedirectResponse("/__admin/", status_code=303)  # the page's Reset button
    return JSONResponse({"reset": True})


@admin
async def list_faults(request: Request) -> Response:
    _query(request, set())
    mock = mock_of(request)
    return JSONResponse(
        {
            "faults": {
                name: {k: v for k, v in vars(fault).items() if v is not None and k != "name"}
                for name, fault in mock.faults.faults.items()
            },
            "queued": [entry.to_json() for entry in mock.queue.pending()],
        }
    )


@admin
async def queue_fault(request: Request) -> Response:
    _query(request, set())
    mock = mock_of(request)
    body = await read_json_object(request, ADMIN_BODY_LIMIT)
    errors = schema_validator(ADMIN_FAULTS_SCHEMA).iter_errors(body)
    first = min(errors, key=lambda e: e.validator != "required", default=None)
    if first is not None:
        raise _schema_error(first)
    match = {}
    for name, value in body.get("match", {}).items():
        try:
            match[name] = Matcher.from_json(value)
        except MatcherError as exc:
            raise ApiError("invalid_value", param=f"match.{name}", detail=str(exc)) from None
    fault = mock.fault(body["fault"]).with_options(
        delay_ms=body.get("delay_ms"), retry_after_ms=body.get("retry_after_ms")
    )
    entry = mock.queue.push(fault, body.get("times", 1), match)
    return JSONResponse({"queued": entry.to_json()}, status_code=201)


@admin
async def clear_faults(request: Request) -> Response:
    _query(request, set())
    return JSONResponse({"deleted": mock_of(request).queue.clear()})


@admin
async def list_stubs(request: Request) -> Response:
    _query(request, set())
    stubs = mock_of(request).stubs
    if stubs is None:
        return JSONResponse({"folder": None, "stubs": [], "error": None})
    stubs.refresh()
    return JSONResponse(
        {"folder": str(stubs.directory), "stubs": stubs.names(), "error": stubs.error}
    )


@admin
async def thumbnail(request: Request) -> Response:
    mock = mock_of(request)
    spec = mock.signer.parse(**request.path_params)
    png = await mock.renderer.png(("thumbnail", spec), lambda: render_thumbnail(spec))
    return Response(
        png, media_type="image/png", headers={"Cache-Control": "public, max-age=31536000"}
    )


@admin
async def page(request: Request) -> Response:
    query = _query(request, _FILTERS)
    journal = mock_of(request).journal
    everything = journal.records()
    records = filtered(everything, {"limit": str(PAGE_ROWS), **query})
    summary = (
        f"{len(everything)} request(s) in the journal (it keeps the newest "
        f"{journal.size}, at most {_megabytes(journal)} MB; {journal.dropped} dropped), "
        f"showing {len(records)}, "
        f"newest first. Page drawn at {time.strftime('%H:%M:%S', time.gmtime())} UTC."
    )
    text = PAGE.substitute(
        count=len(everything),
        summary=html.escape(summary),
        refresh=html.escape("/__admin/" + (f"?{urlencode(query)}" if query else "")),
        status=html.escape(query.get("status", "")),
        model=html.escape(query.get("model", "")),
        error=html.escape(query.get("error", "")),
        limit=f'<input type="hidden" name="limit" value="{html.escape(query["limit"])}">'
        if "limit" in query
        else "",
        rows="\n".join(_row(r) for r in reversed(records)) or _empty(query),
    )
    return HTMLResponse(text, headers={"Cache-Control": "no-store"})


def _admit(config: MockConfig, request: Request) -> None:
    """With a token, the admin routes want it in X-Admin-Token; without, a loopback address."""
    if config.admin_token is not None:
        sent = request.headers.get("x-admin-token", "")
        if not hmac.compare_digest(sent.encode(), config.admin_token.encode()):
            raise ApiError(
                "admin_forbidden",
                detail="send the token given with --admin-token in the X-Admin-Token header"
                if not sent
                else "the X-Admin-Token header does not match --admin-token",
            )
    elif not config.loopback:
        raise ApiError(
            "admin_forbidden",
            detail=f"the mock listens on {config.host}, beyond this machine; start it with "
            "--admin-token TOKEN and send the token in the X-Admin-Token header",
        )


def _empty(query: dict[str, str]) -> str:
    text = "No request matches the filter." if query else "No requests yet."
    return f'<tr><td colspan="6" class="muted">{text}</td></tr>'


def _shorten(value: Any, limit: int = 300) -> Any:
    """The body as shown on the page: long strings (data URIs, say) cut down."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}... ({len(value):,} characters)"
    if isinstance(value, list):
        return [_shorten(v, limit) for v in value[:50]] + (
            [f"... {len(value)} items"] * (len(value) > 50)
        )
    if isinstance(value, dict):
        return {k: _shorten(v, limit) for k, v in value.items()}
    return value


# What the page says of a request that got no answer, by its outcome.
_NO_ANSWER = {"client_disconnected": "client left", "dropped": "dropped by the mock"}


def _upstream_tags(record: RequestRecord) -> list[str]:
    """Proxy mode: the upstream's answer, the mock's verdict and their drift, if any."""
    e = html.escape
    tags = []
    upstream = record.upstream
    if upstream is not None:
        said = upstream.get("failure") or upstream.get("status")
        tags.append(f'<span class="tag">upstream {e(str(said))}</span>')
    verdict = record.mock_verdict
    if verdict is not None and verdict.get("error"):
        tags.append(f'<span class="tag">mock would answer {e(str(verdict["error"]))}</span>')
    if record.drift:
        tags.append(f'<div class="warning drift"><b>drift {e(record.drift)}</b></div>')
    if record.recorded is not None:
        tags.append(f'<span class="tag">recorded {e(str(record.recorded.get("file")))}</span>')
    return tags


def _row(record: RequestRecord) -> str:
    e = html.escape
    status = (
        str(record.status)
        if record.status is not None
        else _NO_ANSWER.get(record.outcome, "no response")
    )
    shade = f"s{str(record.status or 0)[0]} {e(record.outcome)}"
    answer = [f'<span class="status {shade}">{e(status)}</span>']
    if record.error:
        where = f" ({e(record.param)})" if record.param else ""
        answer.append(
            f"<div><b>{e(record.error)}</b>{where}: {e(record.error_message or '')}</div>"
        )
    if record.fault:
        answer.append(f'<span class="tag">fault {e(record.fault)}</span>')
    if record.stub:
        answer.append(f'<span class="tag">stub {e(record.stub)}</span>')
    answer += _upstream_tags(record)
    answer += [
        f'<div class="warning">warning {e(w.code)}: {e(w.message)}</div>' for w in record.warnings
    ]
    body = (
        ""
        if record.body is None
        else json.dumps(_shorten(record.body), indent=2, ensure_ascii=False)
    )
    thumbs = []
    for index, url in enumerate(record.images, 1):
        path = url.partition("/images/")[2]
        size = path.split("/")[1] if path.count("/") == 2 else ""
        width, height = (int(x) for x in size.split("x")) if "x" in size else (1, 1)
        tw, th = thumbnail_size(width, height)
        thumbs.append(
            f'<a href="{e(url)}"><img src="/__admin/thumbnails/{e(path)}" width="{tw}" '
            f'height="{th}" alt="image {index} of request {record.id}"></a>'
        )
    clock = (
        time.strftime("%H:%M:%S", time.gmtime(record.time)) + f".{int(record.time % 1 * 1000):03d}"
    )
    return (
        f'<tr id="request-{record.id}"><td>{record.id}<br>'
        f'<span class="muted request-id">{e(record.request_id or "")}</span></td><td>{clock}<br>'
        f'<span class="muted">{record.duration_ms:.1f} ms</span></td>'
        f"<td>{e(record.method)} {e(record.path)}</td><td>{''.join(answer)}</td>"
        f'<td><pre>{e(body)}</pre></td><td class="thumbs">{"".join(thumbs)}</td></tr>'
    )
