"""Errors in the OpenAI envelope; codes, statuses and messages come from the catalogue file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from starlette.responses import JSONResponse


class ConfigError(ValueError):
    """A setting or a data file the mock cannot start with; the message names it."""


class ApiError(Exception):
    """An error answer: `code` is a key of the catalogue, `fields` fill its message template."""

    def __init__(
        self,
        code: str,
        *,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        **fields: object,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.param = param
        self.headers = dict(headers or {})
        self.fields = fields


@dataclass(frozen=True)
class ErrorKind:
    status: int
    type: str
    message: str


# The codes the mock itself raises: a catalogue file without one of them cannot be served.
REQUIRED_CODES = frozenset(
    {
        "invalid_api_key",
        "unsupported_media_type",
        "request_too_large",
        "request_timeout",
        "invalid_json",
        "missing_required_parameter",
        "invalid_value",
        "unknown_parameter",
        "model_not_found",
        "not_found",
        "image_not_found",
        "method_not_allowed",
        "server_error",
        "rate_limit_exceeded",
        "stub_error",
        "admin_forbidden",
        "server_busy",
    }
)


class ErrorCatalogue:
    def __init__(self, kinds: Mapping[str, ErrorKind]) -> None:
        missing = REQUIRED_CODES - kinds.keys()
        if missing:
            raise ConfigError(f"error catalogue lacks the codes {', '.join(sorted(missing))}")
        self.kinds = dict(kinds)

    @classmethod
    def from_file(cls, path: Path) -> ErrorCatalogue:
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))["errors"]
            kinds = {
                code: ErrorKind(int(e["status"]), str(e["type"]), str(e["message"]))
                for code, e in entries.items()
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: not a valid error catalogue ({exc})") from exc
        return cls(kinds)

    def message(self, error: ApiError) -> str:
        return self.kinds[error.code].message.format(param=error.param, **error.fields)

    def response(self, error: ApiError, message: str | None = None) -> JSONResponse:
        """The envelope of `error`; `message` if it is already made (`self.message(error)`)."""
        kind = self.kinds[error.code]
        body = {
            "message": self.message(error) if message is None else message,
            "type": kind.type,
            "param": error.param,
            "code": error.code,
        }
        return JSONResponse({"error": body}, status_code=kind.status, headers=error.headers)
