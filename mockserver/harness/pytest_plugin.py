"""pytest fixtures: `jimeng_mock`, a running mock, and `jimeng_mock_config`, its options; the
coverage section of the terminal summary, and strictness at each test's teardown.

pytest loads this module in every run of a project that has the package installed, so the
server and its dependencies are imported only when a test asks for the fixture.

The fixture starts the mock in-process, or with `--jimeng-mock-url URL` (the ini option
`jimeng_mock_url`, or JIMENG_MOCK_URL) drives one running elsewhere, such as a `jimeng-mock`
that CI started for several test processes. With `--jimeng-mock-session-per-test` each test
is a session of its own (`X-Mock-Session`), so pytest-xdist workers sharing that mock do not
see each other's requests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mockserver.config import MockConfig
    from mockserver.engine.api import Served
    from mockserver.harness.remote import RemoteMock
    from mockserver.harness.server import MockServer

    Mock = Served[Any]  # a MockServer, a RemoteMock, or a session of either

COVERAGE = pytest.StashKey[dict[str, Any]]()  # the coverage of the tests run here, merged
WORKER_OUTPUT = "jimeng_mock_coverage"  # where an xdist worker hands its coverage on
STRICTNESS = ("unused_stubs", "unmatched")


class MockServerPool:
    """One running server per distinct configuration, for the whole test session."""

    def __init__(self) -> None:
        self._servers: dict[MockConfig, MockServer] = {}

    def get(self, options: dict[str, Any]) -> MockServer:
        from mockserver.config import MockConfig
        from mockserver.harness.server import MockServer

        config = MockConfig.of("jimeng_mock_config", options)
        server = self._servers.get(config)
        if server is None or not server.running:
            server = self._servers[config] = MockServer(config).start()
        return server

    def close(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._servers.clear()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("jimeng-mock")
    group.addoption(
        "--jimeng-mock-url",
        help="drive the jimeng-mock running at this URL instead of starting one in-process "
        "(also the ini option jimeng_mock_url, or JIMENG_MOCK_URL); its API key is "
        "JIMENG_MOCK_API_KEY and its admin token JIMENG_MOCK_ADMIN_TOKEN, if it has them",
    )
    group.addoption(
        "--jimeng-mock-session-per-test",
        action="store_true",
        default=None,
        help="give each test a session of its own (X-Mock-Session) on the mock, so that "
        "test processes sharing one mock stay apart",
    )
    group.addoption(
        "--jimeng-mock-report",
        metavar="PATH",
        help="write the coverage of the tests that used jimeng_mock to PATH, as JSON",
    )
    parser.addini(
        "jimeng_mock_check",
        type="bool",
        default=False,
        help="run jimeng_mock.check() when each test that uses the mock ends",
    )
    parser.addini("jimeng_mock_url", help="as --jimeng-mock-url")
    parser.addini("jimeng_mock_session_per_test", type="bool", default=False, help="as the option")
    for name, what in (
        ("unused_stubs", "a test whose stub files were not all used"),
        ("unmatched", "a test that sent a request no stub or fault answered"),
    ):
        parser.addini(
            f"jimeng_mock_{name}",
            default="ignore",
            help=f"'fail': fail {what}, at its teardown (default 'ignore')",
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "jimeng_mock(unused_stubs='fail', unmatched='fail'): strictness of this test's "
        "jimeng_mock, instead of the ini options jimeng_mock_unused_stubs and "
        "jimeng_mock_unmatched",
    )


def _remote_url(config: pytest.Config) -> str | None:
    url = config.getoption("jimeng_mock_url") or config.getini("jimeng_mock_url")
    return str(url or os.environ.get("JIMENG_MOCK_URL") or "") or None


@pytest.fixture
def jimeng_mock_config() -> dict[str, Any]:
    """Options for `jimeng_mock` (`MockConfig` fields). Override it to change them."""
    return {}


@pytest.fixture(scope="session")
def jimeng_mock_pool() -> Iterator[MockServerPool]:
    pool = MockServerPool()
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def jimeng_mock_remote(pytestconfig: pytest.Config) -> Iterator[RemoteMock | None]:
    """The mock of --jimeng-mock-url, if one is given (None: the mock runs in-process)."""
    url = _remote_url(pytestconfig)
    if url is None:
        yield None
        return
    from mockserver.harness.remote import RemoteMock

    with RemoteMock(
        url,
        api_key=os.environ.get("JIMENG_MOCK_API_KEY"),
        admin_token=os.environ.get("JIMENG_MOCK_ADMIN_TOKEN"),
    ) as remote:
        yield remote


@pytest.fixture
def jimeng_mock_check(request: pytest.FixtureRequest) -> bool:
    """Whether `jimeng_mock.check()` runs as the test ends: the ini option
    `jimeng_mock_check` (default false), or override this fixture."""
    return bool(request.config.getini("jimeng_mock_check"))


@pytest.fixture
def jimeng_mock_strictness(request: pytest.FixtureRequest) -> dict[str, str]:
    """`unused_stubs` and `unmatched` ('ignore' or 'fail') for this test's teardown: the
    test's `jimeng_mock` marker, else the ini options; or override this fixture."""
    marker = request.node.get_closest_marker("jimeng_mock")
    asked = dict(marker.kwargs) if marker else {}
    unknown = sorted(set(asked) - set(STRICTNESS))
    if unknown or (marker and marker.args):
        raise pytest.UsageError(
            f"@pytest.mark.jimeng_mock takes unused_stubs= and unmatched=, not "
            f"{', '.join(unknown) or repr(marker.args if marker else ())}"
        )
    from mockserver.record.verify import strictness

    ini = request.config.getini
    try:
        return {
            name: strictness(asked.get(name, ini(f"jimeng_mock_{name}")), f"jimeng_mock {name}")
            for name in STRICTNESS
        }
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _session_name(request: pytest.FixtureRequest) -> str:
    """The session of one test: the xdist worker and the test's id, made a session name
    (`mockserver.contract.sessions.name_for`)."""
    from mockserver.contract.sessions import name_for

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return name_for(f"{worker}:{request.node.nodeid}")


