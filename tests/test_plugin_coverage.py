"""The pytest plugin's coverage section and report, strictness at teardown, a mock running
elsewhere (--jimeng-mock-url) and a session per test, with pytest-xdist workers sharing one
command-line mock; each run inside pytester as a user's suite."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.test_cli import running
from tests.test_readme import block

CLIENT = """
import openai
import pytest


@pytest.fixture
def client(jimeng_mock):
    with openai.OpenAI(**jimeng_mock.client_options(), max_retries=0) as sdk:
        yield sdk
"""

MIXED_TESTS = (
    CLIENT
    + """

def test_two_images(jimeng_mock, client):
    client.images.generate(model="jimeng-4.5", prompt="a cat", n=1, extra_body={"ratio": "16:9"})
    client.images.generate(model="jimeng-4.0", prompt="a dog", n=1)


def test_a_refused_body(jimeng_mock, client):
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="jimeng-4.5", prompt="a cat", n=0)


def test_a_queued_fault(jimeng_mock, client):
    jimeng_mock.fail_next("quota")
    with pytest.raises(openai.RateLimitError):
        client.images.generate(model="jimeng-4.5", prompt="a cat", n=1)


def test_without_the_mock():
    pass
"""
)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


@pytest.mark.smoke
def test_the_summary_has_a_coverage_section_and_the_report_its_json(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_mixed=MIXED_TESTS)
    report = pytester.path / "out" / "coverage.json"

    result = run(pytester, f"--jimeng-mock-report={report}")

    result.assert_outcomes(passed=4)
    written = json.loads(report.read_text())
    # Summed over the three tests that used the mock, though each began from a reset.
    assert written["requests"] == 4
    assert written["statuses"] == {"200": 2, "400": 1, "429": 1}
    assert {k: v for k, v in written["errors"].items() if v} == {
        "invalid_value": 1,
        "insufficient_quota": 1,
    }
    assert written["faults"]["quota"] == 1
    assert written["fault_sources"]["queue"] == 1
    assert written["pairs"]["16:9 x 2k"] == 1
    assert written["pairs"]["1:1 x 2k"] == 2  # the dog, and the cat of the quota fault
    assert written["models"] == {"jimeng-4.0": 1, "jimeng-4.5": 3}
    faults = len(written["faults"])
    result.stdout.fnmatch_lines(
        [
            "*- jimeng-mock coverage -*",
            "requests: 4 (answered x4); statuses: 200 x2, 400 x1, 429 x1",
            f"error codes seen (2 of {len(written['errors'])}): *invalid_value x1*",
            f"faults exercised (1 of {faults}): quota x1",
            "faults never exercised: rate_limit, *",
            "ratio x resolution pairs sent (2 of 24): 1:1 x 2k x2, 16:9 x 2k x1",
            f"report written to {report}",
        ]
    )


def test_a_session_that_never_used_the_mock_has_no_section(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_nothing():\n    pass\n")

    result = run(pytester, "--jimeng-mock-report=coverage.json")

    result.assert_outcomes(passed=1)
    assert "jimeng-mock coverage" not in result.stdout.str()
    assert not (pytester.path / "coverage.json").exists()


STUBBED = (
    CLIENT
    + """
import pathlib


@pytest.fixture
def jimeng_mock_config():
    return {"fixtures": pathlib.Path(__file__).parent / "stubs"}


def test_uses_the_cat_stub_only(jimeng_mock, client):
    client.images.generate(model="jimeng-4.5", prompt="a cat", n=1)


@pytest.mark.jimeng_mock(unused_stubs="ignore")
def test_excused_by_its_marker(jimeng_mock, client):
    client.images.generate(model="jimeng-4.5", prompt="a cat", n=1)


@pytest.mark.jimeng_mock(unused_stubs="fail", unmatched="fail")
def test_sends_what_no_stub_matches(jimeng_mock, client):
    client.images.generate(model="jimeng-4.5", prompt="a cat", n=1)
    client.images.generate(model="jimeng-4.5", prompt="a dog", n=1)
    client.images.generate(model="jimeng-4.5", prompt="a cow", n=1)
