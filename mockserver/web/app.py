"""The ASGI app: the mock's parts put together, with the API dialects it is handed."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from mockserver.config import MockConfig
from mockserver.engine.state import MockState
from mockserver.errors import ApiError
from mockserver.web.cors import Cors
from mockserver.web.dialect import Dialect
from mockserver.web.openapi import build_document
from mockserver.web.pipeline import Journaled, on_api_error, on_http_error, on_server_error
from mockserver.web.routes import SERVICE, RouteTable
from mockserver.web.uvicorn_glue import KeepTransport


def build_app(config: MockConfig, dialects: Sequence[Dialect]) -> Starlette:
    """The mock as an ASGI app answering `dialects` beside its service routes."""
    state = MockState(config)
    table = RouteTable([*(spec for d in dialects for spec in d.routes), *SERVICE])
    prefixes = tuple(d.prefix for d in dialects)
    middleware = [
        Middleware(KeepTransport),
        Middleware(Journaled, state=state, prefixes=prefixes),
    ]
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
    app.state.dialects = tuple(dialects)
    app.state.renderer = state.renderer
    documented = [spec for spec in table.specs if spec.documented]
    app.state.openapi = build_document(
        documented, state.contract, state.catalogue, state.faults, cors=state.config.cors
    )
    return app
