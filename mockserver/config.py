"""`MockConfig`: how the mock behaves, checked once. Its fields, their defaults and checks are
the "config" rows of the table of options (`mockserver.options`), which the command line,
`create_app` and `MockServer` share."""

from __future__ import annotations

import functools
import ipaddress
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mockserver import options
from mockserver.errors import ConfigError
from mockserver.options import DEFAULT_API_KEY as DEFAULT_API_KEY
from mockserver.options import DEFAULT_JOURNAL_MB as DEFAULT_JOURNAL_MB
from mockserver.options import DEFAULT_SECRET as DEFAULT_SECRET
from mockserver.options import LOOPBACK
from mockserver.paths import data_dir


@functools.cache
def random_secret() -> str:
    """The secret of a mock bound beyond loopback without one: random, made once per process
    (the command hands its config, this secret in it, to its workers), so every such mock of
    a process is alike."""
    return secrets.token_hex(32)


@options.declared("config")
@dataclass(frozen=True, kw_only=True)
class MockConfig:
    """How the mock behaves. Every field is an option of the command line too (`jimeng-mock
    -h`, the README's Options): `mockserver.options` has its default, help and check."""

    host: str = options.field("host")
    admin_token: str | None = options.field("admin_token")
    api_keys: Sequence[str] = options.field("api_keys")
    created: int | Literal["now"] = options.field("created")
    public_url: str | None = options.field("public_url")
    strict: bool = options.field("strict")
    ark: bool = options.field("ark")
    sizes: Path | None = options.field("sizes")
    errors: Path | None = options.field("errors")
    # None (not given): DEFAULT_SECRET on loopback; beyond it, `random_secret()`.
    secret: str | None = options.field("secret")
    max_body: int = options.field("max_body")
    fixtures: Path | None = options.field("fixtures")
    fault_catalogue: Path | None = options.field("fault_catalogue")
    latency_ms: int | tuple[int, int] = options.field("latency_ms")
    fault_rate: float = options.field("fault_rate")
    fault_names: Sequence[str] = options.field("fault_names")
    seed: int | None = options.field("seed")
    rpm: int | None = options.field("rpm")
    journal_size: int = options.field("journal_size")
    journal_mb: int = options.field("journal_mb")
    render_concurrency: int = options.field("render_concurrency")
    render_queue: int = options.field("render_queue")
    image_cache_mb: int = options.field("image_cache_mb")
    # Proxy mode: forward generation requests to this base URL (`http://host:port/v1`).
    upstream: str | None = options.field("upstream")
    upstream_api_key: str | None = options.field("upstream_api_key")
    upstream_timeout: float = options.field("upstream_timeout")
    upstream_max_mb: int = options.field("upstream_max_mb")
    upstream_invalid: Literal["forward", "reject"] = options.field("upstream_invalid")
    record: Path | None = options.field("record")
    record_mode: Literal["new", "all", "none"] = options.field("record_mode")
    # Origins (`scheme://host[:port]`) whose pages may call the mock, or "*"; empty: no CORS.
    cors: Sequence[str] = options.field("cors")

    def __post_init__(self) -> None:
        options.checked(self, "config", ConfigError)
        self._check_together()

    def _check_together(self) -> None:
        """What one option asks of another."""
        if self.secret is None and not self.loopback:
            # Anyone can sign URLs with the public default: an exposed mock would draw them.
            object.__setattr__(self, "secret", random_secret())
        if self.fault_rate and not self.fault_names:
            raise ConfigError("a fault rate needs at least one fault to draw (--fault NAME)")
        if self.fault_names and not self.fault_rate:
            raise ConfigError("faults to draw need a fault rate above 0 (--fault-rate P)")
        if self.record is not None and self.upstream is None:
            raise ConfigError("recording (--record DIR) needs an upstream (--upstream URL)")

    @classmethod
    def of(cls, where: str, keywords: Mapping[str, Any]) -> MockConfig:
        """From keyword options given to `where` ("create_app"): an unknown one is a
        TypeError naming the nearest known one."""
        return cls(**options.sort_keywords(where, keywords, "config")["config"])

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
