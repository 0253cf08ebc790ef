"""pytest fixtures: `jimeng_mock`, a running mock, and `jimeng_mock_config`, its options.

pytest loads this module in every run of a project that has the package installed, so the
server and its dependencies are imported only when a test asks for the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mockserver.config import MockConfig
    from mockserver.server import MockServer


class MockServerPool:
    """One running server per distinct configuration, for the whole test session."""

    def __init__(self) -> None:
        self._servers: dict[MockConfig, MockServer] = {}

    def get(self, options: dict[str, Any]) -> MockServer:
        from mockserver.config import MockConfig
        from mockserver.server import MockServer

        config = MockConfig(**options)
        server = self._servers.get(config)
        if server is None or not server.running:
            server = self._servers[config] = MockServer(config).start()
        return server

    def close(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._servers.clear()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "jimeng_mock_check",
        type="bool",
        default=False,
        help="run jimeng_mock.check() when each test that uses the mock ends",
    )


@pytest.fixture
def jimeng_mock_config() -> dict[str, Any]:
    """Options for `jimeng_mock` (`MockConfig` fields). Override it to change them."""
    return {}


@pytest.fixture(scope="session")
def jimeng_mock_pool() -> Iterator[MockServerPool]:
    pool = MockServerPool()
    yield pool
    pool.close()


@pytest.fixture
def jimeng_mock_check(request: pytest.FixtureRequest) -> bool:
    """Whether `jimeng_mock.check()` runs as the test ends: the ini option
    `jimeng_mock_check` (default false), or override this fixture."""
    return bool(request.config.getini("jimeng_mock_check"))


@pytest.fixture
def jimeng_mock(
    jimeng_mock_pool: MockServerPool,
    jimeng_mock_config: dict[str, Any],
    jimeng_mock_check: bool,
) -> Iterator[MockServer]:
    """A running mock, reset for this test: `.api_base` and `.api_key` are what an openai
    client needs; `.requests`, `.assert_requested()`, `.fail_next()` and `.check()` test it."""
    server = jimeng_mock_pool.get(jimeng_mock_config)
    server.reset()
    yield server
    if jimeng_mock_check:
        server.check()
