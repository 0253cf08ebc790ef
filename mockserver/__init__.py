"""A deterministic local stand-in for the Jimeng image-generation API."""

from __future__ import annotations

from mockserver.app import create_app
from mockserver.config import MockConfig
from mockserver.errors import ApiError, ConfigError
from mockserver.server import MockServer

__all__ = ["ApiError", "ConfigError", "MockConfig", "MockServer", "create_app"]
