"""Proxy mode (`--upstream URL`) and recording (`--record DIR`) for Ark's route: the
upstream's base is Ark's (`https://ark.cn-beijing.volces.com/api/v3`, or a mock's
`/api/v3`), to which `/images/generations` is added, as a `/v1` base is for the
OpenAI-compatible route.

A request passes the checks of mock mode in their one order (`ark.ask`); a request refused
for its X-Mock-* headers is refused as in mock mode, one refused by Ark's rules is answered
so under `--upstream-invalid reject` and forwarded otherwise, and a valid one is planned as
in mock mode (a fault or a stub answers it locally). What the checks say is the mock's
verdict in Ark's codes (`schemas/dialects/ark/errors.json`), so drift is judged by Ark's
contract: the upstream answers in Ark's envelope. A streamed request's events are handed
on as the upstream sent them, once its stream has ended; they are not recorded (a stub
file holds a JSON answer, which a mock streams itself when asked)."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mockserver.answers.upstream import ACCEPTED, Verdict
from mockserver.dialects import ark
from mockserver.dialects.ark_contract import rules
from mockserver.engine.state import MockState
from mockserver.errors import ApiError
from mockserver.record.outcome import Outcome, begun, carrying, refused
from mockserver.web.bodies import Sent
from mockserver.web.connection import BodyTimeout
from mockserver.web.endpoints import mock_of, plan_headers, waited
from mockserver.web.proxy import GENERATIONS, forwarded, judged

# The fields of a request a recorded stub matches on: those that change Ark's answer.
MATCHED = (
    "model",
    "prompt",
    "image",
    "size",
    "response_format",
    "sequential_image_generation",
    "sequential_image_generation_options",
    "watermark",
    "output_format",
)


def verdict_of(mock: MockState, refusal: ApiError | None) -> Verdict:
    """What the mock's checks say of the request, as Ark would answer it."""
    if refusal is None:
        return ACCEPTED
    code = rules().codes.get(refusal.code, (refusal.code, ""))[0]
    return (mock.catalogue.kinds[refusal.code].status, code, refusal.param)


async def generate_images(request: Request) -> Outcome:
    mock = mock_of(request)
    sent = Sent(request, mock.config.max_body)
    asking = await ark.ask(request, mock, sent)
    mine = verdict_of(mock, asking.refusal)
    verdict = {"status": mine[0], "error": mine[1], "param": mine[2]}
    outcome = replace(begun(request.scope), body=asking.body, mock_verdict=verdict)
    if asking.refusal is not None:
        if asking.local or mock.config.upstream_invalid == "reject":
            raise refused(asking.refusal, outcome)
        outcome = await _refused_but_forwarded(sent, asking.refusal, outcome)
    else:
        generation = asking.generation
        assert generation is not None
        outcome = ark.planned(request, mock, asking, outcome)
        plan = outcome.plan
        local = plan is not None and (plan.fault is not None or plan.stub is not None)
        if local and generation.stream:
            return await ark.answer(request, mock, generation, outcome)
        if not await waited(request, outcome):
            return outcome  # the connection went while the answer waited
        if local:
            return await ark.answer(request, mock, generation, outcome)
    return await _forward(request, mock, outcome, mine, await sent.raw())


async def _refused_but_forwarded(sent: Sent, refusal: ApiError, outcome: Outcome) -> Outcome:
    """A request Ark's rules refuse, about to be forwarded: its bytes read (if they cannot
    be, the mock's refusal answers), and its body for the journal."""
    try:
        await sent.raw()
    except (ApiError, BodyTimeout):
        raise refused(refusal, outcome) from None
    if outcome.body is None:
        with contextlib.suppress(ApiError):
            outcome = replace(outcome, body=await sent.json_object())
    return outcome


async def _forward(
    request: Request, mock: MockState, outcome: Outcome, mine: Verdict, raw: bytes
) -> Outcome:
    """The upstream's answer, judged by Ark's contract, and recorded with --record."""
    with carrying(outcome):
        got, outcome = await forwarded(request, mock, outcome, GENERATIONS, raw)
        outcome = judged(outcome, mine, got)
        recorder = mock.recorder
        if recorder is not None and isinstance(outcome.body, dict):
            note: dict[str, Any] | None
            if isinstance(got.payload, dict):
                note = await recorder.record(outcome.body, got, MATCHED)
            else:
                note = {"written": False, "error": "not recorded: a streamed answer"}
            outcome = replace(outcome, recorded=note)
    headers = plan_headers(outcome.plan) if outcome.plan is not None else {}
    response = Response(got.content, status_code=got.status, headers={**got.headers, **headers})
    return replace(outcome, response=response)
