"""The compiled validator: jsonschema_rs running a copy of the request schema that means to it
exactly what the schema means to the contract's jsonschema validator (the reference), so that
it may decide the valid case fast. `tests/test_validator_differential.py` proves both accept the
same bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema_rs

from mockserver.contract.ecma import portable

# The compiled validator (jsonschema_rs) runs a copy of the schema that means to it what the
# schema means to RequestValidator: its patterns spelled as ecma.portable spells them (where
# Python's regular expressions and ECMA-262 differ, the form both read alike), and a keyword added
# beside every type that takes integers but not numbers, as jsonschema_rs counts 2.0 as an integer.
_STRICT_INTEGER = "mockStrictInteger"
_SCHEMA_KEYWORDS = frozenset(
    {"additionalProperties", "contains", "contentSchema", "else", "if", "items", "not"}
    | {"propertyNames", "then", "unevaluatedItems", "unevaluatedProperties"}
)
_SCHEMA_LIST_KEYWORDS = frozenset({"allOf", "anyOf", "items", "oneOf", "prefixItems"})
_SCHEMA_MAP_KEYWORDS = frozenset(
    {"$defs", "definitions", "dependentSchemas", "patternProperties", "properties"}
)


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
            rename = portable if key == "patternProperties" else str
            out[key] = {rename(name): _compiled_schema(sub) for name, sub in value.items()}
        elif key == "pattern" and isinstance(value, str):
            out[key] = portable(value)
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
