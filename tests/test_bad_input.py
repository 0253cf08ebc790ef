"""Hostile bodies get a 4xx in the error envelope, and the server keeps serving."""

from __future__ import annotations

import httpx
import pytest

from mockserver import MockServer
from mockserver.web.bodies import MAX_DEPTH


@pytest.fixture
def jimeng_mock(parsed_mock: MockServer) -> MockServer:
    """These tests depend on how requests are parsed: each runs on both of uvicorn's parsers."""
    parsed_mock.reset()
    return parsed_mock


HEADERS = {"Authorization": "Bearer k", "Content-Type": "application/json"}
GOOD = b'{"model": "jimeng-4.0", "prompt": "p", "n": 1, "size": "1024x1024"}'
START = b'{"model": "jimeng-4.0", "prompt": "p", "n": 1, "size": "1024x1024", "extra": '


def deep(levels: int) -> bytes:
    """`n` as arrays nested `levels` deep: the body nests `levels + 1` levels."""
    return b'{"model": "jimeng-4.0", "prompt": "p", "n": ' + b"[" * levels + b"]" * levels + b"}"


def deep_objects(levels: int, start: bytes = START, end: bytes = b"}") -> bytes:
    """`{"a": {"a": ... 1}}` nested `levels` deep, as the value of an unknown field."""
    return start + b'{"a": ' * levels + b"1" + b"}" * levels + end


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (b'{"model": "jimeng-4.0", "prompt": "\\ud800", "n": 1}', "invalid_json", None),
        (b'{"model": "jimeng-4.0", "prompt": "\\udfff x", "n": 1}', "invalid_json", None),
        (deep(100_000), "invalid_json", None),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json", None),
        (b"[" * 100_000, "invalid_json", None),
        (deep_objects(100_000), "invalid_json", None),
        (deep_objects(100_000, start=b"", end=b""), "invalid_json", None),
        (b'{"a": ' * 100_000, "invalid_json", None),
        (START + b'[{"a": ' * 50_000 + b"1" + b"}]" * 50_000 + b"}", "invalid_json", None),
        (deep(950), "invalid_json", None),
        (deep_objects(950), "invalid_json", None),
        (deep(MAX_DEPTH), "invalid_json", None),
        (deep_objects(MAX_DEPTH), "invalid_json", None),
        (deep(MAX_DEPTH - 1), "invalid_value", "n"),
        (b'{"model": "jimeng-4.0", "prompt": "p", "n": 1e999}', "invalid_json", None),
        (
            b'{"model": "jimeng-4.0", "prompt": "p", "n": ' + b"9" * 5000 + b"}",
            "invalid_json",
            None,
        ),
        (b'{"model": "jimeng-4.0", "prompt": "p", "n": Infinity}', "invalid_json", None),
        (b"\xff\xfe{}", "invalid_json", None),
        (GOOD.decode().encode("utf-16"), "invalid_json", None),
        (b"\xef\xbb\xbf" + GOOD, "invalid_json", None),
        (GOOD.replace(b'"p"', b'"\xc0\xaf"'), "invalid_json", None),
        (GOOD.replace(b'"p"', b'"\x80"'), "invalid_json", None),
        (GOOD.replace(b'"p"', b'"\xe7\x8c"'), "invalid_json", None),
        (GOOD.replace(b'"p"', b'"\xed\xa0\x80"'), "invalid_json", None),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "invalid_json", None),
        (GOOD.replace(b"{", b"{/* a comment */"), "invalid_json", None),
        (b"\x00" * 64, "invalid_json", None),
        (b" \r\n\t ", "invalid_json", None),
        (b"", "invalid_json", None),
    ],
    ids=[
        "lone-high-surrogate",
        "lone-low-surrogate",
        "nested-100000",
        "top-level-array-nested-100000",
        "unclosed-array-100000",
        "nested-objects-100000",
        "top-level-objects-nested-100000",
        "unclosed-objects-100000",
        "arrays-and-objects-nested-100000",
        "nested-950",
        "nested-objects-950",
        "nested-one-past-the-bound",
        "nested-objects-one-past-the-bound",
        "nested-to-the-bound",
        "float-overflow",
        "int-5000-digits",
        "infinity",
        "not-utf8",
        "utf-16",
        "utf-8-byte-order-mark",
        "not-utf8-overlong",
        "not-utf8-lone-continuation-byte",
        "not-utf8-cut-off-character",
        "not-utf8-encoded-surrogate",
        "png-bytes",
        "comment",
        "nul-bytes",
        "whitespace-only",
        "empty",
    ],
)
def test_hostile_body_is_a_4xx_and_the_server_keeps_serving(
    jimeng_mock: MockServer, body: bytes, code: str, param: str | None
) -> None:
    url = jimeng_mock.api_base + "/images/generations"

    response = httpx.post(url, content=body, headers=HEADERS)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["param"] == param
    assert httpx.post(url, content=GOOD, headers=HEADERS).status_code == 200


def test_a_surrogate_pair_is_a_character(jimeng_mock: MockServer) -> None:
    body = b'{"model": "jimeng-4.0", "prompt": "\\ud83d\\ude00", "n": 1, "size": "1024x1024"}'

    response = httpx.post(
        jimeng_mock.api_base + "/images/generations", content=body, headers=HEADERS
    )

    assert response.status_code == 200
    assert response.json()["data"][0]["revised_prompt"] == "\N{GRINNING FACE}"


def test_the_journal_stays_readable_after_deeply_nested_bodies(jimeng_mock: MockServer) -> None:
    """A body nested to the bound is answered and shown; one Python could still parse, but
    nested past the bound, is refused, so the journal and its page never recurse too deep."""
    url = jimeng_mock.api_base + "/images/generations"

    at_the_bound = httpx.post(url, content=deep_objects(MAX_DEPTH - 1), headers=HEADERS)
    past_it = httpx.post(url, content=deep_objects(950), headers=HEADERS)
    journal = httpx.get(jimeng_mock.url + "/__admin/requests")
    page = httpx.get(jimeng_mock.url + "/__admin/")

    assert at_the_bound.status_code == 200, at_the_bound.text
    assert past_it.status_code == 400, past_it.text
    assert past_it.json()["error"]["code"] == "invalid_json"
    assert f"more than {MAX_DEPTH} levels" in past_it.json()["error"]["message"]
    assert journal.status_code == 200, journal.text
    assert [(r["status"], r["error"]) for r in journal.json()["requests"]] == [
        (200, None),
        (400, "invalid_json"),
    ]
    assert page.status_code == 200, page.text
    assert "invalid_json" in page.text
    assert httpx.post(url, content=GOOD, headers=HEADERS).status_code == 200
