"""Proxy mode (`--upstream URL`): the API endpoints that forward to the real service.

A generation request passes the same checks as in mock mode, in the same order
(`endpoints.ask`: the key, the X-Mock-* headers, the body, the contract), read by the one
body reader (`bodies.Sent`), so the same request gets the same refusal in both modes. What
the checks say is the mock's verdict (`upstream.Verdict`), and then:

- a request refused for its X-Mock-* headers is refused as in mock mode: those headers are
  the mock's own, never forwarded;
- one refused by the contract (the key, the body, the schema) is answered with the mock's
  own error under `--upstream-invalid reject`; else it is forwarded, and its body read for
  that (and for the journal) even when the checks stopped before it. A body the mock cannot
  read (larger than `--max-body`, or late past the read timeout) cannot be forwarded: the
  mock's refusal answers then, as in mock mode;
- a valid one is planned as in mock mode: a fault or a stub answers it locally, after the
  plan's delay; otherwise it is forwarded after that delay.

A forwarded answer is compared with the mock's verdict (`upstream.drift`). Model requests
are forwarded as they are.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from mockserver.answers.upstream import ACCEPTED, UpstreamAnswer, Verdict, describe, drift
from mockserver.contract.validation import ContractWarning
from mockserver.engine.state import MockState
from mockserver.errors import ApiError
from mockserver.record.journal import clip
from mockserver.record.outcome import ErrorNote, Outcome, begun, carrying, refused
from mockserver.web.bodies import Sent
from mockserver.web.connection import BodyTimeout
from mockserver.web.endpoints import (
    Asking,
    answer,
    ask,
    by_contract,
    decided,
    mock_of,
    plan_headers,
    waited,
)

GENERATIONS = "/images/generations"


def verdict_of(mock: MockState, refusal: ApiError | None) -> Verdict:
    if refusal is None:
        return ACCEPTED
    return (mock.catalogue.kinds[refusal.code].status, refusal.code, refusal.param)


async def generate_images(request: Request) -> Outcome:
    mock = mock_of(request)
    sent = Sent(request, mock.config.max_body)
    asking = await ask(request, mock, sent)
    mine = verdict_of(mock, asking.refusal)
    verdict = {"status": mine[0], "error": mine[1], "param": mine[2]}
    outcome = replace(asking.outcome(begun(request.scope)), mock_verdict=verdict)
    if asking.refusal is not None:
        if asking.local or mock.config.upstream_invalid == "reject":
            raise refused(asking.refusal, outcome)
        outcome = await _refused_but_forwarded(mock, sent, asking, outcome)
    else:
        outcome = decided(request, mock, asking, outcome)
        if not await waited(request, outcome):
            return outcome  # the connection went while the answer waited: nothing to send
        plan = outcome.plan
        if plan is not None and (plan.fault is not None or plan.stub is not None):
            return await answer(request, mock, asking, outcome)
    return await _forward_generation(request, mock, outcome, mine, await sent.raw())


async def _refused_but_forwarded(
    mock: MockState, sent: Sent, asking: Asking, outcome: Outcome
) -> Outcome:
    """A request the contract refuses, about to be forwarded: its bytes read (if they cannot
    be, the mock's refusal answers), and for the journal its body and warnings, where the
    checks stopped before them."""
    assert asking.refusal is not None
    try:
        await sent.raw()
    except (ApiError, BodyTimeout):
        raise refused(asking.refusal, outcome) from None
    if outcome.body is not None:
        return outcome
    with contextlib.suppress(ApiError):
        body = await sent.json_object()
        judged = by_contract(mock, body)
        return replace(outcome, body=body, warnings=judged.warnings, pair=judged.pair)
    return outcome


async def _forward_generation(
    request: Request, mock: MockState, outcome: Outcome, mine: Verdict, raw: bytes
) -> Outcome:
    """The upstream's answer to a generation request, judged against the mock's verdict,
    and recorded with --record."""
    with carrying(outcome):
        got, outcome = await forwarded(request, mock, outcome, GENERATIONS, raw)
        outcome = judged(outcome, mine, got)
        if mock.recorder is not None and isinstance(outcome.body, dict):
            outcome = replace(outcome, recorded=await mock.recorder.record(outcome.body, got))
    headers = plan_headers(outcome.plan) if outcome.plan is not None else {}
    response = Response(got.content, status_code=got.status, headers={**got.headers, **headers})
    return replace(outcome, response=response)


async def forwarded(
    request: Request, mock: MockState, outcome: Outcome, path: str, raw: bytes | None = None
) -> tuple[UpstreamAnswer, Outcome]:
    """The upstream's answer to the request (its body as sent, if it has one), and `outcome`
    with what the journal notes of it; a gateway error carries that note too."""
    upstream = mock.upstream
    assert upstream is not None
    note: dict[str, Any] = {"url": upstream.base + path}
    headers = request.headers
    try:
        got = await upstream.forward(
            "POST" if raw is not None else "GET",
            path,
            headers.get("authorization"),
            raw,
            headers.get("content-type"),
            headers.get("content-encoding"),
        )
    except ApiError as exc:
        raise refused(exc, replace(outcome, upstream={**note, "failure": exc.code})) from None
    status, code, param = got.verdict
    message = None if got.message is None else clip(got.message)
    note.update(status=status, error=code and clip(code), param=param and clip(param))
    note.update(message=message, duration_ms=got.elapsed_ms)
    error = None
    if status >= 400:
        error = ErrorNote(
            code or "upstream_error", got.message or f"the upstream answered {status}", param
        )
    data = got.payload.get("data") if isinstance(got.payload, dict) else None
    images = tuple(
        item["url"]
        for item in (data if isinstance(data, list) else ())
        if isinstance(item, dict) and isinstance(item.get("url"), str)
    )
    return got, replace(outcome, upstream=note, error=error, images=images)


def judged(outcome: Outcome, mine: Verdict, got: UpstreamAnswer) -> Outcome:
    """`outcome` with the drift between the mock's verdict and the upstream's, if they part:
    noted, and as a warning."""
    theirs = got.verdict
    kind = drift(mine, theirs)
    if kind is None:
        return outcome
    warning = ContractWarning("drift", mine[2] or theirs[2], describe(kind, mine, theirs))
    return replace(outcome, drift=kind, warnings=(*outcome.warnings, warning))


async def list_models(request: Request) -> Outcome:
    return await _forward_as_it_is(request, "/models")


async def retrieve_model(request: Request) -> Outcome:
    return await _forward_as_it_is(
        request, "/models/" + quote(request.path_params["model"], safe="")
    )


async def _forward_as_it_is(request: Request, path: str) -> Outcome:
    outcome = begun(request.scope)
    with carrying(outcome):
        got, outcome = await forwarded(request, mock_of(request), outcome, path)
    response = Response(got.content, status_code=got.status, headers=got.headers)
    return replace(outcome, response=response)
