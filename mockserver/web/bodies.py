"""Reading a request body as a JSON object, with every way it can go wrong answered as a 4xx."""

from __future__ import annotations

import json
import math
import re
import zlib
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request

from mockserver.contract.validation import json_type
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

# The Content-Encodings a body may have, as zlib's wbits. One at a time: a stacked
# `gzip, gzip` is refused like an unknown one (no client sends it, and each layer would be
# another bomb to bound). "deflate" is zlib-wrapped (RFC 9110), but clients also send raw
# deflate: a body that fails as zlib-wrapped is read again as raw.
_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_UTF8_ONLY = "the body must be UTF-8 JSON without a byte-order mark"
_FIX_CHARSET = f"{_UTF8_ONLY}; send it as UTF-8 and drop the charset parameter or set it to utf-8"
_FIX_MARK = f"{_UTF8_ONLY}; send it as UTF-8 and drop the byte-order mark"
_BYTE_ORDER_MARKS = {
    b"\xef\xbb\xbf": "a UTF-8",
    b"\xff\xfe": "a UTF-16 (little-endian)",
    b"\xfe\xff": "a UTF-16 (big-endian)",
}


def _too_large(max_body: int) -> ApiError:
    return ApiError("request_too_large", headers=_TOO_LARGE_HEADERS, limit=max_body)


def _check_content_type(content_type: str | None) -> None:
    """415 unless the body is declared as application/json, in UTF-8 if a charset is named."""
    media_type, *parameters = (content_type or "").split(";")
    if media_type.strip().lower() != "application/json":
        shown = repr(content_type) if content_type else "(none)"
        raise ApiError("unsupported_media_type", detail=f"Content-Type {shown}")
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').strip()
        if name.strip().lower() == "charset" and charset.lower() != "utf-8":
            raise ApiError(
                "unsupported_media_type",
                detail=f"charset {charset!r} in Content-Type {content_type!r}: {_FIX_CHARSET}",
            )


def _content_encoding(headers: Headers) -> str | None:
    """The body's one Content-Encoding (None for none or identity); 415 for any other."""
    values = headers.getlist("content-encoding")
    codings = [c.strip().lower() for v in values for c in v.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in _ENCODINGS:
        return codings[0]
    shown = ", ".join(v.strip() for v in values)
    raise ApiError(
        "unsupported_media_type",
        detail=(
            f"Content-Encoding {shown!r}: the mock reads one of gzip, deflate or identity, "
            "not several stacked"
            if len(codings) > 1
            else f"Content-Encoding {shown!r}: the mock reads gzip, deflate or identity"
        ),
    )


class _Inflater:
    """Decompresses a body chunk by chunk, never inflating more than `limit` + 1 bytes."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.encoding, self.limit = encoding, limit
        self.gzip = encoding != "deflate"
        self.wbits = _ENCODINGS[encoding]
        self.decompressor = zlib.decompressobj(self.wbits)
        # Raw deflate is tried on the first error of a zlib-wrapped read: until then the
        # input (bounded by the limit) is kept to be read again.
        self.fed: bytearray | None = None if self.gzip else bytearray()
        self.chunks: list[bytes] = []
        self.size = 0

    def _bad(self, why: str) -> ApiError:
        kind = "gzip" if self.gzip else "deflate"
        return ApiError(
            "invalid_json",
            detail=f"it is labelled 'Content-Encoding: {self.encoding}' but is not valid "
            f"{kind} data ({why}); send the JSON uncompressed or compress it with {kind}",
        )

    def feed(self, data: bytes) -> None:
        if self.fed is not None:
            self.fed += data
        while data:
            if self.decompressor.eof:
                if not self.gzip:
                    raise self._bad("there is data after the end of the compressed stream")
                self.decompressor = zlib.decompressobj(self.wbits)  # another gzip member
            try:
                out = self.decompressor.decompress(data, self.limit - self.size + 1)
            except zlib.error as exc:
                if self.fed is None:
                    reason = str(exc).removeprefix("Error -3 while decompressing data: ")
                    raise self._bad(reason) from None
                self._read_as_raw_deflate()
                return
            self.size += len(out)
            if self.size > self.limit:
                raise _too_large(self.limit)
            self.chunks.append(out)
            data = self.decompressor.unconsumed_tail or self.decompressor.unused_data

    def _read_as_raw_deflate(self) -> None:
        fed, self.fed = bytes(self.fed or b""), None
        self.wbits = -zlib.MAX_WBITS
        self.decompressor = zlib.decompressobj(self.wbits)
        self.chunks, self.size = [], 0
        self.feed(fed)

    def result(self) -> bytes:
        if not self.decompressor.eof:
            raise self._bad("it ends before the compressed stream does")
        return b"".join(self.chunks)


async def _read_sent(request: Request, max_body: int) -> bytes:
    """The body's bytes as sent (compressed, if it is), at most `max_body`: else a 413."""
    # Only a hint: the limit is enforced while reading. isdigit() alone takes "²", which int()
    # refuses; behind a server the header is checked before, not under an ASGI transport.
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_body:
        raise _too_large(max_body)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_body:
            raise _too_large(max_body)
        chunks.append(chunk)
    return b"".join(chunks)


def _decoded(sent: bytes, encoding: str | None, max_body: int) -> bytes:
    """The body decompressed, `max_body` bounding what it inflates to too: a compression
    bomb is a 413 after at most `max_body` + 1 bytes of output."""
    if encoding is None:
        return sent
    inflater = _Inflater(encoding, max_body)
    inflater.feed(sent)
    return inflater.result()


class Sent:
    """The body of one request, read at most once: the one reader of request bodies, for
    the mock's answers and for proxy mode, which forwards the bytes as they were sent.

    `json_object()` runs the checks in their one order: the Content-Type, the
    Content-Encoding (415s, before anything is read), the size (413), then the bytes
    (invalid_json). `raw()` reads the bytes only (a 413 is all it can refuse), which a
    proxy forwards whatever the mock thinks of them.
    """

    def __init__(self, request: Request, max_body: int) -> None:
        self.request, self.max_body = request, max_body
        self._raw: bytes | None = None
        self._refusal: ApiError | None = None

    async def raw(self) -> bytes:
        """The bytes as sent, at most `max_body` (else request_too_large, every time)."""
        if self._refusal is not None:
            raise self._refusal
        if self._raw is None:
            try:
                self._raw = await _read_sent(self.request, self.max_body)
            except ApiError as exc:
                self._refusal = exc
                raise
        return self._raw

    async def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; anything else is an ApiError."""
        headers = self.request.headers
        _check_content_type(headers.get("content-type"))
        encoding = _content_encoding(headers)
        return _parsed(_decoded(await self.raw(), encoding, self.max_body))


async def read_json_object(request: Request, max_body: int) -> dict[str, Any]:
    """The body as a JSON object, read up to `max_body` bytes; anything else is an ApiError."""
    return await Sent(request, max_body).json_object()


def _parsed(data: bytes) -> dict[str, Any]:
    """The bytes of a body as a JSON object: UTF-8, no byte-order mark, no constant JSON
    lacks, bounded in depth; anything else is an invalid_json."""
    for mark, name in _BYTE_ORDER_MARKS.items():
        if data.startswith(mark):
            raise ApiError(
                "invalid_json", detail=f"it starts with {name} byte-order mark; {_FIX_MARK}"
            )

    try:
        text = data.decode("utf-8")
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
