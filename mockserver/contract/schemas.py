"""The mock's JSON Schemas and the data files they check: where they are, one registry of them by
`$id` (so one may `$ref` another), and a validator of each by its file name.

Every schema of the mock is checked with ECMA-262 patterns (`EcmaValidator`), as JSON Schema
means them: jsonschema runs `pattern` with Python's `re`, where `$` also matches before a final
newline, which would let a header value "ok\\n" or a size "1024*1024\\n" through.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from mockserver.contract import ecma
from mockserver.errors import ConfigError
from mockserver.paths import data_dir


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not ecma.regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, validators={"pattern": _pattern}
)


@functools.cache
def registry() -> Registry[Any]:
    """Every schema file under data_dir() by its `$id`."""
    resources = []
    for path in sorted(data_dir().rglob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(schema, dict) and "$id" in schema:
            resources.append((schema["$id"], Resource.from_contents(schema, DRAFT202012)))
    return Registry().with_resources(resources)


def validator_for(schema: Mapping[str, Any]) -> Draft202012Validator:
    """A validator of `schema` with ECMA-262 patterns, its `$ref`s to the mock's schemas
    resolved."""
    validator: Draft202012Validator = EcmaValidator(schema, registry=registry())
    return validator


@functools.cache
def schema_validator(name: str) -> Draft202012Validator:
    """The validator of the schema file `name` (a path relative to data_dir())."""
    return validator_for(json.loads((data_dir() / name).read_text(encoding="utf-8")))


def problems(validator: Draft202012Validator, instance: Any, limit: int = 300) -> list[str]:
    """Every way `instance` fails `validator`, as `at /cases/0/expect: message`, in the order of
    the places; each message cut to `limit` characters."""
    found = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path]):
        message = error.message
        message = message if len(message) <= limit else message[: limit - 3] + "..."
        found.append(f"at /{'/'.join(str(p) for p in error.absolute_path)}: {message}")
    return found


def read_data_file(path: Path, schema_name: str, what: str) -> Any:
    """A JSON data file checked against its schema in data_dir(); ConfigError naming the place."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what} {path}: {exc}") from exc
    error = best_match(schema_validator(schema_name).iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "top level"
        raise ConfigError(f"{what} {path}: at {where}: {error.message}")
    return data
