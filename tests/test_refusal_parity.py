"""The same request gets the same refusal from a mock and from a mock in proxy mode.

Each request below has one or two defects (every pair of them that can go in one request),
and is sent to a mock and to two proxy-mode mocks (`--upstream-invalid forward` and
`reject`) whose upstream is a third mock with the same options: status, error code and
param must be the same. The defects are the refusals the request path has: the key
(`endpoints.authenticate`), X-Mock-Session (`sessions.session_of`), the X-Mock-* headers
(`endpoints.mock_headers`), the body (`bodies`: Content-Type, charset, Content-Encoding,
size, bytes, JSON), the contract (`contract.validate`), the route (404, 405, the model
routes); --rpm, the read timeout and a broken stub file, which need servers of their own,
are tested apart. All servers are on 127.0.0.1, in this process.
"""

from __future__ import annotations

import gzip
import itertools
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from mockserver import MockServer
from mockserver.app import ROUTES
from mockserver.web.routes import GENERATIONS

KEY = "sk-right-key-0001"
OPTIONS: dict[str, Any] = {"api_keys": [KEY], "strict": True, "max_body": 4096}
BODY = {"model": "jimeng-4.0", "prompt": "a red fox", "n": 1}


@dataclass(frozen=True)
class Sent:
    """A request, as the test sends it."""

    method: str = "POST"
    path: str = GENERATIONS
    headers: dict[str, str] = field(
        default_factory=lambda: {
            "Authorization": f"Bearer {KEY}",
            "Content-Type": "application/json",
        }
    )
    content: bytes = json.dumps(BODY).encode()

    def header(self, name: str, value: str | None) -> Sent:
        headers = {k: v for k, v in self.headers.items() if k.lower() != name.lower()}
        return replace(self, headers=headers if value is None else {**headers, name: value})

    def body(self, value: Any) -> Sent:
        return replace(self, content=json.dumps(value).encode())


@dataclass(frozen=True)
class Defect:
    name: str
    slots: frozenset[str]  # what of the request it changes: two defects on one slot clash
    apply: Callable[[Sent], Sent]
    last: bool = False  # applied after the others (it encodes the body they made)


def defect(name: str, slots: str, apply: Callable[[Sent], Sent], last: bool = False) -> Defect:
    return Defect(name, frozenset(slots.split()), apply, last)


def _gzipped(sent: Sent) -> Sent:
    return replace(sent.header("Content-Encoding", "gzip"), content=gzip.compress(sent.content))


DEFECTS = [
    # the key
    defect("no-key", "auth", lambda s: s.header("Authorization", None)),
    defect("not-bearer", "auth", lambda s: s.header("Authorization", f"Basic {KEY}")),
    defect("wrong-key", "auth", lambda s: s.header("Authorization", "Bearer sk-wrong-key-9999")),
    # X-Mock-Session, X-Mock-Fault, X-Mock-Latency-Ms
    defect("long-session", "session", lambda s: s.header("X-Mock-Session", "s" * 201)),
    defect("unknown-fault", "fault", lambda s: s.header("X-Mock-Fault", "no-such-fault")),
    defect("injected-fault", "fault", lambda s: s.header("X-Mock-Fault", "rate_limit")),
    defect("bad-latency", "latency", lambda s: s.header("X-Mock-Latency-Ms", "soon")),
    # the body's headers
    defect("text-plain", "type", lambda s: s.header("Content-Type", "text/plain")),
    defect(
        "latin-1", "type", lambda s: s.header("Content-Type", "application/json; charset=latin-1")
    ),
    defect("brotli", "encoding", lambda s: s.header("Content-Encoding", "br")),
    defect("stacked-gzip", "encoding", lambda s: s.header("Content-Encoding", "gzip, gzip")),
    defect(
        "gzip-label-plain-body", "encoding", lambda s: s.header("Content-Encoding", "gzip"), True
    ),
    defect("gzipped", "encoding", _gzipped, True),  # no defect alone: a valid compressed body
    # the body
    defect("too-large", "body", lambda s: s.body({**BODY, "pad": "x" * 5000})),
    defect("malformed", "body", lambda s: replace(s, content=b'{"model": "jimeng-4.0",')),
    defect("byte-order-mark", "body", lambda s: replace(s, content=b"\xef\xbb\xbf" + s.content)),
    defect("not-utf-8", "body", lambda s: replace(s, content=b'{"prompt": "\xff"}')),
    defect("not-an-object", "body", lambda s: s.body([BODY])),
    defect("too-deep", "body", lambda s: s.body({**BODY, "deep": json.loads("[" * 70 + "]" * 70)})),
    defect("nan", "body", lambda s: replace(s, content=b'{"model": "jimeng-4.0", "n": NaN}')),
    # the contract
    defect("no-prompt", "body", lambda s: s.body({"model": "jimeng-4.0", "n": 1})),
    defect("n-99", "body", lambda s: s.body({**BODY, "n": 99})),
    defect("unknown-model", "body", lambda s: s.body({**BODY, "model": "jimeng-0.1"})),
    defect("unknown-field", "body", lambda s: s.body({**BODY, "colour": "red"})),
    # the route
    defect("models", "route", lambda s: replace(s, method="GET", path="/v1/models")),
    defect("no-such-model", "route", lambda s: replace(s, method="GET", path="/v1/models/nope")),
    defect("no-such-path", "route", lambda s: replace(s, path="/v1/images/nope")),
    defect("wrong-method", "route", lambda s: replace(s, method="PUT")),
]


