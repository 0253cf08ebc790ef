"""Ark's own dialect (Volcengine Ark, Seedream 4.0 and 4.5): `POST /api/v3/images/generations`.

A request passes the engine's checks in their one order (the key and --rpm, the X-Mock-*
headers, the body), then Ark's rules (`ark_contract`); the plan (faults, stubs, chaos,
latency) is the engine's. The answer is `{model, created, data: [{url | b64_json, size}],
usage}`, its images (JPEG unless `output_format: png`, watermarked unless `watermark:
false`) served at their signed URLs; errors are in Ark's envelope `{"error": {"code",
"message", "param", "type"}}`, the message ending with the answer's request id."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mockserver.answers.faults import Fault
from mockserver.answers.images import ImageSpec, render_spec
from mockserver.answers.plan import Asked
from mockserver.dialects import ark_stream
from mockserver.dialects.ark_contract import ArkGeneration, checked, rules
from mockserver.engine.state import MockState
from mockserver.errors import ApiError, ErrorKind
from mockserver.record.outcome import Outcome, begun, carrying, refused
from mockserver.web.bodies import Sent
from mockserver.web.connection import DroppedConnection
from mockserver.web.dialect import Dialect
from mockserver.web.endpoints import (
    base_url,
    injected,
    mock_of,
    plan_headers,
    prelude,
    waited,
)
from mockserver.web.pipeline import api
from mockserver.web.routes import BODY, RouteSpec, api_route

PREFIX = "/api/v3/"
GENERATIONS = PREFIX + "images/generations"
FILTERED = "OutputImageSensitiveContentDetected"  # Ark's code of an image withheld as sensitive


def envelope(error: ApiError, kind: ErrorKind, message: str, request_id: str) -> dict[str, Any]:
    """Ark's envelope of one of the mock's errors: Ark's code and type for the mock's."""
    code, kind_type = rules().codes.get(error.code, (error.code, kind.type))
    body = {"code": code, "message": f"{message} Request id: {request_id}", "param": error.param}
    return {"error": {**body, "type": kind_type}}


@dataclass(frozen=True)
class ArkAsking:
    """What a request asks, as far as its checks got (`ask`): the first that failed is
    `refusal`; `local` says it is of the X-Mock-* headers (proxy mode never forwards it)."""

    body: dict[str, Any] | None = None
    generation: ArkGeneration | None = None
    fault: Fault | None = None  # X-Mock-Fault
    latency_ms: float | None = None  # X-Mock-Latency-Ms
    refusal: ApiError | None = None
    local: bool = False


async def ask(request: Request, mock: MockState, sent: Sent) -> ArkAsking:
    """The checks of a request: the engine's `prelude` (key, X-Mock-* headers, body), then
    Ark's rules; they stop at the first that fails."""
    first = await prelude(request, mock, sent)
    fault, latency = first.fault, first.latency_ms
    if first.refusal is not None or first.body is None:
        return ArkAsking(fault=fault, latency_ms=latency, refusal=first.refusal, local=first.local)
    try:
        generation = checked(rules(), first.body)
    except ApiError as exc:
        return ArkAsking(first.body, fault=fault, latency_ms=latency, refusal=exc)
    return ArkAsking(first.body, generation, fault, latency)


def planned(request: Request, mock: MockState, asking: ArkAsking, outcome: Outcome) -> Outcome:
    """`outcome` with the plan for a valid request, spending what the plan uses."""
    generation = asking.generation
    assert asking.body is not None
    assert generation is not None
    chaos_delay, chaos_fault = mock.draw_chaos()
    asked = Asked(
        asking.body,
        request.headers,
        generation.count,
        asking.fault,
        asking.latency_ms,
        chaos_delay,
        chaos_fault,
        outcome.arrival.session,
    )
    with carrying(outcome):
        return replace(outcome, plan=mock.plan(asked))


