"""Proxy mode (`--upstream`): answers from the real service, the key handed on or replaced,
drift between the mock's contract and the upstream's, gateway errors, faults and stubs in
front. No network: every upstream is another server on 127.0.0.1 in this process."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mockserver import MockServer
from mockserver.answers.upstream import drift
from mockserver.cli import build_parser, config_from
from mockserver.config import MockConfig
from mockserver.errors import ConfigError
from mockserver.web.uvicorn_glue import ServeOptions, ThreadServer, base_url, bind_socket

Handler = Callable[[Request], Awaitable[Response]]
BODY = {"model": "jimeng-4.0", "prompt": "a red fox", "n": 1, "size": "1024x1024"}


class HandServer:
    """A hand-written upstream: `handler` answers POST /v1/images/generations and every GET
    under /v1/ and /files/; what it was sent is in `.seen` (method, path, headers, body)."""

    def __init__(self, handler: Handler) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []

        async def endpoint(request: Request) -> Response:
            body = await request.body()
            self.seen.append((request.method, request.url.path, dict(request.headers), body))
            return await handler(request)

        app = Starlette(
            routes=[
                Route("/v1/images/generations", endpoint, methods=["POST"]),
                Route("/v1/{rest:path}", endpoint, methods=["GET"]),
                Route("/files/{rest:path}", endpoint, methods=["GET"]),
            ]
        )
        self._server = ThreadServer(app, ServeOptions(log_level="warning", uvicorn_logging=False))
        self.port = 0

    @property
    def url(self) -> str:
        return base_url("127.0.0.1", self.port)

    @property
    def api_base(self) -> str:
        return self.url + "/v1"

    def __enter__(self) -> HandServer:
        sock = bind_socket("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        assert self._server.start(sock, name=f"hand-upstream:{self.port}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.stop(5)


def answering(status: int, payload: Any, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: Request) -> Response:
        return JSONResponse(payload, status_code=status, headers=headers)

    return handler


def images_of(url: str, count: int = 1) -> dict[str, Any]:
    return {"created": 1, "data": [{"url": f"{url}/files/{i}.png"} for i in range(count)]}


def sdk(server: MockServer, key: str = "sk-client-0001") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api_base, api_key=key, max_retries=0)


def post(server: MockServer, body: dict[str, Any], key: str = "sk-client-0001") -> httpx.Response:
    return httpx.post(
        server.api_base + "/images/generations",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


# ------------------------------------------------------------------------ answers, keys


def test_answers_come_from_the_upstream_with_the_key_it_is_given() -> None:
    with (
        MockServer(api_keys=["sk-upstream-secret-0042"]) as upstream,
        MockServer(upstream=upstream.api_base, upstream_api_key="sk-upstream-secret-0042") as proxy,
        sdk(proxy, "sk-client-key-7777") as client,
    ):
        result = client.images.generate(
            model="jimeng-4.0", prompt="a red fox", n=1, size="1024x1024"
        )
        assert result.data
        assert result.data[0].url
        assert result.data[0].url.startswith(upstream.url + "/images/")
        assert [m.id for m in client.models.list()] == ["jimeng-4.0", "jimeng-4.5"]
        assert client.models.retrieve("jimeng-4.5").id == "jimeng-4.5"

        seen = upstream.requests
        assert [r.headers["authorization"] for r in seen] == ["Bearer ...0042"] * 3
        record = proxy.requests[0]
        assert record.status == 200
        assert record.upstream is not None
        assert record.upstream["status"] == 200
        assert record.upstream["url"] == upstream.api_base + "/images/generations"
        assert record.mock_verdict == {"status": 200, "error": None, "param": None}
        assert record.drift is None
        assert record.images == (result.data[0].url,)
        assert record.headers["authorization"] == "Bearer ...7777"
        proxy.check()
        upstream.check()


def test_the_client_s_key_is_handed_on_and_a_refusal_of_it_is_drift() -> None:
    with (
        MockServer(api_keys=["sk-right-key-1234"]) as upstream,
        MockServer(upstream=upstream.api_base) as proxy,
    ):
        upstream.expect_errors("invalid_api_key")
        assert post(proxy, BODY, "sk-right-key-1234").status_code == 200
        wrong = post(proxy, BODY, "sk-wrong-key-9999")
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "invalid_api_key"
        assert "drift upstream_refuses" in wrong.headers["x-mock-warnings"]
        record = proxy.requests[-1]
        assert record.drift == "upstream_refuses"
        assert record.error == "invalid_api_key"
        assert [r.headers["authorization"] for r in upstream.requests] == [
            "Bearer ...1234",
            "Bearer ...9999",
        ]


def test_the_upstream_s_headers_are_handed_on() -> None:
    headers = {
        "x-request-id": "req-123",
        "x-ratelimit-remaining-requests": "41",
        "retry-after": "3",
        "retry-after-ms": "2500",
        "x-private": "not handed on",
    }
    refusal = {"error": {"code": "rate_limit_exceeded"}}
    with (
        HandServer(answering(429, refusal, headers)) as up,
        MockServer(upstream=up.api_base) as proxy,
    ):
        answer = post(proxy, BODY)
        assert answer.status_code == 429
        for name in ("x-request-id", "x-ratelimit-remaining-requests", "retry-after"):
            assert answer.headers[name] == headers[name]
        assert answer.headers["retry-after-ms"] == "2500"
        assert answer.headers["content-type"] == "application/json"
        assert "x-private" not in answer.headers
        assert proxy.last_request is not None
        assert proxy.last_request.drift is None  # a 429 says nothing of the request


# ------------------------------------------------------------------------ drift


def test_a_strict_upstream_refusing_an_unknown_field_is_upstream_refuses() -> None:
    with (
        MockServer(strict=True) as upstream,
        MockServer(upstream=upstream.api_base) as proxy,
        sdk(proxy) as client,
    ):
        upstream.expect_errors("unknown_parameter")
        with pytest.raises(openai.BadRequestError) as caught:
            client.images.generate(
                model="jimeng-4.0", prompt="a fox", n=1, extra_body={"colour_mode": "vivid"}
            )
        assert caught.value.code == "unknown_parameter"
        assert "drift upstream_refuses" in caught.value.response.headers["x-mock-warnings"]
        record = proxy.requests[-1]
        assert record.drift == "upstream_refuses"
        assert record.upstream is not None
        assert record.upstream["error"] == "unknown_parameter"
        assert record.upstream["param"] == "colour_mode"
        assert record.mock_verdict == {"status": 200, "error": None, "param": None}
        with pytest.raises(AssertionError, match="drift upstream_refuses"):
            proxy.check()

        listed = httpx.get(proxy.url + "/__admin/requests?drift=true").json()
        assert [r["id"] for r in listed["requests"]] == [record.id]
        assert listed["requests"][0]["drift"] == "upstream_refuses"
        kind = httpx.get(proxy.url + "/__admin/requests?drift=mock_refuses").json()
        assert kind["requests"] == []
        page = httpx.get(proxy.url + "/__admin/")
        assert "drift upstream_refuses" in page.text
        bad = httpx.get(proxy.url + "/__admin/requests?drift=maybe")
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "drift"


def test_an_upstream_accepting_what_the_mock_refuses_is_mock_refuses() -> None:
    async def accept(request: Request) -> Response:
        body = json.loads(await request.body())
        return JSONResponse(images_of(up.url, body["n"]))

    with HandServer(accept) as up, MockServer(upstream=up.api_base) as proxy:
        answer = post(proxy, {**BODY, "n": 99})
        assert answer.status_code == 200
        assert len(answer.json()["data"]) == 99
        assert "drift mock_refuses" in answer.headers["x-mock-warnings"]
        record = proxy.requests[-1]
        assert record.drift == "mock_refuses"
        assert record.mock_verdict is not None
        assert record.mock_verdict["error"] == "invalid_value"
        assert record.mock_verdict["param"] == "n"
        assert record.status == 200
        with pytest.raises(AssertionError, match="mock_refuses"):
            proxy.check()


def test_both_refusing_differently_is_different_error() -> None:
    refusal = {"error": {"code": "too_many", "param": "n", "message": "n is at most 4"}}
    with HandServer(answering(400, refusal)) as up, MockServer(upstream=up.api_base) as proxy:
        answer = post(proxy, {**BODY, "n": 99})
        assert answer.status_code == 400
        assert answer.json() == refusal
        record = proxy.requests[-1]
        assert record.drift == "different_error"
        assert record.error == "too_many"
        assert record.error_message == "n is at most 4"


def test_drift_kinds() -> None:
    ok = (200, None, None)
    assert drift(ok, (200, None, None)) is None
    assert drift(ok, (400, "unknown_parameter", "x")) == "upstream_refuses"
    assert drift(ok, (500, None, None)) is None
    assert drift(ok, (429, "rate_limit_exceeded", None)) is None
    assert drift((400, "invalid_value", "n"), (200, None, None)) == "mock_refuses"
    assert drift((400, "invalid_value", "n"), (400, "invalid_value", "n")) is None
    assert drift((400, "invalid_value", "n"), (400, "invalid_value", "size")) == "different_error"
    assert drift((400, "invalid_value", "n"), (502, None, None)) is None
    assert drift((429, "rate_limit_exceeded", None), (200, None, None)) is None


def test_reject_mode_answers_an_invalid_request_without_the_upstream() -> None:
    with (
        HandServer(answering(200, {"data": []})) as up,
        MockServer(upstream=up.api_base, upstream_invalid="reject") as proxy,
    ):
        answer = post(proxy, {**BODY, "n": 99})
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "invalid_value"
        assert up.seen == []
        assert proxy.requests[-1].upstream is None
        assert post(proxy, BODY).status_code == 200
        assert len(up.seen) == 1
        assert json.loads(up.seen[0][3]) == BODY


# ------------------------------------------------------------------------ gateway errors


def test_a_stopped_upstream_is_bad_gateway() -> None:
    with MockServer() as upstream:
        base = upstream.api_base
    with MockServer(upstream=base) as proxy:
        answer = post(proxy, BODY)
        assert answer.status_code == 502
        assert answer.json()["error"]["code"] == "bad_gateway"
        assert "cannot reach the upstream" in answer.json()["error"]["message"]
        record = proxy.requests[-1]
        assert record.upstream == {"url": base + "/images/generations", "failure": "bad_gateway"}
        assert record.error == "bad_gateway"
        assert httpx.get(proxy.api_base + "/models").status_code == 502


def test_an_upstream_slower_than_the_timeout_is_gateway_timeout() -> None:
    async def slow(request: Request) -> Response:
        await asyncio.sleep(3)
        return JSONResponse({"data": []})

    with HandServer(slow) as up, MockServer(upstream=up.api_base, upstream_timeout=0.3) as proxy:
        answer = post(proxy, BODY)
        assert answer.status_code == 504
        assert answer.json()["error"]["code"] == "gateway_timeout"
        assert "0.3 s" in answer.json()["error"]["message"]
        assert proxy.requests[-1].upstream is not None
        assert proxy.requests[-1].upstream["failure"] == "gateway_timeout"


def test_an_answer_that_is_not_json_is_bad_gateway() -> None:
    async def html(request: Request) -> Response:
        return Response("<html>502 from nginx</html>", status_code=502, media_type="text/html")

    with HandServer(html) as up, MockServer(upstream=up.api_base) as proxy:
        answer = post(proxy, BODY)
        assert answer.status_code == 502
        assert "not JSON (text/html" in answer.json()["error"]["message"]


def test_answers_no_mock_gives_are_handed_on() -> None:
    gateway = {"code": -2000, "message": "upstream busy", "data": None}
    with HandServer(answering(500, gateway)) as up, MockServer(upstream=up.api_base) as proxy:
        answer = post(proxy, BODY)
        assert answer.status_code == 500
        assert answer.json() == gateway
        record = proxy.requests[-1]
        assert record.error == "upstream_error"
        assert record.drift is None
    with HandServer(answering(200, {"created": 1})) as up, MockServer(upstream=up.api_base) as p:
        answer = post(p, BODY)
        assert answer.status_code == 200
        assert answer.json() == {"created": 1}


# ------------------------------------------------------------------------ in front of it


def test_faults_and_stubs_answer_locally(tmp_path: Path) -> None:
    (tmp_path / "fox.json").write_text(
        json.dumps(
            {"match": {"body": {"prompt": "stubbed"}}, "response": {"status": 200, "body": {}}}
        )
    )
    with (
        HandServer(answering(200, {"data": []})) as up,
        MockServer(upstream=up.api_base, fixtures=tmp_path) as proxy,
    ):
        proxy.fail_next("server_error")
        assert post(proxy, BODY).status_code == 500
        stubbed = post(proxy, {**BODY, "prompt": "stubbed"})
        assert stubbed.status_code == 200
        assert stubbed.headers["x-mock-stub"] == "fox.json"
        slow = httpx.post(
            proxy.api_base + "/images/generations",
            json=BODY,
            headers={"Authorization": "Bearer sk-1", "X-Mock-Latency-Ms": "50"},
        )
        assert slow.status_code == 200
        assert slow.headers["x-mock-latency-ms"] == "50"
        assert len(up.seen) == 1  # only the plain request was forwarded
        assert [r.upstream is None for r in proxy.requests] == [True, True, False]


def test_a_client_that_leaves_while_a_proxied_answer_waits_left_then() -> None:
    """The latency wait ends when the client goes, in proxy mode too: nothing is forwarded,
    and the request is recorded then, not two seconds later."""
    with HandServer(answering(200, {"data": []})) as up, MockServer(upstream=up.api_base) as proxy:
        body = json.dumps(BODY).encode()
        head = (
            f"POST /v1/images/generations HTTP/1.1\r\nHost: {proxy.host}:{proxy.port}\r\n"
            "Authorization: Bearer sk-1\r\nContent-Type: application/json\r\n"
            f"X-Mock-Latency-Ms: 2000\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
            sock.sendall(head + body)
            time.sleep(0.2)
        left = time.monotonic()
        while not proxy.requests and time.monotonic() - left < 1.5:
            time.sleep(0.01)
        assert time.monotonic() - left < 1.0
        (record,) = proxy.requests
        assert (record.status, record.outcome) == (None, "client_disconnected")
        assert (record.body, record.upstream) == (BODY, None)
        assert up.seen == []


def test_options_and_config() -> None:
    args = build_parser().parse_args(
        [
            *("--upstream", "http://127.0.0.1:9/v1/", "--upstream-api-key", "sk-x"),
            *("--upstream-timeout", "2.5", "--upstream-invalid", "reject"),
        ]
    )
    config = config_from(args)
    assert config.upstream == "http://127.0.0.1:9/v1"
    assert config.upstream_timeout == 2.5
    assert config.upstream_invalid == "reject"
    assert config.record is None
    assert config.record_mode == "new"
    assert "sk-x" not in repr(config)
    defaults = config_from(build_parser().parse_args([]))
    assert defaults.upstream is None
    assert defaults.upstream_timeout == 60
    assert defaults.upstream_invalid == "forward"
    with pytest.raises(ConfigError, match="upstream"):
        MockConfig(upstream="ftp://example")
    with pytest.raises(ConfigError, match="needs an upstream"):
        MockConfig(record=Path("x"))
    with pytest.raises(ConfigError, match="timeout"):
        MockConfig(upstream="http://127.0.0.1:9/v1", upstream_timeout=0)


def test_only_the_key_and_content_type_of_the_client_are_sent_on() -> None:
    with HandServer(answering(200, {"data": []})) as up, MockServer(upstream=up.api_base) as proxy:
        answer = httpx.post(
            proxy.api_base + "/images/generations",
            content=b'{"model": "jimeng-4.0"}',
            headers={
                "Authorization": "Bearer sk-1234567890",
                "Content-Type": "text/plain",
                "Cookie": "session=abc",
                "X-Mock-Fault": "rate_limit",
            },
        )
        assert answer.status_code == 200
        assert "drift mock_refuses" in answer.headers["x-mock-warnings"]
        (seen,) = up.seen
        assert seen[2]["content-type"] == "text/plain"
        assert seen[2]["authorization"] == "Bearer sk-1234567890"
        assert "cookie" not in seen[2]
        assert "x-mock-fault" not in seen[2]
        assert seen[3] == b'{"model": "jimeng-4.0"}'
        record = proxy.requests[-1]
        assert record.mock_verdict is not None
        assert record.mock_verdict["error"] == "unsupported_media_type"


# ------------------------------------------------------------------------ hostile upstreams


def test_an_answer_past_the_upstream_limit_is_bad_gateway() -> None:
    big = {"created": 1, "data": [], "pad": "x" * (3 * 1024 * 1024)}
    with (
        HandServer(answering(200, big)) as up,
        MockServer(upstream=up.api_base, upstream_max_mb=2) as proxy,
    ):
        answer = post(proxy, BODY)
        assert answer.status_code == 502
        assert "--upstream-max-mb (2 MiB once decompressed)" in answer.json()["error"]["message"]
        assert proxy.requests[-1].status == 502
        assert post(proxy, BODY).status_code == 502  # and it keeps serving


def test_a_compression_bomb_from_the_upstream_is_stopped_at_the_limit() -> None:
    import gzip

    bomb = gzip.compress(b'{"pad": "' + b"0" * (20 * 1024 * 1024) + b'"}', 9)

    async def gzipped(request: Request) -> Response:
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        return Response(bomb, headers=headers)

    with HandServer(gzipped) as up, MockServer(upstream=up.api_base, upstream_max_mb=1) as proxy:
        assert len(bomb) < 100_000
        answer = post(proxy, BODY)
        assert answer.status_code == 502
        assert "once decompressed" in answer.json()["error"]["message"]


def test_json_nested_too_deep_for_the_parser_is_bad_gateway() -> None:
    deep = b"[" * 200_000 + b"]" * 200_000

    async def nested(request: Request) -> Response:
        return Response(deep, media_type="application/json")

    with HandServer(nested) as up, MockServer(upstream=up.api_base) as proxy:
        answer = post(proxy, BODY)
        assert answer.status_code == 502, answer.text
        assert "nested too deep" in answer.json()["error"]["message"]
        proxy.expect_errors("bad_gateway")
        proxy.check()  # a gateway error, not a failure of the mock


class RawUpstream:
    """An upstream of a few lines over a bare socket, answering each request with `answer`
    as it is: what no well-behaved server would send."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.api_base = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(re.search(rb"content-length: *(\d+)", head, re.I)[1])  # type: ignore[index]
                while len(rest) < length:
                    rest += conn.recv(65536)
                conn.sendall(self.answer)

    def __enter__(self) -> RawUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        self.thread.join(5)


