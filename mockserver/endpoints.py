"""The endpoints of the API, the images and the service routes. Each reads the mock from
`request.app.state.mock`; `mockserver.routes` says which path and method reach which."""

from __future__ import annotations

import asyncio
import base64
import functools
import hmac
import json
import math
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mockserver.bodies import read_json_object
from mockserver.contract import Generation
from mockserver.errors import ApiError
from mockserver.faults import Fault
from mockserver.images import ImageSpec, render_spec
from mockserver.pipeline import DroppedConnection, Exchange, exchange_of
from mockserver.plan import Asked, Plan
from mockserver.state import MockState
from mockserver.stubs import NO_BODY

OWNER = "jimeng"


def mock_of(request: Request) -> MockState:
    mock: MockState = request.app.state.mock
    return mock


def authenticate(mock: MockState, headers: Headers) -> None:
    """The Bearer key, checked against --api-key, then counted by --rpm."""
    header = headers.get("authorization")
    if header is None:
        raise ApiError("invalid_api_key", detail="No API key provided.")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError("invalid_api_key", detail="The Authorization header is not 'Bearer <key>'.")
    keys = mock.config.api_keys
    # Compared in constant time, with every configured key: no answer's timing tells how much
    # of a key was right, nor which key matched.
    given = key.encode()
    if keys and not any([hmac.compare_digest(given, k.encode()) for k in keys]):
        shown = f"...{key[-4:]}" if len(key) > 8 else "****"
        raise ApiError("invalid_api_key", detail=f"Incorrect API key provided: {shown}.")
    limiter = mock.limiter
    wait = limiter.acquire(key) if limiter is not None else None
    if limiter is not None and wait is not None:
        seconds = max(1, math.ceil(wait))
        raise ApiError(
            "rate_limit_exceeded",
            headers={"Retry-After": str(seconds), "retry-after-ms": str(math.ceil(wait * 1000))},
            detail=f"{limiter.rpm} requests per minute for this key",
            retry_after=f"{seconds}s",
        )


def mock_headers(mock: MockState, headers: Headers) -> tuple[Fault | None, float | None]:
    """The X-Mock-Fault and X-Mock-Latency-Ms headers: a bad value is a 400, not ignored."""
    name = headers.get("x-mock-fault")
    fault = mock.fault(name.strip(), param="X-Mock-Fault") if name is not None else None
    latency = headers.get("x-mock-latency-ms")
    if latency is None:
        return fault, None
    if not (latency.strip().isascii() and latency.strip().isdigit()):
        raise ApiError(
            "invalid_value",
            param="X-Mock-Latency-Ms",
            detail=f"{latency!r} is not a whole number of milliseconds",
        )
    return fault, float(latency.strip())


async def generate_images(request: Request) -> Response:
    mock, exchange = mock_of(request), exchange_of(request)
    authenticate(mock, request.headers)
    fault, latency = mock_headers(mock, request.headers)
    body = exchange.body = await read_json_object(request, mock.config.max_body)
    generation = mock.contract.validate(body)
    exchange.warnings = mock.contract.warnings(body)
    chaos_delay, chaos_fault = mock.draw_chaos()
    plan = mock.plan(
        Asked(body, request.headers, generation.n, fault, latency, chaos_delay, chaos_fault)
    )
    exchange.fault = plan.fault.name if plan.fault else None
    exchange.stub = plan.stub.name if plan.stub else None
    headers = plan.fault.headers() if plan.fault else {}
    if plan.stub is not None:
        headers["X-Mock-Stub"] = plan.stub.x_mock_stub
    if plan.delay_ms:
        headers["X-Mock-Latency-Ms"] = str(round(plan.delay_ms))
        await asyncio.sleep(plan.delay_ms / 1000)
    return await answer(request, generation, plan, headers)


