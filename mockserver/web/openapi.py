"""The OpenAPI 3.1 document of the mock: the text of schemas/openapi.json, the paths of the
route table, the schema files, and the values of the running mock filled in.

schemas/openapi.json has every static part of the document (its `description` and
`$comment` say the same as this):

- `document`: the document without `paths`. The schema files of SCHEMA_FILES are added to
  its `components/schemas` (the generation request as the contract uses it: with the size
  table's ratios and resolutions, and closed to unknown fields with --strict).
- `operations`: by operationId, the text of each operation (summary, description, security,
  parameters, requestBody, its success responses), copied into it as it is, but for
  `error_headers`, the headers each of its error answers carries.
- `error_answers`: one error answer, made for each status an operation answers; `line` is
  made for each of its error codes, and `headers` adds headers by status.
- `unknown_fields`: the sentence on fields the request schema does not define, `strict` or
  `lenient`.

Each RouteSpec of the route table is one operation: its path, its method in lower case,
`operationId` its `operation`, `tags` [its `tag`], and an error answer per status of the
error codes it answers (statuses, types and messages are the error catalogue's): its
`errors`, and `method_not_allowed`, which every operation answers; generation also answers
the error codes of the fault catalogue's faults, and `unknown_parameter` only when strict.
A route whose operation has no text, or text no route has, is a ConfigError.

Filling (`fill`): in a string, `{NAME}` is replaced by the value NAME and `{NAME:SPEC}` by
`format(value, SPEC)`; `{{NAME}}` is a literal `{NAME}`, other braces are text. An object
`{"$fill": NAME}` (no other key) is replaced by the value NAME itself, a list or an object.
Replacements are not filled again. A name without a value is a ConfigError naming where it
is. The values are `document_values()`'s; an error answer has its own (`error_responses`).
A request body example whose value names a `fault` the fault catalogue lacks is left out.

With `cors` (--cors ORIGIN), the document says what the CORS middleware does: each path it
answers preflights on (`cors.covers`) gains an `options` operation, the `cors` text's
`preflight` (operationId `preflight` and the path's first operationId, its 405 answer made as
any operation's), and every answer on those paths the headers of `answer_headers`. The
values of cors.py (its header lists, its Max-Age) are filled in, so the two cannot drift.
Without `cors`, none of it: the document is the one a mock without --cors has always had.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from importlib import metadata
from typing import Any, get_args

from mockserver.answers.faults import Action, FaultCatalogue
from mockserver.contract.sizes import SizeTable
from mockserver.contract.validation import REQUEST_SCHEMA, RequestContract
from mockserver.errors import ConfigError, ErrorCatalogue
from mockserver.paths import data_dir
from mockserver.web.cors import ALLOWED_HEADERS, ANY, EXPOSED_HEADERS, MAX_AGE, covers
from mockserver.web.routes import GENERATIONS, RouteSpec

PACKAGE = "jimeng-mockserver"
TEXT_FILE = "openapi.json"
RESPONSE_SCHEMA = "images-generations.response.json"
ERROR_SCHEMA = "error.response.json"
ADMIN_FAULTS_SCHEMA = "admin-faults.request.json"
MATCHER_SCHEMA = "matcher.schema.json"
SCHEMA_FILES = (REQUEST_SCHEMA, RESPONSE_SCHEMA, ERROR_SCHEMA, ADMIN_FAULTS_SCHEMA, MATCHER_SCHEMA)

# {{NAME}} (a literal {NAME}), or {NAME} / {NAME:SPEC} (a value).
_PLACEHOLDER = re.compile(r"\{\{([A-Za-z_]\w*)\}\}|\{([A-Za-z_]\w*)(?::([^{}]*))?\}")
# What is special in an ECMA-262 pattern (a schema's `pattern`); `-` is not, outside a class,
# and escaping it is an error there in unicode mode, so re.escape will not do.
_ECMA_SPECIAL = re.compile(r"([\\^$.|?*+()\[\]{}])")


def component_name(file_name: str) -> str:
    """`images-generations.request.json` -> `ImagesGenerationsRequest`."""
    return "".join(
        part.capitalize() for part in re.split(r"[-._]", file_name.removesuffix(".json"))
    )


def embed(schema: Mapping[str, Any], name: str, names: Mapping[str, str]) -> dict[str, Any]:
    """A schema file as the component `name`: without `$schema` and `$id`, its `$ref`s made to
    resolve inside the document (`#/$defs/x` -> `#/components/schemas/NAME/$defs/x`, and a ref
    to another embedded file, by file name or `$id`, to that file's component)."""

    def rewrite(node: Any) -> Any:
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: rewrite(value) for key, value in node.items()}
        target = node.get("$ref")
        if isinstance(target, str):
            base, _, pointer = target.partition("#")
            if not base:
                out["$ref"] = f"#/components/schemas/{name}{pointer}"
            elif base in names or base.rsplit("/", 1)[-1] in names:
                other = names.get(base) or names[base.rsplit("/", 1)[-1]]
                out["$ref"] = f"#/components/schemas/{other}{pointer}"
        return out

    embedded: dict[str, Any] = rewrite(copy.deepcopy(dict(schema)))
    embedded.pop("$schema", None)
    embedded.pop("$id", None)
    return embedded


