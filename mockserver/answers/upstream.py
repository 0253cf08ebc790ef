"""Proxy mode (`--upstream URL`): requests forwarded to the real service, and what the mock's own
contract would have answered them, compared (drift).

One `httpx.AsyncClient` per event loop (a `MockServer` serves in its own thread's loop, the
command in the main one), made on the first forwarded request, with bounded connections,
and closed as that loop ends (an async generator the loop finalizes: see `_closing`). It
is never made without `--upstream`: httpx is imported in this module's functions only.

A verdict is `(status, code, param)`: the mock's is (200, None, None) for a request it would
answer, else its error's; the upstream's is its status and the `code` and `param` of its
error envelope (OpenAI's or Ark's), None where it has none. They disagree (`drift`) when:

- the mock accepts and the upstream refuses (a 4xx other than 408 and 429): `upstream_refuses`,
  the tests pass against the mock and production fails;
- the mock refuses and the upstream answers 2xx: `mock_refuses`;
- both refuse (the upstream with such a 4xx) with a different status, code or param:
  `different_error`.

An upstream 5xx, 408 or 429 (or the mock's own 429, of --rpm) says nothing of the request:
it is no drift.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mockserver.errors import ApiError
from mockserver.redaction import without, without_in

if TYPE_CHECKING:
    import httpx

# The headers of the upstream's answer the client gets (x-ratelimit-* too).
PASSED_HEADERS = ("content-type", "retry-after", "retry-after-ms", "x-request-id")
PASSED_PREFIX = "x-ratelimit-"
MAX_CONNECTIONS = 32
MIB = 1024 * 1024
TRANSIENT = frozenset({408, 429})
EVENT_STREAM = "text/event-stream"  # a streamed answer (Ark's `stream: true`), not JSON

Verdict = tuple[int, str | None, str | None]
ACCEPTED: Verdict = (200, None, None)


def passed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of an upstream answer that are handed on to the client."""
    return {
        name: value
        for name, value in headers.items()
        if name.lower() in PASSED_HEADERS or name.lower().startswith(PASSED_PREFIX)
    }


@dataclass(frozen=True)
class UpstreamAnswer:
    status: int
    headers: dict[str, str]  # those handed on (`passed_headers`)
    content: bytes
    payload: Any  # the parsed JSON
    elapsed_ms: float

    @property
    def verdict(self) -> Verdict:
        error = self.payload.get("error") if isinstance(self.payload, dict) else None
        if not isinstance(error, dict):
            return (self.status, None, None)
        code, param = error.get("code"), error.get("param")
        return (
            self.status,
            None if code is None else str(code),
            None if param is None else str(param),
        )

    @property
    def message(self) -> str | None:
        error = self.payload.get("error") if isinstance(self.payload, dict) else None
        if isinstance(error, dict) and error.get("message") is not None:
            return str(error["message"])
        return None


def drift(mock: Verdict, upstream: Verdict) -> str | None:
    """The kind of disagreement between the two verdicts, or None (see the module's docstring)."""
    mock_ok = mock[0] < 400
    status = upstream[0]
    if mock[0] in TRANSIENT:
        return None  # the mock's --rpm: nothing of the contract
    if status < 300:
        return None if mock_ok else "mock_refuses"
    if not 400 <= status < 500 or status in TRANSIENT:
        return None
    if mock_ok:
        return "upstream_refuses"
    return None if mock == upstream else "different_error"


def describe(kind: str, mock: Verdict, upstream: Verdict) -> str:
    def show(verdict: Verdict) -> str:
        status, code, param = verdict
        return f"{status}" + (f" {code}" if code else "") + (f" ({param})" if param else "")

    what = {
        "upstream_refuses": "the upstream refuses what the mock accepts",
        "mock_refuses": "the mock refuses what the upstream accepts",
        "different_error": "the mock and the upstream refuse with different errors",
    }[kind]
    return f"drift {kind}: {what}: mock {show(mock)}, upstream {show(upstream)}"


