"""The examples of the README and docs/, run against a live mock: what a new user copies must work
as shown."""

from __future__ import annotations

import ast
import contextlib
import io
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from mockserver import MockServer
from tests import docs
from tests.conftest import fetch_png

README = docs.TEXT
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, flags=re.DOTALL)
DOCUMENTED = "http://127.0.0.1:8000"


def run_example(source: str) -> list[str]:
    """Execute a README block, returning what it printed; then close the clients it left open."""
    printed = io.StringIO()
    namespace: dict[str, Any] = {"__name__": "readme"}
    try:
        with contextlib.redirect_stdout(printed):
            exec(source, namespace)
    finally:
        for value in namespace.values():
            if isinstance(value, openai.OpenAI):
                value.close()
    return printed.getvalue().splitlines()


def block(language: str, containing: str) -> tuple[int, str]:
    for index, (lang, text) in enumerate(BLOCKS):
        if lang == language and containing in text:
            return index, text
    pytest.fail(f"README and docs/ have no {language} block with {containing!r}")


def test_curl_example_answers_exactly_what_the_readme_shows(jimeng_mock: MockServer) -> None:
    index, command = block("sh", "curl -s")
    words = shlex.split(command.replace("\\\n", " "))
    headers = dict(w.split(": ", 1) for f, w in itertools.pairwise(words) if f == "-H")
    body = words[words.index("-d") + 1]
    url = words[words.index("curl") + 2].replace(DOCUMENTED, jimeng_mock.url)

    response = httpx.post(url, headers=headers, content=body)

    lang, shown = BLOCKS[index + 1]
    assert lang == "json"
    assert response.text == shown.strip().replace(DOCUMENTED, jimeng_mock.url)
    assert fetch_png(response.json()["data"][0]["url"])[1] == (1024, 1024)


def test_openai_sdk_example_runs_as_shown(jimeng_mock: MockServer) -> None:
    _, source = block("python", "from openai import OpenAI")

    first, second, error = run_example(source.replace(DOCUMENTED, jimeng_mock.url))

    assert [fetch_png(url)[1] for url in ast.literal_eval(first)] == [(1024, 1024)] * 2
    assert fetch_png(second)[1] == (2560, 1440)
    assert error == "invalid_value n"


def test_python_example_runs_as_shown() -> None:
    _, source = block("python", "from mockserver import MockServer, create_app")

    url, content_type = run_example(source)

    assert "/images/jimeng-4.0/2048x2048/" in url
    assert content_type == "image/png"


def test_pytest_toolkit_example_passes_as_shown(pytester: pytest.Pytester) -> None:
    _, source = block("python", "def test_poster_asks_for_two_wide_images")
    pytester.makepyfile(test_readme_example=source)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=2)


def test_pytest_toolkit_example_can_fail(pytester: pytest.Pytester) -> None:
    _, source = block("python", "def test_poster_asks_for_two_wide_images")
    pytester.makepyfile(
        test_readme_example=source.replace("n=2,\n        extra", "n=1,\n        extra")
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*Nearest: #1 POST /v1/images/generations -> 200*", "*n: expected 2, got 1*"]
    )


def test_ci_script_runs_as_shown(tmp_path: Path) -> None:
    _, script = block("sh", "mock-journal.json")
    client = (
        f'{sys.executable} -c "import openai; '
        "openai.OpenAI().images.generate(model='jimeng-4.0', prompt='from CI', n=1)\""
    )
    assert "pytest || status=$?" in script
    script = script.replace("pytest || status=$?", f"{client} || status=$?")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("OPENAI_BASE_URL", None)

    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    journal = json.loads((tmp_path / "artifacts" / "mock-journal.json").read_text())
    (entry,) = journal["requests"]
    assert (entry["status"], entry["body"]["prompt"]) == (200, "from CI")
    assert entry["headers"]["authorization"] == "Bearer ****"
    coverage = json.loads((tmp_path / "artifacts" / "mock-coverage.json").read_text())
    assert (coverage["requests"], coverage["statuses"], coverage["unmatched"]) == (1, {"200": 1}, 1)
    assert coverage["models"]["jimeng-4.0"] == 1