def cases() -> list[tuple[Defect, ...]]:
    """No defect, each defect, and every pair of defects on different parts of a request."""
    pairs = [(a, b) for a, b in itertools.combinations(DEFECTS, 2) if not a.slots & b.slots]
    return [(), *((d,) for d in DEFECTS), *pairs]


def request_of(defects: tuple[Defect, ...]) -> Sent:
    sent = Sent()
    for one in sorted(defects, key=lambda d: d.last):
        sent = one.apply(sent)
    return sent


Answer = tuple[int, Any, Any]


def answer_of(response: httpx.Response) -> Answer:
    """The status, and the error's code and param (None, None for no error envelope)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return (response.status_code, None, None)
    return (response.status_code, error.get("code"), error.get("param"))


def send(client: httpx.Client, server: MockServer, sent: Sent) -> Answer:
    response = client.request(
        sent.method, server.url + sent.path, headers=sent.headers, content=sent.content
    )
    return answer_of(response)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, MockServer]]:
    with (
        MockServer(**OPTIONS) as upstream,
        MockServer(**OPTIONS) as mock,
        MockServer(upstream=upstream.api_base, **OPTIONS) as forward,
        MockServer(upstream=upstream.api_base, upstream_invalid="reject", **OPTIONS) as reject,
    ):
        yield {"mock": mock, "forward": forward, "reject": reject}


@pytest.mark.parametrize("mode", ["forward", "reject"])
def test_every_pair_of_refusals_is_refused_alike(servers: dict[str, MockServer], mode: str) -> None:
    mock, proxy = servers["mock"], servers[mode]
    differ: list[str] = []
    seen: set[Answer] = set()
    with httpx.Client(timeout=10) as client:
        for defects in cases():
            sent = request_of(defects)
            mine, proxied = send(client, mock, sent), send(client, proxy, sent)
            seen.add(mine)
            if mine != proxied:
                names = " + ".join(d.name for d in defects) or "none"
                differ.append(f"{names}: mock {mine}, proxy {proxied}")
    assert differ == []
    # Not vacuous: the cases were refused in every way the generation route documents, but
    # those no single request provokes (tested below, or not a refusal of the request).
    codes = {code for _, code, _ in seen}
    (generation,) = (r for r in ROUTES if r.path == GENERATIONS)
    apart = {"rate_limit_exceeded", "request_timeout", "stub_error", "server_busy", "server_error"}
    assert set(generation.errors) - apart <= codes, set(generation.errors) - apart - codes
    assert {"not_found", "method_not_allowed", "rate_limit_exceeded"} <= codes
    assert (200, None, None) in seen


def test_a_bad_key_with_a_bad_latency_header_is_a_401_in_every_mode(
    servers: dict[str, MockServer],
) -> None:
    sent = Sent().header("Authorization", "Bearer sk-wrong").header("X-Mock-Latency-Ms", "x")
    with httpx.Client(timeout=10) as client:
        answers = {name: send(client, server, sent) for name, server in servers.items()}
    assert answers == dict.fromkeys(servers, (401, "invalid_api_key", None))


def test_a_valid_compressed_body_is_answered_in_every_mode(
    servers: dict[str, MockServer],
) -> None:
    """The proxy forwards the body as it was sent, with its Content-Encoding."""
    sent = _gzipped(Sent())
    with httpx.Client(timeout=10) as client:
        answers = {name: send(client, server, sent) for name, server in servers.items()}
    assert answers == dict.fromkeys(servers, (200, None, None))
    record = servers["forward"].last_request
    assert record is not None
    assert record.upstream is not None
    assert (record.upstream["status"], record.body) == (200, BODY)


# ---------------------------------------------------------------- refusals of their own servers


@pytest.fixture
def trio(request: pytest.FixtureRequest) -> Iterator[dict[str, MockServer]]:
    """A mock and the two proxies, their upstream, with the test's own options."""
    options = {**OPTIONS, **request.param}
    with (
        MockServer(**options) as upstream,
        MockServer(**options) as mock,
        MockServer(upstream=upstream.api_base, **options) as forward,
        MockServer(upstream=upstream.api_base, upstream_invalid="reject", **options) as reject,
    ):
        yield {"mock": mock, "forward": forward, "reject": reject, "upstream": upstream}


