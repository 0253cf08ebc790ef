"""The endpoints of the API, the images and the service routes. Each reads the mock from
`request.app.state.mock`; `mockserver.routes` says which path and method reach which."""

from __future__ import annotations

import asyncio
import base64
import functools
import hmac
import json
import math
import mimetypes
import re
from typing import Any
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mockserver.bodies import read_json_object
from mockserver.contract import Generation
from mockserver.coverage import pair_name
from mockserver.errors import ApiError
from mockserver.faults import Fault
from mockserver.images import ImageSpec, render_spec
from mockserver.journal import ContractWarning, clip
from mockserver.pipeline import DroppedConnection, Exchange, exchange_of
from mockserver.plan import Asked, Plan
from mockserver.state import MockState
from mockserver.stubs import FIXTURE_ROUTE, NO_BODY
from mockserver.upstream import ACCEPTED, UpstreamAnswer, Verdict, describe, drift

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
    given = key.encode("latin-1")  # the bytes sent: a UTF-8 key matches as UTF-8
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
    if mock.upstream is not None:
        return await proxy_images(request, mock, exchange)
    authenticate(mock, request.headers)
    fault, latency = mock_headers(mock, request.headers)
    body = exchange.body = await read_json_object(request, mock.config.max_body)
    generation = mock.contract.validate(body)
    exchange.warnings = mock.contract.warnings(body)
    if body.get("size") is None:
        sizes = mock.sizes
        # An optional field sent as null counts as absent, as in the contract.
        exchange.answered.pair = pair_name(
            body.get("ratio") or sizes.default_ratio,
            body.get("resolution") or sizes.default_resolution,
        )
    plan, headers = await make_plan(request, generation, fault, latency)
    return await answer(request, generation, plan, headers)


async def make_plan(
    request: Request, generation: Generation, fault: Fault | None, latency: float | None
) -> tuple[Plan, dict[str, str]]:
    """The plan for a valid request (spending what it uses), its headers, its delay waited."""
    mock, exchange = mock_of(request), exchange_of(request)
    chaos_delay, chaos_fault = mock.draw_chaos()
    asked = Asked(
        exchange.body,
        request.headers,
        generation.n,
        fault,
        latency,
        chaos_delay,
        chaos_fault,
        exchange.session,
    )
    plan = mock.plan(asked)
    exchange.fault = plan.fault.name if plan.fault else None
    exchange.stub = plan.stub.name if plan.stub else None
    exchange.answered.fault_source = plan.source
    exchange.answered.unmatched = plan.fault is None and plan.stub is None
    headers = plan.fault.headers() if plan.fault else {}
    if plan.stub is not None:
        headers["X-Mock-Stub"] = plan.stub.x_mock_stub
    if plan.delay_ms:
        headers["X-Mock-Latency-Ms"] = str(round(plan.delay_ms))
        await asyncio.sleep(plan.delay_ms / 1000)
    return plan, headers


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
        return await stub_answer(mock, exchange, generation, plan, urls, headers, base)
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
    base: str,
) -> Response:
    """A stub's canned answer, its placeholders filled in from the request."""
    assert plan.stub is not None
    stub = plan.stub
    values = {
        "base": base,
        "created": mock.config.created_at(),
        "prompt": generation.prompt,
        "model": generation.model,
        "data": await data(mock, generation, plan, urls) if stub.uses_data else None,
    }
    canned = stub.render(values, urls)
    text = json.dumps(canned)
    exchange.images = [url for url in urls if url in text] + fixture_urls(canned, base)
    if stub.status >= 400 and isinstance(canned, dict) and isinstance(canned.get("error"), dict):
        exchange.error = str(canned["error"].get("code"))
        exchange.error_message = str(canned["error"].get("message"))
    if stub.status in NO_BODY:  # the stub file cannot give one
        return Response(status_code=stub.status, headers={**stub.headers, **headers})
    return JSONResponse(canned, status_code=stub.status, headers={**stub.headers, **headers})


def fixture_urls(canned: Any, base: str) -> list[str]:
    """The URLs of fixture files (`{{file:PATH}}`) in a stub's answer's `data`."""
    data = canned.get("data") if isinstance(canned, dict) else None
    prefix = base + FIXTURE_ROUTE
    items = data if isinstance(data, list) else []
    return [
        item["url"]
        for item in items
        if isinstance(item, dict) and str(item.get("url", "")).startswith(prefix)
    ]


def fixture_file(mock: MockState, folder: str, name: str) -> Response:
    """GET /images/_fixtures/FOLDER/NAME: the file of the fixtures folder (an image --record
    downloaded); only a file inside it, neither of whose names begins with '.'."""
    parts = [folder, name]
    root = mock.config.fixtures
    if root is not None and all(_SAFE_NAME.fullmatch(p) and p[0] != "." for p in parts):
        root = root.resolve()
        path = (root / folder / name).resolve()
        if path.is_relative_to(root) and path.is_file():
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return Response(path.read_bytes(), media_type=kind)
    raise ApiError(
        "image_not_found",
        path=f"{FIXTURE_ROUTE}{folder}/{name}",
        detail="no such file in the fixtures folder",
    )


FIXTURES_FOLDER = FIXTURE_ROUTE.strip("/").split("/")[-1]  # no model is called "_fixtures"
_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")
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
    if mock.upstream is not None:
        return await proxy_models(request, mock, "/models")
    authenticate(mock, request.headers)
    models = [model_object(mock, m) for m in mock.contract.models]
    return JSONResponse({"object": "list", "data": models})


