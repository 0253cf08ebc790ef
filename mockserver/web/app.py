"""The ASGI app: the mock's parts put together."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from mockserver.config import MockConfig
from mockserver.engine.state import MockState
from mockserver.errors import ApiError
from mockserver.web.cors import Cors
from mockserver.web.openapi import build_document
from mockserver.web.pipeline import Journaled, on_api_error, on_http_error, on_server_error
from mockserver.web.routes import RouteTable
from mockserver.web.uvicorn_glue import KeepTransport


def create_app(config: MockConfig | None = None, **options: Any) -> Starlette:
    """The mock as an ASGI app. Pass a `MockConfig`, or its fields as keyword arguments."""
    if config is not None and options:
        raise TypeError("pass either a MockConfig or keyword options, not both")
    state = MockState(config or MockConfig.of("create_app", options))
    table = RouteTable()
    middleware = [Middleware(KeepTransport), Middleware(Journaled, state=state)]
    if state.config.cors:
        # Outermost: a preflight is answered before the journal sees it.
        middleware.insert(0, Middleware(Cors, origins=state.config.cors, table=table))
    app = Starlette(
        routes=table.routes,
        middleware=middleware,
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_error,
            Exception: on_server_error,
        },
    )
    # A slash too many is an unknown URL, as on the real service, not a redirect.
    app.router.redirect_slashes = False
    app.state.mock = state
    app.state.routes = table
    app.state.renderer = state.renderer
    app.state.openapi = build_document(
        table.specs, state.contract, state.catalogue, state.faults, cors=state.config.cors
    )
    return app
