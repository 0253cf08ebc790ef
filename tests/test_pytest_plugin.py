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
        "import sys, mockserver.pytest_plugin; "
        "print(sorted(m for m in ('starlette', 'uvicorn', 'PIL', 'jsonschema', 'mockserver.app')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"