async def generate_images(request: Request) -> Outcome:
    mock = mock_of(request)
    asking = await ask(request, mock, Sent(request, mock.config.max_body))
    outcome = replace(begun(request.scope), body=asking.body)
    if asking.refusal is not None:
        raise refused(asking.refusal, outcome)
    generation = asking.generation
    assert generation is not None
    outcome = planned(request, mock, asking, outcome)
    # A stream waits before each image instead (ark_stream).
    if not generation.stream and not await waited(request, outcome):
        return outcome  # the connection went while the answer waited
    return await answer(request, mock, generation, outcome)


def specs(generation: ArkGeneration, count: int) -> list[ImageSpec]:
    g = generation
    return [
        ImageSpec(g.model, g.width, g.height, g.seed, i, g.watermark, g.kind)
        for i in range(1, count + 1)
    ]


async def answer(
    request: Request, mock: MockState, generation: ArkGeneration, outcome: Outcome
) -> Outcome:
    """The answer the plan decided: an injected error, no answer, a stub's, or the images."""
    plan = outcome.plan
    assert plan is not None
    headers = plan_headers(plan)
    fault = plan.fault
    if fault is not None and fault.action == "error":
        raise refused(injected(fault, plan, headers), outcome)
    base = mock.config.public_url or base_url(request)
    urls = [base + mock.signer.path(spec) for spec in specs(generation, plan.urls)]
    if generation.stream and (plan.stub is None or plan.stub.fault is not None):
        return streamed(request, mock, generation, outcome, urls, headers)
    if fault is not None and fault.action == "disconnect":
        return replace(outcome, response=DroppedConnection())
    with carrying(outcome):
        made = await data(mock, generation, plan.count, urls)
        values = {"base": base, "created": mock.config.created_at(), "data": made}
        if plan.stub is not None and plan.stub.fault is None:
            return stub_answer(request, outcome, generation, urls, headers, values)
    filtered = fault is not None and fault.action == "filtered"
    if filtered and made:
        made[0] = withheld(outcome.answer_id)
    payload = {
        "model": generation.model,
        "created": values["created"],
        "data": made,
        "usage": usage(generation, len(made) - filtered),
    }
    response: Response = JSONResponse(payload, headers=headers)
    if fault is not None and fault.action == "malformed":
        text = json.dumps(payload)
        response = Response(text[: len(text) // 2], media_type="application/json", headers=headers)
    images = urls[1 if filtered else 0 : plan.count]
    return replace(outcome, images=tuple(images), response=response)


def withheld(request_id: str) -> dict[str, Any]:
    """The place of an image the `image_filtered` fault withheld: Ark's per-image error, the
    batch going on without it."""
    message = f"The generated image may contain sensitive content. Request id: {request_id}"
    return {"error": {"code": FILTERED, "message": message}}


async def data(
    mock: MockState,
    generation: ArkGeneration,
    count: int,
    urls: list[str],
    first: ImageSpec | None = None,
) -> list[dict[str, Any]]:
    """Each image's URL (or its bytes, with `response_format: b64_json`) and its size; the
    images from `first` on, if given."""
    size = f"{generation.width}x{generation.height}"
    if generation.response_format != "b64_json":
        return [{"url": url, "size": size} for url in urls[:count]]
    made = []
    for spec in [first] if first is not None else specs(generation, count):
        image = await mock.renderer.png(spec, functools.partial(render_spec, spec))
        made.append({"b64_json": base64.b64encode(image).decode(), "size": size})
    return made


def streamed(
    request: Request,
    mock: MockState,
    generation: ArkGeneration,
    outcome: Outcome,
    urls: list[str],
    headers: dict[str, str],
) -> Outcome:
    """The answer as Server-Sent Events, each image's as it is made (`ark_stream`)."""
    plan = outcome.plan
    assert plan is not None
    image_specs = specs(generation, plan.count)
    filtered = plan.fault is not None and plan.fault.action == "filtered"

    async def image(index: int) -> dict[str, Any]:
        if filtered and index == 0:
            return withheld(outcome.answer_id)
        made = await data(mock, generation, 1, urls[index : index + 1], image_specs[index])
        return made[0]

    common = {"model": generation.model, "created": mock.config.created_at()}
    stream = ark_stream.events(
        request.scope,
        plan.count,
        plan.delay_ms / 1000,
        image,
        common,
        usage(generation, plan.count - filtered),
        urls,
    )
    response = ark_stream.EventStream(stream, headers, stream_fault(plan.fault))
    images = urls[1 if filtered else 0 : plan.count]
    return replace(outcome, images=tuple(images), response=response)


def stream_fault(fault: Fault | None) -> ark_stream.Fault:
    """What a fault does to a stream: `disconnect` and `malformed` their own; `partial`
    (fewer images) and `image_filtered` (a `partial_failed` event) are in its events."""
    if fault is not None and fault.action in ("disconnect", "malformed"):
        return "disconnect" if fault.action == "disconnect" else "malformed"
    return None


def usage(generation: ArkGeneration, count: int) -> dict[str, int]:
    tokens = round(count * generation.width * generation.height / 256)
    return {"generated_images": count, "output_tokens": tokens, "total_tokens": tokens}


def stub_answer(
    request: Request,
    outcome: Outcome,
    generation: ArkGeneration,
    urls: list[str],
    headers: Mapping[str, str],
    values: dict[str, Any],
) -> Outcome:
    """A stub's canned answer, its placeholders filled in from the request: a stream, if
    the request asked for one and the answer is a success with a `data` array."""
    stub = outcome.plan.stub if outcome.plan is not None else None
    assert stub is not None
    canned = stub.render({**values, "prompt": generation.prompt, "model": generation.model}, urls)
    text = json.dumps(canned)
    images = tuple(url for url in urls if url in text)
    all_headers = {**stub.headers, **headers}
    items = canned.get("data") if isinstance(canned, dict) else None
    response: Response
    if generation.stream and stub.status < 300 and isinstance(items, list):
        response = stub_stream(request, outcome, generation, canned, items, all_headers)
    else:
        response = JSONResponse(canned, status_code=stub.status, headers=all_headers)
    return replace(outcome, images=images, response=response)


def stub_stream(
    request: Request,
    outcome: Outcome,
    generation: ArkGeneration,
    canned: dict[str, Any],
    items: list[Any],
    headers: dict[str, str],
) -> Response:
    """A stub's canned answer to a streamed request, as the stream Ark would send: an event
    for each item of its `data` (`partial_failed` for one with `error`), then `completed`
    with its `usage` (else the usage of its images), each after the stub's delay."""
    plan = outcome.plan
    assert plan is not None
    made = [item if isinstance(item, dict) else {"value": item} for item in items]
    urls = [item["url"] if isinstance(item.get("url"), str) else "" for item in made]

    async def image(index: int) -> dict[str, Any]:
        return made[index]

    succeeded = sum("error" not in item for item in made)
    counted = canned.get("usage", usage(generation, succeeded))
    common: dict[str, Any] = {key: canned[key] for key in ("model", "created") if key in canned}
    stream = ark_stream.events(
        request.scope, len(made), plan.delay_ms / 1000, image, common, counted, urls
    )
    status = plan.stub.status if plan.stub is not None else 200
    return ark_stream.EventStream(stream, headers, status=status)


async def proxy_generate_images(request: Request) -> Outcome:
    """Proxy mode's answer (`ark_proxy`)."""
    from mockserver.dialects import ark_proxy  # imported here: it builds on this module

    return await ark_proxy.generate_images(request)


# Not yet in /openapi.json, whose text documents the seed document's routes.
ROUTES: tuple[RouteSpec, ...] = (
    api_route(
        GENERATIONS,
        "POST",
        api(generate_images, proxy_generate_images),
        "arkCreateImages",
        "invalid_api_key",
        "rate_limit_exceeded",
        *BODY,
        "missing_required_parameter",
        "invalid_value",
        "model_not_found",
        "stub_error",
        "server_busy",
        "server_error",
    ),
)
ROUTES = tuple(replace(spec, documented=False) for spec in ROUTES)

DIALECT = Dialect("ark", PREFIX, ROUTES, envelope)
