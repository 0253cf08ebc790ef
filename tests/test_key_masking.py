"""A refused API key, as the 401 message, the journal, the page and the logs show it.

README: a key of 8 characters or fewer is `****`, a longer one `...` and its last 4. Keys are
sent as a client sends them, over a socket, with the openai SDK and with httpx: what the mock
shows is what reached it, after the HTTP parser and the header decoding.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from mockserver import MockServer
from tests import docs

RIGHT_KEY = "sk-right-key-1234"
README = docs.TEXT
PREFIX = "Incorrect API key provided: "
# Distinctive keys, so that any 5 characters of one found in a text can only be a leak.
KEYS = {
    1: "Z",
    4: "Zq7w",
    8: "Zq7wK3pX",
    9: "Zq7wK3pXm",
    40: "sk-Zq7wK3pXm9Vt2LdR8yHc4NbJ6fGs1QaE5uWo",
}
# Printable, but each must be escaped in JSON or HTML: the tail is shown as text, not markup.
MARKUP_KEY = 'sk-Zq7wK3pXm9Vt<&">'
# Bytes beyond ASCII: header values are bytes, which the mock reads as latin-1.
LATIN1_KEY = b"sk-Zq7wK3pXm9Vt-\xe9\xb1\xdf\xbf"


def readme_rule() -> Callable[[str], str]:
    """The masking rule the README states, from its own words and numbers."""
    prose = " ".join(README.split())
    first = re.search(
        r"a refused key longer than (\d+) characters is shown (?:by|as `\.\.\.` and) its last "
        r"(\w+), (?:a shorter one|(?:a key|one) of (\d+) characters or fewer) as `\*\*\*\*`",
        prose,
    )
    second = re.search(r"a key of (\d+) characters or fewer is `\*\*\*\*`", prose)
    assert first is not None, "README no longer states the rule for error messages"
    assert second is not None, "README no longer states the rule of the security defaults"
    words = {"four": 4, "4": 4}
    threshold, tail = int(first[1]), words[first[2]]
    assert int(second[1]) == threshold
    assert first[3] is None or int(first[3]) == threshold

    def shown(key: str) -> str:
        return f"...{key[-tail:]}" if len(key) > threshold else "****"

    return shown


def leaks(key: str, text: str) -> list[str]:
    """Every run of 5 characters of `key` found in `text`: more than the 4 ever shown."""
    return [key[i : i + 5] for i in range(len(key) - 4) if key[i : i + 5] in text]


@pytest.fixture(scope="module")
def guarded() -> Iterator[MockServer]:
    with MockServer(api_keys=[RIGHT_KEY]) as server:
        yield server


@pytest.fixture
def server(guarded: MockServer) -> MockServer:
    guarded.reset()
    return guarded


def refused_by_sdk(server: MockServer, key: str) -> openai.AuthenticationError:
    with (
        openai.OpenAI(base_url=server.api_base, api_key=key, max_retries=0) as sdk,
        pytest.raises(openai.AuthenticationError) as refused,
    ):
        sdk.images.generate(model="jimeng-4.5", prompt="masking", n=1)
    return refused.value


def refused_by_httpx(server: MockServer, key: str | bytes) -> dict[str, Any]:
    raw = key.encode("latin-1") if isinstance(key, str) else key
    response = httpx.get(server.url + "/v1/models", headers={b"Authorization": b"Bearer " + raw})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    return error


@pytest.mark.parametrize("length", sorted(KEYS))
def test_a_refused_key_is_masked_in_the_401_message(server: MockServer, length: int) -> None:
    key = KEYS[length]
    expected = "****" if length <= 8 else f"...{key[-4:]}"
    assert readme_rule()(key) == expected

    by_sdk = refused_by_sdk(server, key)
    by_httpx = refused_by_httpx(server, key)

    assert by_sdk.status_code == 401
    assert isinstance(by_sdk.body, dict)
    assert f"{PREFIX}{expected}. " in by_sdk.message  # the SDK's own "Error code: 401 - " first
    for message in (by_sdk.body["message"], by_httpx["message"]):
        assert message.startswith(f"{PREFIX}{expected}. "), message
    assert by_sdk.body["code"] == "invalid_api_key"
    if length > 4:
        assert leaks(key, by_sdk.message) == []
        assert leaks(key, by_httpx["message"]) == []


def test_the_readme_rule_is_the_code_s_at_every_length(server: MockServer) -> None:
    """Around the threshold and well past it, the README's rule and the 401 agree."""
    shown = readme_rule()
    for length in [*range(1, 14), 40, 200]:
        key = "".join(chr(ord("a") + i % 26) for i in range(length))
        message = refused_by_httpx(server, key)["message"]
        assert message.startswith(f"{PREFIX}{shown(key)}."), (length, message)


