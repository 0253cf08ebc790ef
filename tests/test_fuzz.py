"""Schemathesis against the mock's own OpenAPI document, over a real socket.

Every operation of `GET /openapi.json` is fuzzed (schemathesis's examples, coverage and
fuzzing phases: a few hundred cases in all, derandomized, no example database) against a
`MockServer`, and each answer must be what the document says: no 5xx, and documented status
codes, content types, headers and bodies.

Faults answer 5xx, cut JSON and dropped connections on purpose, so fuzzing never asks for one
(an `X-Mock-Fault` naming a fault is taken out of each case; a bad name, a 400, stays in).
They are asked for by explicit calls instead, whose 5xx is then the one they asked for. The
statuses random requests do not reach (401 without a key, 413, 429, 403, 503...) get explicit
calls too, checked the same way, and by the end of the module every (operation, status) pair
the document lists must have been answered.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from mockserver import MockServer, create_app
from mockserver.errors import ErrorCatalogue
from tests.conftest import PARSERS

# The document the cases follow: the one an app with the default options serves, as the
# server the cases are sent to has them.
with TestClient(create_app()) as _client:
    DOCUMENT: dict[str, Any] = _client.get("/openapi.json").json()

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20250101,
        "generation": {
            "max-examples": 20,
            "deterministic": True,
            "database": "none",
            # The Bearer key is added to each call instead: random keys test nothing here.
            "with-security-parameters": False,
        },
    }
)
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)

CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CHECKS = [not_a_server_error, *CONFORMANCE]

GENERATIONS = "/v1/images/generations"
IMAGE = "/images/{model}/{size}/{name}"
THUMBNAIL = "/__admin/thumbnails/{model}/{size}/{name}"
FAULT_NAMES = frozenset(DOCUMENT["components"]["parameters"]["MockFault"]["schema"]["enum"])
BODY = {"model": "jimeng-4.0", "prompt": "a lighthouse at dusk", "n": 2, "size": "1024*1024"}
JSON = {"Content-Type": "application/json"}

# (method, path template, status) of every answer checked in this module.
SEEN: set[tuple[str, str, int]] = set()
FUZZED: set[str] = set()
RAN: set[str] = set()


def documented() -> set[tuple[str, str, int]]:
    return {
        (method, path, int(status))
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        for status in operation["responses"]
    }


def error_codes(method: str, path: str, status: int) -> set[str]:
    """The error codes the document lists for one answer (none for a success)."""
    response = DOCUMENT["paths"][path][method]["responses"][str(status)]
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    for part in schema.get("allOf", []):
        code = part.get("properties", {}).get("error", {}).get("properties", {}).get("code")
        if code:
            return set(code["enum"])
    return set()


def record(method: str, path: str, status: int) -> None:
    """Note an answer; a 405 to a method the path does not have counts for each of its
    operations, where the document lists it."""
    operations = DOCUMENT["paths"][path]
    if method.lower() in operations:
        SEEN.add((method.lower(), path, status))
    elif status == 405:
        SEEN.update((other, path, 405) for other in operations)


def path_parameters(path: str, url: str) -> dict[str, str]:
    """The values of `path`'s parameters in `url`, for the report of a failed check."""
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>.*?)", re.escape(path))
    found = re.fullmatch(pattern, url)
    names = re.findall(r"\{(\w+)\}", path)
    return found.groupdict() if found else dict.fromkeys(names, "")


def auth(server: MockServer, path: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}"} if path.startswith("/v1/") else {}


def send(
    server: MockServer,
    method: str,
    path: str,
    *,
    url: str | None = None,
    as_method: str | None = None,
    checks: list[Any] = CHECKS,
    **options: Any,
) -> requests.Response:
    """One request to `url` (default: `path`), its answer checked against the operation
    (`as_method` or `method`) `path` of the document, and noted."""
    url = url or path
    response = requests.request(method, server.url + url, timeout=30, **options)
    case = SCHEMA[path][(as_method or method).upper()].Case(
        path_parameters=path_parameters(path, url),
        query=options.get("params"),
        headers=options.get("headers"),
    )
    case.validate_response(response, checks=checks)
    record(method, path, response.status_code)
    return response


def generate(server: MockServer, **fields: Any) -> list[str]:
    """The image URL paths of a generation request (a 200, checked like the others)."""
    response = send(
        server, "POST", GENERATIONS, json={**BODY, **fields}, headers=auth(server, GENERATIONS)
    )
    assert response.status_code == 200, response.text
    return [urlsplit(item["url"]).path for item in response.json()["data"]]


@pytest.fixture(autouse=True)
def _ran(request: pytest.FixtureRequest) -> None:
    RAN.add(request.node.originalname)


