"""Compressed request bodies (Content-Encoding gzip and deflate), bounded after inflating, and
bodies in a charset other than UTF-8: each answered over a real socket, the server serving on."""

from __future__ import annotations

import functools
import gzip
import json
import struct
import zlib
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest

import mockserver.web.bodies
from mockserver import MockServer
from mockserver.errors import ApiError
from mockserver.web.bodies import _Inflater

GENERATIONS = "/v1/images/generations"
BODY = {
    "model": "jimeng-4.0",
    "prompt": "a cat",
    "n": 1,
    "size": "1024x1024",
    "response_format": "b64_json",
}
PLAIN = json.dumps(BODY).encode("utf-8")


@pytest.fixture
def jimeng_mock(parsed_mock: MockServer) -> MockServer:
    """Compressed bodies are read after the HTTP parser: each test runs on both of uvicorn's."""
    parsed_mock.reset()
    return parsed_mock


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@functools.cache
def gzipped_zeros(size: int) -> bytes:
    """`size` zero bytes gzipped, made without holding them: 10 MB is ~10 kB, 1 GB ~1 MB.

    Compressing a gigabyte takes seconds; after a full flush the compressor starts afresh,
    so every later block of zeros packs to the same bytes, packed once and repeated (blocks of
    16 MiB: each flush costs a few bytes). The stream is whole: gzip's header, then deflate,
    then the CRC and size of all the zeros."""
    block = bytes(1 << 24)
    whole, rest = divmod(size, len(block))
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    packed = [
        packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH) for _ in range(min(whole, 2))
    ]
    packed += packed[-1:] * (whole - len(packed))
    packed.append(packer.compress(bytes(rest)) + packer.flush())
    crc = 0
    for _ in range(whole):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(bytes(rest), crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # deflate, no name, no time
    return b"".join([header, *packed, struct.pack("<II", crc, size & 0xFFFFFFFF)])


def post(server: MockServer, content: bytes, **headers: str) -> httpx.Response:
    sent = {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"}
    return httpx.post(server.url + GENERATIONS, content=content, headers=sent | headers)


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text[:500]
    body = response.json()["error"]
    assert (body["code"], body["param"]) == (code, None), body
    return str(body["message"])


def assert_serving(server: MockServer) -> None:
    answer = post(server, PLAIN)
    assert answer.status_code == 200, answer.text[:500]


# ------------------------------------------------------------------------------ decompressed


@pytest.mark.parametrize(
    ("encoding", "content"),
    [
        ("gzip", gzip.compress(PLAIN)),
        ("GZIP", gzip.compress(PLAIN)),
        ("x-gzip", gzip.compress(PLAIN)),
        ("gzip", gzip.compress(PLAIN[:30]) + gzip.compress(PLAIN[30:])),
        ("deflate", zlib.compress(PLAIN)),
        ("deflate", raw_deflate(PLAIN)),
        ("identity", PLAIN),
        ("identity, gzip", gzip.compress(PLAIN)),
    ],
    ids=[
        "gzip",
        "gzip-upper-case",
        "x-gzip",
        "gzip-two-members",
        "deflate-zlib",
        "deflate-raw",
        "identity",
        "identity-then-gzip",
    ],
)
def test_compressed_bodies_get_the_answer_of_the_plain_one(
    jimeng_mock: MockServer, encoding: str, content: bytes
) -> None:
    expected = post(jimeng_mock, PLAIN)
    answer = post(jimeng_mock, content, **{"Content-Encoding": encoding})

    assert answer.status_code == 200, answer.text[:500]
    assert answer.json() == expected.json()


def test_a_body_of_the_limit_inflated_is_accepted_one_byte_more_is_not() -> None:
    with MockServer(max_body=1024) as small:
        padded = json.dumps({**BODY, "prompt": ""}).encode()
        exact = padded.replace(b'"prompt": ""', b'"prompt": "' + b"a" * (1024 - len(padded)) + b'"')
        assert len(exact) == 1024
        assert post(small, gzip.compress(exact), **{"Content-Encoding": "gzip"}).status_code == 200
        over = exact.replace(b'"a', b'"aa', 1)
        answer = post(small, gzip.compress(over), **{"Content-Encoding": "gzip"})
        assert "1024 bytes" in error(answer, 413, "request_too_large")
        assert_serving(small)


# ------------------------------------------------------------------------------ bombs


class _CountingInflater:
    """zlib's decompressobj, counting the bytes it lets out."""

    def __init__(self, made: list[_CountingInflater], wbits: int) -> None:
        self.inner = zlib.decompressobj(wbits)
        self.out = 0
        made.append(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        out = self.inner.decompress(data, max_length)
        self.out += len(out)
        return out


@pytest.fixture
def inflated(monkeypatch: pytest.MonkeyPatch) -> list[_CountingInflater]:
    """The decompressors the mock (in this process) makes, each counting its output."""
    made: list[_CountingInflater] = []
    counting = SimpleNamespace(
        decompressobj=lambda wbits: _CountingInflater(made, wbits),
        error=zlib.error,
        MAX_WBITS=zlib.MAX_WBITS,
    )
    monkeypatch.setattr(mockserver.web.bodies, "zlib", counting)
    return made


def test_a_bomb_is_413_after_inflating_at_most_the_limit(
    inflated: list[_CountingInflater],
) -> None:
    bomb = gzipped_zeros(10_000_000)
    assert len(bomb) < 4096 * 4  # ~10 kB: over the limit only after inflating

    with MockServer(max_body=4096) as small:
        small_bomb = gzipped_zeros(200_000)  # ~200 bytes, far under the limit
        for content in (small_bomb, bomb[:4096]):
            answer = post(small, content, **{"Content-Encoding": "gzip"})
            assert "4096 bytes" in error(answer, 413, "request_too_large")
            assert answer.headers["connection"] == "close"
            assert_serving(small)
        answer = post(small, bomb, **{"Content-Encoding": "gzip"})
        error(answer, 413, "request_too_large")  # the sent bytes alone are over the limit
        assert_serving(small)

    assert len(inflated) == 2
    assert all(0 < made.out <= 4097 for made in inflated), [m.out for m in inflated]


@pytest.mark.parametrize("size", [0, 5, 1 << 20, (3 << 24) + 5])
def test_the_zeros_are_a_whole_gzip_stream(size: int) -> None:
    assert gzip.decompress(gzipped_zeros(size)) == bytes(size)


def test_a_gigabyte_bomb_under_the_default_limit_is_413(jimeng_mock: MockServer) -> None:
    bomb = gzipped_zeros(1 << 30)
    assert len(bomb) < jimeng_mock.config.max_body

    answer = post(jimeng_mock, bomb, **{"Content-Encoding": "gzip"})

    error(answer, 413, "request_too_large")
    assert_serving(jimeng_mock)


def test_the_inflater_never_lets_out_more_than_the_limit_and_one_byte() -> None:
    inflater = _Inflater("deflate", 1000)
    bomb = zlib.compress(bytes(1 << 24))
    pieces = [bomb[start : start + 7] for start in range(0, len(bomb), 7)]

    def feed_all() -> None:
        for piece in pieces:
            inflater.feed(piece)

    with pytest.raises(ApiError) as raised:
        feed_all()
    assert raised.value.code == "request_too_large"
    assert inflater.size == 1001


# ------------------------------------------------------------------------------ refused


@pytest.mark.parametrize(
    "encoding", ["br", "zstd", "compress", "gzip, br", "gzip, gzip", "deflate, gzip"]
)
def test_other_encodings_are_415_naming_them(jimeng_mock: MockServer, encoding: str) -> None:
    answer = post(jimeng_mock, gzip.compress(PLAIN), **{"Content-Encoding": encoding})

    message = error(answer, 415, "unsupported_media_type")
    assert f"Content-Encoding {encoding!r}" in message
    assert "'Content-Encoding: gzip' or 'deflate'" in message
    assert_serving(jimeng_mock)


@pytest.mark.parametrize(
    ("encoding", "content", "reason"),
    [
        ("gzip", PLAIN, "incorrect header check"),
        ("gzip", b"\x1f\x8b" + b"garbage" * 20, ""),
        ("gzip", gzip.compress(PLAIN)[:-6], "ends before the compressed stream does"),
        ("gzip", gzip.compress(PLAIN) + b"trailing", ""),
        ("gzip", b"", "ends before the compressed stream does"),
        ("deflate", PLAIN, ""),
        ("deflate", zlib.compress(PLAIN)[:-8], "ends before the compressed stream does"),
        ("deflate", zlib.compress(PLAIN) + b"x", "data after the end"),
    ],
    ids=[
        "plain-json-labelled-gzip",
        "garbage-labelled-gzip",
        "truncated-gzip",
        "gzip-then-garbage",
        "empty-gzip",
        "plain-json-labelled-deflate",
        "truncated-deflate",
        "deflate-then-garbage",
    ],
)
def test_bodies_that_do_not_decompress_are_400(
    jimeng_mock: MockServer, encoding: str, content: bytes, reason: str
) -> None:
    answer = post(jimeng_mock, content, **{"Content-Encoding": encoding})

    message = error(answer, 400, "invalid_json")
    assert f"is not valid {encoding} data" in message
    assert f"'Content-Encoding: {encoding}'" in message
    assert reason in message
    assert "UTF-8" not in message
    assert_serving(jimeng_mock)


# ------------------------------------------------------------------------------ charsets


UTF8_ADVICE = "the body must be UTF-8 JSON without a byte-order mark; send it as UTF-8 and drop"


@pytest.mark.parametrize(
    ("content_type", "content", "charset"),
    [
        ("application/json; charset=latin-1", PLAIN, "latin-1"),
        ("application/json; charset=ISO-8859-1", PLAIN, "ISO-8859-1"),
        ("application/json; charset=utf-16", PLAIN.decode().encode("utf-16"), "utf-16"),
        ('application/json; charset="utf-16le"', PLAIN.decode().encode("utf-16-le"), "utf-16le"),
        ("application/json;charset=utf8", PLAIN, "utf8"),
    ],
)
def test_a_charset_other_than_utf_8_is_415_saying_what_to_send(
    jimeng_mock: MockServer, content_type: str, content: bytes, charset: str
) -> None:
    answer = post(jimeng_mock, content, **{"Content-Type": content_type})

    message = error(answer, 415, "unsupported_media_type")
    assert f"charset {charset!r}" in message
    assert UTF8_ADVICE + " the charset parameter or set it to utf-8" in message
    assert_serving(jimeng_mock)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "application/json; charset=UTF-8",
        'application/json; charset="utf-8"',
        "application/json;charset=Utf-8",
        "application/json ; charset = utf-8",
    ],
)
def test_utf_8_named_any_way_is_accepted(jimeng_mock: MockServer, content_type: str) -> None:
    answer = post(jimeng_mock, PLAIN, **{"Content-Type": content_type})
    assert answer.status_code == 200, answer.text[:500]


@pytest.mark.parametrize(
    ("content", "mark"),
    [
        (b"\xef\xbb\xbf" + PLAIN, "a UTF-8 byte-order mark"),
        (PLAIN.decode().encode("utf-16"), "a UTF-16"),
        (gzip.compress(b"\xef\xbb\xbf" + PLAIN), "a UTF-8 byte-order mark"),
    ],
    ids=["utf-8-bom", "utf-16-with-bom", "gzipped-utf-8-bom"],
)
def test_a_byte_order_mark_is_400_saying_what_to_send(
    jimeng_mock: MockServer, content: bytes, mark: str
) -> None:
    headers = {"Content-Encoding": "gzip"} if content[:2] == b"\x1f\x8b" else {}
    answer = post(jimeng_mock, content, **headers)

    message = error(answer, 400, "invalid_json")
    assert f"it starts with {mark}" in message
    assert UTF8_ADVICE + " the byte-order mark" in message
    assert "utf-8-sig" not in message
    assert_serving(jimeng_mock)


# ------------------------------------------------------------------------------ the SDK


def test_the_sdk_uncompressed_is_unaffected(jimeng_mock: MockServer) -> None:
    with openai.OpenAI(
        base_url=jimeng_mock.api_base, api_key=jimeng_mock.api_key, max_retries=0
    ) as sdk:
        result = sdk.images.generate(
            model="jimeng-4.0", prompt="a cat", n=1, size="1024x1024", response_format="b64_json"
        )
        with pytest.raises(openai.BadRequestError):
            sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=0)

    assert result.model_dump(exclude_none=True) == post(jimeng_mock, PLAIN).json()
