"""The /__admin/ endpoints: the journal as JSON and as a page, the fault queue, stubs and
reset. Each reads the mock from `request.app.state.mock`; `mockserver.web.routes` routes them."""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from jsonschema import ValidationError
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from mockserver.answers.images import render_thumbnail
from mockserver.answers.matching import Matcher, MatcherError
from mockserver.config import MockConfig
from mockserver.contract.schemas import schema_validator
from mockserver.contract.sessions import SessionNameError, checked
from mockserver.contract.validation import param_path
from mockserver.errors import ApiError
from mockserver.record.journal import MIB, Journal, RequestRecord, excerpt
from mockserver.web.bodies import read_json_object
from mockserver.web.page import PAGE_ROWS, journal_page

if TYPE_CHECKING:
    from mockserver.engine.state import MockState

Endpoint = Callable[[Request], Awaitable[Response]]
ADMIN_BODY_LIMIT = 64 * 1024
_FILTERS = {"status", "model", "error", "drift", "request_id", "session", "limit"}
DRIFT_KINDS = ("upstream_refuses", "mock_refuses", "different_error")
_SESSION = {"session"}  # the routes that may be scoped to one session
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


# Digits a filter's number may have: more than any id, limit or status the mock will hold, and
# few enough that reading one costs nothing (Python refuses ints of over 4,300 digits).
FILTER_DIGITS = 18


def _whole(query: dict[str, str], name: str, minimum: int) -> int | None:
    if name not in query:
        return None
    value = query[name].strip().lstrip("0") or "0"
    if (
        not (value.isascii() and value.isdigit())
        or len(value) > FILTER_DIGITS
        or int(value) < minimum
    ):
        raise ApiError(
            "invalid_value",
            param=name,
            detail=f"{_shown(query[name])} is not a whole number of at least {minimum} "
            f"with at most {FILTER_DIGITS} digits",
        )
    return int(value)


def _shown(value: str, limit: int = 40) -> str:
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} characters)"


def filtered(records: list[RequestRecord], query: dict[str, str]) -> list[RequestRecord]:
    """The records that pass ?status=&model=&error=&drift=&request_id= (the mock's id or the
    client's)&session=; of them, with ?after=ID those with a greater id, oldest first, the first
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
    if "session" in query:
        wanted_session = _session(query)
        records = [r for r in records if r.session == wanted_session]
    if "request_id" in query:
        wanted = query["request_id"]
        records = [r for r in records if wanted in (r.request_id, r.client_request_id)]
    if not limit:
        return records
    return records[:limit] if after is not None else records[-limit:]


def _session(query: dict[str, str], request: Request | None = None) -> str | None:
    """?session=NAME, checked as the X-Mock-Session header is; None without it. On the JSON
    routes (`request` given) an empty one is refused: a script's `?session=$UNSET` must not
    reach every session. The page's form sends its empty fields, which mean no filter."""
    name = query.get("session")
    if name is None and request is not None:
        name = request.query_params.get("session")
    if name is None:
        return None
    try:
        return checked(name)
    except SessionNameError as exc:
        raise ApiError("invalid_value", param="session", detail=exc.problem) from None


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
    _session(query, request)  # an empty ?session= is refused, not taken for none
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
    session = _session(_query(request, _SESSION), request)
    return JSONResponse({"deleted": mock_of(request).journal.clear(session=session)})


@admin
async def reset(request: Request) -> Response:
    session = _session(_query(request, _SESSION), request)
    mock_of(request).reset(session)
    if "form" in request.headers.get("content-type", ""):
        return RedirectResponse("/__admin/", status_code=303)  # the page's Reset button
    return JSONResponse({"reset": True, "session": session})


@admin
async def coverage(request: Request) -> Response:
    """What the requests since start or reset exercised, of the mock or of ?session=."""
    session = _session(_query(request, _SESSION), request)
    return JSONResponse(mock_of(request).coverage(session))


@admin
async def list_faults(request: Request) -> Response:
    session = _session(_query(request, _SESSION), request)
    mock = mock_of(request)
    return JSONResponse(
        {
            "faults": {
                name: {k: v for k, v in vars(fault).items() if v is not None and k != "name"}
                for name, fault in mock.faults.faults.items()
            },
            "queued": [entry.to_json() for entry in mock.queue.pending(session)],
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
    session = _session({"session": body["session"]} if "session" in body else {})
    entry = mock.queue.push(fault, body.get("times", 1), match, session)
    return JSONResponse({"queued": entry.to_json()}, status_code=201)


@admin
async def clear_faults(request: Request) -> Response:
    session = _session(_query(request, _SESSION), request)
    return JSONResponse({"deleted": mock_of(request).queue.clear(session)})


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
    """The journal as a page (`mockserver.web.page`), filtered as GET /__admin/requests is."""
    query = _query(request, _FILTERS)
    mock = mock_of(request)
    everything = mock.journal.records()
    records = filtered(everything, {"limit": str(PAGE_ROWS), **query})
    return journal_page(
        request,
        mock,
        query,
        records,
        total=len(everything),
        megabytes=_megabytes(mock.journal),
        accepted=_FILTERS,
    )


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
