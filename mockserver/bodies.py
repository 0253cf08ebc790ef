"""Reading a request body as a JSON object, with every way it can go wrong answered as a 4xx."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.requests import Request

from mockserver.contract import json_type
from mockserver.errors import ApiError

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

# Deepest nesting of arrays and objects a body may have (the top-level object is level 1). A
# real request needs 2 (`image`); the bound keeps everything that later walks a body (the
# journal, the admin page, the warnings) far from Python's recursion limit, and makes the
# answer the same whatever the depth of the call stack that parses it.
MAX_DEPTH = 64
_TOO_DEEP = f"it is nested too deeply (more than {MAX_DEPTH} levels)"

# After a 413 the rest of the body is not wanted: closing the connection stops the server
# from reading (and discarding) it to keep the connection alive.
_TOO_LARGE_HEADERS = {"Connection": "close"}


async def read_json_object(request: Request, max_body: int) -> dict[str, Any]:
    """The body as a JSON object, read up to `max_body` bytes; anything else is an ApiError."""
    content_type = request.headers.get("content-type")
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        shown = repr(content_type) if content_type else "(none)"
        raise ApiError("unsupported_media_type", content_type=shown)

    # Only a hint: the limit is enforced while reading. isdigit() alone takes "²", which int()
    # refuses; behind a server the header is checked before, not under an ASGI transport.
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_body:
        raise ApiError("request_too_large", headers=_TOO_LARGE_HEADERS, limit=max_body)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_body:
            raise ApiError("request_too_large", headers=_TOO_LARGE_HEADERS, limit=max_body)
        chunks.append(chunk)

    try:
        text = b"".join(chunks).decode("utf-8")
        body = _DECODER.decode(text)
        if _SURROGATE_ESCAPE.search(text):
            # "\ud800" alone parses, but is no character: it could not be answered in UTF-8.
            json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError("invalid_json", detail=f"it is not UTF-8 ({exc.reason})") from None
    except UnicodeEncodeError:
        raise ApiError(
            "invalid_json", detail="it has an unpaired surrogate escape (\\ud800 to \\udfff)"
        ) from None
    except RecursionError:
        raise ApiError("invalid_json", detail=_TOO_DEEP) from None
    except ValueError as exc:
        raise ApiError("invalid_json", detail=str(exc)) from None
    if not isinstance(body, dict):
        raise ApiError(
            "invalid_json", detail=f"expected an object at the top, got {json_type(body)}"
        )
    # Only a text with more brackets than the bound can nest deeper than it: usually skipped.
    if text.count("[") + text.count("{") > MAX_DEPTH and _deeper_than(body, MAX_DEPTH):
        raise ApiError("invalid_json", detail=_TOO_DEEP)
    return body


def _deeper_than(value: dict[str, Any], limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels, walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    """A JSON number with a fraction or an exponent, as a float: one too large for a double
    (`1e999`) would be infinity, which JSON has no value for, and no answer could show."""
    value = float(text)
    if math.isinf(value):
        shown = text if len(text) <= 40 else f"{text[:20]}...{text[-10:]}"
        sign = "-" if value < 0 else ""
        raise ValueError(
            f"the number {shown} is out of range: it would be {sign}Infinity, not a JSON value"
        )
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite)
