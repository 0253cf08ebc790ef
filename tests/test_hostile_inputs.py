"""What a hostile tester found: stub files that broke the wire, a body of 90,000 unknown
fields that blocked the server, URLs signed with the public default secret on a shared
network, and API keys compared with `in`. Each over a real socket, each bounded in time."""

from __future__ import annotations

import gc
import json
import logging
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

import mockserver.web.endpoints
from mockserver import ConfigError, MockServer
from mockserver.answers.images import ImageSigner, ImageSpec
from mockserver.config import DEFAULT_SECRET, MockConfig
from mockserver.contract.sizes import SizeTable
from mockserver.contract.validation import MAX_WARNINGS, SUGGESTED, RequestContract
from mockserver.errors import ApiError
from mockserver.paths import data_dir
from tests.conftest import PARSERS
from tests.test_cli import children, linux_only, running, workers
from tests.test_stubs import write

BODY = {"model": "jimeng-4.5", "prompt": "a cat", "n": 1}
AUTH = {"Authorization": "Bearer sk-test"}
COMMAND = [sys.executable, "-m", "mockserver"]


def generate(base: str, body: Any = BODY, **headers: str) -> httpx.Response:
    return httpx.post(
        base + "/v1/images/generations", json=body, headers={**AUTH, **headers}, timeout=10
    )


# ------------------------------------------------------------------- stub files and the wire

CANNED = {"match": {}, "response": {"status": 200, "body": {"created": 1, "data": []}}}


def canned(**response: Any) -> dict[str, Any]:
    return {"match": {}, "response": {**CANNED["response"], **response}}


WIRE_BREAKERS = [
    pytest.param(canned(headers={"X-Upstream": "ok\n"}), "'X-Upstream'", id="value-newline"),
    pytest.param(canned(headers={"X-Upstream": "a\r\nb: c"}), "'X-Upstream'", id="value-crlf"),
    pytest.param(canned(headers={"X-Upstream": "nul\u0000"}), "'X-Upstream'", id="value-nul"),
    pytest.param(canned(headers={"X-Upstream": "caf\u00e9"}), "'X-Upstream'", id="value-latin1"),
    pytest.param(canned(headers={"X-Upstream\n": "ok"}), "'X-Upstream\\n'", id="name-newline"),
    pytest.param(canned(headers={"X Upstream": "ok"}), "'X Upstream'", id="name-space"),
    pytest.param(canned(status=204), "a 204 answer has no body", id="204-with-body"),
    pytest.param(canned(status=304), "a 304 answer has no body", id="304-with-body"),
] + [
    pytest.param(canned(headers={name: "1"}), f"{name!r}: the server sets it", id=name)
    for name in (
        "Content-Length",
        "transfer-encoding",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "TE",
        "Trailer",
        "Proxy-Connection",
    )
]


WHILE_RUNNING = [
    p for p in WIRE_BREAKERS if p.id in {"value-newline", "name-newline", "Content-Length"}
]


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    folder = tmp_path / "stubs"
    folder.mkdir()
    return folder


@pytest.mark.parametrize(("stub", "named"), WIRE_BREAKERS)
def test_a_stub_that_would_break_the_wire_is_refused_at_start(
    stubs: Path, stub: dict[str, Any], named: str
) -> None:
    path = write(stubs, "10-hostile.json", stub)

    with pytest.raises(ConfigError) as raised:
        MockServer(fixtures=stubs)

    assert str(path) in str(raised.value)
    assert named in str(raised.value)