@pytest.fixture(scope="module", params=PARSERS)
def fuzz_server(request: pytest.FixtureRequest) -> Iterator[MockServer]:
    """The mock on each of uvicorn's HTTP parsers: every fuzz test runs on both."""
    with MockServer(http=request.param) as server:
        yield server


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


@SCHEMA.parametrize()
def test_fuzz(case: schemathesis.Case, fuzz_server: MockServer, session: requests.Session) -> None:
    FUZZED.add(case.operation.label)
    RAN.add("test_fuzz")  # schemathesis names its items after the operation too
    # Faults queued by fuzzing POST /__admin/faults would answer the next generation requests.
    fuzz_server.state.queue.clear()
    if case.headers:
        if str(case.headers.get("X-Mock-Fault", "")).strip() in FAULT_NAMES:
            del case.headers["X-Mock-Fault"]
        latency = str(case.headers.get("X-Mock-Latency-Ms", "")).strip()
        if latency.isascii() and latency.isdigit():
            case.headers["X-Mock-Latency-Ms"] = "0"  # any delay is valid; none is quicker
    response = case.call_and_validate(
        base_url=fuzz_server.url,
        session=session,
        headers=auth(fuzz_server, case.path),
        checks=CHECKS,
    )
    record(case.method, case.path, response.status_code)


def test_api_routes_want_a_bearer_key(fuzz_server: MockServer) -> None:
    for path in (GENERATIONS, "/v1/models", "/v1/models/{model}"):
        method, body = ("POST", BODY) if path == GENERATIONS else ("GET", None)
        url = path.replace("{model}", "jimeng-4.0")
        for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
            response = send(fuzz_server, method, path, url=url, json=body, headers=headers)
            assert response.status_code == 401, (path, headers, response.text)
            assert response.json()["error"]["code"] == "invalid_api_key"


def test_each_fault_answers_its_status(fuzz_server: MockServer) -> None:
    """Every fault of the catalogue that answers (all but `disconnect` and `malformed`, whose
    answers are broken on purpose), asked for with X-Mock-Fault and no delay."""
    catalogue = ErrorCatalogue.from_file(fuzz_server.config.errors_file)
    headers = {**auth(fuzz_server, GENERATIONS), "X-Mock-Latency-Ms": "0"}
    for name, fault in fuzz_server.state.faults.faults.items():
        if fault.action in ("disconnect", "malformed"):
            continue
        response = send(
            fuzz_server,
            "POST",
            GENERATIONS,
            json=BODY,
            headers={**headers, "X-Mock-Fault": name},
            checks=CONFORMANCE,  # a 5xx here is the one asked for
        )
        expected = catalogue.kinds[fault.error].status if fault.error else 200
        assert response.status_code == expected, (name, response.text)
        assert response.headers["X-Mock-Fault"] == name
        if fault.error:
            assert response.json()["error"]["code"] == fault.error
        if expected in (429, 503) and fault.retry_after_ms:
            assert response.headers["Retry-After"].isdigit()


def test_generation_client_errors(fuzz_server: MockServer) -> None:
    headers = auth(fuzz_server, GENERATIONS)
    answers = [
        send(fuzz_server, "POST", GENERATIONS, data=b"{", headers=headers | JSON),
        send(fuzz_server, "POST", GENERATIONS, data=b"a cat", headers=headers),
        send(fuzz_server, "POST", GENERATIONS, json={**BODY, "model": "jimeng-9"}, headers=headers),
        send(
            fuzz_server,
            "POST",
            GENERATIONS,
            json=BODY,
            headers={**headers, "X-Mock-Fault": "no-such-fault"},
        ),
    ]
    assert [(r.status_code, r.json()["error"]["code"]) for r in answers] == [
        (400, "invalid_json"),
        (415, "unsupported_media_type"),
        (404, "model_not_found"),
        (400, "invalid_value"),
    ]


def test_bodies_over_the_limit_are_413() -> None:
    with MockServer(max_body=1024) as small:
        response = send(
            small,
            "POST",
            GENERATIONS,
            json={**BODY, "prompt": "a" * 2000},
            headers=auth(small, GENERATIONS),
        )
        assert response.status_code == 413
        # The admin routes read at most 64 KiB, whatever --max-body says.
        response = send(
            small,
            "POST",
            "/__admin/faults",
            json={"fault": "rate_limit", "match": {"prompt": "a" * 70_000}},
        )
        assert response.status_code == 413


