"""The ASGI app: every route of the mock, from the HTTP request to the JSON or the PNG."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from mockserver.admin import admin_routes
from mockserver.bodies import read_json_object
from mockserver.config import MockConfig, data_dir
from mockserver.contract import RequestContract
from mockserver.errors import ApiError, ErrorCatalogue
from mockserver.faults import Fault
from mockserver.images import ImageSigner, ImageSpec, render_spec
from mockserver.journal import ContractWarning, RequestRecord, redact_headers
from mockserver.openapi import build_document
from mockserver.render import Renderer
from mockserver.replay import SCOPE_KEY as REPLAY_KEY
from mockserver.replay import Replay
from mockserver.sizes import SizeTable
from mockserver.state import Exchange, MockState

logger = logging.getLogger("mockserver")
Handler = Callable[[Request, Exchange], Awaitable[Response]]

OWNER = "jimeng"


def create_app(config: MockConfig | None = None, **options: Any) -> Starlette:
    """The mock as an ASGI app. Pass a `MockConfig`, or its fields as keyword arguments."""
    if config is not None and options:
        raise TypeError("pass either a MockConfig or keyword options, not both")
    config = config or MockConfig(**options)
    catalogue = ErrorCatalogue.from_file(config.errors_file)
    sizes = SizeTable.from_file(config.sizes_file)
    contract = RequestContract.from_dir(data_dir(), sizes, strict=config.strict)
    signer = ImageSigner(config.secret, sizes.issuable)
    renderer = Renderer(
        config.render_concurrency, config.render_queue, config.image_cache_mb * 1024 * 1024
    )
    state = MockState(config, catalogue.kinds)

    def authenticate(request: Request) -> None:
        header = request.headers.get("authorization")
        if header is None:
            raise ApiError("invalid_api_key", detail="No API key provided.")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(
                "invalid_api_key", detail="The Authorization header is not 'Bearer <key>'."
            )
        if config.api_keys and key not in config.api_keys:
            shown = f"...{key[-4:]}" if len(key) > 8 else "****"
            raise ApiError("invalid_api_key", detail=f"Incorrect API key provided: {shown}.")
        if state.limiter is not None:
            wait = state.limiter.acquire(key)
            if wait is not None:
                seconds = max(1, math.ceil(wait))
                raise ApiError(
                    "rate_limit_exceeded",
                    headers={
                        "Retry-After": str(seconds),
                        "retry-after-ms": str(math.ceil(wait * 1000)),
                    },
                    detail=f"{state.limiter.rpm} requests per minute for this key",
                    retry_after=f"{seconds}s",
                )

    def mock_options(request: Request) -> tuple[Fault | None, float | None]:
        """The X-Mock-Fault and X-Mock-Latency-Ms headers: a bad value is a 400, not ignored."""
        name = request.headers.get("x-mock-fault")
        fault = state.fault(name.strip(), param="X-Mock-Fault") if name is not None else None
        latency = request.headers.get("x-mock-latency-ms")
        if latency is None:
            return fault, None
        if not (latency.strip().isascii() and latency.strip().isdigit()):
            raise ApiError(
                "invalid_value",
                param="X-Mock-Latency-Ms",
                detail=f"{latency!r} is not a whole number of milliseconds",
            )
        return fault, float(latency.strip())

    async def generate_images(request: Request, exchange: Exchange) -> Response:
        authenticate(request)
        asked_fault, asked_latency = mock_options(request)
        body = exchange.body = await read_json_object(request, config.max_body)
        generation = contract.validate(body)
        exchange.warnings = contract.warnings(body)
        chaos_delay, chaos_fault = state.draw_chaos()

        # Which fault or stub answers: the request's own header, then the queue, then the
        # stub files, then --fault-rate. A request that breaks the contract never gets here.
        fault = asked_fault or state.queue.take(body)
        stub = None
        if fault is None and state.stubs is not None:
            state.stubs.refresh()
            if state.stubs.error:
                raise ApiError("stub_error", detail=state.stubs.error)
            stub = state.stubs.find(body, request.headers)
            if stub is not None and stub.fault is not None:
                fault = state.fault(stub.fault).with_options(
                    delay_ms=stub.delay_ms, retry_after_ms=stub.retry_after_ms
                )
        if fault is None and stub is None and chaos_fault is not None:
            fault = state.fault(chaos_fault)
        exchange.fault = fault.name if fault else None
        exchange.stub = stub.name if stub else None

        # A stub's delay_ms is already in its fault; a canned answer has only the stub's.
        own_delay = fault.delay_ms if fault else (stub and stub.delay_ms) or 0
        delay = state.faults.cap(
            (own_delay if asked_latency is None else asked_latency) + chaos_delay
        )
        headers = fault.headers() if fault else {}
        if stub is not None:
            headers["X-Mock-Stub"] = stub.name
        if delay:
            headers["X-Mock-Latency-Ms"] = str(round(delay))
            await asyncio.sleep(delay / 1000)

        count = generation.n
        if fault and fault.action == "partial":
            count = math.floor(generation.n * fault.keep)
        specs = [
            ImageSpec(generation.model, generation.width, generation.height, generation.seed, i)
            for i in range(1, max(count, stub.url_count if stub else 0) + 1)
        ]
        base = config.public_url or str(request.base_url).rstrip("/")
        urls = [base + signer.path(spec) for spec in specs]

        if fault and fault.action == "error":
            assert fault.error is not None
            retry = fault.retry_after_ms
            raise ApiError(
                fault.error,
                param=fault.param,
                headers=headers,
                detail=f"answered by the stub {stub.name}"
                if stub
                else "a fault the mock was asked to inject",
                retry_after=f"{math.ceil(retry / 1000)}s" if retry else "a moment",
                delay=f"{round(delay)} ms",
            )
        if fault and fault.action == "disconnect":
            return DroppedConnection()

        async def data() -> list[dict[str, Any]]:
            if generation.response_format == "b64_json":
                return [
                    {
                        "b64_json": base64.b64encode(await image(spec)).decode(),
                        "revised_prompt": generation.prompt,
                    }
                    for spec in specs[:count]
                ]
            return [{"url": url, "revised_prompt": generation.prompt} for url in urls[:count]]

        if stub is not None:
            values = {
                "created": config.created_at(),
                "prompt": generation.prompt,
                "model": generation.model,
                "data": await data() if stub.uses_data else None,
            }
            answer = stub.render(values, urls)
            text = json.dumps(answer)
            exchange.images = [url for url in urls if url in text]
            if stub.status >= 400 and isinstance(answer, dict):
                error = answer.get("error")
                if isinstance(error, dict):
                    exchange.error = str(error.get("code"))
                    exchange.error_message = str(error.get("message"))
            return JSONResponse(
                answer,
                status_code=stub.status,
                headers={**stub.headers, **headers},
            )

        exchange.images = urls[:count]
        if fault is None and not delay:
            # A plain answer: the same request gets it again, so it may be replayed.
            request.scope[REPLAY_KEY] = {"images": exchange.images, "warnings": exchange.warnings}
        payload = {"created": config.created_at(), "data": await data()}
        if fault and fault.action == "malformed":
            text = json.dumps(payload)
            return Response(text[: len(text) // 2], media_type="application/json", headers=headers)
        return JSONResponse(payload, headers=headers)

    def model_object(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": config.created_at(), "owned_by": OWNER}

    async def list_models(request: Request, exchange: Exchange) -> Response:
        authenticate(request)
        return JSONResponse({"object": "list", "data": [model_object(m) for m in contract.models]})

    async def retrieve_model(request: Request, exchange: Exchange) -> Response:
        authenticate(request)
        model = request.path_params["model"]
        if model not in contract.models:
            raise contract.unknown_model(model)
        return JSONResponse(model_object(model))

    async def get_image(request: Request) -> Response:
        spec = signer.parse(**request.path_params)
        headers = {
            "ETag": signer.etag(spec),
            "Cache-Control": "public, max-age=31536000, immutable",
        }
        wanted = _etags(request.headers.get("if-none-match"))
        if headers["ETag"] in wanted or "*" in wanted:
            return Response(status_code=304, headers=headers)
        png = await image(spec)
        return Response(png, media_type="image/png", headers=headers)

    async def image(spec: ImageSpec) -> bytes:
        return await renderer.png(spec, lambda: render_spec(spec))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    document = build_document(contract, catalogue, state.faults)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    def record(request: Request, exchange: Exchange, status: int | None, started: float) -> None:
        state.journal.add(
            RequestRecord(
                id=state.journal.next_id(),
                time=started,
                method=request.method,
                path=request.url.path,
                headers=redact_headers(request.headers.items()),
                body=exchange.body,
                status=status,
                error=exchange.error,
                error_message=exchange.error_message,
                param=exchange.param,
                images=tuple(exchange.images),
                warnings=tuple(exchange.warnings),
                fault=exchange.fault,
                stub=exchange.stub,
                duration_ms=round((time.time() - started) * 1000, 3),
                exception=exchange.exception,
            ),
            exchange.epoch,
        )

    def error_response(error: ApiError, exchange: Exchange) -> Response:
        exchange.error, exchange.param = error.code, error.param
        exchange.error_message = catalogue.message(error)
        return catalogue.response(error)

    def api_route(path: str, handler: Handler, methods: list[str]) -> Route:
        """A route of the API: its answers, errors included, go in the journal."""

        async def endpoint(request: Request) -> Response:
            started = time.time()
            exchange = Exchange(epoch=state.journal.epoch)
            try:
                response = await handler(request, exchange)
            except ApiError as error:
                response = error_response(error, exchange)
            except Exception as exc:
                # A bug of the mock: answered in the envelope, logged, and kept for check().
                logger.exception("error while answering %s %s", request.method, request.url.path)
                exchange.exception = traceback.format_exc()
                response = error_response(
                    ApiError("server_error", detail=type(exc).__name__), exchange
                )
            if exchange.warnings:
                response.headers["X-Mock-Warnings"] = warnings_header(exchange.warnings)
            status = None if isinstance(response, DroppedConnection) else response.status_code
            record(request, exchange, status, started)
            return response

        return Route(path, endpoint, methods=methods)

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return catalogue.response(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        method, path = request.method, request.url.path
        if exc.status_code == 405:
            # Every route of the path, not only the first (Starlette's Allow); sorted, so the
            # answer is stable.
            allowed = ", ".join(
                sorted(
                    {
                        method
                        for route in routes
                        if isinstance(route, Route) and route.path_regex.fullmatch(path)
                        for method in route.methods or ()
                    }
                )
            )
            error = ApiError(
                "method_not_allowed",
                headers={"Allow": allowed},
                method=method,
                path=path,
                allowed=allowed,
            )
        else:
            error = ApiError("not_found", method=method, path=path)
        if not path.startswith("/v1/"):
            return catalogue.response(error)
        exchange = Exchange(epoch=state.journal.epoch)
        response = error_response(error, exchange)
        record(request, exchange, response.status_code, time.time())
        return response

    async def on_server_error(request: Request, exc: Exception) -> Response:
        return catalogue.response(ApiError("server_error", detail=type(exc).__name__))

    routes: list[BaseRoute] = [
        api_route("/v1/images/generations", generate_images, ["POST"]),
        api_route("/v1/models", list_models, ["GET"]),
        api_route("/v1/models/{model}", retrieve_model, ["GET"]),
        Route("/images/{model}/{size}/{name}", get_image, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *admin_routes(state, signer, renderer),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Replay, state=state)],
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_error,
            Exception: on_server_error,
        },
    )
    # A slash too many is an unknown URL, as on the real service, not a redirect.
    app.router.redirect_slashes = False
    app.state.mock = state
    app.state.renderer = renderer
    return app


class DroppedConnection(Response):
    """No answer at all: the connection is closed, as by a proxy that gave up."""

    def __init__(self) -> None:
        super().__init__(status_code=599)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn's `receive` is a method of the request cycle that owns the transport.
        transport = getattr(getattr(receive, "__self__", None), "transport", None)
        if transport is None:
            raise ConnectionAbortedError("the mock dropped the connection (fault 'disconnect')")
        transport.close()
        await asyncio.sleep(0)  # let the server see the closed connection before returning


WARNINGS_HEADER_LIMIT = 2000


def warnings_header(warnings: list[ContractWarning]) -> str:
    """The warnings as one header line of printable ASCII (control characters in a field
    name would end the header), cut to a size every client and proxy reads."""
    text = "".join(
        c if " " <= c <= "~" else c.encode("unicode_escape").decode()
        for c in "; ".join(w.message for w in warnings)
    )
    if len(text) <= WARNINGS_HEADER_LIMIT:
        return text
    more = f" ... ({len(warnings)} warnings in all; the journal has every one)"
    return text[: WARNINGS_HEADER_LIMIT - len(more)] + more


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