@pytest.mark.parametrize(
    ("stub", "named"),
    [
        (canned(headers={"X-Upstream": "ok\n"}), "control character"),
        (canned(headers={"Content-Length": "2"}), "the server sets it"),
    ],
)
def test_the_command_refuses_it_with_exit_2(stubs: Path, stub: Any, named: str) -> None:
    write(stubs, "10-hostile.json", stub)

    result = subprocess.run(
        [*COMMAND, "--port", "0", "--fixtures", str(stubs)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert "10-hostile.json" in result.stderr
    assert named in result.stderr


@pytest.mark.parametrize("http", PARSERS)
@pytest.mark.parametrize(("stub", "named"), WHILE_RUNNING)
def test_a_stub_broken_so_while_running_is_a_stub_error_not_a_dropped_connection(
    stubs: Path, http: str, stub: dict[str, Any], named: str
) -> None:
    write(stubs, "10-hostile.json", CANNED)
    with MockServer(fixtures=stubs, http=http) as server:
        assert generate(server.url).status_code == 200
        write(stubs, "10-hostile.json", stub)

        answer = generate(server.url)  # an exception here is the dropped connection

        assert answer.status_code == 500, answer.text
        error = answer.json()["error"]
        assert error["code"] == "stub_error"
        assert "10-hostile.json" in error["message"]
        assert named in error["message"]
        assert [r.status for r in server.requests] == [200, 500]


@pytest.mark.parametrize("http", PARSERS)
@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("猫.json", "%E7%8C%AB.json"),
        ("x\r\nSet-Cookie: a=b.json", "x%0D%0ASet-Cookie%3A%20a=b.json"),
        ("50%-off.json", "50%25-off.json"),
        ("10-content_policy~v2.json", "10-content_policy~v2.json"),  # ordinary names as they are
    ],
)
def test_x_mock_stub_carries_any_file_name_percent_encoded(
    stubs: Path, http: str, name: str, header: str
) -> None:
    write(stubs, name, canned(headers={"X-Upstream": "kept"}))
    with MockServer(fixtures=stubs, http=http) as server:
        answer = generate(server.url)

        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Mock-Stub"] == header
        assert unquote(answer.headers["X-Mock-Stub"]) == name
        assert answer.headers["X-Upstream"] == "kept"
        assert "set-cookie" not in answer.headers
        assert server.last_request is not None
        assert server.last_request.stub == name


def test_a_fault_stub_with_such_a_name_is_encoded_too(stubs: Path) -> None:
    write(stubs, "猫 quota.json", {"match": {}, "fault": "quota"})
    with MockServer(fixtures=stubs) as server:
        answer = generate(server.url)

    assert answer.status_code == 429
    assert answer.headers["X-Mock-Stub"] == "%E7%8C%AB%20quota.json"
    assert "猫 quota.json" in answer.json()["error"]["message"]