class Upstream:
    """The real service behind the mock: one client per event loop, and the forwarding."""

    def __init__(self, base: str, api_key: str | None, timeout: float, *, max_bytes: int) -> None:
        self.base = base.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._keepers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._lock = threading.Lock()

    async def client(self) -> httpx.AsyncClient:
        """The client of the running loop, made on first use, closed when the loop ends."""
        import httpx

        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._clients.get(loop)
            if found is not None:
                return found
            for old in [old for old in self._clients if old.is_closed()]:
                self._clients.pop(old)
                self._keepers.pop(old, None)
            made = self._clients[loop] = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(
                    max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
                ),
                trust_env=False,
                follow_redirects=False,
            )
            keeper = self._keepers[loop] = _closing(made)
        await keeper.__anext__()
        return made

    async def aclose(self) -> None:
        """Close the client of the running loop, if it has one."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.pop(loop, None)
            keeper = self._keepers.pop(loop, None)
        if keeper is not None:
            await keeper.aclose()
        elif client is not None:
            await client.aclose()

    def authorization(self, given: str | None) -> str | None:
        return f"Bearer {self.api_key}" if self.api_key else given

    async def forward(
        self,
        method: str,
        path: str,
        authorization: str | None,
        content: bytes | None = None,
        content_type: str | None = None,
        content_encoding: str | None = None,
    ) -> UpstreamAnswer:
        """`method` `base + path` with the client's key (or --upstream-api-key), and its
        body as sent with its content type and encoding (only those of the client's
        headers); a timeout is ApiError gateway_timeout, a failed connection or an answer
        that is not JSON bad_gateway."""
        import httpx

        headers = {"Accept": "application/json"}
        auth = self.authorization(authorization)
        if auth is not None:
            headers["Authorization"] = auth
        if content is not None:
            headers["Content-Type"] = content_type or "application/json"
            if content_encoding is not None:
                headers["Content-Encoding"] = content_encoding
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(self.timeout):
                client = await self.client()
                request = client.build_request(
                    method, self.base + path, content=content, headers=headers
                )
                response, body = await self._read(client, request)
        except (TimeoutError, httpx.TimeoutException):
            raise ApiError(
                "gateway_timeout",
                delay=f"{self.timeout:g} s",
                detail="the upstream did not answer within --upstream-timeout",
            ) from None
        except httpx.HTTPError as exc:
            raise ApiError(
                "bad_gateway", detail=f"cannot reach the upstream: {type(exc).__name__}"
            ) from None
        # A key the upstream echoes (in a message, a request id) goes no further: not to the
        # client, the journal, the page or a recorded file.
        secrets = [s for s in (self.api_key, _token(authorization)) if s]
        return _answer(response, body, round((loop.time() - started) * 1000, 3), secrets)

    async def _read(
        self, client: httpx.AsyncClient, request: httpx.Request
    ) -> tuple[httpx.Response, bytes]:
        """The answer and its body, decompressed, read no further than `max_bytes`: past
        them, `bad_gateway` (an upstream, or a compression bomb from it, cannot take the
        mock's memory)."""
        response = await client.send(request, stream=True)
        try:
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise ApiError(
                        "bad_gateway",
                        detail=f"the upstream's answer is larger than --upstream-max-mb "
                        f"({self.max_bytes // MIB} MiB once decompressed)",
                    )
                chunks.append(chunk)
        finally:
            await response.aclose()
        return response, b"".join(chunks)


async def _closing(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    """Started once, then left waiting: the loop finalizes its async generators as it ends
    (`shutdown_asyncgens`, which `asyncio.run` and uvicorn call), and so closes the client."""
    try:
        yield
    finally:
        await client.aclose()


def _token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _answer(
    response: httpx.Response, body: bytes, elapsed_ms: float, secrets: list[str]
) -> UpstreamAnswer:
    status = response.status_code
    if not 200 <= status <= 599:  # not an answer to hand on: the client could not take it
        raise ApiError("bad_gateway", detail=f"the upstream answered status {status}")
    body = without(body, secrets)
    if response.headers.get("content-type", "").startswith(EVENT_STREAM):
        return _answered(response, body, None, elapsed_ms, secrets)  # a streamed answer
    try:
        payload = json.loads(body)
    except RecursionError:
        raise ApiError(
            "bad_gateway", detail=f"the upstream answered {status} with JSON nested too deep"
        ) from None
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        raise ApiError(
            "bad_gateway", detail=f"the upstream answered {status} that is not JSON ({kind})"
        ) from None
    return _answered(response, body, payload, elapsed_ms, secrets)


def _answered(
    response: httpx.Response, body: bytes, payload: Any, elapsed_ms: float, secrets: list[str]
) -> UpstreamAnswer:
    headers = {k: without_in(v, secrets) for k, v in passed_headers(response.headers).items()}
    return UpstreamAnswer(
        status=response.status_code,
        headers=headers,
        content=body,
        payload=payload,
        elapsed_ms=elapsed_ms,
    )