async def answer(
    request: Request, generation: Generation, plan: Plan, headers: dict[str, str]
) -> Response:
    """The answer `plan` decided: an injected error, no answer, a stub's, or the images."""
    mock, exchange = mock_of(request), exchange_of(request)
    specs = [
        ImageSpec(generation.model, generation.width, generation.height, generation.seed, i)
        for i in range(1, plan.urls + 1)
    ]
    base = mock.config.public_url or base_url(request)
    urls = [base + mock.signer.path(spec) for spec in specs]
    fault = plan.fault
    if fault is not None and fault.action == "error":
        assert fault.error is not None
        retry = fault.retry_after_ms
        raise ApiError(
            fault.error,
            param=fault.param,
            headers=headers,
            detail=f"answered by the stub {plan.stub.name}"
            if plan.stub
            else "a fault the mock was asked to inject",
            retry_after=f"{math.ceil(retry / 1000)}s" if retry else "a moment",
            delay=f"{round(plan.delay_ms)} ms",
        )
    if fault is not None and fault.action == "disconnect":
        return DroppedConnection()
    if plan.stub is not None and plan.stub.fault is None:
        return await stub_answer(mock, exchange, generation, plan, urls, headers)
    exchange.images = urls[: plan.count]
    payload = {
        "created": mock.config.created_at(),
        "data": await data(mock, generation, plan, urls),
    }
    if fault is not None and fault.action == "malformed":
        text = json.dumps(payload)
        return Response(text[: len(text) // 2], media_type="application/json", headers=headers)
    return JSONResponse(payload, headers=headers)


async def data(
    mock: MockState, generation: Generation, plan: Plan, urls: list[str]
) -> list[dict[str, Any]]:
    """The `data` of an answer: each image's URL, or its PNG with `response_format: b64_json`."""
    prompt = generation.prompt
    if generation.response_format != "b64_json":
        return [{"url": url, "revised_prompt": prompt} for url in urls[: plan.count]]
    images = []
    for index in range(1, plan.count + 1):
        spec = ImageSpec(
            generation.model, generation.width, generation.height, generation.seed, index
        )
        png = await mock.renderer.png(spec, functools.partial(render_spec, spec))
        images.append({"b64_json": base64.b64encode(png).decode(), "revised_prompt": prompt})
    return images


async def stub_answer(
    mock: MockState,
    exchange: Exchange,
    generation: Generation,
    plan: Plan,
    urls: list[str],
    headers: dict[str, str],
) -> Response:
    """A stub's canned answer, its placeholders filled in from the request."""
    assert plan.stub is not None
    stub = plan.stub
    values = {
        "created": mock.config.created_at(),
        "prompt": generation.prompt,
        "model": generation.model,
        "data": await data(mock, generation, plan, urls) if stub.uses_data else None,
    }
    canned = stub.render(values, urls)
    text = json.dumps(canned)
    exchange.images = [url for url in urls if url in text]
    if stub.status >= 400 and isinstance(canned, dict) and isinstance(canned.get("error"), dict):
        exchange.error = str(canned["error"].get("code"))
        exchange.error_message = str(canned["error"].get("message"))
    if stub.status in NO_BODY:  # the stub file cannot give one
        return Response(status_code=stub.status, headers={**stub.headers, **headers})
    return JSONResponse(canned, status_code=stub.status, headers={**stub.headers, **headers})


_BASES: dict[tuple[Any, ...], str] = {}


def base_url(request: Request) -> str:
    """The base of image URLs, from the address the client used (Starlette's `base_url`,
    remembered for the last few hundred addresses: it costs more than the rest of a URL)."""
    scope = request.scope
    host = next((value for name, value in scope["headers"] if name == b"host"), None)
    server = scope.get("server")
    key = (scope.get("scheme"), host, tuple(server) if server else None, scope.get("root_path"))
    found = _BASES.get(key)
    if found is None:
        if len(_BASES) >= 256:
            _BASES.clear()
        found = _BASES[key] = str(request.base_url).rstrip("/")
    return found


def model_object(mock: MockState, model: str) -> dict[str, Any]:
    created = mock.config.created_at()
    return {"id": model, "object": "model", "created": created, "owned_by": OWNER}


async def list_models(request: Request) -> Response:
    mock = mock_of(request)
    authenticate(mock, request.headers)
    models = [model_object(mock, m) for m in mock.contract.models]
    return JSONResponse({"object": "list", "data": models})


async def retrieve_model(request: Request) -> Response:
    mock = mock_of(request)
    authenticate(mock, request.headers)
    model = request.path_params["model"]
    if model not in mock.contract.models:
        raise mock.contract.unknown_model(model)
    return JSONResponse(model_object(mock, model))


async def get_image(request: Request) -> Response:
    mock = mock_of(request)
    spec = mock.signer.parse(**request.path_params)
    headers = {
        "ETag": mock.signer.etag(spec),
        "Cache-Control": "public, max-age=31536000, immutable",
    }
    wanted = _etags(request.headers.get("if-none-match"))
    if headers["ETag"] in wanted or "*" in wanted:
        return Response(status_code=304, headers=headers)
    png = await mock.renderer.png(spec, lambda: render_spec(spec))
    return Response(png, media_type="image/png", headers=headers)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