def _session_per_test(config: pytest.Config) -> bool:
    option = config.getoption("jimeng_mock_session_per_test")
    return bool(config.getini("jimeng_mock_session_per_test") if option is None else option)


@pytest.fixture
def jimeng_mock(
    request: pytest.FixtureRequest,
    jimeng_mock_pool: MockServerPool,
    jimeng_mock_remote: RemoteMock | None,
    jimeng_mock_config: dict[str, Any],
    jimeng_mock_check: bool,
    jimeng_mock_strictness: dict[str, str],
) -> Iterator[Mock]:
    """A running mock, reset for this test: `.api_base` and `.api_key` are what an openai
    client needs (`.client_options()` all of it, with a session's header); `.requests`,
    `.assert_requested()`, `.fail_next()`, `.check()` and `.coverage()` test it."""
    if jimeng_mock_remote is not None and jimeng_mock_config:
        raise pytest.UsageError(
            f"jimeng_mock_config sets {', '.join(sorted(jimeng_mock_config))}, but the mock "
            f"runs at {jimeng_mock_remote.url} (--jimeng-mock-url): give those options to "
            "its command line instead"
        )
    shared = jimeng_mock_remote or jimeng_mock_pool.get(jimeng_mock_config)
    mock: Mock = shared
    if _session_per_test(request.config):
        mock = shared.session(_session_name(request))
    mock.reset()
    yield mock
    coverage = mock.coverage()
    _collect(request.config, coverage)
    if jimeng_mock_check:
        mock.check(**jimeng_mock_strictness)  # type: ignore[arg-type]
    elif "fail" in jimeng_mock_strictness.values():
        _strict(coverage, jimeng_mock_strictness)


def _strict(coverage: dict[str, Any], strictness: dict[str, str]) -> None:
    from mockserver.record.verify import strict_problems

    found = strict_problems(coverage, **strictness)  # type: ignore[arg-type]
    if found:
        raise AssertionError(
            f"{len(found)} problem(s) with the mock's stubs:\n"
            + "\n".join(f"- {line}" for line in found)
        )


def _collect(config: pytest.Config, report: dict[str, Any]) -> None:
    from mockserver.record.coverage import merge

    config.stash[COVERAGE] = merge(config.stash.get(COVERAGE, None), report)


# ---------------------------------------------------------------------------- the report


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workeroutput") and COVERAGE in config.stash:
        config.workeroutput[WORKER_OUTPUT] = json.dumps(config.stash[COVERAGE])


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist's: a worker is done; its coverage joins the controller's."""
    output = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT)
    if output is not None:
        _collect(node.config, json.loads(output))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    report = config.stash.get(COVERAGE, None)
    if report is None or hasattr(config, "workerinput"):
        return
    from mockserver.record.coverage import summary_lines

    terminalreporter.write_sep("-", "jimeng-mock coverage")
    for line in summary_lines(report):
        terminalreporter.write_line(line)
    path = config.getoption("jimeng_mock_report")
    if path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        terminalreporter.write_line(f"report written to {target}")
