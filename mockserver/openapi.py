"""The OpenAPI 3.1 document of the mock, built from the files in schemas/.

The request and response bodies are the schema files themselves, embedded under
`components/schemas` (the generation request as the contract uses it: with the size table's
ratios and resolutions, and closed to unknown fields with --strict). Statuses, types and
messages of the error answers come from the error catalogue, the fault names from the fault
catalogue. What only the code knows is kept here: the routes, their parameters, the bodies no
schema file describes (models, the journal, the admin answers), and which error codes each
route can answer (ERRORS).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from importlib import metadata
from typing import Any, get_args

from mockserver.config import data_dir
from mockserver.contract import REQUEST_SCHEMA, RequestContract
from mockserver.errors import ErrorCatalogue
from mockserver.faults import Action, FaultCatalogue

PACKAGE = "jimeng-mockserver"
RESPONSE_SCHEMA = "images-generations.response.json"
ERROR_SCHEMA = "error.response.json"
ADMIN_FAULTS_SCHEMA = "admin-faults.request.json"
SCHEMA_FILES = (REQUEST_SCHEMA, RESPONSE_SCHEMA, ERROR_SCHEMA, ADMIN_FAULTS_SCHEMA)

GENERATIONS = "/v1/images/generations"
IMAGE = "/images/{model}/{size}/{name}"
THUMBNAIL = "/__admin/thumbnails/{model}/{size}/{name}"

_ADMIN = ("admin_forbidden", "unknown_parameter")  # every admin route: the guard, ?unknown=
_FILTERS = ("invalid_value",)  # ?status=, ?limit= that are not whole numbers
_BODY = ("unsupported_media_type", "request_too_large", "invalid_json")

# Which error codes each operation answers: what app.py and admin.py raise on each route.
# Statuses, types and messages are the catalogue's. Besides these, every operation answers
# 405 method_not_allowed to its path called with a method it does not have; generation also
# answers the error codes of the fault catalogue's faults. server_error, a bug of the mock,
# is listed on generation only, where 500 is documented for the upstream_error and stub_error
# it answers on purpose: a 500 anywhere else is then a status the document does not allow.
ERRORS: dict[tuple[str, str], tuple[str, ...]] = {
    ("post", GENERATIONS): (
        "invalid_api_key",
        "rate_limit_exceeded",
        *_BODY,
        "missing_required_parameter",
        "invalid_value",
        "unknown_parameter",  # --strict only; left out of a lenient mock's document
        "model_not_found",
        "stub_error",
        "server_busy",  # b64_json, when more renders wait than --render-queue allows
        "server_error",
    ),
    ("get", "/v1/models"): ("invalid_api_key", "rate_limit_exceeded"),
    ("get", "/v1/models/{model}"): (
        "invalid_api_key",
        "rate_limit_exceeded",
        "model_not_found",
        "not_found",  # an empty or slashed model makes a URL no route has
    ),
    ("get", IMAGE): ("image_not_found", "not_found", "server_busy"),
    ("get", "/healthz"): (),
    ("get", "/openapi.json"): (),
    ("get", "/__admin/"): (*_ADMIN, *_FILTERS),
    ("get", "/__admin/requests"): (*_ADMIN, *_FILTERS),
    ("delete", "/__admin/requests"): _ADMIN,
    ("post", "/__admin/reset"): _ADMIN,
    ("get", "/__admin/faults"): _ADMIN,
    ("post", "/__admin/faults"): (
        *_ADMIN,
        *_BODY,
        "missing_required_parameter",
        "invalid_value",
    ),
    ("delete", "/__admin/faults"): _ADMIN,
    ("get", "/__admin/stubs"): _ADMIN,
    ("get", THUMBNAIL): ("admin_forbidden", "image_not_found", "not_found"),
}

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
# The admin routes are open on loopback; with --admin-token they want it in X-Admin-Token.
ADMIN_SECURITY: list[dict[str, list[str]]] = [{}, {"adminToken": []}]

_PNG: dict[str, Any] = {"type": "string", "contentMediaType": "image/png"}

# A journal entry as `RequestRecord.to_json()` writes it.
_JOURNAL_RECORD: dict[str, Any] = {
    "type": "object",
    "required": [
        "id",
        "time",
        "method",
        "path",
        "headers",
        "body",
        "status",
        "error",
        "error_message",
        "param",
        "images",
        "warnings",
        "fault",
        "stub",
        "duration_ms",
        "exception",
    ],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "time": {"type": "number", "description": "Unix time the request began."},
        "method": {"type": "string"},
        "path": {"type": "string"},
        "headers": {
            "type": "object",
            "description": "Lower-case names; secrets cut to their last 4 characters.",
            "additionalProperties": {"type": "string"},
        },
        "body": {"description": "The JSON body, or null when none was read."},
        "status": {"type": ["integer", "null"], "description": "null: the connection was dropped."},
        "error": {"type": ["string", "null"]},
        "error_message": {"type": ["string", "null"]},
        "param": {"type": ["string", "null"]},
        "images": {"type": "array", "items": {"type": "string"}},
        "warnings": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["code", "param", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "message": {"type": "string"},
                },
            },
        },
        "fault": {"type": ["string", "null"]},
        "stub": {"type": ["string", "null"]},
        "duration_ms": {"type": "number", "minimum": 0},
        "exception": {"type": ["string", "null"], "description": "A traceback of the mock's own."},
    },
}


def component_name(file_name: str) -> str:
    """`images-generations.request.json` -> `ImagesGenerationsRequest`."""
    return "".join(
        part.capitalize() for part in re.split(r"[-._]", file_name.removesuffix(".json"))
    )


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


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


def _version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "0.1.0"


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


def _json(schema: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {"application/json": {"schema": dict(schema), **extra}}


def _header(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def _parameter(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def build_document(
    contract: RequestContract, catalogue: ErrorCatalogue, faults: FaultCatalogue
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every public route of an app with this contract and these
    catalogues; `GET /openapi.json` answers it."""
    files = schema_files(contract)
    request_name, response_name, error_name, admin_faults_name = (
        component_name(file) for file in SCHEMA_FILES
    )
    strict = contract.schema.get("additionalProperties") is False
    fault_codes = [fault.error for fault in faults.faults.values() if fault.error]

    def errors(method: str, path: str) -> list[str]:
        codes = [*ERRORS[(method, path)], "method_not_allowed"]
        if (method, path) == ("post", GENERATIONS):
            codes += fault_codes
            if not strict:
                codes.remove("unknown_parameter")
        return codes

    def error_responses(method: str, path: str, headers: Mapping[str, Any]) -> dict[str, Any]:
        """The error answers of one operation, one per status, each listing its codes."""
        wanted = set(errors(method, path))
        by_status: dict[int, list[str]] = {}
        for code, kind in catalogue.kinds.items():
            if code in wanted:
                by_status.setdefault(kind.status, []).append(code)
        responses: dict[str, Any] = {}
        for status, codes in sorted(by_status.items()):
            types = sorted({catalogue.kinds[code].type for code in codes})
            lines = [
                f"- `{code}` ({catalogue.kinds[code].type}): {catalogue.kinds[code].message}"
                for code in codes
            ]
            schema = {
                "allOf": [
                    ref(error_name),
                    {
                        "properties": {
                            "error": {
                                "properties": {"code": {"enum": codes}, "type": {"enum": types}}
                            }
                        }
                    },
                ]
            }
            response_headers = dict(headers)
            if status in (429, 503):
                response_headers["Retry-After"] = _header("RetryAfter")
                response_headers["retry-after-ms"] = _header("RetryAfterMs")
            if status == 429:
                response_headers["x-should-retry"] = _header("ShouldRetry")
            if status == 405:
                response_headers["Allow"] = _header("Allow")
            response: dict[str, Any] = {
                "description": f"{HTTPStatus(status).phrase}. Error codes:\n\n" + "\n".join(lines),
                "content": _json(schema),
            }
            if response_headers:
                response["headers"] = response_headers
            responses[str(status)] = response
        return responses

    def operation(
        method: str,
        path: str,
        *,
        tag: str,
        operation_id: str,
        summary: str,
        responses: Mapping[str, Any],
        description: str | None = None,
        parameters: Sequence[Mapping[str, Any]] = (),
        request_body: Mapping[str, Any] | None = None,
        security: list[dict[str, list[str]]] | None = None,
        error_headers: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        op: dict[str, Any] = {"tags": [tag], "operationId": operation_id, "summary": summary}
        if description:
            op["description"] = description
        if security is not None:
            op["security"] = security
        if parameters:
            op["parameters"] = [dict(parameter) for parameter in parameters]
        if request_body is not None:
            op["requestBody"] = dict(request_body)
        op["responses"] = {**responses, **error_responses(method, path, error_headers or {})}
        return op

    models = list(contract.models)
    sizes = contract.sizes
    bounds = sizes.bounds
    size_table = "\n".join(
        f"| {ratio} | "
        + " | ".join(
            f"{row[res][0]}x{row[res][1]}" if res in row else "-" for res in sizes.resolutions
        )
        + " |"
        for ratio, row in sizes.table.items()
    )
    generation_description = (
        "OpenAI-compatible image generation. The body is validated against the schema "
        f"`{request_name}`; a mistake is a 4xx naming the field at fault in `param`. "
        "An optional field sent as `null` counts as absent.\n\n"
        + (
            "This mock is strict: a field the schema does not define is a 400 `unknown_parameter`."
            if strict
            else "Fields the schema does not define are accepted and ignored, as generic "
            "OpenAI-compatible gateways do; the answer names each in `X-Mock-Warnings`."
        )
        + "\n\nWithout `size`, the pixel size is `ratio` x `resolution` (default "
        f"{sizes.default_ratio} at {sizes.default_resolution}):\n\n"
        f"| ratio | {' | '.join(sizes.resolutions)} |\n"
        f"|---|{'---|' * len(sizes.resolutions)}\n{size_table}\n\n"
        f"An explicit `size` (`W*H` or `WxH`) wins; it must have {bounds.min_pixels:,} to "
        f"{bounds.max_pixels:,} pixels and an aspect ratio of at most "
        f"{bounds.max_aspect_ratio:g}:1, else 400 `invalid_value` with `param` `size`.\n\n"
        "Faults: `X-Mock-Fault` asks for one (as do queued faults, stubs and --fault-rate), "
        "after authentication and validation. A stub may also answer a canned status and body."
    )
    mock_headers = {
        "X-Mock-Fault": _header("MockFaultApplied"),
        "X-Mock-Latency-Ms": _header("MockLatencyApplied"),
        "X-Mock-Stub": _header("MockStub"),
        "X-Mock-Warnings": _header("MockWarnings"),
    }

    image_parameters = [
        {
            "name": "model",
            "in": "path",
            "required": True,
            "description": "The model the image was generated with.",
            "schema": {"type": "string"},
        },
        {
            "name": "size",
            "in": "path",
            "required": True,
            "description": "`WIDTHxHEIGHT` in pixels.",
            "schema": {"type": "string"},
        },
        {
            "name": "name",
            "in": "path",
            "required": True,
            "description": "`SEED-INDEX-SIGNATURE.png`, as the mock returned it.",
            "schema": {"type": "string"},
        },
    ]
    filters = [
        {
            "name": "status",
            "in": "query",
            "description": "Only requests answered with this status.",
            "schema": {"type": "integer", "minimum": 0},
        },
        {
            "name": "model",
            "in": "query",
            "description": "Only requests for this model.",
            "schema": {"type": "string"},
        },
        {
            "name": "error",
            "in": "query",
            "description": "Only requests answered with this error code.",
            "schema": {"type": "string"},
        },
        {
            "name": "limit",
            "in": "query",
            "description": "Only the newest N of them.",
            "schema": {"type": "integer", "minimum": 1},
        },
    ]

    def admin(
        method: str, path: str, operation_id: str, summary: str, **options: Any
    ) -> dict[str, Any]:
        return operation(
            method,
            path,
            tag="admin",
            operation_id=operation_id,
            summary=summary,
            security=ADMIN_SECURITY,
            **options,
        )

    def json_ok(schema: Mapping[str, Any], description: str) -> dict[str, Any]:
        return {"description": description, "content": _json(schema)}

    paths: dict[str, dict[str, Any]] = {
        GENERATIONS: {
            "post": operation(
                "post",
                GENERATIONS,
                tag="api",
                operation_id="createImages",
                summary="Generate images",
                description=generation_description,
                security=BEARER,
                parameters=[_parameter("MockFault"), _parameter("MockLatency")],
                request_body={
                    "required": True,
                    "content": _json(
                        ref(request_name),
                        examples={
                            "size": {
                                "summary": "An explicit size",
                                "value": {
                                    "model": models[0],
                                    "prompt": "A cat in the sun",
                                    "n": 1,
                                    "size": "1024*1024",
                                },
                            },
                            "ratio": {
                                "summary": "Ratio and resolution",
                                "value": {
                                    "model": models[-1],
                                    "prompt": "A paper boat",
                                    "n": 2,
                                    "ratio": sizes.ratios[-1],
                                    "resolution": sizes.resolutions[0],
                                },
                            },
                        },
                    ),
                },
                responses={
                    "200": {
                        "description": "The images: a URL each (no Authorization needed to "
                        "fetch it), or the PNG itself with `response_format: b64_json`.",
                        "headers": mock_headers,
                        "content": _json(ref(response_name)),
                    }
                },
                error_headers=mock_headers,
            )
        },
        "/v1/models": {
            "get": operation(
                "get",
                "/v1/models",
                tag="api",
                operation_id="listModels",
                summary="List the models",
                security=BEARER,
                responses={"200": json_ok(ref("ModelList"), "The models, in OpenAI's format.")},
            )
        },
        "/v1/models/{model}": {
            "get": operation(
                "get",
                "/v1/models/{model}",
                tag="api",
                operation_id="retrieveModel",
                summary="One model",
                security=BEARER,
                parameters=[
                    {
                        "name": "model",
                        "in": "path",
                        "required": True,
                        "description": "A model name; another is 404 `model_not_found`.",
                        "schema": {"type": "string"},
                        "examples": {model: {"value": model} for model in models},
                    }
                ],
                responses={"200": json_ok(ref("Model"), "The model.")},
            )
        },
        IMAGE: {
            "get": operation(
                "get",
                IMAGE,
                tag="images",
                operation_id="getImage",
                summary="An image the mock returned",
                description="The PNG a generation answer links to, drawn on the first GET. "
                "The URL is signed: an edited one is 404 `image_not_found`. No Authorization "
                "is needed; `HEAD` answers the same headers without the body.",
                parameters=[*image_parameters, _parameter("IfNoneMatch")],
                responses={
                    "200": {
                        "description": "The PNG, of exactly the size in the URL.",
                        "headers": {
                            "ETag": _header("ETag"),
                            "Cache-Control": _header("CacheControl"),
                            "Content-Length": _header("ContentLength"),
                        },
                        "content": {"image/png": {"schema": _PNG}},
                    },
                    "304": {
                        "description": "`If-None-Match` named the image's ETag (or `*`).",
                        "headers": {
                            "ETag": _header("ETag"),
                            "Cache-Control": _header("CacheControl"),
                        },
                    },
                },
            )
        },
        "/healthz": {
            "get": operation(
                "get",
                "/healthz",
                tag="service",
                operation_id="health",
                summary="Readiness probe",
                responses={"200": json_ok(ref("Health"), "The mock is serving.")},
            )
        },
        "/openapi.json": {
            "get": operation(
                "get",
                "/openapi.json",
                tag="service",
                operation_id="openapi",
                summary="This document",
                responses={
                    "200": json_ok(
                        {
                            "type": "object",
                            "required": ["openapi", "info", "paths"],
                            "properties": {"openapi": {"const": "3.1.0"}},
                        },
                        "The OpenAPI 3.1 document of the mock.",
                    )
                },
            )
        },
        "/__admin/": {
            "get": admin(
                "get",
                "/__admin/",
                "adminPage",
                "The journal as a page",
                description="Newest first, with thumbnails of the images returned.",
                parameters=filters,
                responses={
                    "200": {
                        "description": "An HTML page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            )
        },
        "/__admin/requests": {
            "get": admin(
                "get",
                "/__admin/requests",
                "listRequests",
                "The journal",
                description="The recorded API requests, oldest first.",
                parameters=filters,
                responses={"200": json_ok(ref("Journal"), "The journal.")},
            ),
            "delete": admin(
                "delete",
                "/__admin/requests",
                "clearRequests",
                "Empty the journal",
                responses={"200": json_ok(ref("Deleted"), "How many records were dropped.")},
            ),
        },
        "/__admin/reset": {
            "post": admin(
                "post",
                "/__admin/reset",
                "reset",
                "Reset the mock",
                description="Journal, queued faults, stub counts, rate limits and the random "
                "draws back to their start. The body is not read.",
                request_body={
                    "required": False,
                    "description": "The page's Reset button posts a form; the answer is then "
                    "a redirect to the page.",
                    "content": {
                        "application/x-www-form-urlencoded": {"schema": {"type": "object"}}
                    },
                },
                responses={
                    "200": json_ok(
                        {
                            "type": "object",
                            "required": ["reset"],
                            "additionalProperties": False,
                            "properties": {"reset": {"const": True}},
                        },
                        "Reset.",
                    ),
                    "303": {
                        "description": "Reset, from a form: back to the page.",
                        "headers": {"Location": _header("Location")},
                    },
                },
            )
        },
        "/__admin/faults": {
            "get": admin(
                "get",
                "/__admin/faults",
                "listFaults",
                "The fault catalogue and the queue",
                responses={"200": json_ok(ref("Faults"), "The catalogue and the queued faults.")},
            ),
            "post": admin(
                "post",
                "/__admin/faults",
                "queueFault",
                "Queue a fault",
                description="For the next `times` generation requests that match. Fault "
                f"names: {', '.join(faults.names())}.",
                request_body={
                    "required": True,
                    "content": _json(
                        ref(admin_faults_name),
                        examples={
                            "rate_limit": {
                                "summary": "Two 429s for one model",
                                "value": {
                                    "fault": "rate_limit",
                                    "times": 2,
                                    "match": {"model": models[-1]},
                                },
                            }
                        }
                        if faults.get("rate_limit")
                        else {},
                    ),
                },
                responses={
                    "201": json_ok(
                        {
                            "type": "object",
                            "required": ["queued"],
                            "additionalProperties": False,
                            "properties": {"queued": ref("QueuedFault")},
                        },
                        "Queued.",
                    )
                },
            ),
            "delete": admin(
                "delete",
                "/__admin/faults",
                "clearFaults",
                "Empty the fault queue",
                responses={"200": json_ok(ref("Deleted"), "How many were queued.")},
            ),
        },
        "/__admin/stubs": {
            "get": admin(
                "get",
                "/__admin/stubs",
                "listStubs",
                "The stub files",
                responses={"200": json_ok(ref("Stubs"), "The folder, its stubs, its error.")},
            )
        },
        THUMBNAIL: {
            "get": admin(
                "get",
                THUMBNAIL,
                "getThumbnail",
                "A thumbnail for the page",
                description="An image URL's path under /__admin/thumbnails/ instead of "
                "/images/: the image drawn small.",
                parameters=image_parameters,
                responses={
                    "200": {
                        "description": "A PNG at most 160 pixels on its longer side.",
                        "headers": {"Cache-Control": _header("CacheControl")},
                        "content": {"image/png": {"schema": _PNG}},
                    }
                },
            )
        },
    }

    schemas: dict[str, Any] = {
        **files,
        "Model": {
            "type": "object",
            "required": ["id", "object", "created", "owned_by"],
            "additionalProperties": False,
            "properties": {
                "id": {"enum": models},
                "object": {"const": "model"},
                "created": {"type": "integer", "minimum": 0},
                "owned_by": {"type": "string"},
            },
        },
        "ModelList": {
            "type": "object",
            "required": ["object", "data"],
            "additionalProperties": False,
            "properties": {
                "object": {"const": "list"},
                "data": {"type": "array", "items": ref("Model")},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "additionalProperties": False,
            "properties": {"status": {"const": "ok"}},
        },
        "Deleted": {
            "type": "object",
            "required": ["deleted"],
            "additionalProperties": False,
            "properties": {"deleted": {"type": "integer", "minimum": 0}},
        },
        "JournalRecord": copy.deepcopy(_JOURNAL_RECORD),
        "Journal": {
            "type": "object",
            "required": ["requests", "count", "journal_size", "dropped"],
            "additionalProperties": False,
            "properties": {
                "requests": {"type": "array", "items": ref("JournalRecord")},
                "count": {"type": "integer", "minimum": 0},
                "journal_size": {"type": "integer", "minimum": 1},
                "dropped": {"type": "integer", "minimum": 0},
            },
        },
        "Fault": {
            "type": "object",
            "required": ["action", "delay_ms", "keep", "description"],
            "additionalProperties": False,
            "properties": {
                "action": {"enum": list(get_args(Action))},
                "error": {"enum": sorted(catalogue.kinds)},
                "param": {"type": "string"},
                "delay_ms": {"type": "integer", "minimum": 0},
                "retry_after_ms": {"type": "integer", "minimum": 1},
                "retry": {"type": "boolean"},
                "keep": {"type": "number", "minimum": 0, "maximum": 1},
                "description": {"type": "string"},
            },
        },
        "QueuedFault": {
            "type": "object",
            "required": ["fault", "times", "match", "delay_ms", "retry_after_ms"],
            "additionalProperties": False,
            "properties": {
                "fault": {"enum": faults.names()},
                "times": {"type": "integer", "minimum": 0},
                "match": {"type": "object"},
                "delay_ms": {"type": "integer", "minimum": 0},
                "retry_after_ms": _nullable("integer"),
            },
        },
        "Faults": {
            "type": "object",
            "required": ["faults", "queued"],
            "additionalProperties": False,
            "properties": {
                "faults": {
                    "type": "object",
                    "propertyNames": {"enum": faults.names()},
                    "additionalProperties": ref("Fault"),
                },
                "queued": {"type": "array", "items": ref("QueuedFault")},
            },
        },
        "Stubs": {
            "type": "object",
            "required": ["folder", "stubs", "error"],
            "additionalProperties": False,
            "properties": {
                "folder": _nullable("string"),
                "stubs": {"type": "array", "items": {"type": "string"}},
                "error": _nullable("string"),
            },
        },
    }

    fault_lines = "\n".join(
        f"- `{fault.name}`: {fault.description}" for fault in faults.faults.values()
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": PACKAGE,
            "version": _version(),
            "summary": "A deterministic local stand-in for the Jimeng image-generation API.",
            "description": "OpenAI-compatible `POST /v1/images/generations` for tests: requests "
            "validated as the service does, real PNGs at signed URLs, the same answer for the "
            "same request, faults on demand, and a journal of what was asked under /__admin/. "
            'Every error is the OpenAI envelope `{"error": {"message", "type", "param", '
            '"code"}}`.',
        },
        "tags": [
            {"name": "api", "description": "The API of the service: Bearer key needed."},
            {"name": "images", "description": "The image URLs the API returns."},
            {"name": "service", "description": "The mock itself."},
            {
                "name": "admin",
                "description": "The journal, faults, stubs and reset. Open on a loopback "
                "address; with --admin-token, send the token in X-Admin-Token.",
            },
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Any non-empty key, or one of the --api-key keys.",
                },
                "adminToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Admin-Token",
                    "description": "The --admin-token of the mock, when it has one.",
                },
            },
            "parameters": {
                "MockFault": {
                    "name": "X-Mock-Fault",
                    "in": "header",
                    "required": False,
                    "description": "Answer with this fault of the fault catalogue (an unknown "
                    "name is 400 `invalid_value`):\n\n" + fault_lines,
                    "schema": {"type": "string", "enum": faults.names()},
                },
                "MockLatency": {
                    "name": "X-Mock-Latency-Ms",
                    "in": "header",
                    "required": False,
                    "description": "Delay the answer by this many milliseconds (instead of a "
                    f"fault's own delay), at most {faults.max_latency_ms}: more is cut to "
                    "that. Not a whole number: 400 `invalid_value`.",
                    "schema": {"type": "integer", "minimum": 0},
                },
                "IfNoneMatch": {
                    "name": "If-None-Match",
                    "in": "header",
                    "required": False,
                    "description": "ETags the client has; the image's, or `*`, answers 304.",
                    "schema": {"type": "string"},
                },
            },
            "headers": {
                "RetryAfter": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                },
                "RetryAfterMs": {
                    "description": "Milliseconds to wait before retrying (the openai SDK's).",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                },
                "ShouldRetry": {
                    "description": "`false`: do not retry (the openai SDK honours it).",
                    "schema": {"enum": ["true", "false"]},
                },
                "Allow": {
                    "description": "The methods the path has.",
                    "schema": {"type": "string"},
                },
                "ETag": {
                    "description": "Strong ETag of the image's bytes.",
                    "required": True,
                    "schema": {"type": "string", "pattern": '^"[0-9a-f]+"$'},
                },
                "CacheControl": {
                    "description": "Images never change: cached for a year.",
                    "schema": {"type": "string"},
                },
                "ContentLength": {
                    "description": "Bytes of the PNG.",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                },
                "Location": {
                    "description": "The admin page.",
                    "required": True,
                    "schema": {"type": "string"},
                },
                "MockFaultApplied": {
                    "description": "The fault that answered.",
                    "schema": {"type": "string"},
                },
                "MockLatencyApplied": {
                    "description": "The delay applied, in milliseconds.",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                },
                "MockStub": {
                    "description": "The stub file that answered.",
                    "schema": {"type": "string"},
                },
                "MockWarnings": {
                    "description": "Contract warnings, `; `-separated (non-ASCII escaped): "
                    "fields the service would take but that are probably mistakes.",
                    "schema": {"type": "string"},
                },
            },
        },
    }
