"""Hostile requests, each answered with a 4xx in the OpenAI error envelope, and the server still
serving afterwards: bad values through the openai SDK, bodies over the limit cut off while they
are read, image URLs the mock did not issue, and every route of the app with every method.

Hostile body *bytes* (not JSON, not UTF-8, nested 100,000 levels) are in test_bad_input.py; the
plain request -> (status, code, param) contract is in fixtures/contract/.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from jsonschema import Draft202012Validator
from starlette.routing import Route

from mockserver import MockServer, create_app
from mockserver.answers.images import ImageSigner, ImageSpec
from mockserver.config import DEFAULT_SECRET
from mockserver.record.journal import as_recorded


@pytest.fixture
def jimeng_mock(parsed_mock: MockServer) -> MockServer:
    """These tests depend on how requests are parsed: each runs on both of uvicorn's parsers."""
    parsed_mock.reset()
    return parsed_mock


ROOT = Path(__file__).resolve().parent.parent
ERROR_SCHEMA = Draft202012Validator(
    json.loads((ROOT / "schemas" / "error.response.json").read_text(encoding="utf-8"))
)
GENERATIONS = "/v1/images/generations"
VALID = {"model": "jimeng-4.0", "prompt": "a cat", "n": 1, "size": "1024x1024"}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")
TIMEOUT = httpx.Timeout(10.0)
MIB = 1024 * 1024


def auth(server: MockServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}"}


def assert_error(response: httpx.Response, status: int, code: str, param: str | None) -> None:
    """`response` is `status` with exactly the OpenAI envelope, naming `code` and `param`."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    problems = [e.message for e in ERROR_SCHEMA.iter_errors(body)]
    assert not problems, f"not the error envelope: {problems}: {body}"
    assert (body["error"]["code"], body["error"]["param"]) == (code, param), body


def assert_still_serving(server: MockServer, http: httpx.Client) -> None:
    """A valid generation right after: the server answers it, and its image is served."""
    response = http.post(server.url + GENERATIONS, json=VALID, headers=auth(server))
    assert response.status_code == 200, response.text[:500]
    (entry,) = response.json()["data"]
    image = http.get(entry["url"])
    assert image.status_code == 200, image.text[:500]
    assert image.headers["content-type"] == "image/png"


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for the module: a new one per request would cost more than the request."""
    with httpx.Client(timeout=TIMEOUT) as shared:
        yield shared


# ------------------------------------------------------------------------- bad values, via the SDK

# Fields the SDK takes as arguments; the others go in extra_body, as users send them.
SDK_ARGUMENTS = frozenset({"model", "prompt", "n", "size", "response_format"})
URL = "https://example.com/reference.png"


def _value_case(
    case_id: str, fields: dict[str, Any], param: str, status: int = 400, code: str = "invalid_value"
) -> Any:
    body = {"model": "jimeng-4.0", "prompt": "a cat", "n": 1, **fields}
    return pytest.param(body, status, code, param, id=case_id)


