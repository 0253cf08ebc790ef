"""ECMA-262 regular expressions, the pattern language of JSON Schema and of the mock's JSON
matchers, as Python's `re` and jsonschema_rs run them.

The mock reads a JSON pattern as Python's `re` does, but for `$`: ECMA-262's is the very end of
the text, while Python's also matches before a final newline, which would let a header value
"ok\\n" or a size "1024*1024\\n" through. `regex()` is the one way the mock compiles a JSON
pattern (schemas, stub files, queued faults). The compiled validator runs jsonschema_rs, a true
ECMA-262 engine: it gets `portable()`, the same pattern spelled so that it matches exactly what
`regex()` matches, where the two languages read a pattern differently (`\\s`, `.`).
"""

from __future__ import annotations

import functools
import re

# JSON regex flags and Python's; ECMA-262 has these three with the same meaning.
FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}

# Escapes that mean one character, the same one, to both: the syntax characters and \t\n\v\f\r.
_LITERAL_ESCAPES = frozenset("\\/^$.|?*+()[]{}-tnvfr")
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_QUANTIFIER = re.compile(r"\{[0-9]+(,[0-9]*)?\}")


def to_python(pattern: str, flags: str = "") -> str:
    """An ECMA-262 pattern as Python's `re` reads it alike: every `$` outside a class becomes
    `\\Z`. With `m`, `$` is every line's end in both languages, so the pattern stays as it is."""
    if "m" in flags:
        return pattern
    out: list[str] = []
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            out.append(r"\Z")
            continue
        out.append(char)
    return "".join(out)


# Bounded: matcher patterns come from requests (POST /__admin/faults) as well as from schemas.
@functools.lru_cache(maxsize=512)
def regex(pattern: str, flags: str = "") -> re.Pattern[str]:
    """The compiled JSON pattern, with JSON flags (`i`, `m`, `s`; ValueError for others);
    `re.error` if Python cannot read it."""
    bits = 0
    for flag in flags:
        if flag not in FLAGS:
            raise ValueError(f"unknown regex flag {flag!r}; known: {', '.join(FLAGS)}")
        bits |= FLAGS[flag]
    return re.compile(to_python(pattern, flags), bits)


class NotPortable(ValueError):
    """A pattern whose meaning to `regex()` this module cannot spell for an ECMA-262 engine."""


@functools.cache
def _py_space() -> str:
    """Python's `\\s` as ECMA escapes for a class: it is str.isspace, which takes U+001C to U+001F
    and U+0085 but not U+FEFF, so it is not ECMA's `\\s`. All of it is in the BMP."""
    return "".join(f"\\u{code:04x}" for code in range(0x10000) if chr(code).isspace())


def _escape(pattern: str, at: int, in_class: bool) -> tuple[str, int]:
    """The escape at pattern[at] (a backslash) in the form an ECMA engine reads as Python does."""
    char = pattern[at + 1 : at + 2]
    if char == "s":
        return (_py_space() if in_class else f"[{_py_space()}]"), at + 2
    if char == "S" and not in_class:
        return f"[^{_py_space()}]", at + 2
    if char == "u" and _HEX4.fullmatch(pattern, at + 2, at + 6):
        return pattern[at : at + 6], at + 6
    if char and char in _LITERAL_ESCAPES:
        return pattern[at : at + 2], at + 2
    raise NotPortable(pattern)


def portable(pattern: str) -> str:
    """The ECMA-262 pattern that matches exactly the strings `regex(pattern)` matches;
    NotPortable where this module cannot spell it (lookarounds, `\\d`, a literal `{`, ...)."""
    out: list[str] = []
    in_class = False
    at = 0
    while at < len(pattern):
        char = pattern[at]
        if char == "\\":
            text, at = _escape(pattern, at, in_class)
            out.append(text)
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern.startswith(("[]", "[^]"), at):  # `]` first is literal to Python only
                raise NotPortable(pattern)
        elif char == ".":
            char = r"[^\n]"  # Python's dot; ECMA's also leaves out \r, U+2028 and U+2029
        elif pattern.startswith("(?", at) and not pattern.startswith("(?:", at):
            raise NotPortable(pattern)  # lookarounds, flags, named groups
        elif char == "{" and not _QUANTIFIER.match(pattern, at):
            raise NotPortable(pattern)  # a literal `{`, or Python's `{,n}`
        out.append(char)
        at += 1
    return "".join(out)