"""
)


def _stubs(pytester: pytest.Pytester) -> None:
    folder = pytester.mkdir("stubs")
    for name in ("cat", "dog"):
        stub = {
            "match": {"body": {"prompt": {"regex": name}}},
            "response": {"status": 200, "body": {"created": 1, "data": []}},
        }
        (folder / f"{name}.json").write_text(json.dumps(stub))


@pytest.mark.smoke
def test_unused_stubs_fail_the_test_that_left_them_unused(pytester: pytest.Pytester) -> None:
    _stubs(pytester)
    pytester.makepyfile(test_stubbed=STUBBED)
    pytester.makeini("[pytest]\njimeng_mock_unused_stubs = fail\n")

    result = run(pytester)

    result.assert_outcomes(passed=3, errors=2)
    text = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_uses_the_cat_stub_only*",
            "*stub dog.json was never used (unused_stubs='fail')*",
        ]
    )
    assert "ERROR at teardown of test_excused_by_its_marker" not in text
    # Every stub was used there, but one request matched none: the marker asked for that too.
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_sends_what_no_stub_matches*",
            "*#3 POST /v1/images/generations (request id req_000003_*) matched no stub "
            "(unmatched='fail'): prompt 'a cow'*",
        ]
    )
    assert "stub cat.json was never used" not in text


def test_without_strictness_unused_stubs_pass(pytester: pytest.Pytester) -> None:
    _stubs(pytester)
    pytester.makepyfile(
        test_stubbed=STUBBED.replace(
            '@pytest.mark.jimeng_mock(unused_stubs="fail", unmatched="fail")', ""
        )
    )

    result = run(pytester)

    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["stubs used (2 of 2): *", "requests no stub or fault answered: 1"])


def test_a_bad_strictness_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad=CLIENT
        + "\n\n@pytest.mark.jimeng_mock(unused_stub='fail')\n"
        + "def test_typo(jimeng_mock):\n    pass\n"
    )
    pytester.makeini("[pytest]\njimeng_mock_unmatched = warn\n")

    result = run(pytester)

    result.stdout.fnmatch_lines(["*takes unused_stubs= and unmatched=, not unused_stub*"])
    result.assert_outcomes(errors=1)


COUNTING_TESTS = (
    CLIENT
    + """
import time


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 6])
def test_exact_counts(jimeng_mock, client, count):
    for index in range(count):
        client.images.generate(model="jimeng-4.5", prompt=f"request {index}", n=1)
        time.sleep(0.05)  # long enough for the other worker's requests to come between
    assert len(jimeng_mock.requests) == count
    jimeng_mock.assert_requested(count, status=200)
    jimeng_mock.fail_next("quota")
    with pytest.raises(openai.RateLimitError):
        client.images.generate(model="jimeng-4.5", prompt="last", n=1)
    jimeng_mock.assert_requested(1, error="insufficient_quota")
    assert jimeng_mock.coverage()["requests"] == count + 1
"""
)


def test_xdist_workers_share_one_command_line_mock_in_sessions(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_counting=COUNTING_TESTS)
    report = pytester.path / "coverage.json"
    with running("--journal-size", "10000") as url:
        result = run(
            pytester,
            "-n",
            "2",
            f"--jimeng-mock-url={url}",
            "--jimeng-mock-session-per-test",
            f"--jimeng-mock-report={report}",
        )
        journal = httpx.get(url + "/__admin/requests").json()["requests"]

    result.assert_outcomes(passed=6)
    sessions = Counter(record["session"] for record in journal)
    assert sorted(sessions.values()) == [2, 3, 4, 5, 6, 7]
    workers = {name.partition(":")[0] for name in sessions}
    assert workers == {"gw0", "gw1"}
    # The workers' requests came between each other's: one mock served both at once.
    order = [record["session"].partition(":")[0] for record in journal]
    assert sum(a != b for a, b in itertools.pairwise(order)) > 1
    # The controller's report sums both workers'.
    assert json.loads(report.read_text())["requests"] == len(journal) == 27


def test_a_remote_mock_refuses_in_process_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_remote=CLIENT
        + """

@pytest.fixture
def jimeng_mock_config():
    return {"strict": True}


def test_configured(jimeng_mock):
    pass
"""
    )
    with running() as url:
        result = run(pytester, f"--jimeng-mock-url={url}")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*jimeng_mock_config sets strict, but the mock runs at*"])


def test_without_sessions_the_remote_mock_is_reset_for_each_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_counting=COUNTING_TESTS)
    with running() as url:
        pytester.makeini(f"[pytest]\njimeng_mock_url = {url}\n")
        result = run(pytester)
        sessions = {r["session"] for r in httpx.get(url + "/__admin/requests").json()["requests"]}

    result.assert_outcomes(passed=6)
    assert sessions == {"default"}


def test_a_session_name_is_printable_ascii_and_bounded(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_names=CLIENT
        + """