BAD_VALUES = [
    _value_case("n=10**12", {"n": 10**12}, "n"),
    _value_case("n=-10**12", {"n": -(10**12)}, "n"),
    _value_case("n=0", {"n": 0}, "n"),
    _value_case("n=-1", {"n": -1}, "n"),
    _value_case("n=1.5", {"n": 1.5}, "n"),
    _value_case("n=true", {"n": True}, "n"),
    _value_case("n='2'", {"n": "2"}, "n"),
    *(
        _value_case(f"size={size!r}", {"size": size}, "size")
        for sign in ("*", "x")
        for size in (
            f"0{sign}0",
            f"-5{sign}10",
            f"1024.5{sign}1024",
            f"99999999{sign}99999999",
            f"1024{sign}",
            f"{sign}1024",
            f"1024 {sign} 1024",
            f"1024{sign}1024\x00",
        )
    ),
    _value_case("prompt-4001-characters", {"prompt": "a" * 4001}, "prompt"),
    _value_case("prompt-500000-characters", {"prompt": "a" * 500_000}, "prompt"),
    _value_case("prompt-NUL-inside", {"prompt": "a cat\x00 on a mat"}, "prompt"),
    _value_case("prompt-NUL-only", {"prompt": "\x00"}, "prompt"),
    _value_case("prompt-NUL-at-the-end", {"prompt": "a cat" + "\x00" * 1000}, "prompt"),
    _value_case(
        "model-NUL", {"model": "jimeng-4.0\x00"}, "model", status=404, code="model_not_found"
    ),
    _value_case("image-10000-urls-jimeng-4.0", {"image": [URL] * 10_000}, "image"),
    _value_case(
        "image-10000-urls-jimeng-4.5", {"model": "jimeng-4.5", "image": [URL] * 10_000}, "image"
    ),
    _value_case("image-10000-integers", {"image": list(range(10_000))}, "image"),
    _value_case("image-integer-item", {"image": [URL, URL, 7]}, "image[2]"),
    _value_case("image-null-item", {"image": [None]}, "image[0]"),
    _value_case("image-boolean-item", {"image": [URL, True]}, "image[1]"),
    _value_case("image-array-item", {"image": [[URL]]}, "image[0]"),
    _value_case("image-object-item", {"image": [{"url": URL}]}, "image[0]"),
    _value_case("image-javascript", {"image": ["javascript:alert(1)"]}, "image[0]"),
    _value_case("image-javascript-mixed-case", {"image": [URL, "JavaScript:alert(1)"]}, "image[1]"),
    _value_case(
        "image-javascript-in-data", {"image": ["data:text/html;base64,PHNjcmlwdD4="]}, "image[0]"
    ),
    _value_case("image-file", {"image": ["file:///etc/passwd"]}, "image[0]"),
    _value_case("image-file-localhost", {"image": ["file://localhost/etc/passwd"]}, "image[0]"),
    _value_case("image-scheme-relative", {"image": ["//example.com/a.png"]}, "image[0]"),
    _value_case("image-url-with-newline", {"image": ["https://example.com/a.png\n"]}, "image[0]"),
]


def _sdk_call(body: dict[str, Any]) -> dict[str, Any]:
    arguments = {k: v for k, v in body.items() if k in SDK_ARGUMENTS}
    extra = {k: v for k, v in body.items() if k not in SDK_ARGUMENTS}
    return {**arguments, "extra_body": extra} if extra else arguments


