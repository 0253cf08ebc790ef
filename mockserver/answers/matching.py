"""One way to say what a field must be, for `assert_requested`, queued faults and stub files.

A matcher is a value (equal, with the same JSON type: `1` is not `1.0`, `true` is not `1`),
a regex (searched in a string, flags kept) or, from Python only, a predicate. In Python a
compiled `re.Pattern` is a regex and a callable is a predicate; in JSON (stub files, `POST
/__admin/faults`) `{"regex": "...", "flags": "i"}` is a regex, with JSON Schema's pattern
language (ECMA-262: `$` is the very end of the text) and the flags `i`, `m` and `s`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mockserver.contract import ecma

MISSING: Any = object()  # a field the request does not have


class MatcherError(ValueError):
    """A matcher that cannot be built: a bad regex, unknown flags, an unknown form."""


@dataclass(frozen=True)
class Matcher:
    """What one field must be. Build it with `from_python` or `from_json`."""

    kind: str  # "value", "regex" or "predicate"
    value: Any = None
    regex: re.Pattern[str] | None = None
    flags: str = ""  # the JSON flags of a regex
    predicate: Callable[[Any], Any] | None = None

    @classmethod
    def from_python(cls, want: Any) -> Matcher:
        if isinstance(want, Matcher):
            return want
        if isinstance(want, re.Pattern):
            flags = "".join(k for k, f in ecma.FLAGS.items() if want.flags & f)
            return cls("regex", value=want.pattern, regex=want, flags=flags)
        if callable(want):
            return cls("predicate", predicate=want)
        return cls("value", value=want)

    @classmethod
    def from_json(cls, want: Any) -> Matcher:
        """A JSON value, or `{"regex": ..., "flags": ...}`; MatcherError if the regex is bad."""
        if not (isinstance(want, dict) and "regex" in want):
            return cls("value", value=want)
        pattern, flags = want["regex"], want.get("flags", "")
        if set(want) - {"regex", "flags"} or not isinstance(pattern, str):
            raise MatcherError('a regex is {"regex": "...", "flags": "ims"}')
        if not isinstance(flags, str) or set(flags) - ecma.FLAGS.keys():
            raise MatcherError(f"unknown regex flags {flags!r}; known: i, m, s")
        try:
            compiled = ecma.regex(pattern, flags)
        except re.error as exc:
            raise MatcherError(f"invalid regex {pattern!r}: {exc}") from None
        return cls("regex", value=pattern, regex=compiled, flags="".join(sorted(set(flags))))

    def matches(self, got: Any) -> bool:
        if got is MISSING:
            return False
        if self.regex is not None:
            return isinstance(got, str) and self.regex.search(got) is not None
        if self.predicate is not None:
            return bool(self.predicate(got))
        return bool(got == self.value) and type(got) is type(self.value)

    def describe(self) -> str:
        """`"a cat"`, `a match for /cat/i`: the matcher in a failure message."""
        if self.kind == "regex":
            return f"a match for /{self.value}/{self.flags}"
        if self.predicate is not None:
            name = getattr(self.predicate, "__name__", "the predicate")
            return f"a value for which {name} is true"
        return show(self.value)

    def to_json(self) -> Any:
        if self.kind == "regex":
            return (
                {"regex": self.value, "flags": self.flags} if self.flags else {"regex": self.value}
            )
        if self.predicate is not None:
            return {"predicate": getattr(self.predicate, "__name__", "a function")}
        return self.value

    def difference(self, got: Any) -> str:
        """Why `got` does not match, said as precisely as the kinds allow."""
        line = f"expected {self.describe()}, got {show(got)}"
        if self.kind == "value" and isinstance(self.value, str) and isinstance(got, str):
            at = next(
                (i for i, (a, b) in enumerate(zip(self.value, got, strict=False)) if a != b),
                min(len(self.value), len(got)),
            )
            line += f" (first difference at character {at})"
        elif self.kind == "value" and got is not MISSING and self.value == got:
            line += (
                f" (same value, but {type(got).__name__} instead of {type(self.value).__name__})"
            )
        return line


Match = Mapping[str, Matcher]


def compile_python(fields: Mapping[str, Any]) -> dict[str, Matcher]:
    return {name: Matcher.from_python(want) for name, want in fields.items()}


def compile_json(fields: Mapping[str, Any], where: str) -> dict[str, Matcher]:
    """Matchers from a JSON object; MatcherError naming `where.field` on a bad one."""
    out = {}
    for name, want in fields.items():
        try:
            out[name] = Matcher.from_json(want)
        except MatcherError as exc:
            raise MatcherError(f"{where}.{name}: {exc}") from None
    return out


def matches_all(match: Match, values: Mapping[str, Any]) -> bool:
    return all(m.matches(values.get(name, MISSING)) for name, m in match.items())


def misses(match: Match, get: Callable[[str], Any]) -> list[str]:
    """The names of the fields that do not match, `get` reading each field's value."""
    return [name for name, m in match.items() if not m.matches(get(name))]


def match_json(match: Match) -> dict[str, Any]:
    return {name: m.to_json() for name, m in match.items()}


def show(value: Any, limit: int = 80) -> str:
    """A value as a message shows it: JSON where it is JSON, cut to `limit` characters."""
    if value is MISSING:
        return "(absent)"
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
