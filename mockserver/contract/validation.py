"""The request contract: JSON Schema validation, and each schema error turned into an API error."""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import SchemaError

from mockserver.contract.fast import compile_fast
from mockserver.contract.schemas import EcmaValidator
from mockserver.contract.sizes import SizeTable
from mockserver.errors import ApiError, ConfigError

REQUEST_SCHEMA = "images-generations.request.json"
WARNINGS = "warnings.json"
WARNING_CODES = frozenset({"unknown_field", "ignored_field", "size_overrides_ratio"})
# A body of 90,000 unknown fields must cost about what its bytes do: "Did you mean" (difflib,
# slow) is looked for in the first SUGGESTED unknown fields only, and a request has at most
# MAX_WARNINGS warnings (as many as the journal keeps): past that, one counts the fields left.
SUGGESTED = 20
MAX_WARNINGS = 100


# JSON Schema counts 2.0 as an integer; the mock does not, as a typed upstream would not.
_TYPES = Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
)
# Patterns are ECMA-262's, as in every schema of the mock (schemas.EcmaValidator).
RequestValidator = validators.extend(  # type: ignore[no-untyped-call]
    EcmaValidator, type_checker=_TYPES
)

_JSON_TYPES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
    type(None): "null",
}
_ARTICLES = {"integer": "an integer", "array": "an array", "object": "an object"}
# How _rank orders errors by keyword: a missing field, then an unknown one, then the rest.
_KIND_RANK = {"required": 0, "additionalProperties": 1}


def json_type(value: object) -> str:
    """'an integer', 'an array': how a JSON value's type is named in messages."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _show(value: object, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except RecursionError:
        text = "[[[..." if isinstance(value, list) else "{..."
    return text if len(text) <= limit else text[: limit - 3] + "..."


def param_path(path: Sequence[str | int]) -> str | None:
    """`image[2]`, `model`: the form OpenAI puts in `param`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or None


@dataclass(frozen=True)
class ContractWarning:
    """A request the real service would accept but that is probably a mistake."""

    code: str
    param: str | None
    message: str


@dataclass(frozen=True)
class Generation:
    """A request that passed the contract, with its pixel size resolved."""

    model: str
    prompt: str
    n: int
    width: int
    height: int
    images: tuple[str, ...]
    response_format: str

    @functools.cached_property
    def seed(self) -> str:
        # n and response_format are left out: image k is the same whether 1 or 4 were asked for.
        key = [self.model, self.prompt, self.width, self.height, list(self.images)]
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


