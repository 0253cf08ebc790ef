"""The compiled validator: jsonschema_rs running a copy of the request schema that means to it
exactly what the schema means to the contract's jsonschema validator (the reference), so that
it may decide the valid case fast. `tests/test_validator_differential.py` proves both accept the
same bodies.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import jsonschema_rs

# The compiled validator (jsonschema_rs) runs a copy of the schema that means to it what the
# schema means to RequestValidator: its patterns rewritten, where Python's regular expressions and
# ECMA-262 differ, into the form both read alike, and a keyword added beside every type that takes
# integers but not numbers, as jsonschema_rs counts 2.0 as an integer.
_STRICT_INTEGER = "mockStrictInteger"
_SCHEMA_KEYWORDS = frozenset(
    {"additionalProperties", "contains", "contentSchema", "else", "if", "items", "not"}
    | {"propertyNames", "then", "unevaluatedItems", "unevaluatedProperties"}
)
_SCHEMA_LIST_KEYWORDS = frozenset({"allOf", "anyOf", "items", "oneOf", "prefixItems"})
_SCHEMA_MAP_KEYWORDS = frozenset(
    {"$defs", "definitions", "dependentSchemas", "patternProperties", "properties"}
)
# Escapes that mean one character, the same one, to both: the syntax characters and \t\n\v\f\r.
_LITERAL_ESCAPES = frozenset("\\/^$.|?*+()[]{}-tnvfr")
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_QUANTIFIER = re.compile(r"\{[0-9]+(,[0-9]*)?\}")


@functools.cache
def _py_space() -> str:
    """Python's `\\s` as ECMA escapes for a class: it is str.isspace, which takes U+001C to U+001F
    and U+0085 but not U+FEFF, so it is not ECMA's `\\s`. All of it is in the BMP."""
    return "".join(f"\\u{code:04x}" for code in range(0x10000) if chr(code).isspace())


class _Untranslatable(ValueError):
    """A pattern whose meaning to Python this module cannot spell for jsonschema_rs."""


def _ecma_escape(pattern: str, at: int, in_class: bool) -> tuple[str, int]:
    """The escape at pattern[at] (a backslash) in the form jsonschema_rs reads as Python does."""
    char = pattern[at + 1 : at + 2]
    if char == "s":
        return (_py_space() if in_class else f"[{_py_space()}]"), at + 2
    if char == "S" and not in_class:
        return f"[^{_py_space()}]", at + 2
    if char == "u" and _HEX4.fullmatch(pattern, at + 2, at + 6):
        return pattern[at : at + 6], at + 6
    if char and char in _LITERAL_ESCAPES:
        return pattern[at : at + 2], at + 2
    raise _Untranslatable(pattern)


def _ecma_pattern(pattern: str) -> str:
    """The ECMA-262 pattern that matches exactly the strings `config._ecma_regex(pattern)`
    matches."""
    out: list[str] = []
    in_class = False
    at = 0
    while at < len(pattern):
        char = pattern[at]
        if char == "\\":
            text, at = _ecma_escape(pattern, at, in_class)
            out.append(text)
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern.startswith(("[]", "[^]"), at):  # `]` first is literal to Python only
                raise _Untranslatable(pattern)
        elif char == ".":
            char = r"[^\n]"  # Python's dot; ECMA's also leaves out \r, U+2028 and U+2029
        elif pattern.startswith("(?", at) and not pattern.startswith("(?:", at):
            raise _Untranslatable(pattern)  # lookarounds, flags, named groups
        elif char == "{" and not _QUANTIFIER.match(pattern, at):
            raise _Untranslatable(pattern)  # a literal `{`, or Python's `{,n}`
        out.append(char)
        at += 1
    return "".join(out)


def _compiled_schema(node: Any) -> Any:
    """The copy of a (sub)schema that jsonschema_rs runs: see _STRICT_INTEGER above."""
    if not isinstance(node, dict):
        return node
    out = dict(node)
    for key, value in node.items():
        if key in _SCHEMA_LIST_KEYWORDS and isinstance(value, list):
            out[key] = [_compiled_schema(item) for item in value]
        elif key in _SCHEMA_KEYWORDS:
            out[key] = _compiled_schema(value)
        elif key in _SCHEMA_MAP_KEYWORDS and isinstance(value, dict):
            rename = _ecma_pattern if key == "patternProperties" else str
            out[key] = {rename(name): _compiled_schema(sub) for name, sub in value.items()}
        elif key == "pattern" and isinstance(value, str):
            out[key] = _ecma_pattern(value)
    types = node.get("type")
    types = [types] if isinstance(types, str) else types
    if isinstance(types, list) and "integer" in types and "number" not in types:
        out[_STRICT_INTEGER] = True
    return out


class _NotAFloat:
    """The _STRICT_INTEGER keyword for jsonschema_rs: a float is never an integer."""

    def __init__(
        self, parent_schema: dict[str, Any], value: Any, schema_path: list[str | int]
    ) -> None:
        pass

    def validate(self, instance: Any) -> None:
        if isinstance(instance, float):
            raise ValueError(f"{instance!r} is not an integer")


def compile_fast(schema: Mapping[str, Any]) -> jsonschema_rs.Validator | None:
    """A jsonschema_rs validator taking exactly the bodies RequestValidator(schema) takes.

    None when the schema holds what this module cannot carry over (a pattern it cannot rewrite,
    one jsonschema_rs refuses): then jsonschema alone validates.
    """
    try:
        return jsonschema_rs.validator_for(
            _compiled_schema(dict(schema)),
            keywords={_STRICT_INTEGER: _NotAFloat},
            validate_formats=False,
        )
    except Exception:  # whatever the reason, jsonschema still validates
        return None
