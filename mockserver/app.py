"""The app's assembly: the engine (`mockserver.web.app.build_app`) handed every dialect."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from mockserver.config import MockConfig
from mockserver.dialects import ark, openai
from mockserver.web.app import build_app
from mockserver.web.dialect import Dialect
from mockserver.web.routes import SERVICE, RouteSpec

DIALECTS: tuple[Dialect, ...] = (openai.DIALECT, ark.DIALECT)
# Every documented route of a default mock, in the order the app and its OpenAPI document
# list them.
ROUTES: tuple[RouteSpec, ...] = tuple(
    spec for spec in (*(s for d in DIALECTS for s in d.routes), *SERVICE) if spec.documented
)


def create_app(config: MockConfig | None = None, **options: Any) -> Starlette:
    """The mock as an ASGI app. Pass a `MockConfig`, or its fields as keyword arguments."""
    if config is not None and options:
        raise TypeError("pass either a MockConfig or keyword options, not both")
    return build_app(config or MockConfig.of("create_app", options), DIALECTS)
