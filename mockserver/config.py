"""Settings shared by the command line, `create_app` and `MockServer`, checked once."""

from __future__ import annotations

import functools
import ipaddress
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from mockserver.errors import ConfigError
from mockserver.schemas import data_dir

# The key clients are handed when the mock has no --api-key (any non-empty key passes then).
DEFAULT_API_KEY = "sk-jimeng-mock"

DEFAULT_CREATED = 1735689600  # the API document's example timestamp
DEFAULT_SECRET = "jimeng-mockserver"
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_JOURNAL_SIZE = 1000
DEFAULT_JOURNAL_MB = 32  # journal.DEFAULT_MAX_BYTES
DEFAULT_RENDER_CONCURRENCY = min(4, os.cpu_count() or 1)
DEFAULT_RENDER_QUEUE = 64
DEFAULT_IMAGE_CACHE_MB = 32
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
DEFAULT_UPSTREAM_TIMEOUT = 60.0
UPSTREAM_INVALID = ("forward", "reject")
RECORD_MODES = ("new", "all", "none")


@functools.cache
def random_secret() -> str:
    """The secret of a mock bound beyond loopback without one: random, made once per process
    (the command hands its own to its workers), so every such mock of a process is alike."""
    return secrets.token_hex(32)


@dataclass(frozen=True, kw_only=True)
class MockConfig:
    """How the mock behaves. Every field is also a command-line option (see `jimeng-mock -h`)."""

    api_keys: Sequence[str] = ()
    created: int | Literal["now"] = DEFAULT_CREATED
    public_url: str | None = None
    strict: bool = False
    sizes: Path | None = None
    errors: Path | None = None
    # None (not given): DEFAULT_SECRET on loopback; beyond it, `random_secret()`.
    secret: str | None = field(default=None, repr=False)
    max_body: int = DEFAULT_MAX_BODY
    journal_size: int = DEFAULT_JOURNAL_SIZE
    journal_mb: int = DEFAULT_JOURNAL_MB
    fixtures: Path | None = None
    fault_catalogue: Path | None = None
    latency_ms: int | tuple[int, int] = (0, 0)
    fault_rate: float = 0.0
    fault_names: Sequence[str] = ()
    seed: int | None = None
    rpm: int | None = None
    render_concurrency: int = DEFAULT_RENDER_CONCURRENCY
    render_queue: int = DEFAULT_RENDER_QUEUE
    image_cache_mb: int = DEFAULT_IMAGE_CACHE_MB
    host: str = "127.0.0.1"
    admin_token: str | None = None
    # Proxy mode: forward generation requests to this base URL (`http://host:port/v1`).
    upstream: str | None = None
    upstream_api_key: str | None = field(default=None, repr=False)
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT
    upstream_invalid: Literal["forward", "reject"] = "forward"
    record: Path | None = None
    record_mode: Literal["new", "all", "none"] = "new"
    # Origins (`scheme://host[:port]`) whose pages may call the mock, or "*"; empty: no CORS.
    cors: Sequence[str] = ()

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

        if self.secret is None and not self.loopback:
            # Anyone can sign URLs with the public default: an exposed mock would draw them.
            object.__setattr__(self, "secret", random_secret())
        if self.secret is not None and not self.secret:
            raise ConfigError("secret must not be empty")
        if isinstance(self.max_body, bool) or not isinstance(self.max_body, int):
            raise ConfigError(f"max body must be a number of bytes, not {self.max_body!r}")
        if self.max_body < 1024:
            raise ConfigError(f"max body must be at least 1024 bytes, not {self.max_body}")
        for name in ("sizes", "errors", "fixtures", "fault_catalogue"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        _check_count("journal size", self.journal_size, minimum=1)
        _check_count("journal MB", self.journal_mb, minimum=1)
        if self.rpm is not None:
            _check_count("rpm", self.rpm, minimum=1)
        if self.seed is not None:
            _check_count("seed", self.seed, minimum=0)
        _check_count("render concurrency", self.render_concurrency, minimum=1)
        _check_count("render queue", self.render_queue, minimum=0)
        _check_count("image cache", self.image_cache_mb, minimum=0)
        if self.admin_token is not None and (
            not isinstance(self.admin_token, str) or len(self.admin_token) < 8
        ):
            raise ConfigError("admin token must be a string of at least 8 characters")
        self._check_chaos()
        self._check_upstream()
        object.__setattr__(self, "cors", cors_origins(self.cors))

    def _check_upstream(self) -> None:
        if self.upstream is not None:
            parts = urlsplit(self.upstream)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
                raise ConfigError(
                    f"upstream {self.upstream!r} must be http(s)://host[:port][/prefix]"
                )
            object.__setattr__(self, "upstream", self.upstream.rstrip("/"))
        key = self.upstream_api_key
        if key is not None and (not isinstance(key, str) or not key or key != key.strip()):
            raise ConfigError("upstream api key must be a non-empty string without spaces")
        timeout = self.upstream_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError(f"upstream timeout must be seconds above 0, not {timeout!r}")
        if self.upstream_invalid not in UPSTREAM_INVALID:
            raise ConfigError(
                f"upstream invalid must be forward or reject, not {self.upstream_invalid!r}"
            )
        if self.record_mode not in RECORD_MODES:
            raise ConfigError(f"record mode must be new, all or none, not {self.record_mode!r}")
        if self.record is not None:
            if self.upstream is None:
                raise ConfigError("recording (--record DIR) needs an upstream (--upstream URL)")
            object.__setattr__(self, "record", Path(self.record))

    def _check_chaos(self) -> None:
        try:
            low, high = self.latency_range
        except (TypeError, ValueError):
            raise ConfigError(
                f"latency must be milliseconds or a (min, max) pair, not {self.latency_ms!r}"
            ) from None
        _check_count("latency", low, minimum=0)
        _check_count("latency", high, minimum=0)
        if low > high:
            raise ConfigError(f"latency range {low}-{high} runs backwards")
        object.__setattr__(self, "latency_ms", (low, high))

        rate = self.fault_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ConfigError(f"fault rate must be a probability from 0 to 1, not {rate!r}")
        names = (
            (self.fault_names,) if isinstance(self.fault_names, str) else tuple(self.fault_names)
        )
        object.__setattr__(self, "fault_names", names)
        if rate and not names:
            raise ConfigError("a fault rate needs at least one fault to draw (--fault NAME)")
        if names and not rate:
            raise ConfigError("faults to draw need a fault rate above 0 (--fault-rate P)")

    def created_at(self) -> int:
        return int(time.time()) if self.created == "now" else self.created

    @property
    def loopback(self) -> bool:
        """Whether the mock listens on this machine only, where the admin routes are open."""
        if self.host in LOOPBACK:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def sizes_file(self) -> Path:
        return self.sizes or data_dir() / "sizes.json"

    @property
    def errors_file(self) -> Path:
        return self.errors or data_dir() / "errors.json"

    @property
    def latency_range(self) -> tuple[int, int]:
        latency = self.latency_ms
        return (latency, latency) if isinstance(latency, int) else latency

    @property
    def fault_catalogue_file(self) -> Path:
        return self.fault_catalogue or data_dir() / "faults.json"


def cors_origins(value: str | Sequence[str]) -> tuple[str, ...]:
    """The origins of `--cors`, as a browser's `Origin` header spells them: lower case, no
    default port, no slash at the end; "*" alone for any origin."""
    origins: list[str] = []
    for origin in (value,) if isinstance(value, str) else tuple(value):
        if not isinstance(origin, str):
            raise ConfigError(f"cors origin {origin!r} must be a string")
        normal = origin if origin == "*" else _origin(origin)
        if normal not in origins:
            origins.append(normal)
    if "*" in origins and len(origins) > 1:
        raise ConfigError("cors origin '*' allows every origin: list no other beside it")
    return tuple(origins)


def _origin(origin: str) -> str:
    problem = f"cors origin {origin!r} must be http(s)://host[:port] or '*'"
    try:
        parts = urlsplit(origin.rstrip("/") if origin.count("/") == 3 else origin)
        port = parts.port
    except ValueError:
        raise ConfigError(problem) from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
        or origin != origin.strip()
    ):
        raise ConfigError(problem)
    host = parts.hostname
    host = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be a whole number of at least {minimum}, not {value!r}")