class RequestContract:
    """Validates request bodies against schemas/images-generations.request.json.

    The accepted ratios and resolutions are the size table's, so a replaced table
    (--sizes) is the one place that says which exist. A body is checked by a compiled validator
    first (jsonschema_rs, see compile_fast); jsonschema, the reference, has the last word on every
    body that one refuses, and names the error.
    """

    def __init__(
        self,
        document: Mapping[str, Any],
        sizes: SizeTable,
        *,
        strict: bool,
        warnings: Mapping[str, Any],
    ) -> None:
        schema: dict[str, Any] = copy.deepcopy(dict(document))
        properties: dict[str, Any] = schema["properties"]
        properties["ratio"]["enum"] = list(sizes.ratios)
        properties["resolution"]["enum"] = list(sizes.resolutions)
        if strict:
            schema["additionalProperties"] = False
        try:
            RequestValidator.check_schema(schema)
        except SchemaError as exc:
            raise ConfigError(f"request schema is not valid JSON Schema: {exc}") from exc
        self.schema = schema
        self.sizes = sizes
        self._strict = strict
        self.optional = frozenset(properties) - frozenset(schema["required"])
        self.models: tuple[str, ...] = tuple(properties["model"]["enum"])
        self.max_images_total: int = schema["x-max-images-total"]
        self._validator = RequestValidator(schema)
        # Only its yes is trusted: a body it refuses goes to jsonschema, which names the error.
        self._fast = compile_fast(schema)
        self._known = ", ".join(properties)
        self._field_order = {name: i for i, name in enumerate(properties)}
        self._warning_messages: dict[str, str] = {
            code: entry["message"] for code, entry in warnings["warnings"].items()
        }
        if missing := WARNING_CODES - self._warning_messages.keys():
            raise ConfigError(f"{WARNINGS} lacks the warnings {', '.join(sorted(missing))}")
        self._aliases: dict[str, str] = dict(warnings["aliases"])
        self._ignored: dict[str, str] = dict(warnings["ignored"])

    @classmethod
    def from_dir(cls, directory: Path, sizes: SizeTable, *, strict: bool) -> RequestContract:
        schema = json.loads((directory / REQUEST_SCHEMA).read_text(encoding="utf-8"))
        warnings = json.loads((directory / WARNINGS).read_text(encoding="utf-8"))
        return cls(schema, sizes, strict=strict, warnings=warnings)

    def warnings(self, body: Mapping[str, Any]) -> list[ContractWarning]:
        """What in a valid request the service would ignore, which is probably a mistake."""
        found: list[ContractWarning] = []
        known = self._field_order
        sized = body.get("size") is not None
        overridden = [n for n in ("ratio", "resolution") if sized and body.get(n) is not None]
        extra = len(body) - sum(name in body for name in known)
        budget = MAX_WARNINGS - len(overridden)
        named = extra if extra <= budget else budget - 1
        unknown = 0
        for name in itertools.islice((n for n in body if n not in known), named):
            if name in self._ignored:
                hint = self._ignored[name]
                found.append(self._warning("ignored_field", name, f" {hint}" if hint else ""))
                continue
            unknown += 1
            guess = self._aliases.get(name)
            if guess is None and unknown <= SUGGESTED:
                guess = next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.6)), None)
            hint = f" Did you mean '{guess}'?" if guess else ""
            found.append(self._warning("unknown_field", name, hint))
        if extra > named:
            message = (
                f"{extra - named:,} more fields that are not fields of this API are ignored "
                f"too (a warning each names the first {named})."
            )
            found.append(ContractWarning("unknown_field", None, message))
        found += [self._warning("size_overrides_ratio", name, "") for name in overridden]
        return found

    def _warning(self, code: str, param: str, hint: str) -> ContractWarning:
        message = self._warning_messages[code].format(param=param, hint=hint)
        return ContractWarning(code, param, message)

    def without_nulls(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The body as validated: an optional field sent as null counts as absent. (The optional
        fields are looked up, not every field: 90,000 unknown ones cost one copy.)"""
        body = dict(request)
        for name in self.optional:
            if name in body and body[name] is None:
                del body[name]
        return body

    def fast_accepts(self, body: Mapping[str, Any]) -> bool:
        """Whether the compiled validator takes `body` (False when there is none)."""
        if self._fast is None:
            return False
        try:
            return self._fast.is_valid(body)
        except Exception:  # a lone surrogate, a value it cannot convert: jsonschema decides
            return False

    def reference_accepts(self, body: Mapping[str, Any]) -> bool:
        """Whether jsonschema, which names the error of a refused body, takes `body`."""
        return next(self._validator.iter_errors(body), None) is None

    def validate(self, request: Mapping[str, Any]) -> Generation:
        body = self.without_nulls(request)
        if not self.fast_accepts(body):
            error = self._reference_error(body)
            if error is not None:
                raise error
        n: int = body["n"]
        images: list[str] = body.get("image", [])
        if len(images) + n > self.max_images_total:
            raise ApiError(
                "invalid_value",
                param="n",
                detail=f"{n} images plus {len(images)} reference images is "
                f"{n + len(images)}; together they must be at most {self.max_images_total}",
            )
        width, height = self.sizes.resolve(body)
        return Generation(
            model=body["model"],
            prompt=body["prompt"],
            n=n,
            width=width,
            height=height,
            images=tuple(images),
            response_format=body.get("response_format", "url"),
        )

    def _reference_error(self, body: Mapping[str, Any]) -> ApiError | None:
        """The error jsonschema finds in `body`, or None. With --strict, unknown fields are left
        out of what it checks (it would sort them all for its message, which 90,000 of them
        make slow): the first is the error, unless a field is missing, which ranks first."""
        known = self._field_order
        extra = next((name for name in body if name not in known), None) if self._strict else None
        checked = body if extra is None else {k: body[k] for k in known if k in body}
        errors = list(self._validator.iter_errors(checked))
        if extra is not None and not any(str(e.validator) == "required" for e in errors):
            return ApiError("unknown_parameter", param=param_path([extra]), known=self._known)
        return self._api_error(min(errors, key=self._rank)) if errors else None

    def _rank(self, error: ValidationError) -> tuple[int, int, int]:
        # One error is reported: a missing field first, then an unknown one, then the first
        # field in the schema's order, so the same body always names the same field.
        kind = _KIND_RANK.get(str(error.validator), 2)
        path = list(error.absolute_path)
        field = self._field_order.get(str(path[0]), len(self._field_order)) if path else -1
        return kind, field, len(path)

    def _api_error(self, error: ValidationError) -> ApiError:
        path = list(error.absolute_path)
        keyword = str(error.validator)
        instance: Any = error.instance
        expected: Any = error.validator_value

        if keyword == "required":
            missing = next(name for name in expected if name not in instance)
            return ApiError("missing_required_parameter", param=param_path([*path, missing]))
        if keyword == "additionalProperties":
            extra = next(name for name in instance if name not in self._field_order)
            return ApiError(
                "unknown_parameter", param=param_path([*path, extra]), known=self._known
            )

        param = param_path(path)
        schema: Any = error.schema
        override = schema.get("x-error-code", {}).get(keyword) if isinstance(schema, dict) else None
        if override:
            allowed = ", ".join(map(str, expected)) if isinstance(expected, list) else expected
            return ApiError(override, param=param, value=instance, allowed=allowed)
        return ApiError("invalid_value", param=param, detail=self._describe(error))

    def unknown_model(self, model: str) -> ApiError:
        """The error for a model the schema does not list, as validation would raise it."""
        return ApiError(
            "model_not_found", param="model", value=model, allowed=", ".join(self.models)
        )

    @staticmethod
    def _describe(error: ValidationError) -> str:
        keyword = str(error.validator)
        instance: Any = error.instance
        expected: Any = error.validator_value
        schema: Any = error.schema
        hint = schema.get("x-hint") if isinstance(schema, dict) else None
        if keyword == "type":
            wanted = _ARTICLES.get(expected, f"a {expected}")
            return f"expected {wanted}, got {json_type(instance)} ({_show(instance)})"
        if keyword == "enum":
            return f"{_show(instance)} is not one of {', '.join(map(str, expected))}"
        if keyword == "minimum":
            return f"{instance} is below the minimum of {expected}"
        if keyword == "maximum":
            return f"{instance} is above the maximum of {expected}"
        if keyword == "minLength":
            return "must not be empty" if expected == 1 else f"shorter than {expected} characters"
        if keyword == "maxLength":
            return f"{len(instance):,} characters is longer than the maximum of {expected:,}"
        if keyword == "maxItems":
            return f"{len(instance):,} items is more than the maximum of {expected}"
        if keyword in ("pattern", "not") and hint:
            return f"{_show(instance)}; {hint}"
        return str(error.message)
