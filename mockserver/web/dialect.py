"""What the engine needs to know of an API dialect, and nothing more: its routes, the path
prefix under which its requests are journaled, and how its errors are enveloped. The
dialects themselves (`mockserver.dialects`) are handed to the app by its assembly, so the
engine never names one."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.types import Scope

from mockserver.errors import ApiError, ErrorKind

if TYPE_CHECKING:  # the route table imports the pipeline, which reads the dialects
    from mockserver.web.routes import RouteSpec

# (the error, its catalogue entry, its message, the answer's x-request-id) -> the JSON body.
Envelope = Callable[[ApiError, ErrorKind, str, str], Mapping[str, Any]]


@dataclass(frozen=True)
class Dialect:
    name: str
    prefix: str  # the paths of its API routes begin so: their requests are journaled
    routes: tuple[RouteSpec, ...]
    envelope: Envelope | None = None  # None: the catalogue's own envelope


def dialect_at(dialects: Sequence[Dialect], path: str) -> Dialect | None:
    """The dialect whose prefix `path` has (the longest, should two share a beginning)."""
    found = [d for d in dialects if path.startswith(d.prefix)]
    return max(found, key=lambda d: len(d.prefix)) if found else None


def dialect_of(scope: Scope) -> Dialect | None:
    """The dialect of the request's path, among the app's (`app.state.dialects`)."""
    app = scope.get("app")
    dialects: Sequence[Dialect] = getattr(app.state, "dialects", ()) if app is not None else ()
    return dialect_at(dialects, scope["path"])
