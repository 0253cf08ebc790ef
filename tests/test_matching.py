"""One matcher model for `assert_requested`, `fail_next`, `POST /__admin/faults` and stub files:
a value with its JSON type, a regex with its flags, and in Python a predicate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import openai
import pytest

from mockserver import ConfigError, MockServer
from mockserver.answers.matching import Matcher, MatcherError


def generate(sdk: openai.OpenAI, prompt: str) -> None:
    sdk.images.generate(model="jimeng-4.5", prompt=prompt, n=1)


def test_fail_next_keeps_the_flags_of_a_compiled_pattern(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    jimeng_mock.fail_next("rate_limit", prompt=re.compile("CAT", re.IGNORECASE))

    with pytest.raises(openai.RateLimitError):
        generate(client, "a cat")
    generate(client, "a cat")  # used up
    jimeng_mock.expect_errors("rate_limit_exceeded")


def test_fail_next_takes_a_predicate(jimeng_mock: MockServer, client: openai.OpenAI) -> None:
    def long_prompt(prompt: str) -> bool:
        return len(prompt) > 10

    jimeng_mock.fail_next("content_policy", prompt=long_prompt)

    generate(client, "short")
    with pytest.raises(openai.BadRequestError):
        generate(client, "a much longer prompt")
    jimeng_mock.expect_errors("content_policy_violation")


def test_the_admin_api_takes_regex_flags(jimeng_mock: MockServer, client: openai.OpenAI) -> None:
    answer = httpx.post(
        jimeng_mock.url + "/__admin/faults",
        json={"fault": "quota", "match": {"prompt": {"regex": "^a CAT$", "flags": "i"}}},
    )
    assert answer.status_code == 201
    assert answer.json()["queued"]["match"] == {"prompt": {"regex": "^a CAT$", "flags": "i"}}

    generate(client, "a cat\n")  # JSON patterns are ECMA-262's: `$` is the very end
    with pytest.raises(openai.RateLimitError):
        generate(client, "a cat")
    jimeng_mock.expect_errors("insufficient_quota")


@pytest.mark.parametrize(
    ("match", "param"),
    [
        ({"prompt": {"regex": "cat", "flags": "x"}}, "match.prompt"),
        ({"prompt": {"regex": "(cat"}}, "match.prompt"),
    ],
)
def test_the_admin_api_refuses_a_bad_matcher(
    jimeng_mock: MockServer, match: dict[str, object], param: str
) -> None:
    answer = httpx.post(
        jimeng_mock.url + "/__admin/faults", json={"fault": "quota", "match": match}
    )

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


def test_a_stub_file_takes_regex_flags(tmp_path: Path) -> None:
    stub = {
        "match": {"body": {"prompt": {"regex": "CAT", "flags": "i"}}},
        "fault": "content_policy",
    }
    (tmp_path / "10-cat.json").write_text(json.dumps(stub))
    with (
        MockServer(fixtures=tmp_path) as server,
        openai.OpenAI(base_url=server.api_base, api_key=server.api_key, max_retries=0) as sdk,
    ):
        with pytest.raises(openai.BadRequestError):
            generate(sdk, "a cat")
        generate(sdk, "a dog")
        assert [r.stub for r in server.requests] == ["10-cat.json", None]


def test_a_stub_file_with_unknown_flags_is_refused_at_start(tmp_path: Path) -> None:
    stub = {"match": {"body": {"prompt": {"regex": "cat", "flags": "g"}}}, "fault": "quota"}
    (tmp_path / "10-cat.json").write_text(json.dumps(stub))

    with pytest.raises(ConfigError, match=r"10-cat\.json"):
        MockServer(fixtures=tmp_path)


def test_assert_requested_honours_flags_and_reports_each_kind(
    jimeng_mock: MockServer, client: openai.OpenAI
) -> None:
    generate(client, "A Cat")

    jimeng_mock.assert_requested(1, prompt=re.compile("cat", re.IGNORECASE))
    with pytest.raises(AssertionError) as miss:
        jimeng_mock.assert_requested(
            prompt=re.compile("dog", re.IGNORECASE), n=1.0, model=str.isdigit
        )
    message = str(miss.value)
    assert 'prompt: expected a match for /dog/i, got "A Cat"' in message
    assert "n: expected 1.0, got 1 (same value, but int instead of float)" in message
    assert "model: expected a value for which isdigit is true" in message


@pytest.mark.parametrize(
    ("want", "got", "matched"),
    [
        (1, 1, True),
        (1, 1.0, False),
        (1, True, False),
        ("cat", "cat", True),
        ({"regex": "cat"}, "a cat", True),
        ({"regex": "cat$"}, "cat\n", False),
        ({"regex": "cat$", "flags": "m"}, "cat\nx", True),
        ({"regex": "a.b", "flags": "s"}, "a\nb", True),
        ({"regex": "CAT", "flags": "i"}, "cat", True),
        ({"regex": "cat"}, 1, False),
        ({"other": 1}, {"other": 1}, True),  # an object without "regex" is a value
    ],
)
def test_a_json_matcher(want: object, got: object, matched: bool) -> None:
    assert Matcher.from_json(want).matches(got) is matched


def test_a_json_matcher_with_more_keys_than_regex_and_flags_is_refused() -> None:
    with pytest.raises(MatcherError):
        Matcher.from_json({"regex": "a", "flag": "i"})