def test_an_upstream_status_no_client_could_take_is_bad_gateway() -> None:
    body = b'{"created": 1, "data": []}'
    answer = b"HTTP/1.1 999 Odd\r\nContent-Type: application/json\r\n"
    answer += b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    with RawUpstream(answer) as up, MockServer(upstream=up.api_base) as proxy:
        got = post(proxy, BODY)
        assert got.status_code == 502, got.text
        assert "status 999" in got.json()["error"]["message"]
        proxy.expect_errors("bad_gateway")
        proxy.check()


def test_a_key_the_upstream_echoes_goes_no_further(tmp_path: Path) -> None:
    secret, client_key = "sk-upstream-SECRET-9876", "sk-client-LEAKY-5432"

    async def echo(request: Request) -> Response:
        sent = request.headers["authorization"]
        return JSONResponse(
            {"error": {"message": f"bad key: {sent}", "type": "x", "param": None, "code": "nope"}},
            status_code=401,
            headers={"x-request-id": sent, "x-ratelimit-key": sent},
        )

    folder = tmp_path / "recorded"
    with (
        HandServer(echo) as up,
        MockServer(upstream=up.api_base, upstream_api_key=secret, record=folder) as proxy,
    ):
        answer = post(proxy, BODY, key=client_key)
        page = httpx.get(proxy.url + "/__admin/").text
        journal = httpx.get(proxy.url + "/__admin/requests").text
    with HandServer(echo) as up, MockServer(upstream=up.api_base) as passing:
        handed = post(passing, BODY, key=client_key)
        handed_journal = httpx.get(passing.url + "/__admin/requests").text
    seen = [
        answer.text,
        *answer.headers.values(),
        page,
        journal,
        handed.text,
        *handed.headers.values(),
        handed_journal,
    ]
    seen += [path.read_text() for path in folder.rglob("*") if path.is_file()]
    assert answer.status_code == 401
    assert "...9876" in answer.json()["error"]["message"]
    for text in seen:
        assert secret not in text
        assert client_key not in text