@pytest.mark.parametrize("http", PARSERS)
@pytest.mark.parametrize("status", [204, 304])
def test_a_bodiless_status_is_answered_without_a_body(
    stubs: Path, http: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    write(stubs, "10-empty.json", {"match": {}, "response": {"status": status}})
    with (
        MockServer(fixtures=stubs, http=http) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client,
    ):
        answers = [client.post("/v1/images/generations", json=BODY) for _ in range(3)]

    assert [(a.status_code, a.content) for a in answers] == [(status, b"")] * 3
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_a_stub_may_not_be_nan(stubs: Path) -> None:
    write(stubs, "10-nan.json", '{"match": {}, "response": {"status": 200, "body": NaN}}')

    with pytest.raises(ConfigError, match="not valid JSON: NaN is not a JSON value"):
        MockServer(fixtures=stubs)


# ------------------------------------------------------------ unknown fields in linear time


def best_of(runs: int, call: Callable[[], object]) -> float:
    """The fastest of `runs` calls, in seconds (the others met a busy CPU)."""
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def many_fields(count: int) -> dict[str, Any]:
    return {**BODY, **{f"f{i}": 1 for i in range(count)}}


def same_bytes_in_one_field(body: dict[str, Any]) -> bytes:
    """A body as long as `body` whose extra bytes are one string field."""
    target = len(json.dumps(body).encode())
    short = json.dumps({**BODY, "padding": ""}).encode()
    one = json.dumps({**BODY, "padding": "x" * (target - len(short))}).encode()
    assert len(one) == target
    return one


@pytest.fixture(scope="module")
def contracts() -> dict[bool, RequestContract]:
    sizes = SizeTable.from_file(data_dir() / "sizes.json")
    return {
        strict: RequestContract.from_dir(data_dir(), sizes, strict=strict)
        for strict in (False, True)
    }


def check(contract: RequestContract, body: dict[str, Any]) -> object:
    """What the endpoint does with a body: validate it, then the warnings."""
    try:
        contract.validate(body)
    except ApiError as error:
        return error
    return contract.warnings(body)


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_validation_and_warnings_grow_linearly_with_unknown_fields(
    contracts: dict[bool, RequestContract], strict: bool
) -> None:
    contract = contracts[strict]
    half, full = many_fields(45_000), many_fields(90_000)

    ratio = best_of(5, lambda: check(contract, full)) / best_of(5, lambda: check(contract, half))

    assert ratio < 3, f"twice the fields cost {ratio:.2f} times as much"
    answer = check(contract, full)
    if strict:
        assert isinstance(answer, ApiError)
        assert answer.code == "unknown_parameter"
        assert answer.param == "f0"
    else:
        assert isinstance(answer, list)
        assert len(answer) == MAX_WARNINGS


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_validation_and_warnings_cost_less_than_parsing_the_body(
    contracts: dict[bool, RequestContract], strict: bool
) -> None:
    contract = contracts[strict]
    text = json.dumps(many_fields(90_000))
    body = json.loads(text)

    ratio = best_of(5, lambda: check(contract, body)) / best_of(5, lambda: json.loads(text))

    assert ratio < 1, f"validation and warnings cost {ratio:.2f} times json.loads"


def test_warnings_name_the_first_fields_and_count_the_rest(
    contracts: dict[bool, RequestContract],
) -> None:
    contract = contracts[False]
    names = [f"f{i}" for i in range(SUGGESTED)] + ["promt", "aspect_ratio", "quality"]
    names += [f"g{i}" for i in range(MAX_WARNINGS - len(names))]
    exactly = contract.warnings({**BODY, **dict.fromkeys(names, 1)})
    many = [*names, "h1", "h2", "h3"]
    found = contract.warnings(
        {**BODY, **dict.fromkeys(many, 1), "size": "1024*1024", "ratio": "1:1"}
    )

    assert [w.param for w in exactly] == names  # as many as fit: each named
    assert len(found) == MAX_WARNINGS
    assert [w.param for w in found[: MAX_WARNINGS - 2]] == many[: MAX_WARNINGS - 2]
    by_param = {w.param: w for w in found}
    assert "Did you mean" not in by_param["promt"].message  # past the first SUGGESTED
    assert "Did you mean 'ratio'?" in by_param["aspect_ratio"].message  # aliases: always
    assert by_param["quality"].code == "ignored_field"
    summary = found[-2]
    assert (summary.code, summary.param) == ("unknown_field", None)
    assert "5 more fields" in summary.message  # 103 fields, 98 of them named
    assert (found[-1].code, found[-1].param) == ("size_overrides_ratio", "ratio")
    early = contract.warnings({**BODY, "promt": "x"})
    assert "Did you mean 'prompt'?" in early[0].message


@pytest.fixture(scope="module")
def roomy() -> Iterator[dict[bool, MockServer]]:
    with (
        MockServer(max_body=4 * 1024 * 1024) as default,
        MockServer(max_body=4 * 1024 * 1024, strict=True) as strict,
    ):
        yield {False: default, True: strict}


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_ninety_thousand_unknown_fields_cost_about_what_their_bytes_do(
    roomy: dict[bool, MockServer], strict: bool
) -> None:
    server = roomy[strict]
    fields = json.dumps(many_fields(90_000)).encode()
    one = same_bytes_in_one_field(many_fields(90_000))
    headers = {**AUTH, "Content-Type": "application/json"}
    answers: dict[bytes, httpx.Response] = {}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:

        def post(body: bytes) -> None:
            answers[body] = client.post("/v1/images/generations", content=body)

        post(one)  # the connection made, and everything warmed up
        ratio = best_of(3, lambda: post(fields)) / best_of(3, lambda: post(one))
        post(fields)  # the last request, for the journal

    # Parsing 90,000 fields costs some 25 times parsing one string (json.loads), and the journal
    # walks every field; a warning with a suggestion for each field made it 200 times.
    assert ratio < 20, f"90,000 fields cost {ratio:.1f} times the same bytes in one field"
    answer = answers[fields]
    if strict:
        assert answer.status_code == 400
        assert (answer.json()["error"]["code"], answer.json()["error"]["param"]) == (
            "unknown_parameter",
            "f0",
        )
    else:
        assert answer.status_code == 200
        assert f"({MAX_WARNINGS} warnings in all" in answer.headers["X-Mock-Warnings"]
        record = server.last_request
        assert record is not None
        assert len(record.warnings) == MAX_WARNINGS
        assert "89,901 more fields" in record.warnings[-1].message


# ---------------------------------------------------------------- a mock on a shared network


def resigned(url: str, secret: str, width: int | None = None) -> str:
    """`url` signed again with `secret`, at another size if asked: what anyone who knows the
    secret can make."""
    parts = urlsplit(url)
    _, _, model, size, name = parts.path.split("/")
    seed, index, _ = name.removesuffix(".png").split("-")
    w, h = (int(side) for side in size.split("x"))
    spec = ImageSpec(model, width or w, width or h, seed, int(index))
    return f"{parts.scheme}://{parts.netloc}{ImageSigner(secret).path(spec)}"


def issued_url(base: str) -> str:
    answer = generate(base)
    assert answer.status_code == 200, answer.text
    url: str = answer.json()["data"][0]["url"]
    return url.replace("0.0.0.0", "127.0.0.1")


def test_beyond_loopback_urls_signed_with_the_default_secret_are_refused() -> None:
    with MockServer(host="0.0.0.0") as server:
        url = issued_url(f"http://127.0.0.1:{server.port}")
        own = httpx.get(url, timeout=10)
        forged = [httpx.get(resigned(url, DEFAULT_SECRET, w), timeout=10) for w in (None, 4096)]

    assert own.status_code == 200
    for answer in forged:
        assert answer.status_code == 404, answer.request.url
        assert answer.json()["error"]["code"] == "image_not_found"
        assert "signature does not match" in answer.json()["error"]["message"]


def test_on_loopback_the_default_secret_signs_urls_as_before() -> None:
    with MockServer() as server:
        url = issued_url(server.url)
        assert url == resigned(url, DEFAULT_SECRET)
        assert httpx.get(url, timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("args", "status"),
    [((), 404), (("--secret", DEFAULT_SECRET), 200)],
    ids=["random", "given"],
)
def test_the_command_beyond_loopback(args: tuple[str, ...], status: int) -> None:
    with running("--host", "0.0.0.0", *args) as url:
        issued = issued_url(url.replace("0.0.0.0", "127.0.0.1"))
        own = httpx.get(issued, timeout=10)
        forged = httpx.get(resigned(issued, DEFAULT_SECRET), timeout=10)

    assert own.status_code == 200
    assert forged.status_code == status


@linux_only
def test_workers_share_the_random_secret_and_nothing_shows_it() -> None:
    with workers("--host", "0.0.0.0", "--log-level", "info") as (process, url):
        lines = list(children(process.pid).values())
        issued = issued_url(url.replace("0.0.0.0", "127.0.0.1"))
        # A new connection each time: both workers draw it.
        fetched = [httpx.get(issued, timeout=10).status_code for _ in range(20)]
        forged = httpx.get(resigned(issued, DEFAULT_SECRET), timeout=10)
        process.send_signal(signal.SIGTERM)
        output, errors = process.communicate(timeout=20)

    assert fetched == [200] * 20
    assert forged.status_code == 404
    assert len(lines) >= 2
    assert not [line for line in lines if b"--secret" in line or re.search(rb"[0-9a-f]{64}", line)]
    assert not re.search(r"[0-9a-f]{64}", output + errors), output + errors


def test_the_secret_is_random_only_beyond_loopback_and_never_in_the_repr() -> None:
    assert MockConfig().secret is None  # the default, DEFAULT_SECRET, at the signer
    assert MockConfig(host="0.0.0.0", secret="mine").secret == "mine"
    exposed = MockConfig(host="0.0.0.0").secret
    assert exposed is not None
    assert len(exposed) == 64
    assert exposed != DEFAULT_SECRET
    assert MockConfig(host="::").secret == exposed  # made once per process
    assert exposed not in repr(MockConfig(host="0.0.0.0"))
    with pytest.raises(ConfigError, match="secret must not be empty"):
        MockConfig(secret="")


def test_api_keys_are_compared_in_constant_time_with_every_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = mockserver.web.endpoints.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(mockserver.web.endpoints.hmac, "compare_digest", counting)
    keys = ["sk-first-key-0001", "sk-second-key-002", "sk-third-key-0003"]
    with MockServer(api_keys=keys) as server:
        for key in keys:
            compared.clear()
            answer = generate(server.url, Authorization=f"Bearer {key}")
            assert answer.status_code == 200, key
            assert compared == [(key.encode(), k.encode()) for k in keys]  # no early exit
        refused = generate(server.url, Authorization="Bearer sk-wrong-key-9999")
        latin = httpx.post(
            server.url + "/v1/images/generations",
            json=BODY,
            headers={"Authorization": "Bearer sk-caf\u00e9-key".encode("latin-1")},
            timeout=10,
        )

    assert refused.status_code == 401
    assert "...9999" in refused.json()["error"]["message"]
    assert latin.status_code == 401  # not a 500: bytes are compared, not str
