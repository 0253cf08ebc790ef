"""The endpoints of the API in mock mode, the images and the service routes. Each reads the
mock from `request.app.state.mock`; `mockserver.web.routes` says which path and method reach
which. An API endpoint returns the request's `Outcome` (its answer in it), or raises an
ApiError that carries it (`outcome.Refused`).

A generation request passes its checks in one order (`ask`, which proxy mode uses too):
the key, the X-Mock-* headers, the body, the contract. Then the plan (`decided`), its
delay (`waited`, which ends early when the connection goes), and the answer (`answer`)."""

from __future__ import annotations

import base64
import functools
import hmac
import json
import math
import mimetypes
import re
from dataclasses import dataclass, replace
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mockserver.answers.faults import Fault
from mockserver.answers.images import ImageSpec, render_spec
from mockserver.answers.plan import Asked, Plan
from mockserver.answers.stubs import FIXTURE_ROUTE, NO_BODY
from mockserver.contract.validation import ContractWarning, Generation
from mockserver.engine.state import MockState
from mockserver.errors import ApiError
from mockserver.record.coverage import pair_name
from mockserver.record.outcome import ErrorNote, Outcome, begun, carrying, refused
from mockserver.redaction import masked
from mockserver.web.bodies import Sent
from mockserver.web.connection import DroppedConnection, pause

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
        raise ApiError("invalid_api_key", detail=f"Incorrect API key provided: {masked(key)}.")
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


@dataclass(frozen=True)
class Asking:
    """What a generation request asks, as far as its checks got (`ask`): the first check
    that failed is `refusal`, and `local` says whether it is of the X-Mock-* headers (the
    mock's own, not the contract's: proxy mode never forwards such a request)."""

    body: dict[str, Any] | None = None
    generation: Generation | None = None
    fault: Fault | None = None  # X-Mock-Fault
    latency_ms: float | None = None  # X-Mock-Latency-Ms
    warnings: tuple[ContractWarning, ...] = ()
    pair: str | None = None  # the ratio x resolution of a valid request without a size
    refusal: ApiError | None = None
    local: bool = False

    def outcome(self, begun: Outcome) -> Outcome:
        """`begun` with what the request asked."""
        return replace(begun, body=self.body, warnings=self.warnings, pair=self.pair)


@dataclass(frozen=True)
class Prelude:
    """What the checks every dialect's generation request passes first found (`prelude`):
    the body and the X-Mock-* headers, or the first refusal (`local`: of those headers)."""

    body: dict[str, Any] | None = None
    fault: Fault | None = None
    latency_ms: float | None = None
    refusal: ApiError | None = None
    local: bool = False


async def prelude(request: Request, mock: MockState, sent: Sent) -> Prelude:
    """The checks before a dialect's own, in the one order of every dialect, mock and proxy
    mode alike: the key (and --rpm), the X-Mock-* headers, the body; they stop at the first
    that fails, so a request refused for its key has no body read."""
    try:
        authenticate(mock, request.headers)
    except ApiError as exc:
        return Prelude(refusal=exc)
    try:
        fault, latency = mock_headers(mock, request.headers)
    except ApiError as exc:
        return Prelude(refusal=exc, local=True)
    try:
        body = await sent.json_object()
    except ApiError as exc:
        return Prelude(fault=fault, latency_ms=latency, refusal=exc)
    return Prelude(body, fault, latency)


async def ask(request: Request, mock: MockState, sent: Sent) -> Asking:
    """The checks of a generation request: the `prelude`, then the contract."""
    first = await prelude(request, mock, sent)
    if first.refusal is not None or first.body is None:
        return Asking(
            fault=first.fault,
            latency_ms=first.latency_ms,
            refusal=first.refusal,
            local=first.local,
        )
    return by_contract(mock, first.body, first.fault, first.latency_ms)


def by_contract(
    mock: MockState, body: dict[str, Any], fault: Fault | None = None, latency: float | None = None
) -> Asking:
    """What a body asks by the contract: its generation and warnings, or the refusal."""
    try:
        generation = mock.contract.validate(body)
    except ApiError as exc:
        return Asking(body, fault=fault, latency_ms=latency, refusal=exc)
    pair = None
    if body.get("size") is None:
        sizes = mock.sizes
        # An optional field sent as null counts as absent, as in the contract.
        ratio = body.get("ratio") or sizes.default_ratio
        pair = pair_name(ratio, body.get("resolution") or sizes.default_resolution)
    warnings = tuple(mock.contract.warnings(body))
    return Asking(body, generation, fault, latency, warnings, pair)


async def generate_images(request: Request) -> Outcome:
    mock = mock_of(request)
    asking = await ask(request, mock, Sent(request, mock.config.max_body))
    outcome = asking.outcome(begun(request.scope))
    if asking.refusal is not None:
        raise refused(asking.refusal, outcome)
    outcome = decided(request, mock, asking, outcome)
    if not await waited(request, outcome):
        return outcome  # the connection went while the answer waited: nothing to send
    return await answer(request, mock, asking, outcome)