async def retrieve_model(request: Request) -> Response:
    mock = mock_of(request)
    model = request.path_params["model"]
    if mock.upstream is not None:
        return await proxy_models(request, mock, "/models/" + quote(model, safe=""))
    authenticate(mock, request.headers)
    if model not in mock.contract.models:
        raise mock.contract.unknown_model(model)
    return JSONResponse(model_object(mock, model))


async def get_image(request: Request) -> Response:
    mock = mock_of(request)
    if request.path_params["model"] == FIXTURES_FOLDER:
        return fixture_file(mock, request.path_params["size"], request.path_params["name"])
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


# ---------------------------------------------------------------------------- proxy mode


async def read_raw(request: Request, max_body: int) -> bytes:
    """The body's bytes, at most `max_body` (else request_too_large, answered by the mock: a
    body it did not read cannot be forwarded); kept, so `read_json_object` reads them again."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_body:
        raise ApiError("request_too_large", headers={"Connection": "close"}, limit=max_body)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_body:
            raise ApiError("request_too_large", headers={"Connection": "close"}, limit=max_body)
        chunks.append(chunk)
    raw = request._body = b"".join(chunks)
    return raw


async def judge(
    request: Request, mock: MockState, exchange: Exchange
) -> tuple[Generation | None, ApiError | None]:
    """The mock's own verdict on a request: its generation if it would answer it, else the
    error it would answer (the first: the key, then the body)."""
    refusal = None
    try:
        authenticate(mock, request.headers)
    except ApiError as exc:
        refusal = exc
    try:
        body = exchange.body = await read_json_object(request, mock.config.max_body)
        generation = mock.contract.validate(body)
    except ApiError as exc:
        return None, refusal or exc
    exchange.warnings = mock.contract.warnings(body)
    return (generation, None) if refusal is None else (None, refusal)


def verdict_of(mock: MockState, refusal: ApiError | None) -> Verdict:
    if refusal is None:
        return ACCEPTED
    return (mock.catalogue.kinds[refusal.code].status, refusal.code, refusal.param)


async def proxy_images(request: Request, mock: MockState, exchange: Exchange) -> Response:
    """A generation request in proxy mode: judged by the mock's contract; answered by a fault
    or stub the plan has, by the mock's error with --upstream-invalid reject, else forwarded
    and the two verdicts compared."""
    raw = await read_raw(request, mock.config.max_body)
    fault, latency = mock_headers(mock, request.headers)
    generation, refusal = await judge(request, mock, exchange)
    mine = verdict_of(mock, refusal)
    exchange.mock_verdict = {"status": mine[0], "error": mine[1], "param": mine[2]}
    if refusal is not None and mock.config.upstream_invalid == "reject":
        raise refusal
    headers: dict[str, str] = {}
    if generation is not None:
        plan, headers = await make_plan(request, generation, fault, latency)
        if plan.fault is not None or plan.stub is not None:
            return await answer(request, generation, plan, headers)
    got = await forwarded(request, mock, exchange, "/images/generations", raw)
    judged(exchange, mine, got)
    if mock.recorder is not None and isinstance(exchange.body, dict):
        exchange.recorded = await mock.recorder.record(exchange.body, got)
    return Response(got.content, status_code=got.status, headers={**got.headers, **headers})


async def forwarded(
    request: Request, mock: MockState, exchange: Exchange, path: str, raw: bytes | None = None
) -> UpstreamAnswer:
    """The upstream's answer to the request, noted in the Exchange; a gateway error too."""
    upstream = mock.upstream
    assert upstream is not None
    note: dict[str, Any] = {"url": upstream.base + path}
    exchange.upstream = note
    method = "POST" if raw is not None else "GET"
    try:
        auth, kind = request.headers.get("authorization"), request.headers.get("content-type")
        got = await upstream.forward(method, path, auth, raw, kind)
    except ApiError as exc:
        note["failure"] = exc.code
        raise
    status, code, param = got.verdict
    message = None if got.message is None else clip(got.message)
    note.update(status=status, error=code and clip(code), param=param and clip(param))
    note["message"] = message
    note["duration_ms"] = got.elapsed_ms
    if status >= 400:
        exchange.error, exchange.param = code or "upstream_error", param
        exchange.error_message = got.message or f"the upstream answered {status}"
    data = got.payload.get("data") if isinstance(got.payload, dict) else None
    if isinstance(data, list):
        exchange.images = [
            item["url"]
            for item in data
            if isinstance(item, dict) and isinstance(item.get("url"), str)
        ]
    return got


def judged(exchange: Exchange, mine: Verdict, got: UpstreamAnswer) -> None:
    """Drift between the mock's verdict and the upstream's: in the Exchange and a warning."""
    theirs = got.verdict
    kind = drift(mine, theirs)
    if kind is not None:
        exchange.drift = kind
        param = mine[2] or theirs[2]
        exchange.warnings.append(ContractWarning("drift", param, describe(kind, mine, theirs)))


async def proxy_models(request: Request, mock: MockState, path: str) -> Response:
    got = await forwarded(request, mock, exchange_of(request), path)
    return Response(got.content, status_code=got.status, headers=got.headers)