import re

names = {}


@pytest.mark.parametrize("text", ["猫" * 3, "x" * 300, "plain"], ids=["猫" * 3, "x" * 300, "plain"])
def test_named(jimeng_mock, text):
    names[text] = name = jimeng_mock.name
    assert name.isascii() and name.isprintable()
    assert name.startswith("main:test_names.py::test_named[")


def test_the_names_as_made():
    assert names["plain"] == "main:test_names.py::test_named[plain]"
    cut = r"main:test_names.py::test_named\\[\\?\\?\\?\\]~[0-9a-f]{12}"
    assert re.fullmatch(cut, names["猫" * 3])
    long = names["x" * 300]
    assert len(long) == 200 and re.search(r"x~[0-9a-f]{12}$", long)
"""
    )
    # Test ids as they are, not escaped to ASCII: the plugin must make them a session name.
    pytester.makeini(
        "[pytest]\ndisable_test_id_escaping_and_forfeit_all_rights_to_community_support = true\n"
    )

    result = run(pytester, "--jimeng-mock-session-per-test", "-p", "no:randomly")

    result.assert_outcomes(passed=4)


def test_the_environment_and_ini_reach_a_mock_elsewhere(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_env=CLIENT
        + """

def test_a_session_of_a_keyed_mock(jimeng_mock, client):
    assert jimeng_mock.api_key == "sk-from-env"
    assert jimeng_mock.name.startswith("main:test_env.py::")
    client.images.generate(model="jimeng-4.5", prompt="a cat", n=1)
    jimeng_mock.assert_requested(1, prompt="a cat")  # read with the admin token
"""
    )
    pytester.makeini("[pytest]\njimeng_mock_session_per_test = true\n")
    with running("--api-key", "sk-from-env", "--admin-token", "admin-secret") as url:
        monkeypatch.setenv("JIMENG_MOCK_URL", url)
        monkeypatch.setenv("JIMENG_MOCK_API_KEY", "sk-from-env")
        monkeypatch.setenv("JIMENG_MOCK_ADMIN_TOKEN", "admin-secret")
        result = run(pytester)
        sessions = {
            r["session"]
            for r in httpx.get(
                url + "/__admin/requests", headers={"X-Admin-Token": "admin-secret"}
            ).json()["requests"]
        }

    result.assert_outcomes(passed=1)
    assert sessions == {"main:test_env.py::test_a_session_of_a_keyed_mock"}


def test_the_strictness_fixture_can_be_overridden(pytester: pytest.Pytester) -> None:
    _stubs(pytester)
    pytester.makepyfile(
        test_stubbed=STUBBED.split("\n\n@pytest.mark.jimeng_mock")[0]
        + """


@pytest.fixture
def jimeng_mock_strictness():
    return {"unused_stubs": "fail", "unmatched": "ignore"}
"""
    )

    result = run(pytester)

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*stub dog.json was never used (unused_stubs='fail')*"])


def test_the_report_path_may_be_relative(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mixed=MIXED_TESTS)

    run(pytester, "--jimeng-mock-report", "reports/c.json").assert_outcomes(passed=4)

    assert json.loads(Path(pytester.path / "reports" / "c.json").read_text())["requests"] == 4


def test_the_readme_summary_is_what_the_mixed_tests_print(pytester: pytest.Pytester) -> None:
    _, shown = block("text", "jimeng-mock coverage")
    pytester.makepyfile(test_mixed=MIXED_TESTS)

    result = run(pytester)

    # The README cuts the list of faults never exercised short with "...".
    result.stdout.fnmatch_lines([line.replace("...", "*") for line in shown.splitlines()])


def test_the_readme_session_example_runs_as_shown(pytester: pytest.Pytester) -> None:
    _, source = block("python", 'session = jimeng_mock.session("checkout-tests")')
    body = "\n".join("    " + line for line in source.splitlines())
    pytester.makepyfile(
        test_session=f"""
import openai


def test_example(jimeng_mock):
    other = openai.OpenAI(**jimeng_mock.session("others").client_options())
    other.images.generate(model="jimeng-4.5", prompt="not this session's", n=1)
{body}
    assert session.requests == []
    assert session.coverage()["requests"] == 0
    # The other session's request is still there; the whole mock counted all three.
    assert [r.session for r in jimeng_mock.requests] == ["others"]
    assert jimeng_mock.coverage()["requests"] == 3
"""
    )

    run(pytester).assert_outcomes(passed=1)
