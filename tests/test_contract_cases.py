"""The contract as data: every case of fixtures/contract/*.json, run over a real socket.

A case file is checked against fixtures/contract.schema.json first, so a typo in a case fails
by name instead of silently testing nothing. Each case is its own test, `<file stem>::<name>`,
against the `jimeng_mock` server of its "server" options.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from PIL import Image

import mockserver.endpoints
from mockserver import MockServer

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


CASE_FILES = sorted(CASE_DIR.glob("*.json"))
CASE_VALIDATOR = _validator(CASE_SCHEMA)
ONE_CASE_VALIDATOR = Draft202012Validator(
    {"$ref": "#/$defs/case", "$defs": CASE_VALIDATOR.schema["$defs"]}
)
ERROR_VALIDATOR = _validator(SCHEMAS / "error.response.json")
RESPONSE_VALIDATOR = _validator(SCHEMAS / "images-generations.response.json")


def _problems(validator: Draft202012Validator, instance: Any) -> list[str]:
    problems = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path))):
        message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
        problems.append(f"at /{'/'.join(map(str, error.absolute_path))}: {message}")
    return problems


def _file_problems(path: Path) -> list[str]:
    """Why a case file is unusable (not JSON, or not matching the case schema); empty if fine."""
    try:
        data = _read_json(path)
    except (OSError, ValueError) as exc:
        return [f"not readable JSON: {exc}"]
    return _problems(CASE_VALIDATOR, data)


def _collect() -> list[Any]:
    params = []
    for path in CASE_FILES:
        try:
            cases = _read_json(path).get("cases", [])
        except (OSError, ValueError, AttributeError):
            continue  # test_case_file_matches_schema names the file
        for index, case in enumerate(cases if isinstance(cases, list) else []):
            name = case.get("name", f"#{index}") if isinstance(case, dict) else f"#{index}"
            params.append(pytest.param(path, case, id=f"{path.stem}::{name}"))
    return params


CASES = _collect()


def _cases() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (param.values[0], param.values[1]) for param in CASES if isinstance(param.values[1], dict)
    ]


def _expect(case: Mapping[str, Any]) -> Mapping[str, Any]:
    expect = case.get("expect")
    return expect if isinstance(expect, dict) else {}


# ------------------------------------------------------------------------------ the case files


def test_case_files_exist() -> None:
    assert CASE_FILES, f"no case files in {CASE_DIR}"


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.name for p in CASE_FILES])
def test_case_file_matches_schema(path: Path) -> None:
    problems = _file_problems(path)
    assert not problems, f"{path.relative_to(ROOT)} does not match {CASE_SCHEMA.name}:\n" + (
        "\n".join(problems)
    )


def test_case_ids_are_unique() -> None:
    """Names are unique within a file, so every `<file stem>::<name>` id is unique."""
    ids = [param.id for param in CASES]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"case names repeated within a file: {duplicates}"


def test_every_catalogue_code_has_a_case() -> None:
    catalogue = set(_read_json(SCHEMAS / "errors.json")["errors"])
    expected = {
        _expect(case)["error"].get("code") for _, case in _cases() if "error" in _expect(case)
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
    for _, case in _cases():
        request = case.get("request", {})
        body = request.get("body")
        if (
            _expect(case).get("status") == 200
            and request.get("path", GENERATIONS) == GENERATIONS
            and "sizes" not in case.get("server", {})
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


# ------------------------------------------------------------------------------ running a case


@pytest.fixture
def jimeng_mock_config(case: dict[str, Any]) -> dict[str, Any]:
    """The case's "server" options, for the plugin's `jimeng_mock`."""
    return dict(case.get("server", {}))


def _request_content(request: Mapping[str, Any]) -> bytes:
    if "body" in request:
        return json.dumps(request["body"], ensure_ascii=False).encode("utf-8")
    if "raw_body" in request:
        return str(request["raw_body"]).encode("utf-8")
    if "raw_body_base64" in request:
        return base64.b64decode(request["raw_body_base64"], validate=True)
    return b""


def _request_headers(server: MockServer, request: Mapping[str, Any]) -> dict[str, str]:
    merged: dict[str, tuple[str, str | None]] = {
        "authorization": ("Authorization", f"Bearer {server.api_key}"),
        "content-type": ("Content-Type", "application/json"),
    }
    for name, value in request.get("headers", {}).items():
        merged[name.lower()] = (name, value)
    return {name: value for name, value in merged.values() if value is not None}


def _check_png(data: bytes, expected: tuple[int, int], where: str) -> None:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG", where
        assert image.size == expected, f"{where}: {image.size} instead of {expected}"
        image.load()


def _check_error(response: httpx.Response, expect: Mapping[str, Any]) -> None:
    body = response.json()
    errors = [e.message for e in ERROR_VALIDATOR.iter_errors(body)]
    assert not errors, f"error body does not match error.response.json: {errors}\n{body}"
    error = body["error"]
    assert (error["code"], error["param"]) == (
        expect["error"]["code"],
        expect["error"]["param"],
    ), error
    for part in expect.get("message_contains", []):
        assert part in error["message"], f"{part!r} not in {error['message']!r}"


def _check_images(
    client: httpx.Client,
    server: MockServer,
    created: int | str,
    sent: Any,
    response: httpx.Response,
    expected: list[list[int]],
) -> None:
    body = response.json()
    errors = [e.message for e in RESPONSE_VALIDATOR.iter_errors(body)]
    assert not errors, f"body does not match images-generations.response.json: {errors}"
    if created == "now":
        assert abs(body["created"] - time.time()) < 120
    else:
        assert body["created"] == created
    data = body["data"]
    assert len(data) == len(expected), f"{len(data)} images instead of {len(expected)}"
    for index, (entry, (width, height)) in enumerate(zip(data, expected, strict=True)):
        where = f"data[{index}]"
        assert entry["revised_prompt"] == sent["prompt"], where
        if "b64_json" in entry:
            try:
                png = base64.b64decode(entry["b64_json"], validate=True)
            except binascii.Error as exc:
                pytest.fail(f"{where}.b64_json is not base64: {exc}")
        else:
            url = entry["url"]
            public = server.config.public_url
            if public and url.startswith(public):
                url = server.url + url[len(public) :]
            image = client.get(url)  # as a browser would: no Authorization
            assert image.status_code == 200, f"{where}: GET {url}: {image.text}"
            assert image.headers["content-type"] == "image/png", where
            png = image.content
        _check_png(png, (width, height), where)


@pytest.mark.parametrize(("path", "case"), CASES)
def test_case(path: Path, case: dict[str, Any], jimeng_mock: MockServer) -> None:
    problems = _problems(ONE_CASE_VALIDATOR, case)
    if problems:
        pytest.fail(
            f"{path.relative_to(ROOT)}: case does not match {CASE_SCHEMA.name}:\n"
            + "\n".join(problems)
        )
    request, expect = case["request"], case["expect"]
    method = request.get("method", "POST")
    route = request.get("path", GENERATIONS)
    content = _request_content(request)

    with httpx.Client(timeout=TIMEOUT) as client:
        response = client.request(
            method,
            jimeng_mock.url + route,
            headers=_request_headers(jimeng_mock, request),
            content=content or None,
        )
        assert response.status_code == expect["status"], response.text[:500]
        for name, value in expect.get("headers", {}).items():
            assert response.headers.get(name) == value, f"response header {name}"
        if "error" in expect:
            _check_error(response, expect)
        if "images" in expect:
            created = case.get("server", {}).get("created", DEFAULT_CREATED)
            sent = json.loads(content)
            _check_images(client, jimeng_mock, created, sent, response, expect["images"])


# ------------------------------------------------------------------------------ server_error


def test_server_error_envelope(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception inside the mock is a 500 server_error envelope, and the app keeps serving."""
    app = mockserver.create_app()

    def broken_render(spec: object) -> bytes:
        raise RuntimeError("the renderer is broken")

    monkeypatch.setattr(mockserver.endpoints, "render_spec", broken_render)
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