def schema_files(contract: RequestContract) -> dict[str, dict[str, Any]]:
    """The schema files embedded in the document, by component name."""
    loaded = {
        file: json.loads((data_dir() / file).read_text(encoding="utf-8")) for file in SCHEMA_FILES
    }
    # The request schema is the contract's: the file as the mock validates with it.
    loaded[REQUEST_SCHEMA] = contract.schema
    names = {file: component_name(file) for file in SCHEMA_FILES}
    names.update({schema["$id"]: names[file] for file, schema in loaded.items() if "$id" in schema})
    return {names[file]: embed(schema, names[file], names) for file, schema in loaded.items()}


def load_text() -> dict[str, Any]:
    """schemas/openapi.json: the static parts of the document."""
    text: dict[str, Any] = json.loads((data_dir() / TEXT_FILE).read_text(encoding="utf-8"))
    return text


def fill(node: Any, values: Mapping[str, Any], where: str) -> Any:
    """A copy of `node` with its placeholders replaced by `values` (see the module docstring);
    `where`, its place in schemas/openapi.json, names it in errors."""
    if isinstance(node, str):
        return _PLACEHOLDER.sub(lambda match: _format(match, values, where), node)
    if isinstance(node, list):
        return [fill(item, values, f"{where}/{index}") for index, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    if "$fill" in node:
        name = node["$fill"]
        if set(node) != {"$fill"} or not isinstance(name, str):
            raise ConfigError(f"{TEXT_FILE}: {where}: a $fill object has one key, a name")
        _known(name, values, where)
        return copy.deepcopy(values[name])
    return {key: fill(value, values, f"{where}/{key}") for key, value in node.items()}


def _format(match: re.Match[str], values: Mapping[str, Any], where: str) -> str:
    literal, name, spec = match.groups()
    if literal is not None:
        return "{" + literal + "}"
    _known(name, values, where)
    value = values[name]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(
            f'{TEXT_FILE}: {where}: {{{name}}} is not text; write {{"$fill": "{name}"}} instead'
        )
    try:
        return format(value, spec or "")
    except ValueError as exc:
        raise ConfigError(f"{TEXT_FILE}: {where}: {match.group()}: {exc}") from None


def _known(name: str, values: Mapping[str, Any], where: str) -> None:
    if name not in values:
        raise ConfigError(
            f"{TEXT_FILE}: {where}: no value is called {name!r}; "
            f"there are {', '.join(sorted(values))}"
        )


def _version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "0.1.0"


def _strict(contract: RequestContract) -> bool:
    return contract.schema.get("additionalProperties") is False


def _size_table(sizes: SizeTable) -> str:
    """The size table in Markdown: a row per ratio, a column per resolution."""
    rows = [
        f"| {ratio} | "
        + " | ".join(
            f"{row[res][0]}x{row[res][1]}" if res in row else "-" for res in sizes.resolutions
        )
        + " |"
        for ratio, row in sizes.table.items()
    ]
    header = f"| ratio | {' | '.join(sizes.resolutions)} |\n|---|{'---|' * len(sizes.resolutions)}"
    return "\n".join([header, *rows])


def document_values(
    contract: RequestContract,
    catalogue: ErrorCatalogue,
    faults: FaultCatalogue,
    unknown_fields: Mapping[str, str],
) -> dict[str, Any]:
    """What `document` and `operations` of schemas/openapi.json may name, by name."""
    models = list(contract.models)
    sizes = contract.sizes
    return {
        "version": _version(),
        "models": models,
        "first_model": models[0],
        "last_model": models[-1],
        "model_examples": {model: {"value": model} for model in models},
        "size_table": _size_table(sizes),
        "default_ratio": sizes.default_ratio,
        "default_resolution": sizes.default_resolution,
        "last_ratio": sizes.ratios[-1],
        "first_resolution": sizes.resolutions[0],
        "min_pixels": sizes.bounds.min_pixels,
        "max_pixels": sizes.bounds.max_pixels,
        "max_aspect_ratio": sizes.bounds.max_aspect_ratio,
        "unknown_fields": unknown_fields["strict" if _strict(contract) else "lenient"],
        "faults": faults.names(),
        "fault_names": ", ".join(faults.names()),
        "fault_list": "\n".join(
            f"- `{fault.name}`: {fault.description}" for fault in faults.faults.values()
        ),
        "max_latency_ms": faults.max_latency_ms,
        "actions": list(get_args(Action)),
        "error_codes": sorted(catalogue.kinds),
    }


def check_routes(routes: Sequence[RouteSpec], operations: Mapping[str, Any]) -> None:
    """Each route has text, and each text a route: a ConfigError names what does not."""
    for key, count in Counter((spec.method, spec.path) for spec in routes).items():
        if count > 1:
            raise ConfigError(f"the route table has {' '.join(key)} {count} times")
    for name, count in Counter(spec.operation for spec in routes).items():
        if count > 1:
            raise ConfigError(f"the route table has the operation {name!r} {count} times")
    for spec in routes:
        if spec.operation not in operations:
            raise ConfigError(
                f"{TEXT_FILE} has no text for the operation {spec.operation!r} "
                f"of the route {spec.method} {spec.path}"
            )
    if unrouted := sorted(set(operations) - {spec.operation for spec in routes}):
        raise ConfigError(
            f"{TEXT_FILE} has text for operations no route has: {', '.join(unrouted)}"
        )


def error_codes(
    spec: RouteSpec, strict: bool, catalogue: ErrorCatalogue, faults: FaultCatalogue
) -> set[str]:
    """The error codes a route answers (see the module docstring)."""
    codes = {*spec.errors, "method_not_allowed"}
    if (spec.method, spec.path) == ("POST", GENERATIONS):
        if not strict:
            codes.discard("unknown_parameter")
        codes |= {fault.error for fault in faults.faults.values() if fault.error}
    if unknown := sorted(codes - catalogue.kinds.keys()):
        raise ConfigError(
            f"the route {spec.method} {spec.path} answers {', '.join(unknown)}, "
            "which the error catalogue does not have"
        )
    return codes


def error_responses(
    codes: set[str],
    catalogue: ErrorCatalogue,
    template: Mapping[str, Any],
    headers: Mapping[str, Any],
) -> dict[str, Any]:
    """The error answers of an operation, one per status, each listing its codes in the
    catalogue's order; `template` is `error_answers`, `headers` its `error_headers`."""
    by_status: dict[int, list[str]] = {}
    for code, kind in catalogue.kinds.items():
        if code in codes:
            by_status.setdefault(kind.status, []).append(code)
    responses: dict[str, Any] = {}
    for status, found in sorted(by_status.items()):
        kinds = [catalogue.kinds[code] for code in found]
        lines = [
            fill(
                template["line"],
                {"code": code, "type": kind.type, "message": kind.message},
                "error_answers/line",
            )
            for code, kind in zip(found, kinds, strict=True)
        ]
        values = {
            "status": status,
            "phrase": HTTPStatus(status).phrase,
            "codes": found,
            "types": sorted({kind.type for kind in kinds}),
            "lines": "\n".join(lines),
        }
        answer = fill(
            {key: value for key, value in template.items() if key != "line"},
            values,
            "error_answers",
        )
        response = {"description": answer["description"], "content": answer["content"]}
        if response_headers := {**headers, **answer.get("headers", {}).get(str(status), {})}:
            response["headers"] = response_headers
        responses[str(status)] = response
    return responses


def _known_fault_examples(operation: dict[str, Any], faults: FaultCatalogue) -> None:
    """Leaves out the request body examples whose value names a fault the catalogue lacks."""
    for media in operation.get("requestBody", {}).get("content", {}).values():
        examples = media.get("examples")
        if isinstance(examples, dict):
            media["examples"] = {
                name: example
                for name, example in examples.items()
                if not isinstance(value := example.get("value"), dict)
                or "fault" not in value
                or faults.get(value["fault"]) is not None
            }


def cors_values(
    origins: Sequence[str], text: Mapping[str, Any], values: Mapping[str, Any]
) -> dict[str, Any]:
    """What the `cors` text may name: `values`, and cors.py's own, for these origins."""
    listed = ", ".join(ALLOWED_HEADERS)
    out = {
        **values,
        "origins": list(origins),
        "origin_list": ", ".join(f"`{origin}`" for origin in origins),
        "allow_origins": [ANY] if ANY in origins else list(origins),
        "allowed_headers": listed,
        "allowed_headers_pattern": "^" + _ECMA_SPECIAL.sub(r"\\\1", listed),
        "exposed_headers": EXPOSED_HEADERS,
        "max_age": MAX_AGE,
    }
    kind = "any" if ANY in origins else "listed"
    out["origin_schema"] = fill(text["origin_schemas"][kind], out, f"cors/origin_schemas/{kind}")
    return out


def _mark(response: dict[str, Any], marks: Mapping[str, Any]) -> None:
    """Adds the headers of `marks` an answer does not document yet."""
    shown = response.get("headers", {})
    response["headers"] = {**shown, **{k: v for k, v in marks.items() if k not in shown}}


def preflight_operation(
    path: str,
    specs: Sequence[RouteSpec],
    text: Mapping[str, Any],
    values: Mapping[str, Any],
    catalogue: ErrorCatalogue,
    marks: Mapping[str, Any],
) -> dict[str, Any]:
    """The `options` operation of one path, from the `cors` text; `specs`, the path's routes,
    `marks` the headers of `answer_headers`."""
    own = text["cors"]
    methods = sorted({method for spec in specs for method in spec.methods})
    values = {**values, "path": path, "methods": ", ".join(methods)}
    operation: dict[str, Any] = fill(own["preflight"], values, "cors/preflight")
    # Any value of a path parameter is answered the same: the route's own text would say more.
    operation["parameters"] = [
        fill(own["path_parameter"], {**values, "name": name}, "cors/path_parameter")
        for name in re.findall(r"\{(\w+)\}", path)
    ] + operation.get("parameters", [])
    # A preflight the middleware lets through is an ordinary answer, marked as any other; its
    # own 204 carries only what a preflight's answer has.
    errors = error_responses({"method_not_allowed"}, catalogue, text["error_answers"], {})
    for response in errors.values():
        _mark(response, marks)
    operation["responses"] = {**operation.get("responses", {}), **errors}
    first = specs[0].operation
    return {
        "tags": [specs[0].tag],
        "operationId": f"preflight{first[:1].upper()}{first[1:]}",
        **operation,
    }


def add_cors(
    document: dict[str, Any],
    routes: Sequence[RouteSpec],
    origins: Sequence[str],
    text: Mapping[str, Any],
    parts: tuple[Mapping[str, Any], ErrorCatalogue],
) -> None:
    """Adds to `document` what --cors with these origins answers (see the module docstring);
    `parts` are the document's values and the error catalogue."""
    if "cors" not in text:
        raise ConfigError(f"{TEXT_FILE} has no `cors` text, which --cors needs")
    values, catalogue = parts
    values = cors_values(origins, text["cors"], values)
    marks = fill(text["cors"]["answer_headers"], values, "cors/answer_headers")
    by_path: dict[str, list[RouteSpec]] = {}
    for spec in routes:
        if covers(spec.path):
            by_path.setdefault(spec.path, []).append(spec)
    taken = {spec.operation for spec in routes}
    for path, specs in by_path.items():
        item = document["paths"][path]
        for operation in item.values():
            for response in operation["responses"].values():
                _mark(response, marks)
        item["options"] = preflight_operation(path, specs, text, values, catalogue, marks)
        if (named := item["options"]["operationId"]) in taken:
            raise ConfigError(f"the route table has the operation {named!r}, a preflight's")
    headers = document.setdefault("components", {}).setdefault("headers", {})
    added = fill(text["cors"]["components"]["headers"], values, "cors/components/headers")
    if clash := sorted(headers.keys() & added.keys()):
        raise ConfigError(f"{TEXT_FILE}: cors/components/headers has {', '.join(clash)} twice")
    headers.update(added)


def build_document(
    routes: Sequence[RouteSpec],
    contract: RequestContract,
    catalogue: ErrorCatalogue,
    faults: FaultCatalogue,
    *,
    text: Mapping[str, Any] | None = None,
    cors: Sequence[str] = (),
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these routes, for an app with this contract and these
    catalogues, and with `cors` its --cors origins; `GET /openapi.json` answers it. `text`
    stands for schemas/openapi.json."""
    text = load_text() if text is None else text
    check_routes(routes, text["operations"])
    values = document_values(contract, catalogue, faults, text["unknown_fields"])
    document: dict[str, Any] = fill(text["document"], values, "document")
    if "paths" in document:
        raise ConfigError(f"{TEXT_FILE}: document/paths are the route table's, not text")
    strict = _strict(contract)
    paths: dict[str, dict[str, Any]] = {}
    for spec in routes:
        own = fill(text["operations"][spec.operation], values, f"operations/{spec.operation}")
        _known_fault_examples(own, faults)
        headers = own.pop("error_headers", {})
        codes = error_codes(spec, strict, catalogue, faults)
        operation = {"tags": [spec.tag], "operationId": spec.operation, **own}
        operation["responses"] = {
            **own.get("responses", {}),
            **error_responses(codes, catalogue, text["error_answers"], headers),
        }
        paths.setdefault(spec.path, {})[spec.method.lower()] = operation
    components = document.pop("components", {})
    files = schema_files(contract)
    if clash := sorted(files.keys() & components.get("schemas", {}).keys()):
        raise ConfigError(f"{TEXT_FILE}: the schema files are the components {', '.join(clash)}")
    components["schemas"] = {**files, **components.get("schemas", {})}
    built = {**document, "paths": paths, "components": components}
    if cors:
        add_cors(built, routes, cors, text, (values, catalogue))
    return built
