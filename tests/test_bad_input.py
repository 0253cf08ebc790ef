"""Hostile bodies get a 4xx in the error envelope, and the server keeps serving."""

from __future__ import annotations

import httpx
import pytest

from mockserver import MockServer

HEADERS = {"Authorization": "Bearer k", "Content-Type": "application/json"}
GOOD = b'{"model": "jimeng-4.0", "prompt": "p", "n": 1, "size": "1024x1024"}'


def deep(levels: int) -> bytes:
    return b'{"model": "jimeng-4.0", "prompt": "p", "n": ' + b"[" * levels + b"]" * levels + b"}"


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (b'{"model": "jimeng-4.0", "prompt": "\\ud800", "n": 1}', "invalid_json", None),
        (b'{"model": "jimeng-4.0", "prompt": "\\udfff x", "n": 1}', "invalid_json", None),
        (deep(100_000), "invalid_json", None),
        (deep(950), "invalid_value", "n"),
        (b'{"model": "jimeng-4.0", "prompt": "p", "n": 1e999}', "invalid_value", "n"),
        (
            b'{"model": "jimeng-4.0", "prompt": "p", "n": ' + b"9" * 5000 + b"}",
            "invalid_json",
            None,
        ),
        (b'{"model": "jimeng-4.0", "prompt": "p", "n": Infinity}', "invalid_json", None),
        (b"\xff\xfe{}", "invalid_json", None),
        (b"", "invalid_json", None),
    ],
    ids=[
        "lone-high-surrogate",
        "lone-low-surrogate",
        "nested-100000",
        "nested-950",
        "float-overflow",
        "int-5000-digits",
        "infinity",
        "not-utf8",
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
