"""The pytest plugin, run inside pytest's own pytester as a user's test suite would use it."""

from __future__ import annotations

import subprocess
import sys

import pytest

USER_TESTS = """
import httpx
import openai
import subprocess
import sys

import pytest

urls = []

def test_generate_with_the_fixture(jimeng_mock):
    client = openai.OpenAI(base_url=jimeng_mock.api_base, api_key=jimeng_mock.api_key)
    result = client.images.generate(model="jimeng-4.0", prompt="a cat", n=1, size="1024*1024")
    client.close()
    assert httpx.get(result.data[0].url).status_code == 200
    urls.append(jimeng_mock.url)

def test_the_server_is_shared_across_tests(jimeng_mock):
    urls.append(jimeng_mock.url)
    assert urls[0] == urls[1]
"""

STRICT_TESTS = """
import httpx
import subprocess
import sys

import pytest

@pytest.fixture
def jimeng_mock_config():
    return {"strict": True, "api_keys": ["sk-module"]}

def test_options_come_from_the_overridden_fixture(jimeng_mock):
    assert jimeng_mock.api_key == "sk-module"
    response = httpx.post(
        jimeng_mock.api_base + "/images/generations",
        headers={"Authorization": "Bearer sk-module"},
        json={"model": "jimeng-4.0", "prompt": "p", "n": 1, "style": "vivid"},
    )
    assert response.json()["error"]["code"] == "unknown_parameter"
"""


def test_fixture_serves_and_is_shared_within_a_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=2)


def test_config_fixture_can_be_overridden_per_module(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS, test_strict=STRICT_TESTS)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=3)


def test_plugin_is_registered_through_its_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")

    result.stdout.fnmatch_lines(["*jimeng_mock_config*", "*jimeng_mock *"])


def test_loading_the_plugin_imports_no_server_code() -> None:
    # Every pytest run of a project with the package installed loads the plugin.
    probe = (
        "import sys, mockserver.harness.pytest_plugin; "
        "print(sorted(m for m in ('starlette', 'uvicorn', 'PIL', 'jsonschema',"
        " 'mockserver.web.app', 'mockserver.app') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"


TOOLKIT_TESTS = """
import openai
import pytest


@pytest.fixture
def client(jimeng_mock):
    with openai.OpenAI(base_url=jimeng_mock.api_base, api_key=jimeng_mock.api_key) as sdk:
        yield sdk


def test_first(jimeng_mock, client):
    jimeng_mock.fail_next("quota")
    with pytest.raises(openai.RateLimitError):
        client.images.generate(model="jimeng-4.0", prompt="a cat", n=1)
    assert len(jimeng_mock.requests) == 1


def test_each_test_starts_from_a_reset_mock(jimeng_mock, client):
    assert jimeng_mock.requests == []
    client.images.generate(model="jimeng-4.0", prompt="a cat", n=1)  # no quota fault left
    jimeng_mock.assert_requested(1, model="jimeng-4.0")
    assert jimeng_mock.last_request.id == 1
"""

CHECKED_TESTS = """
import openai
import pytest


@pytest.fixture
def client(jimeng_mock):
    with openai.OpenAI(base_url=jimeng_mock.api_base, api_key=jimeng_mock.api_key) as sdk:
        yield sdk


def test_clean(jimeng_mock, client):
    client.images.generate(model="jimeng-4.0", prompt="a cat", n=1)


def test_sends_a_field_the_api_ignores(jimeng_mock, client):
    client.images.generate(
        model="jimeng-4.0", prompt="a cat", n=1, extra_body={"aspect_ratio": "16:9"}
    )


def test_provokes_an_error_on_purpose(jimeng_mock, client):
    jimeng_mock.expect_errors("invalid_value")
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="jimeng-4.0", prompt="a cat", n=0)
"""


def test_each_test_gets_a_reset_mock(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_toolkit=TOOLKIT_TESTS)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=2)


def test_the_ini_option_checks_every_test_at_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checked=CHECKED_TESTS)
    pytester.makeini("[pytest]\njimeng_mock_check = true\n")

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_sends_a_field_the_api_ignores*",
            "*warning unknown_field: 'aspect_ratio' is not a field of this API*",
        ]
    )


def test_without_the_option_nothing_is_checked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checked=CHECKED_TESTS)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=3)


def test_the_check_fixture_can_be_overridden_per_module(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_checked=CHECKED_TESTS
        + "\n\n@pytest.fixture\ndef jimeng_mock_check():\n    return True\n"
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=3, errors=1)


def test_stubs_come_from_the_config_fixture(pytester: pytest.Pytester) -> None:
    pytester.mkdir("stubs")
    (pytester.path / "stubs" / "policy.json").write_text(
        '{"match": {"body": {"prompt": {"regex": "gore"}}}, "fault": "content_policy"}'
    )
    pytester.makepyfile(
        test_stubbed="""
import pathlib

import openai
import pytest


@pytest.fixture
def jimeng_mock_config():
    return {"fixtures": pathlib.Path(__file__).parent / "stubs"}


def test_the_stub_answers(jimeng_mock):
    with openai.OpenAI(base_url=jimeng_mock.api_base, api_key="k", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as raised:
            client.images.generate(model="jimeng-4.0", prompt="gore", n=1)
    assert raised.value.code == "content_policy_violation"
    assert jimeng_mock.last_request.stub == "policy.json"
"""
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)


def test_a_misspelt_config_option_names_the_nearest_one(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_typo="""
import pytest


@pytest.fixture
def jimeng_mock_config():
    return {"jounral_size": 5}


def test_uses_the_mock(jimeng_mock):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*jimeng_mock_config*did you mean 'journal_size'*"])