def test_bodies_that_stop_coming_are_408() -> None:
    """A body still incomplete --read-timeout after its headers, on both routes that read
    one; the client pauses once, then ends its chunked body."""

    def pausing(first: bytes) -> Iterator[bytes]:
        yield first
        time.sleep(0.8)

    with MockServer(read_timeout=0.3) as slow:
        for path, start in ((GENERATIONS, b'{"model": '), ("/__admin/faults", b'{"fault": ')):
            response = send(
                slow,
                "POST",
                path,
                data=pausing(start),
                headers={**auth(slow, path), **JSON},
            )
            assert response.status_code == 408, response.text
            assert response.json()["error"]["code"] == "request_timeout"


def test_keys_over_the_rate_limit_are_429() -> None:
    with MockServer(rpm=1) as limited:
        for index, (method, path, url, body) in enumerate(
            [
                ("POST", GENERATIONS, GENERATIONS, BODY),
                ("GET", "/v1/models", "/v1/models", None),
                ("GET", "/v1/models/{model}", "/v1/models/jimeng-4.5", None),
            ]
        ):
            headers = {"Authorization": f"Bearer sk-limited-{index}"}
            statuses = [
                send(limited, method, path, url=url, json=body, headers=headers).status_code
                for _ in range(2)
            ]
            assert statuses == [200, 429], path
            assert limited.last_request is not None
            assert limited.last_request.error == "rate_limit_exceeded"


def test_images_and_thumbnails(fuzz_server: MockServer) -> None:
    path = generate(fuzz_server)[0]
    image = send(fuzz_server, "GET", IMAGE, url=path)
    assert image.status_code == 200
    assert image.content.startswith(b"\x89PNG")
    cached = send(
        fuzz_server, "GET", IMAGE, url=path, headers={"If-None-Match": image.headers["ETag"]}
    )
    assert cached.status_code == 304
    edited = send(fuzz_server, "GET", IMAGE, url=path.replace("-1-", "-2-"))
    assert edited.json()["error"]["code"] == "image_not_found"
    unrouted = send(fuzz_server, "GET", IMAGE, url=path.replace("/jimeng-4.0/", "//"))
    assert unrouted.json()["error"]["code"] == "not_found"

    thumbnail = "/__admin/thumbnails/" + path.removeprefix("/images/")
    assert send(fuzz_server, "GET", THUMBNAIL, url=thumbnail).status_code == 200
    edited = thumbnail[:-5] + ("0" if thumbnail[-5] != "0" else "1") + ".png"
    assert send(fuzz_server, "GET", THUMBNAIL, url=edited).status_code == 404
    assert send(fuzz_server, "GET", THUMBNAIL, url=thumbnail + "/x").status_code == 404


def test_admin_routes(fuzz_server: MockServer) -> None:
    for path, item in DOCUMENT["paths"].items():
        if not path.startswith("/__admin/") or path == THUMBNAIL:
            continue
        for method in item:
            response = send(fuzz_server, method, path, params={"unknown": "1"})
            assert response.status_code == 400, (method, path)
            assert response.json()["error"]["param"] == "unknown"
    for path in ("/__admin/", "/__admin/requests"):
        response = send(fuzz_server, "GET", path, params={"limit": "0"})
        assert (response.status_code, response.json()["error"]["param"]) == (400, "limit")

    assert send(fuzz_server, "POST", "/__admin/reset").json() == {"reset": True, "session": None}
    scoped = send(fuzz_server, "POST", "/__admin/reset", params={"session": "gw0"})
    assert scoped.json() == {"reset": True, "session": "gw0"}
    form = send(
        fuzz_server,
        "POST",
        "/__admin/reset",
        data=b"",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        allow_redirects=False,
    )
    assert (form.status_code, form.headers["Location"]) == (303, "/__admin/")

    queued = send(fuzz_server, "POST", "/__admin/faults", json={"fault": "quota", "times": 2})
    assert queued.status_code == 201
    assert send(fuzz_server, "DELETE", "/__admin/faults").json() == {"deleted": 1}
    for body, code in [
        ({"times": 2}, "missing_required_parameter"),
        ({"fault": "x"}, "invalid_value"),
    ]:
        answer = send(fuzz_server, "POST", "/__admin/faults", json=body)
        assert answer.json()["error"]["code"] == code
    plain = send(fuzz_server, "POST", "/__admin/faults", data=b"fault=quota")
    assert plain.status_code == 415


def test_every_path_answers_405_to_other_methods(fuzz_server: MockServer) -> None:
    for path, item in DOCUMENT["paths"].items():
        url = path.format(model="jimeng-4.0", size="1024x1024", name="x.png")
        other = "PATCH" if "patch" not in item else "PUT"
        response = send(fuzz_server, other, path, url=url, as_method=next(iter(item)))
        assert response.status_code == 405, path
        # Every method of the path, and HEAD, which Starlette answers on every GET route.
        allowed = {m.strip().lower() for m in response.headers["Allow"].split(",")}
        assert allowed == set(item) | ({"head"} if "get" in item else set()), path