def test_a_tail_of_markup_characters_is_shown_as_text(server: MockServer) -> None:
    refused = refused_by_sdk(server, MARKUP_KEY)
    assert PREFIX + '...<&">.' in refused.message
    assert refused_by_httpx(server, MARKUP_KEY)["message"].startswith(PREFIX + '...<&">.')

    journal = httpx.get(server.url + "/__admin/requests").json()["requests"]
    page = httpx.get(server.url + "/__admin/").text

    assert {r["headers"]["authorization"] for r in journal} == {'Bearer ...<&">'}
    assert '<&">' not in page  # escaped, never markup
    assert leaks(MARKUP_KEY, page) == []


def test_a_tail_beyond_ascii_is_its_last_4_bytes_as_latin_1(server: MockServer) -> None:
    """The openai SDK sends ASCII keys only; raw bytes go through httpx. What reaches the mock
    is bytes, read as latin-1, so 4 characters are 4 bytes: never more of the key."""
    tail = LATIN1_KEY[-4:].decode("latin-1")
    with pytest.raises(UnicodeEncodeError):
        refused_by_sdk(server, LATIN1_KEY.decode("latin-1"))

    error = refused_by_httpx(server, LATIN1_KEY)
    journal = httpx.get(server.url + "/__admin/requests").json()["requests"]

    assert error["message"].startswith(f"{PREFIX}...{tail}.")
    assert journal[-1]["headers"]["authorization"] == f"Bearer ...{tail}"
    text = LATIN1_KEY.decode("latin-1")
    assert leaks(text, error["message"]) == []
    assert leaks(text, str(journal)) == []


def test_the_full_key_is_in_no_answer_journal_page_or_log(caplog: pytest.LogCaptureFixture) -> None:
    for name in ("mockserver", "uvicorn"):
        caplog.set_level(logging.DEBUG, logger=name)
    long_keys = [key for key in KEYS.values() if len(key) > 4]
    with MockServer(api_keys=[RIGHT_KEY], log_level="debug", access_log=True) as server:
        sent: list[str | bytes] = [*long_keys, MARKUP_KEY, LATIN1_KEY]
        bodies = [refused_by_sdk(server, key).body for key in long_keys]
        bodies += [refused_by_httpx(server, key) for key in sent]
        with openai.OpenAI(base_url=server.api_base, api_key=RIGHT_KEY, max_retries=0) as sdk:
            sdk.images.generate(model="jimeng-4.5", prompt="the right key", n=1)
        journal = httpx.get(server.url + "/__admin/requests")
        page = httpx.get(server.url + "/__admin/")

    assert journal.status_code == page.status_code == 200
    shown = {"401 bodies": str(bodies), "journal": journal.text, "page": page.text}
    shown["logs"] = caplog.text
    secrets = [*long_keys, MARKUP_KEY, LATIN1_KEY.decode("latin-1"), RIGHT_KEY]
    for where, text in shown.items():
        for key in secrets:
            assert key not in text, f"{key!r} in the {where}"
            # RIGHT_KEY is made of words, which the page has anyway.
            assert key == RIGHT_KEY or leaks(key, text) == [], f"{key!r} partly in the {where}"
    statuses = [r["status"] for r in journal.json()["requests"]]
    assert statuses.count(401) == 2 * len(long_keys) + 2
    assert "...1234" in journal.text  # the right key too, cut to its last 4
    assert "/v1/images/generations" in caplog.text  # the logs were captured at all
    assert any(r.name.startswith("uvicorn") for r in caplog.records)


def test_a_key_beyond_ascii_matches_when_sent_as_utf_8() -> None:
    key = "sk-клю́ч-猫"
    with MockServer(api_keys=[key]) as mock:
        url = mock.api_base + "/images/generations"
        body = {"model": "jimeng-4.5", "prompt": "a cat", "n": 1}
        for sent, status in ((key.encode(), 200), (b"sk-other-key", 401)):
            headers = [
                (b"Authorization", b"Bearer " + sent),
                (b"Content-Type", b"application/json"),
            ]
            answer = httpx.post(url, content=json.dumps(body).encode(), headers=headers)
            assert answer.status_code == status, answer.text
