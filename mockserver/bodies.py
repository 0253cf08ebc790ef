"""Reading a request body as a JSON object, with every way it can go wrong answered as a 4xx."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request

from mockserver.contract import json_type
from mockserver.errors import ApiError

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


async def read_json_object(request: Request, max_body: int) -> dict[str, Any]:
    """The body as a JSON object, read up to `max_body` bytes; anything else is an ApiError."""
    content_type = request.headers.get("content-type")
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        shown = repr(content_type) if content_type else "(none)"
        raise ApiError("unsupported_media_type", content_type=shown)

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise ApiError("request_too_large", limit=max_body)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_body:
            raise ApiError("request_too_large", limit=max_body)
        chunks.append(chunk)

    try:
        text = b"".join(chunks).decode("utf-8")
        body = json.loads(text, parse_constant=_reject_constant)
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
        raise ApiError("invalid_json", detail="it is nested too deeply") from None
    except ValueError as exc:
        raise ApiError("invalid_json", detail=str(exc)) from None
    if not isinstance(body, dict):
        raise ApiError(
            "invalid_json", detail=f"expected an object at the top, got {json_type(body)}"
        )
    return body


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")