def decided(request: Request, mock: MockState, asking: Asking, outcome: Outcome) -> Outcome:
    """`outcome` with the plan for a valid request, spending what the plan uses (a queued
    fault's time, a stub's use)."""
    assert asking.body is not None
    assert asking.generation is not None
    chaos_delay, chaos_fault = mock.draw_chaos()
    asked = Asked(
        asking.body,
        request.headers,
        asking.generation.n,
        asking.fault,
        asking.latency_ms,
        chaos_delay,
        chaos_fault,
        outcome.arrival.session,
    )
    with carrying(outcome):
        return replace(outcome, plan=mock.plan(asked))


async def waited(request: Request, outcome: Outcome) -> bool:
    """The plan's delay waited out; whether the request's connection is still there."""
    delay = outcome.plan.delay_ms if outcome.plan is not None else 0.0
    return not delay or await pause(request.scope, delay / 1000)


def plan_headers(plan: Plan) -> dict[str, str]:
    """The headers an answer has by its plan: its fault's, its stub's, its delay."""
    headers = plan.fault.headers() if plan.fault else {}
    if plan.stub is not None:
        headers["X-Mock-Stub"] = plan.stub.x_mock_stub
    if plan.delay_ms:
        headers["X-Mock-Latency-Ms"] = str(round(plan.delay_ms))
    return headers


async def answer(request: Request, mock: MockState, asking: Asking, outcome: Outcome) -> Outcome:
    """The answer the plan decided: an injected error, no answer, a stub's, or the images."""
    plan, generation = outcome.plan, asking.generation
    assert plan is not None
    assert generation is not None
    headers = plan_headers(plan)
    fault = plan.fault
    if fault is not None and fault.action == "error":
        raise refused(injected(fault, plan, headers), outcome)
    if fault is not None and fault.action == "disconnect":
        return replace(outcome, response=DroppedConnection())
    specs = [
        ImageSpec(generation.model, generation.width, generation.height, generation.seed, i)
        for i in range(1, plan.urls + 1)
    ]
    base = mock.config.public_url or base_url(request)
    urls = [base + mock.signer.path(spec) for spec in specs]
    filtered = fault is not None and fault.action == "filtered"
    if filtered and plan.count <= 1:
        raise refused(withheld(headers), outcome)
    with carrying(outcome):
        if plan.stub is not None and plan.stub.fault is None:
            return await stub_answer(mock, outcome, generation, urls, headers, base)
        made = await data(mock, generation, plan, urls)
        payload = {"created": mock.config.created_at(), "data": made[1:] if filtered else made}
    response: Response = JSONResponse(payload, headers=headers)
    if fault is not None and fault.action == "malformed":
        text = json.dumps(payload)
        response = Response(text[: len(text) // 2], media_type="application/json", headers=headers)
    images = urls[1 if filtered else 0 : plan.count]
    return replace(outcome, images=tuple(images), response=response)


def withheld(headers: dict[str, str]) -> ApiError:
    """The `image_filtered` fault when it leaves no image: the shape has no per-image error,
    so a gateway passing the upstream's answer on can only refuse the request."""
    detail = "the only image made was withheld as sensitive output"
    return ApiError("content_policy_violation", headers=headers, detail=detail)


def injected(fault: Fault, plan: Plan, headers: dict[str, str]) -> ApiError:
    """The error of a fault that answers one (`action: error`)."""
    assert fault.error is not None
    retry = fault.retry_after_ms
    return ApiError(
        fault.error,
        param=fault.param,
        headers=headers,
        detail=f"answered by the stub {plan.stub.name}"
        if plan.stub
        else "a fault the mock was asked to inject",
        retry_after=f"{math.ceil(retry / 1000)}s" if retry else "a moment",
        delay=f"{round(plan.delay_ms)} ms",
    )


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
    outcome: Outcome,
    generation: Generation,
    urls: list[str],
    headers: dict[str, str],
    base: str,
) -> Outcome:
    """A stub's canned answer, its placeholders filled in from the request."""
    plan = outcome.plan
    assert plan is not None
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
    images = tuple([url for url in urls if url in text] + fixture_urls(canned, base))
    error = None
    if stub.status >= 400 and isinstance(canned, dict) and isinstance(canned.get("error"), dict):
        error = ErrorNote(str(canned["error"].get("code")), str(canned["error"].get("message")))
    all_headers = {**stub.headers, **headers}
    response: Response = (
        Response(status_code=stub.status, headers=all_headers)  # the stub file cannot give one
        if stub.status in NO_BODY
        else JSONResponse(canned, status_code=stub.status, headers=all_headers)
    )
    return replace(outcome, images=images, error=error, response=response)


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


async def list_models(request: Request) -> Outcome:
    mock = mock_of(request)
    authenticate(mock, request.headers)
    models = [model_object(mock, m) for m in mock.contract.models]
    return replace(begun(request.scope), response=JSONResponse({"object": "list", "data": models}))


async def retrieve_model(request: Request) -> Outcome:
    mock = mock_of(request)
    model = request.path_params["model"]
    authenticate(mock, request.headers)
    if model not in mock.contract.models:
        raise mock.contract.unknown_model(model)
    return replace(begun(request.scope), response=JSONResponse(model_object(mock, model)))


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
    return Response(png, media_type=spec.media_type, headers=headers)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
