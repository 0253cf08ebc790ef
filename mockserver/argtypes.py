"""The kinds of option values, for the table of options (`mockserver.options`): how the command
line parses each from its text (argparse's `type`: a bad one is refused with one message that
says what was wanted), and how a value from Python is checked and put in its one normal form
(`check`: an `OptionError` naming the setting, or the value to keep).

The standard library only: every layer may import it."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

Check = Callable[[Any], Any]


class OptionError(ValueError):
    """A value an option cannot take; the message names the option."""


# ---------------------------------------------------------------- the command line's text


def whole(minimum: int) -> Callable[[str], int]:
    """A whole number of at least `minimum`."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = minimum - 1
        if number < minimum:
            raise argparse.ArgumentTypeError(
                f"expected a whole number of at least {minimum}, not {value!r}"
            )
        return number

    return parse


def amount(what: str, *, zero: bool = False) -> Callable[[str], float]:
    """A finite number of `what` ("seconds") above 0, or 0 or more with `zero`."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (number >= 0 if zero else number > 0) or math.isinf(number):
            least = "0 or more" if zero else "above 0"
            raise argparse.ArgumentTypeError(f"expected {what} {least}, not {value!r}")
        return number

    return parse


def timestamp(value: str) -> int | str:
    """A Unix timestamp, or "now"."""
    if value == "now":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a Unix timestamp or 'now', not {value!r}"
        ) from None


def milliseconds(value: str) -> tuple[int, int]:
    """MS, or a range MIN-MAX, as a (min, max) pair."""
    low, dash, high = value.partition("-")
    try:
        return (int(low), int(high)) if dash else (int(low), int(low))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected milliseconds (250) or a range (100-500), not {value!r}"
        ) from None


# ---------------------------------------------------------------- values from Python


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def count(label: str, minimum: int, *, optional: bool = False) -> Check:
    """A whole number of at least `minimum` (or None, if `optional`)."""

    def check(value: Any) -> Any:
        if optional and value is None:
            return value
        if not _is_whole(value) or value < minimum:
            raise OptionError(
                f"{label} must be a whole number of at least {minimum}, not {value!r}"
            )
        return value

    return check


def seconds(label: str, *, zero: bool = False, optional: bool = False) -> Check:
    """A number of seconds above 0 (0 or more with `zero`; or None, if `optional`)."""

    def check(value: Any) -> Any:
        if optional and value is None:
            return value
        if not _is_number(value) or not (value >= 0 if zero else value > 0):
            least = "0 or more" if zero else "above 0"
            raise OptionError(f"{label} must be seconds {least}, not {value!r}")
        return value

    return check


def one_of(label: str, choices: Sequence[str], *, listed: bool = False) -> Check:
    """One of `choices`; the refusal says "one of a, b, c" if `listed`, else "a, b or c"."""
    said = (
        "one of " + ", ".join(choices) if listed else ", ".join(choices[:-1]) + " or " + choices[-1]
    )

    def check(value: Any) -> Any:
        if value not in choices:
            raise OptionError(f"{label} must be {said}, not {value!r}")
        return value

    return check


def base_url(label: str) -> Check:
    """None, or an http(s) URL with no query, kept without a slash at the end."""

    def check(value: Any) -> Any:
        if value is None:
            return value
        parts = urlsplit(value) if isinstance(value, str) else None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.query
        ):
            raise OptionError(f"{label} {value!r} must be http(s)://host[:port][/prefix]")
        return value.rstrip("/")

    return check


def path(value: Any) -> Path | None:
    return None if value is None else Path(value)


def names(value: Any) -> tuple[Any, ...]:
    """A sequence as a tuple; a lone string is a sequence of one."""
    return (value,) if isinstance(value, str) else tuple(value)


def api_keys(value: Any) -> tuple[str, ...]:
    keys = names(value)
    for key in keys:
        if not isinstance(key, str) or not key or key != key.strip() or " " in key:
            raise OptionError(f"api key {key!r} must be a non-empty string without spaces")
    return keys


def upstream_api_key(value: Any) -> Any:
    if value is not None and (not isinstance(value, str) or not value or value != value.strip()):
        raise OptionError("upstream api key must be a non-empty string without spaces")
    return value


def created(value: Any) -> Any:
    if value != "now" and (not _is_whole(value) or value < 0):
        raise OptionError(f"created must be a Unix timestamp or 'now', not {value!r}")
    return value


def secret(value: Any) -> Any:
    if value is not None and not value:
        raise OptionError("secret must not be empty")
    return value


def max_body(value: Any) -> Any:
    if not _is_whole(value):
        raise OptionError(f"max body must be a number of bytes, not {value!r}")
    if value < 1024:
        raise OptionError(f"max body must be at least 1024 bytes, not {value}")
    return value


def admin_token(value: Any) -> Any:
    if value is not None and (not isinstance(value, str) or len(value) < 8):
        raise OptionError("admin token must be a string of at least 8 characters")
    return value


def latency(value: Any) -> tuple[int, int]:
    """Milliseconds, or a (min, max) pair, as a (min, max) pair."""
    try:
        low, high = (value, value) if _is_whole(value) else value
    except (TypeError, ValueError):
        raise OptionError(
            f"latency must be milliseconds or a (min, max) pair, not {value!r}"
        ) from None
    count("latency", 0)(low)
    count("latency", 0)(high)
    if low > high:
        raise OptionError(f"latency range {low}-{high} runs backwards")
    return (low, high)


def probability(label: str) -> Check:
    def check(value: Any) -> Any:
        if not _is_number(value) or not 0 <= value <= 1:
            raise OptionError(f"{label} must be a probability from 0 to 1, not {value!r}")
        return value

    return check


def cors_origins(value: Any) -> tuple[str, ...]:
    """The origins of `--cors`, as a browser's `Origin` header spells them: lower case, no
    default port, no slash at the end; "*" alone for any origin."""
    origins: list[str] = []
    for origin in names(value):
        if not isinstance(origin, str):
            raise OptionError(f"cors origin {origin!r} must be a string")
        normal = origin if origin == "*" else _origin(origin)
        if normal not in origins:
            origins.append(normal)
    if "*" in origins and len(origins) > 1:
        raise OptionError("cors origin '*' allows every origin: list no other beside it")
    return tuple(origins)


def _origin(origin: str) -> str:
    problem = f"cors origin {origin!r} must be http(s)://host[:port] or '*'"
    try:
        parts = urlsplit(origin.rstrip("/") if origin.count("/") == 3 else origin)
        port = parts.port
    except ValueError:
        raise OptionError(problem) from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
        or origin != origin.strip()
    ):
        raise OptionError(problem)
    host = parts.hostname
    host = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def at_least(label: str, minimum: int) -> Check:
    """A whole number of at least `minimum`, said of `label` ("--workers")."""

    def check(value: Any) -> Any:
        if not _is_whole(value) or value < minimum:
            raise OptionError(f"{label} must be at least {minimum}, not {value!r}")
        return value

    return check
