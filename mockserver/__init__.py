"""A deterministic local stand-in for the Jimeng image-generation API."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mockserver.app import create_app
    from mockserver.config import MockConfig
    from mockserver.engine.api import MockSession
    from mockserver.errors import ApiError, ConfigError
    from mockserver.harness.remote import RemoteMock
    from mockserver.harness.server import MockServer

__all__ = [
    "ApiError",
    "ConfigError",
    "MockConfig",
    "MockServer",
    "MockSession",
    "RemoteMock",
    "create_app",
]

# Imported on first use: the pytest plugin loads this package in every pytest run of a project
# that has it installed, and should cost those runs nothing unless a test asks for the mock.
_HOMES = {
    "ApiError": "mockserver.errors",
    "ConfigError": "mockserver.errors",
    "MockConfig": "mockserver.config",
    "MockServer": "mockserver.harness.server",
    "MockSession": "mockserver.engine.api",
    "RemoteMock": "mockserver.harness.remote",
    "create_app": "mockserver.app",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'mockserver' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