@pytest.mark.parametrize(("body", "status", "code", "param"), BAD_VALUES)
def test_a_bad_value_is_a_4xx_naming_it_and_the_server_keeps_serving(
    jimeng_mock: MockServer,
    http: httpx.Client,
    client: openai.OpenAI,
    body: dict[str, Any],
    status: int,
    code: str,
    param: str,
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(**_sdk_call(body))

    error = caught.value
    assert (error.status_code, error.code, error.param) == (status, code, param), error.message
    # The SDK sent the value as the case says (true is not 1, "2" is not 2).
    sent = jimeng_mock.last_request
    assert sent is not None
    # Long strings are kept as excerpts (see the journal's bounds), so compare with those.
    assert json.dumps(sent.body, sort_keys=True) == json.dumps(as_recorded(body), sort_keys=True)
    after = client.images.generate(**_sdk_call(VALID))
    assert after.data
    assert after.data[0].url
    assert_still_serving(jimeng_mock, http)


# ---------------------------------------------------------------- bodies over the limit, streamed

STREAMED = 64 * MIB
# What may be in flight when the server gives up: the 1 MiB it reads plus the socket buffers of
# both ends. Far below the 64 MiB streamed, so a server that reads everything fails the test.
IN_FLIGHT = 16 * MIB
CHUNK = b"a" * (64 * 1024)
PREFIX = b'{"model": "jimeng-4.0", "n": 1, "prompt": "'


def _stream(total: int, yielded: list[int]) -> Iterator[bytes]:
    """`total` bytes of a JSON body in 64 KiB chunks, counting in `yielded` what was taken."""
    first = PREFIX + CHUNK[len(PREFIX) :]
    for index in range(total // len(CHUNK)):
        chunk = first if index == 0 else CHUNK
        yielded[0] += len(chunk)
        yield chunk


@pytest.mark.parametrize(
    "declared",
    [None, STREAMED],
    ids=["chunked", "content-length-true"],
)
def test_a_streamed_body_over_the_limit_is_refused_while_it_is_read(
    jimeng_mock: MockServer, http: httpx.Client, declared: int | None
) -> None:
    yielded = [0]
    headers = {**auth(jimeng_mock), "Content-Type": "application/json"}
    if declared is not None:
        headers["Content-Length"] = str(declared)

    response = http.post(
        jimeng_mock.url + GENERATIONS, content=_stream(STREAMED, yielded), headers=headers
    )

    assert_error(response, 413, "request_too_large", None)
    assert yielded[0] < IN_FLIGHT, f"the server took {yielded[0] / MIB:.1f} MiB of the body"
    assert response.headers.get("connection") == "close"
    assert_still_serving(jimeng_mock, http)


def _parse_response(data: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    """Status, headers, body and what follows, of the first HTTP/1.1 response in `data`."""
    head, separator, rest = data.partition(b"\r\n\r\n")
    assert separator, f"no complete response in {data[:300]!r}"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    return int(status_line.split()[1]), headers, rest[:length], rest[length:]


def _post_raw(server: MockServer, declared: int, body: Iterator[bytes]) -> tuple[int, bytes]:
    """POST with a Content-Length of `declared` whatever `body` holds, sending until the server
    stops taking it; the bytes of the body sent, and everything the server answered."""
    head = (
        f"POST {GENERATIONS} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
        f"Authorization: Bearer {server.api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    sent = 0
    received = b""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(head)
        try:
            for chunk in body:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection: what it answered is still to be read
        try:
            while data := sock.recv(65536):
                received += data
        except ConnectionResetError:
            pass
    return sent, received


@pytest.mark.parametrize("declared", [2 * MIB, STREAMED, 10**18], ids=["2MiB", "64MiB", "10**18"])
def test_a_content_length_over_the_limit_is_refused_before_the_body(
    jimeng_mock: MockServer, http: httpx.Client, declared: int
) -> None:
    """The header lies large (only 64 KiB follow): the answer does not wait for the body
    (if it did, reading the answer would time out)."""
    _, received = _post_raw(jimeng_mock, declared, _stream(len(CHUNK), [0]))

    status, headers, body, rest = _parse_response(received)
    assert status == 413
    assert headers.get("connection") == "close"
    assert_error(
        httpx.Response(status, headers=headers, content=body), 413, "request_too_large", None
    )
    assert rest == b""
    assert_still_serving(jimeng_mock, http)


def test_a_content_length_that_lies_small_ends_the_body_there(
    jimeng_mock: MockServer, http: httpx.Client, parser: str
) -> None:
    """The header says 100 bytes and 64 MiB follow: the body is the first 100 (a cut-off JSON
    text), and the bytes after it are no request: the server closes instead of reading on.

    h11 lets the app answer the first request before it reads the bytes after it; httptools
    reads them at once, finds no request in them, and answers its own plain-text 400 (one of
    the malformed requests the README lists as answered by uvicorn itself)."""
    sent, received = _post_raw(jimeng_mock, 100, _stream(STREAMED, [0]))

    status, headers, body, _ = _parse_response(received)
    if parser == "h11":
        assert_error(
            httpx.Response(status, headers=headers, content=body), 400, "invalid_json", None
        )
    else:
        assert (status, headers["content-type"]) == (400, "text/plain; charset=utf-8")
        assert body == b"Invalid HTTP request received."
    assert sent < IN_FLIGHT, f"the server took {sent / MIB:.1f} MiB after the declared body"
    assert_still_serving(jimeng_mock, http)


@pytest.mark.parametrize(
    "declared",
    [b"\xb2", b"\xb9\xb2", b"\xb9" * 30, b"+5", b"-1"],
    ids=["superscript-two", "superscript-twelve", "superscript-30-digits", "plus-sign", "negative"],
)
def test_a_content_length_that_is_no_number_is_only_ignored(declared: bytes) -> None:
    """Under an ASGI transport no server checks the header first: "²" passes str.isdigit()
    but not int(). The declared length is only a hint, so the body is read as it comes."""
    app = create_app()
    headers = [
        (b"authorization", b"Bearer sk-test"),
        (b"content-type", b"application/json"),
        (b"content-length", declared),
    ]

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://mock") as http:
            return [
                await http.post(GENERATIONS, content=json.dumps(VALID).encode(), headers=headers),
                await http.post(GENERATIONS, json=VALID, headers={"Authorization": "Bearer k"}),
            ]

    answered, after = asyncio.run(scenario())

    assert answered.status_code == 200, answered.text
    assert after.status_code == 200, after.text


# --------------------------------------------------------------------- image URLs not issued


@pytest.fixture
def issued(jimeng_mock: MockServer, http: httpx.Client) -> dict[str, str]:
    """The parts of an image URL the mock issued: model, size, seed, index, sig, name, path."""
    response = http.post(jimeng_mock.url + GENERATIONS, json=VALID, headers=auth(jimeng_mock))
    assert response.status_code == 200, response.text
    path = httpx.URL(response.json()["data"][0]["url"]).path
    match = re.fullmatch(
        r"/images/(?P<model>[^/]+)/(?P<size>[^/]+)/"
        r"(?P<name>(?P<seed>[0-9a-f]{16})-(?P<index>\d+)-(?P<sig>[0-9a-f]{16})\.png)",
        path,
    )
    assert match, path
    return {**match.groupdict(), "path": path}


def _flip(hex_text: str) -> str:
    """The same hex string with its last digit changed."""
    return hex_text[:-1] + ("0" if hex_text[-1] != "0" else "1")


# Each is the raw request target, sent as-is (httpx would resolve "..").
EDITED_URLS = {
    "model-other": "/images/jimeng-4.5/{size}/{name}",
    "model-upper-case": "/images/JIMENG-4.0/{size}/{name}",
    "model-suffix": "/images/{model}x/{size}/{name}",
    "size-one-pixel-less": "/images/{model}/1024x1023/{name}",
    "size-2048": "/images/{model}/2048x2048/{name}",
    "size-99999x99999": "/images/{model}/99999x99999/{name}",
    "size-0x0": "/images/{model}/0x0/{name}",
    "size-1024x0": "/images/{model}/1024x0/{name}",
    "size-100000x1": "/images/{model}/100000x1/{name}",
    "size-negative": "/images/{model}/-1024x1024/{name}",
    "size-leading-zero": "/images/{model}/01024x1024/{name}",
    "size-star": "/images/{model}/1024*1024/{name}",
    "seed-one-digit": "/images/{model}/{size}/{flipped_seed}-{index}-{sig}.png",
    "seed-upper-case": "/images/{model}/{size}/{upper_seed}-{index}-{sig}.png",
    "seed-short": "/images/{model}/{size}/{short_seed}-{index}-{sig}.png",
    "index-2": "/images/{model}/{size}/{seed}-2-{sig}.png",
    "index-0": "/images/{model}/{size}/{seed}-0-{sig}.png",
    "index-leading-zero": "/images/{model}/{size}/{seed}-01-{sig}.png",
    "index-negative": "/images/{model}/{size}/{seed}--1-{sig}.png",
    "index-1000": "/images/{model}/{size}/{seed}-1000-{sig}.png",
    "sig-one-digit": "/images/{model}/{size}/{seed}-{index}-{flipped_sig}.png",
    "sig-zeros": "/images/{model}/{size}/{seed}-{index}-0000000000000000.png",
    "sig-upper-case": "/images/{model}/{size}/{seed}-{index}-{upper_sig}.png",
    "sig-missing": "/images/{model}/{size}/{seed}-{index}.png",
    "extension-jpg": "/images/{model}/{size}/{seed}-{index}-{sig}.jpg",
    "extension-doubled": "/images/{model}/{size}/{name}.png",
    "truncated-extension": "/images/{model}/{size}/{seed}-{index}-{sig}",
    "truncated-sig": "/images/{model}/{size}/{seed}-{index}-{short_sig}",
    "truncated-name": "/images/{model}/{size}/",
    "truncated-size": "/images/{model}/",
    "truncated-model": "/images/",
    "trailing-slash": "/images/{model}/{size}/{name}/",
    "NUL-after-name": "/images/{model}/{size}/{name}%00",
    "dot-dot-to-healthz": "/images/../healthz",
    "dot-dot-encoded": "/images/%2e%2e/healthz",
    "dot-dot-encoded-upper-case": "/images/%2E%2E/%2E%2E/healthz",
    "dot-dot-encoded-slash": "/images/..%2Fhealthz",
    "dot-dot-encoded-slashes-deep": "/images/..%2f..%2f..%2fetc%2fpasswd",
    "dot-dot-as-name": "/images/{model}/{size}/%2e%2e",
    "dot-dot-after-name": "/images/{model}/{size}/{name}/../{name}",
    "dot-dot-in-name": "/images/{model}/{size}/..%2F..%2F..%2Fhealthz",
    "dot-dot-in-size": "/images/{model}/..%2F{size}/{name}",
    "dot-in-path": "/images/{model}/{size}/./{name}",
    "dot-dot-to-admin": "/images/{model}/{size}/..%2F..%2F..%2F__admin%2Freset",
    "double-slash": "//images/{model}/{size}/{name}",
}


@pytest.mark.parametrize("template", list(EDITED_URLS.values()), ids=list(EDITED_URLS))
def test_an_image_url_not_issued_is_a_404(
    jimeng_mock: MockServer, http: httpx.Client, issued: dict[str, str], template: str
) -> None:
    target = template.format(
        **issued,
        flipped_seed=_flip(issued["seed"]),
        upper_seed=issued["seed"].upper(),
        short_seed=issued["seed"][:-1],
        flipped_sig=_flip(issued["sig"]),
        upper_sig=issued["sig"].upper(),
        short_sig=issued["sig"][:-1],
    )
    assert target != issued["path"]
    connection = HTTPConnection(jimeng_mock.host, jimeng_mock.port, timeout=10)
    try:
        connection.request("GET", target)
        raw = connection.getresponse()
        response = httpx.Response(raw.status, headers=raw.getheaders(), content=raw.read())
    finally:
        connection.close()

    assert response.status_code == 404, f"GET {target}: {response.status_code}"
    code = response.json()["error"]["code"]
    assert code in ("image_not_found", "not_found"), code
    assert_error(response, 404, code, None)
    assert http.get(jimeng_mock.url + issued["path"]).status_code == 200
    assert_still_serving(jimeng_mock, http)


def test_a_signed_url_past_the_size_bounds_is_a_404(
    jimeng_mock: MockServer, http: httpx.Client
) -> None:
    """Signed with the default secret, as anyone can: the mock never issues such an image."""
    spec = ImageSpec("jimeng-4.0", 16384, 16384, "0123456789abcdef", 1)
    path = ImageSigner(DEFAULT_SECRET).path(spec)

    # If-None-Match: * gets a 304 from an accepted URL without drawing the image.
    response = http.get(jimeng_mock.url + path, headers={"If-None-Match": "*"})

    assert_error(response, 404, "image_not_found", None)


# ------------------------------------------------------------ every route, with every method


def _routes() -> dict[str, list[Route]]:
    """The app's routes by path, from its router, so that a new route is covered too."""
    by_path: dict[str, list[Route]] = {}
    for route in create_app().router.routes:
        problem = f"{route!r} is not a plain HTTP route: teach this test how to call it"
        assert isinstance(route, Route), problem
        assert route.methods, problem
        by_path.setdefault(route.path, []).append(route)
    return by_path


ROUTES = _routes()
ALLOWED = {path: set().union(*(r.methods or () for r in rs)) for path, rs in ROUTES.items()}


def _route_case(path: str, method: str) -> Any:
    return pytest.param(path, method, id=f"{method} {path}")


ROUTE_CASES = [_route_case(path, method) for path in ROUTES for method in METHODS]


@pytest.fixture
def path_examples(issued: dict[str, str]) -> dict[str, str]:
    """A valid value of every path parameter of the app's routes."""
    return {"model": issued["model"], "size": issued["size"], "name": issued["name"]}


def _fill(template: str, examples: dict[str, str]) -> str:
    names = re.findall(r"{(\w+)(?::\w+)?}", template)
    missing = [n for n in names if n not in examples]
    assert not missing, f"no example value for {missing} of {template}: add one to path_examples"
    return re.sub(r"{(\w+)(?::\w+)?}", lambda m: examples[m[1]], template)


def _comparable(headers: httpx.Headers) -> dict[str, str]:
    # Each request has an id of its own; everything else a HEAD answers is the GET's.
    return {k: v for k, v in headers.items() if k not in ("date", "x-request-id")}


@pytest.mark.parametrize(("template", "method"), ROUTE_CASES)
def test_every_route_answers_every_method(
    jimeng_mock: MockServer,
    http: httpx.Client,
    path_examples: dict[str, str],
    template: str,
    method: str,
) -> None:
    url = jimeng_mock.url + _fill(template, path_examples)
    allowed = ALLOWED[template]

    response = http.request(method, url, headers=auth(jimeng_mock))
    if method == "HEAD" and "GET" in allowed:
        # The GET's status and headers, with no body.
        get = http.get(url, headers=auth(jimeng_mock))
        assert response.status_code == get.status_code == 200, get.text[:300]
        assert _comparable(response.headers) == _comparable(get.headers)
        assert response.content == b""
    elif method in allowed:
        # The route's own answer: what it says of an empty request, never a routing error.
        assert response.status_code < 500, response.text[:300]
        if method == "GET":
            assert response.status_code == 200, response.text[:300]
        elif response.status_code >= 400:
            error = response.json()["error"]
            assert_error(response, response.status_code, error["code"], error["param"])
            assert error["code"] not in ("not_found", "method_not_allowed")
    else:
        assert response.status_code == 405, response.text[:300]
        assert response.headers["allow"] == ", ".join(sorted(allowed))
        if method == "HEAD":
            assert response.content == b""
        else:
            assert_error(response, 405, "method_not_allowed", None)
    assert_still_serving(jimeng_mock, http)


UNKNOWN_PATHS = ["/", "/v1", "/v1/nope", "/v1/images", "/v1/images/generations/", "/__admin/nope"]


@pytest.mark.parametrize(
    ("path", "method"),
    [pytest.param(p, m, id=f"{m} {p}") for p in UNKNOWN_PATHS for m in METHODS],
)
def test_an_unknown_path_is_a_404_with_every_method(
    jimeng_mock: MockServer, http: httpx.Client, path: str, method: str
) -> None:
    response = http.request(method, jimeng_mock.url + path, headers=auth(jimeng_mock))

    if method == "HEAD":
        assert response.status_code == 404
        assert response.content == b""
    else:
        assert_error(response, 404, "not_found", None)
    assert_still_serving(jimeng_mock, http)


# ------------------------------------------------------------------------- many unknown fields


def test_many_unknown_fields_get_an_answer_a_client_can_read(
    jimeng_mock: MockServer, http: httpx.Client
) -> None:
    body = {**VALID, **{f"field{i}": 1 for i in range(10_000)}}

    try:
        response = http.post(jimeng_mock.url + GENERATIONS, json=body, headers=auth(jimeng_mock))
    except httpx.RemoteProtocolError as exc:
        pytest.fail(f"the answer could not be read: {exc}")

    assert response.status_code == 200
    assert len(response.headers["X-Mock-Warnings"]) <= 2000
    assert response.headers["X-Mock-Warnings"].endswith(
        "(100 warnings in all; the journal has every one)"
    )
    record = jimeng_mock.last_request
    assert record is not None
    # 99 fields named, then one warning that counts the rest.
    assert len(record.warnings) == 100
    assert "9,901 more fields" in record.warnings[-1].message
    assert_still_serving(jimeng_mock, http)
