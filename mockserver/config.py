"""Settings shared by the command line, `create_app` and `MockServer`, checked once."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from mockserver.errors import ConfigError

DEFAULT_CREATED = 1735689600  # the API document's example timestamp
DEFAULT_SECRET = "jimeng-mockserver"
DEFAULT_MAX_BODY = 1024 * 1024


def data_dir() -> Path:
    """The contract data: a copy inside an installed wheel, else the repository's `schemas/`."""
    packaged = Path(__file__).parent / "schemas"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "schemas"


@dataclass(frozen=True, kw_only=True)
class MockConfig:
    """How the mock behaves. Every field is also a command-line option (see `jimeng-mock -h`)."""

    api_keys: Sequence[str] = ()
    created: int | Literal["now"] = DEFAULT_CREATED
    public_url: str | None = None
    strict: bool = False
    sizes: Path | None = None
    errors: Path | None = None
    secret: str = DEFAULT_SECRET
    max_body: int = DEFAULT_MAX_BODY

    def __post_init__(self) -> None:
        keys = (self.api_keys,) if isinstance(self.api_keys, str) else tuple(self.api_keys)
        for key in keys:
            if not isinstance(key, str) or not key or key != key.strip() or " " in key:
                raise ConfigError(f"api key {key!r} must be a non-empty string without spaces")
        object.__setattr__(self, "api_keys", keys)

        if self.created != "now" and (
            isinstance(self.created, bool) or not isinstance(self.created, int) or self.created < 0
        ):
            raise ConfigError(f"created must be a Unix timestamp or 'now', not {self.created!r}")

        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
                raise ConfigError(
                    f"public url {self.public_url!r} must be http(s)://host[:port][/prefix]"
                )
            object.__setattr__(self, "public_url", self.public_url.rstrip("/"))

        if not self.secret:
            raise ConfigError("secret must not be empty")
        if isinstance(self.max_body, bool) or not isinstance(self.max_body, int):
            raise ConfigError(f"max body must be a number of bytes, not {self.max_body!r}")
        if self.max_body < 1024:
            raise ConfigError(f"max body must be at least 1024 bytes, not {self.max_body}")
        for name in ("sizes", "errors"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))

    def created_at(self) -> int:
        return int(time.time()) if self.created == "now" else self.created

    @property
    def sizes_file(self) -> Path:
        return self.sizes or data_dir() / "sizes.json"

    @property
    def errors_file(self) -> Path:
        return self.errors or data_dir() / "errors.json"
