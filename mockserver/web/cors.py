"""CORS, for a page on another origin that calls the mock with `fetch` (`--cors ORIGIN`).

`Cors` wraps the whole app, and only when origins are configured. It covers every route but
the admin ones (`/__admin/...` stays same-origin): a preflight (`OPTIONS` with `Origin` and
`Access-Control-Request-Method`) from an allowed origin to a path of the route table is
answered here, 204, and so never reaches the journal; every other answer to a request from an
allowed origin, errors included, gains `Access-Control-Allow-Origin` and
`Access-Control-Expose-Headers`. A request from an origin not listed is served as if CORS
were off (its preflight is the documented 405), so the browser refuses to read the answer.
No `Access-Control-Allow-Credentials`: the API takes a Bearer header, not cookies.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mockserver.web.routes import RouteTable

ANY = "*"
UNCOVERED = "/__admin/"
# The request headers a page may send: the API's and the mock's own; any X-Mock-* besides.
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-Mock-Fault",
    "X-Mock-Latency-Ms",
    "X-Mock-Session",
    "X-Client-Request-Id",
)
EXPOSED_HEADERS = (
    "x-request-id, X-Mock-Warnings, X-Mock-Fault, X-Mock-Stub, X-Mock-Latency-Ms, "
    "Retry-After, retry-after-ms"
)
MAX_AGE = 600  # seconds a browser may keep a preflight's answer
_ALLOWED = frozenset(name.lower() for name in ALLOWED_HEADERS)


def covers(path: str) -> bool:
    """Whether a request path is CORS's: every path but the admin ones, which stay same-origin."""
    return not path.startswith(UNCOVERED)


def allowed_headers(requested: str) -> str:
    """The fixed list, and each requested header that is one of it or an X-Mock-* header."""
    names = list(ALLOWED_HEADERS)
    for name in (part.strip() for part in requested.split(",")):
        lowered = name.lower()
        if lowered.startswith("x-mock-") and lowered not in _ALLOWED:
            names.append(name)
    return ", ".join(names)


class Cors:
    """ASGI middleware: answers preflights and marks answers for the allowed origins."""

    def __init__(self, app: ASGIApp, origins: Sequence[str], table: RouteTable) -> None:
        self.app = app
        self.any = ANY in origins
        self.origins = frozenset(origins)
        self.table = table

    def allow(self, origin: str | None) -> str | None:
        """The `Access-Control-Allow-Origin` value for a request's `Origin`, None if none."""
        if origin is None:
            return None
        return ANY if self.any else origin if origin in self.origins else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not covers(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        allow = self.allow(headers.get("origin"))
        methods = self.table.allowed(scope["path"])
        if (
            allow is not None
            and scope["method"] == "OPTIONS"
            and "access-control-request-method" in headers
            and methods
        ):
            await self._preflight(send, allow, methods, headers)
            return
        await self.app(scope, receive, self._marking(send, allow))

    async def _preflight(
        self, send: Send, allow: str, methods: list[str], headers: dict[str, str]
    ) -> None:
        requested = headers.get("access-control-request-headers", "")
        answer = [
            (b"access-control-allow-origin", allow.encode("latin-1")),
            (b"access-control-allow-methods", ", ".join(methods).encode("latin-1")),
            (b"access-control-allow-headers", allowed_headers(requested).encode("latin-1")),
            (b"access-control-max-age", str(MAX_AGE).encode("latin-1")),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": answer})
        await send({"type": "http.response.body", "body": b""})

    def _marking(self, send: Send, allow: str | None) -> Send:
        """`send`, adding `Vary: Origin` to the answer, and the CORS headers when allowed."""

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": _marked(message["headers"], allow)}
            await send(message)

        return marked


def _marked(raw: Sequence[tuple[bytes, bytes]], allow: str | None) -> list[tuple[bytes, bytes]]:
    headers = [(k, v) for k, v in raw if k.lower() != b"vary"]
    vary = [v for k, v in raw if k.lower() == b"vary"]
    headers.append((b"vary", b", ".join([*vary, b"Origin"])))
    if allow is not None:
        headers.append((b"access-control-allow-origin", allow.encode("latin-1")))
        headers.append((b"access-control-expose-headers", EXPOSED_HEADERS.encode("latin-1")))
    return headers
