"""The route table: every route of the mock, declared once: the service's routes here
(`SERVICE`), each API dialect's in its module (`mockserver.dialects`), put together by the
app's assembly.

Each entry names its path, method, endpoint, its operation in the OpenAPI document
(`schemas/openapi.json` has the text of each, by operationId) and the error codes it can
answer. Starlette's routes, the `Allow` header of a 405 and the document's paths are all
made from it. Besides its own codes, every operation answers 405 `method_not_allowed` to
its path called with a method it does not have; generation also answers the error codes of
the fault catalogue's faults. `server_error`, a bug of the mock, is listed on generation
only, where 500 is documented for the `upstream_error` and `stub_error` it answers on
purpose. Requests to a dialect's API routes are recorded in the journal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.routing import BaseRoute, Route

from mockserver.web import admin, endpoints
from mockserver.web.pipeline import Endpoint

ADMIN = ("admin_forbidden", "unknown_parameter")  # every admin route: the guard, ?unknown=
FILTERS = ("invalid_value",)  # ?status=, ?limit= that are not whole numbers
BODY = ("unsupported_media_type", "request_too_large", "invalid_json", "request_timeout")
GENERATIONS = "/v1/images/generations"  # where the OpenAPI text documents generation


@dataclass(frozen=True)
class RouteSpec:
    path: str
    method: str  # a GET route answers HEAD too
    endpoint: Endpoint
    operation: str  # its operationId, the key of its text in schemas/openapi.json
    errors: tuple[str, ...]  # the error codes it answers, besides method_not_allowed
    tag: str
    documented: bool = True  # whether /openapi.json has it

    @property
    def methods(self) -> tuple[str, ...]:
        return (self.method, "HEAD") if self.method == "GET" else (self.method,)


def api_route(
    path: str, method: str, endpoint: Endpoint, operation: str, *errors: str
) -> RouteSpec:
    # Every journaled route reads X-Mock-Session: a bad one is a 400 invalid_value.
    session = () if "invalid_value" in errors else ("invalid_value",)
    return RouteSpec(path, method, endpoint, operation, (*errors, *session), "api")


def _admin(path: str, method: str, endpoint: Endpoint, operation: str, *errors: str) -> RouteSpec:
    return RouteSpec(path, method, endpoint, operation, (*ADMIN, *errors), "admin")


SERVICE: tuple[RouteSpec, ...] = (
    RouteSpec(
        "/images/{model}/{size}/{name}",
        "GET",
        endpoints.get_image,
        "getImage",
        ("image_not_found", "not_found", "server_busy"),
        "images",
    ),
    RouteSpec("/healthz", "GET", endpoints.healthz, "health", (), "service"),
    RouteSpec("/openapi.json", "GET", endpoints.openapi, "openapi", (), "service"),
    _admin("/__admin/", "GET", admin.page, "adminPage", *FILTERS),
    _admin("/__admin/requests", "GET", admin.list_requests, "listRequests", *FILTERS),
    _admin("/__admin/requests", "DELETE", admin.delete_requests, "clearRequests", *FILTERS),
    _admin("/__admin/reset", "POST", admin.reset, "reset", *FILTERS),
    _admin("/__admin/faults", "GET", admin.list_faults, "listFaults", *FILTERS),
    _admin(
        "/__admin/faults",
        "POST",
        admin.queue_fault,
        "queueFault",
        *BODY,
        "missing_required_parameter",
        "invalid_value",
    ),
    _admin("/__admin/faults", "DELETE", admin.clear_faults, "clearFaults", *FILTERS),
    _admin("/__admin/stubs", "GET", admin.list_stubs, "listStubs"),
    _admin("/__admin/coverage", "GET", admin.coverage, "getCoverage", *FILTERS),
    RouteSpec(
        "/__admin/thumbnails/{model}/{size}/{name}",
        "GET",
        admin.thumbnail,
        "getThumbnail",
        ("admin_forbidden", "image_not_found", "not_found"),
        "admin",
    ),
)


class RouteTable:
    """The Starlette routes of a table, and which methods each path has."""

    def __init__(self, specs: Iterable[RouteSpec]) -> None:
        self.specs = tuple(specs)
        self.routes: list[BaseRoute] = [
            Route(spec.path, spec.endpoint, methods=[spec.method]) for spec in self.specs
        ]
        self._patterns: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
            (route.path_regex, spec.methods)
            for spec, route in zip(self.specs, self.routes, strict=True)
            if isinstance(route, Route)
        ]

    def allowed(self, path: str) -> list[str]:
        """Every method of every route whose path matches, sorted, so the answer is stable."""
        return sorted(
            {m for regex, methods in self._patterns if regex.fullmatch(path) for m in methods}
        )