@pytest.mark.parametrize("trio", [{"rpm": 2}], indirect=True)
def test_the_rate_limit_is_refused_alike(trio: dict[str, MockServer]) -> None:
    sent = Sent()
    with httpx.Client(timeout=10) as client:
        for name in ("mock", "forward", "reject"):
            trio["upstream"].reset()
            answers = [send(client, trio[name], sent) for _ in range(3)]
            assert [a[:2] for a in answers] == [
                (200, None),
                (200, None),
                (429, "rate_limit_exceeded"),
            ], name


def _late_body(server: MockServer, key: str) -> Answer:
    """The answer to a request whose body stops coming, on a socket."""
    body = json.dumps(BODY).encode()
    head = (
        f"POST {GENERATIONS} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(head + body[:10])
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(65536)
        top, _, content = received.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in lines[1:])
        while len(content) < int(fields["content-length"]):
            content += sock.recv(65536)
    error = json.loads(content)["error"]
    return (int(lines[0].split(" ")[1]), error["code"], error["param"])


@pytest.mark.parametrize("trio", [{"read_timeout": 0.3}], indirect=True)
@pytest.mark.parametrize(
    ("key", "expected"),
    [(KEY, (408, "request_timeout", None)), ("sk-wrong", (401, "invalid_api_key", None))],
    ids=["late-body", "late-body-and-a-wrong-key"],
)
def test_a_late_body_is_refused_alike(
    trio: dict[str, MockServer], key: str, expected: Answer
) -> None:
    answers = {name: _late_body(trio[name], key) for name in ("mock", "forward", "reject")}
    assert answers == dict.fromkeys(answers, expected)


def named(*names: str) -> tuple[Defect, ...]:
    return tuple(d for d in DEFECTS if d.name in names)


def test_a_broken_stub_file_is_refused_alike(tmp_path: Path) -> None:
    stub = tmp_path / "10-fox.json"
    stub.write_text(json.dumps({"match": {"body": {"prompt": "fox"}}, "fault": "quota"}))
    with (
        MockServer(**OPTIONS) as upstream,
        MockServer(fixtures=tmp_path, **OPTIONS) as mock,
        MockServer(upstream=upstream.api_base, fixtures=tmp_path, **OPTIONS) as proxy,
        httpx.Client(timeout=10) as client,
    ):
        stub.write_text("{not json")
        for defects in ((), named("wrong-key"), named("n-99"), named("bad-latency")):
            sent = request_of(defects)
            mine, proxied = send(client, mock, sent), send(client, proxy, sent)
            assert mine == proxied, [d.name for d in defects]
        assert send(client, mock, Sent())[:2] == (500, "stub_error")
