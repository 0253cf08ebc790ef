"""The app's assembly: the engine (`mockserver.web.app.build_app`) handed every dialect."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from mockserver.config import MockConfig
from mockserver.dialects import ark, openai
from mockserver.web.app import build_app
from mockserver.web.dialect import Dialect
from mockserver.web.routes import SERVICE, RouteSpec

DIALECTS: tuple[Dialect, ...] = (openai.DIALECT,)  # a default mock's
# Every route of a default mock, in the order the app and its OpenAPI document list them.
ROUTES: tuple[RouteSpec, ...] = (*(spec for d in DIALECTS for spec in d.routes), *SERVICE)


def dialects(config: MockConfig) -> tuple[Dialect, ...]:
    """The dialects a mock with `config` answers: Ark's too with `ark`."""
    return (*DIALECTS, ark.DIALECT) if config.ark else DIALECTS


def create_app(config: MockConfig | None = None, **options: Any) -> Starlette:
    """The mock as an ASGI app. Pass a `MockConfig`, or its fields as keyword arguments."""
    if config is not None and options:
        raise TypeError("pass either a MockConfig or keyword options, not both")
    config = config or MockConfig.of("create_app", options)
    return build_app(config, dialects(config))
