"""The README's examples, run against a live mock: what a new user copies must work as shown."""

from __future__ import annotations

import ast
import contextlib
import io
import itertools
import re
import shlex
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from mockserver import MockServer
from tests.conftest import fetch_png

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
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
    pytest.fail(f"README has no {language} block with {containing!r}")


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
