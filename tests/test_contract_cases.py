"""The contract as data: every case of fixtures/contract/*.json, run over a real socket.

A case file is checked against fixtures/contract.schema.json first, so a typo in a case fails
by name instead of silently testing nothing. Each case is its own test, `<file stem>::<name>`,
against the `jimeng_mock` server of its "server" options, sent and judged by the runner that
`jimeng-mock conform` uses (mockserver/contract/cases.py), holding the mock to its own promises too.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from PIL import Image

import mockserver.web.endpoints
from mockserver import MockServer
from mockserver.contract.cases import Case, CaseFile, MockPromises, Target, case_files, judge, send

ROOT = Path(__file__).resolve().parent.parent
CASE_DIR = ROOT / "fixtures" / "contract"
CASE_SCHEMA = ROOT / "fixtures" / "contract.schema.json"
SCHEMAS = ROOT / "schemas"

GENERATIONS = "/v1/images/generations"
DEFAULT_CREATED = 1735689600
TIMEOUT = httpx.Timeout(30.0)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _validator(path: Path) -> Draft202012Validator:
    schema = _read_json(path)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


FILES = case_files([CASE_DIR])
CASE_FILES = [case_file.path for case_file in FILES]
CASES = [case for case_file in FILES for case in case_file.cases]
ERROR_VALIDATOR = _validator(SCHEMAS / "error.response.json")
RESPONSE_VALIDATOR = _validator(SCHEMAS / "images-generations.response.json")


# ------------------------------------------------------------------------------ the case files


def test_case_files_exist() -> None:
    assert CASE_FILES, f"no case files in {CASE_DIR}"
    assert CASE_SCHEMA.is_file()
    Draft202012Validator.check_schema(_read_json(CASE_SCHEMA))


@pytest.mark.parametrize("case_file", FILES, ids=[f.path.name for f in FILES])
def test_case_file_matches_schema(case_file: CaseFile) -> None:
    assert not case_file.problems, (
        f"{case_file.path.relative_to(ROOT)} does not match {CASE_SCHEMA.name}:\n"
        + "\n".join(case_file.problems)
    )


def test_case_ids_are_unique() -> None:
    """Names are unique within a file, so every `<file stem>::<name>` id is unique."""
    ids = [case.id for case in CASES]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"case names repeated within a file: {duplicates}"


def test_every_catalogue_code_has_a_case() -> None:
    catalogue = set(_read_json(SCHEMAS / "errors.json")["errors"])
    expected = {
        case.expect["error"].get("code")
        for case in CASES
        if "error" in case.expect and case.api == "/v1"
    }
    # server_error cannot be provoked over HTTP (test_server_error_envelope covers it), nor
    # stub_error, which needs a stub file changed while the mock runs (test_stubs.py), nor
    # server_busy, which needs renders at once (test_resources.py), nor request_timeout, which
    # needs a body that stops coming (test_hostile_connections.py).
    untestable = {"server_error", "stub_error", "server_busy", "request_timeout"}
    assert expected | untestable == catalogue, (
        f"codes without a case: {sorted(catalogue - expected - untestable)}; "
        f"codes not in schemas/errors.json: {sorted(expected - catalogue)}"
    )


def test_every_ratio_and_resolution_has_a_case() -> None:
    sizes = _read_json(SCHEMAS / "sizes.json")
    table, defaults = sizes["table"], sizes["defaults"]
    covered = set()
    for case in CASES:
        body = case.request.get("body")
        if (
            case.expect.get("status") == 200
            and case.path == GENERATIONS
            and "sizes" not in case.server
            and isinstance(body, dict)
            and "size" not in body
        ):
            covered.add(
                (
                    body.get("ratio", defaults["ratio"]),
                    body.get("resolution", defaults["resolution"]),
                )
            )
    missing = [(r, res) for r, row in table.items() for res in row if (r, res) not in covered]
    assert not missing, f"ratio x resolution pairs without a 200 case: {missing}"


def test_ark_s_cases_use_ark_s_codes() -> None:
    """Ark's cases (api /api/v3) expect the codes Ark answers the mock's errors with."""
    ark_codes = _read_json(SCHEMAS / "dialects/ark/errors.json")["codes"].values()
    known = {entry["code"] for entry in ark_codes}
    ark_cases = [case for case in CASES if case.api == "/api/v3"]
    assert ark_cases
    codes = {case.expect["error"]["code"] for case in ark_cases if "error" in case.expect}
    assert codes <= known, sorted(codes - known)


# ------------------------------------------------------------------------------ running a case


@pytest.fixture
def jimeng_mock_config(case: Case) -> dict[str, Any]:
    """The case's "server" options, for the plugin's `jimeng_mock`."""
    return dict(case.server)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case(case: Case, jimeng_mock: MockServer) -> None:
    assert not case.problems, f"{case.id}: does not match {CASE_SCHEMA.name}:\n" + "\n".join(
        case.problems
    )
    target = Target(jimeng_mock.url, jimeng_mock.api_key, case.server.get("public_url"))
    promises = MockPromises(created=case.server.get("created", DEFAULT_CREATED))
    with httpx.Client(timeout=TIMEOUT) as client:
        answer = send(client, target, case)
    verdict = judge(case, answer, promises)
    assert verdict.agree, "\n".join(verdict.differences) + f"\n{answer.text[:500]}"


# ------------------------------------------------------------------------------ the judge

PUBLIC = "http://public.example"  # where the stubs' image URLs point: nothing listens there
CAT = {"model": "jimeng-4.0", "prompt": "a cat", "n": 1, "size": "1024*1024"}


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "orange").save(out, format="PNG")
    return out.getvalue()


def _answer(data: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"status": 200, "body": {"created": "{{created}}", "data": data, **extra}}


# Answers a mock could be made to give (by a stub, matched by X-Scenario) that keep what a case
# says of the API, and break what the mock promises of itself; or break both.
DRIFTS = {
    "revised": _answer([{"b64_json": "PNG", "revised_prompt": "a dog"}]),
    "extra-field": _answer([{"b64_json": "PNG", "revised_prompt": "a cat"}], gateway="eu-1"),
    "envelope": {"status": 400, "body": {"error": {"code": "sensitive", "message": "no"}}},
    "json-url": _answer([{"url": PUBLIC + "/healthz", "revised_prompt": "a cat"}]),
    "not-base64": _answer([{"b64_json": "@@@@", "revised_prompt": "a cat"}]),
}


@pytest.fixture(scope="module")
def drifting_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    stubs = tmp_path_factory.mktemp("stubs")
    png = base64.b64encode(_png(64, 48)).decode("ascii")
    for name, response in DRIFTS.items():
        text = json.dumps({"match": {"headers": {"X-Scenario": name}}, "response": response})
        (stubs / f"{name}.json").write_text(text.replace('"PNG"', f'"{png}"'), encoding="utf-8")
    with MockServer(fixtures=stubs, public_url=PUBLIC) as server:
        yield server


def _spec(scenario: str | None, expect: dict[str, Any], **request: Any) -> dict[str, Any]:
    headers = {"X-Scenario": scenario} if scenario else {}
    return {"request": {"headers": headers, "body": CAT, **request}, "expect": expect}


IMAGE = {"status": 200, "images": [[64, 48]]}
BROKEN = {
    # name: (the case, the created the mock promises, a broken promise, whether conform agrees)
    "message": (
        {
            "request": {"headers": {"Authorization": None}, "body": CAT},
            "expect": {
                "status": 401,
                "error": {"code": "invalid_api_key", "param": None},
                "message_contains": ["words the mock never says"],
            },
        },
        DEFAULT_CREATED,
        "message: 'words the mock never says' not in",
        True,
    ),
    "mock header": (
        {
            "request": {"headers": {"X-Mock-Latency-Ms": "5"}, "body": CAT},
            "expect": {
                "status": 200,
                "headers": {"X-Mock-Latency-Ms": "6"},
                "images": [[1024] * 2],
            },
        },
        DEFAULT_CREATED,
        'headers: X-Mock-Latency-Ms: expected "6", got "5"',
        True,
    ),
    "created": (
        _spec(None, {"status": 200, "images": [[1024] * 2]}),
        1,
        "created: expected 1",
        True,
    ),
    "created now": (
        _spec(None, {"status": 200, "images": [[1024] * 2]}),
        "now",
        "is not now",
        True,
    ),
    "revised prompt": (_spec("revised", IMAGE), DEFAULT_CREATED, "data[0].revised_prompt", True),
    "answer schema": (
        _spec("extra-field", IMAGE),
        DEFAULT_CREATED,
        "images-generations.response.json: at /: Additional properties",
        True,
    ),
    "error schema": (
        _spec("envelope", {"status": 400, "error": {"code": "sensitive", "param": None}}),
        DEFAULT_CREATED,
        "error.response.json: at /error:",
        True,
    ),
    "content type": (
        _spec("json-url", IMAGE),
        DEFAULT_CREATED,
        "data[0]: served as application/json, not image/png",
        False,
    ),
    "base64": (
        _spec("not-base64", IMAGE),
        DEFAULT_CREATED,
        "data[0].b64_json is not base64",
        False,
    ),
}


@pytest.mark.parametrize(
    ("spec", "created", "broken", "conform_agrees"), BROKEN.values(), ids=list(BROKEN)
)
def test_the_judge_holds_a_mock_to_its_promises(
    drifting_mock: MockServer,
    spec: dict[str, Any],
    created: int | str,
    broken: str,
    conform_agrees: bool,
) -> None:
    case = Case("drift::case", spec)
    target = Target(drifting_mock.url, drifting_mock.api_key, PUBLIC)
    with httpx.Client(timeout=TIMEOUT) as client:
        answer = send(client, target, case)
    verdict = judge(case, answer, MockPromises(created=created))  # type: ignore[arg-type]
    assert any(broken in difference for difference in verdict.differences), verdict.differences
    # What any service is held to (as conform judges) leaves the mock's own promises out.
    assert judge(case, answer).agree is conform_agrees, judge(case, answer).differences


def _check_png(data: bytes, expected: tuple[int, int], where: str) -> None:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG", where
        assert image.size == expected, f"{where}: {image.size} instead of {expected}"
        image.load()


# ------------------------------------------------------------------------------ server_error


def test_server_error_envelope(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception inside the mock is a 500 server_error envelope, and the app keeps serving."""
    app = mockserver.create_app()

    def broken_render(spec: object) -> bytes:
        raise RuntimeError("the renderer is broken")

    monkeypatch.setattr(mockserver.web.endpoints, "render_spec", broken_render)
    auth = {"Authorization": "Bearer sk-test"}
    body = {"model": "jimeng-4.0", "prompt": "a cat", "n": 1, "size": "1024*1024"}

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
            failed = await client.post(
                GENERATIONS, json={**body, "response_format": "b64_json"}, headers=auth
            )
            after = await client.post(GENERATIONS, json=body, headers=auth)
            monkeypatch.undo()
            repaired = await client.post(
                GENERATIONS, json={**body, "response_format": "b64_json"}, headers=auth
            )
        return failed, after, repaired

    failed, after, repaired = asyncio.run(scenario())

    assert failed.status_code == 500, failed.text
    envelope = failed.json()
    assert not [e.message for e in ERROR_VALIDATOR.iter_errors(envelope)], envelope
    assert envelope["error"]["code"] == "server_error"
    assert envelope["error"]["type"] == "server_error"
    assert envelope["error"]["param"] is None
    assert "RuntimeError" in envelope["error"]["message"]

    assert after.status_code == 200, after.text
    assert not [e.message for e in RESPONSE_VALIDATOR.iter_errors(after.json())]
    assert repaired.status_code == 200, repaired.text
    (entry,) = repaired.json()["data"]
    _check_png(base64.b64decode(entry["b64_json"]), (1024, 1024), "after the failure")