# Found by fuzzing: answers that broke the document (a 5xx, no answer at all, a wrong Allow).


def test_field_names_with_control_characters_get_an_answer(fuzz_server: MockServer) -> None:
    """An unknown field is named in X-Mock-Warnings; a CR, LF or NUL in its name must be
    escaped there, or the server refuses to send the header and drops the connection."""
    for name in ("a\rb", "a\nb", "a\x00b"):
        body = {**BODY, name: 1}
        response = send(
            fuzz_server, "POST", GENERATIONS, json=body, headers=auth(fuzz_server, GENERATIONS)
        )
        assert response.status_code == 200
        assert response.headers["X-Mock-Warnings"].isprintable()


def test_digits_that_are_not_ascii_are_400(fuzz_server: MockServer) -> None:
    """str.isdigit() takes "\u00b2" (superscript two), which int() and float() refuse."""
    for path in ("/__admin/", "/__admin/requests"):
        for name in ("status", "limit"):
            response = send(fuzz_server, "GET", path, params={name: "\u00b2"})
            assert (response.status_code, response.json()["error"]["param"]) == (400, name)
    response = send(
        fuzz_server,
        "POST",
        GENERATIONS,
        json=BODY,
        headers={**auth(fuzz_server, GENERATIONS), "X-Mock-Latency-Ms": "\u00b2"},
    )
    assert (response.status_code, response.json()["error"]["param"]) == (400, "X-Mock-Latency-Ms")


def test_an_asgi_server_may_give_its_address_as_a_list() -> None:
    """The ASGI spec makes scope["server"] a two-item iterable, and schemathesis's ASGI client
    (`from_asgi`) sends a list: the generation route must answer it, not fail on it."""
    app = create_app()
    body = json.dumps(BODY).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": GENERATIONS,
        "raw_path": GENERATIONS.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"mock"),
            (b"authorization", b"Bearer sk-asgi"),
            (b"content-type", b"application/json"),
        ],
        "client": ["127.0.0.1", 50000],
        "server": ["mock", 80],
    }
    messages: list[dict[str, Any]] = [{"type": "http.request", "body": body}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))

    assert sent[0]["status"] == 200


def test_admin_routes_are_403_when_closed() -> None:
    token = "fuzz-admin-token"
    operations = [
        (method, path)
        for path, item in DOCUMENT["paths"].items()
        if path.startswith("/__admin/")
        for method in item
    ]
    with MockServer(admin_token=token) as guarded:
        for method, path in operations:
            url = path.format(model="jimeng-4.0", size="1024x1024", name="x.png")
            response = send(guarded, method, path, url=url, headers={"X-Admin-Token": "wrong"})
            assert response.status_code == 403, (method, path)
            assert response.json()["error"]["code"] == "admin_forbidden"
        open_with_token = send(guarded, "GET", "/__admin/stubs", headers={"X-Admin-Token": token})
        assert open_with_token.status_code == 200
    with MockServer(host="0.0.0.0") as exposed:
        response = requests.get(f"http://127.0.0.1:{exposed.port}/__admin/requests", timeout=30)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "admin_forbidden"


def test_images_are_503_when_renders_pile_up() -> None:
    with MockServer(render_concurrency=1, render_queue=0) as busy:
        paths = generate(busy, n=15, size="4096*4096")
        with ThreadPoolExecutor(len(paths)) as pool:
            answers = list(
                pool.map(lambda path: send(busy, "GET", IMAGE, url=path, checks=CONFORMANCE), paths)
            )
    refused = [answer for answer in answers if answer.status_code == 503]
    assert refused, [answer.status_code for answer in answers]
    assert all(answer.json()["error"]["code"] == "server_busy" for answer in refused)
    assert all(answer.headers["Retry-After"].isdigit() for answer in refused)


def test_every_documented_status_was_answered(request: pytest.FixtureRequest) -> None:
    """Each (operation, status) of the document, answered by a fuzzed or an explicit call
    above; so a status the mock cannot answer, or one nothing here reaches, fails."""
    tests = {
        name
        for name, value in globals().items()
        if name.startswith("test_") and callable(value) and name != request.node.originalname
    }
    operations = {
        f"{method.upper()} {path}" for path, item in DOCUMENT["paths"].items() for method in item
    }
    if tests - RAN or operations - FUZZED:
        pytest.skip(f"needs every test of this module to have run first: {tests - RAN}")
    assert sorted(documented() - SEEN) == []
