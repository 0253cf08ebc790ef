"""GET /openapi.json: a valid OpenAPI 3.1 document of every route, built from schemas/."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections import Counter
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from referencing.exceptions import Unresolvable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route
from starlette.testclient import TestClient

from mockserver import MockServer, create_app
from mockserver.app import ROUTES
from mockserver.errors import ConfigError, ErrorCatalogue
from mockserver.web import cors
from mockserver.web.openapi import (
    SCHEMA_FILES,
    build_document,
    component_name,
    document_values,
    embed,
    fill,
    load_text,
)
from mockserver.web.routes import RouteSpec, RouteTable

SCHEMAS = Path(__file__).parent.parent / "schemas"
GENERATIONS = "/v1/images/generations"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def load(name: str) -> Any:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


def as_file(name: str) -> dict[str, Any]:
    """A schema file as the document must embed it: all of it but `$schema` and `$id`."""
    schema: dict[str, Any] = load(name)
    return {k: v for k, v in schema.items() if k not in ("$schema", "$id")}


def file_refs(node: Any, own: str) -> Any:
    """An embedded component with its `$ref`s written back as its file has them: to its own
    definitions `#/$defs/x`, to another schema file by its file name."""
    files = {component_name(name): name for name in SCHEMA_FILES}
    if isinstance(node, list):
        return [file_refs(item, own) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: file_refs(value, own) for key, value in node.items()}
    if isinstance(node.get("$ref"), str):
        name, _, pointer = node["$ref"].removeprefix("#/components/schemas/").partition("/")
        pointer = f"#/{pointer}" if pointer else ""
        out["$ref"] = pointer if name == own else files[name] + pointer
    return out


def by_file_name(node: Any) -> Any:
    """A schema file with its `$ref`s to other files by file name, not by `$id`."""
    if isinstance(node, list):
        return [by_file_name(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: by_file_name(value) for key, value in node.items()}
    if isinstance(node.get("$ref"), str):
        base, hash_, pointer = node["$ref"].partition("#")
        out["$ref"] = base.rsplit("/", 1)[-1] + hash_ + pointer
    return out


def served(**options: Any) -> dict[str, Any]:
    """The document of an app with these options, as GET /openapi.json answers it."""
    with TestClient(create_app(**options)) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def documented_codes(response: dict[str, Any]) -> list[str]:
    """The error codes an answer of the document lists (its schema's enum of error.code)."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    for part in schema.get("allOf", []):
        code = part.get("properties", {}).get("error", {}).get("properties", {}).get("code")
        if code:
            return list(code["enum"])
    return []


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(document: Any, pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node = document
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@pytest.fixture
def document(jimeng_mock: MockServer) -> dict[str, Any]:
    response = httpx.get(jimeng_mock.url + "/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    result: dict[str, Any] = response.json()
    return result


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)
    assert document["info"]["title"] == "jimeng-mockserver"
    assert document["info"]["version"] == metadata.version("jimeng-mockserver")


def test_the_validator_catches_a_broken_document(document: dict[str, Any]) -> None:
    """The check above has teeth: a dangling reference or a misplaced field fails it."""
    dangling = copy.deepcopy(document)
    del dangling["components"]["schemas"]["ErrorResponse"]
    misplaced = copy.deepcopy(document)
    misplaced["paths"]["/healthz"]["get"]["responses"]["200"]["schema"] = {}

    for broken in (dangling, misplaced):
        with pytest.raises((OpenAPIValidationError, Unresolvable)):
            validate(broken, cls=OpenAPIV31SpecValidator)


def test_every_route_of_the_app_is_documented(
    jimeng_mock: MockServer, document: dict[str, Any]
) -> None:
    """The app's router against the paths: a route added without documentation fails here,
    and so does documentation of a route the app does not have."""
    routed = set()
    for route in jimeng_mock.app.routes:
        assert isinstance(route, Route), route
        assert route.methods, route.path
        path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)
        # Starlette answers HEAD on every GET route by itself.
        routed |= {(method.lower(), path) for method in route.methods - {"HEAD"}}

    assert {(method, path) for method, path, _ in operations(document)} == routed
    assert ("get", "/openapi.json") in routed
    assert {
        path for _, path, operation in operations(document) if operation["tags"] == ["admin"]
    } == {path for _, path in routed if path.startswith("/__admin/")}


def test_every_error_code_of_the_catalogue_is_documented_with_its_status(
    jimeng_mock: MockServer, document: dict[str, Any]
) -> None:
    catalogue = ErrorCatalogue.from_file(jimeng_mock.config.errors_file)
    found: set[str] = set()
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            codes = documented_codes(response)
            for code in codes:
                assert catalogue.kinds[code].status == int(status), (method, path, code)
                assert f"`{code}`" in response["description"], (method, path, code)
            found.update(codes)

    assert found == set(catalogue.kinds)
    assert found >= {"admin_forbidden", "server_busy"}


def test_new_codes_are_documented_where_they_are_answered(document: dict[str, Any]) -> None:
    def codes(method: str, path: str, status: str) -> list[str]:
        return documented_codes(document["paths"][path][method]["responses"].get(status, {}))

    for method, path, operation in operations(document):
        assert ("admin_forbidden" in codes(method, path, "403")) == path.startswith("/__admin/"), (
            method,
            path,
        )
        if path.startswith("/__admin/"):
            assert {"adminToken": []} in operation["security"]
    assert "server_busy" in codes("get", "/images/{model}/{size}/{name}", "503")
    assert "server_busy" in codes("post", GENERATIONS, "503")


def test_the_schema_files_are_embedded_as_they_are(document: dict[str, Any]) -> None:
    """Each body schema of the document is its file's content, so the two cannot drift."""
    schemas = document["components"]["schemas"]
    for name in (
        "images-generations.request.json",
        "images-generations.response.json",
        "error.response.json",
        "admin-faults.request.json",
        "matcher.schema.json",
    ):
        component = component_name(name)
        assert file_refs(schemas[component], component) == by_file_name(as_file(name)), name
    # The queued fault's matchers are the matcher schema's, inside the document.
    match = schemas["AdminFaultsRequest"]["properties"]["match"]
    assert match["additionalProperties"] == {"$ref": "#/components/schemas/MatcherSchema"}

    generation = document["paths"][GENERATIONS]["post"]
    body = generation["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ImagesGenerationsRequest"}
    assert generation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ImagesGenerationsResponse"
    }
    faults = document["paths"]["/__admin/faults"]["post"]["requestBody"]["content"]
    assert faults["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AdminFaultsRequest"
    }


def test_the_request_schema_is_the_one_the_mock_validates_with(tmp_path: Path) -> None:
    """Built per app: the ratios and resolutions of another size table, and --strict."""
    table = load("sizes.json")
    table["table"] = {"1:1": table["table"]["1:1"], "5:4": {"1k": [1280, 1024]}}
    sizes = tmp_path / "sizes.json"
    sizes.write_text(json.dumps(table), encoding="utf-8")

    lenient, strict = served(sizes=sizes), served(strict=True)

    request = lenient["components"]["schemas"]["ImagesGenerationsRequest"]
    assert request["properties"]["ratio"]["enum"] == ["1:1", "5:4"]
    assert request["properties"]["resolution"]["enum"] == ["1k", "2k", "4k"]
    assert "| 5:4 | 1280x1024 | - | - |" in lenient["paths"][GENERATIONS]["post"]["description"]
    assert "additionalProperties" not in request
    strict_request = strict["components"]["schemas"]["ImagesGenerationsRequest"]
    assert strict_request == {
        **as_file("images-generations.request.json"),
        "additionalProperties": False,
    }

    def bad_request_codes(document: dict[str, Any]) -> list[str]:
        return documented_codes(document["paths"][GENERATIONS]["post"]["responses"]["400"])

    assert "unknown_parameter" not in bad_request_codes(lenient)
    assert "unknown_parameter" in bad_request_codes(strict)


def test_the_fault_header_lists_the_fault_catalogue(tmp_path: Path) -> None:
    shipped = served()["components"]["parameters"]["MockFault"]
    assert shipped["in"] == "header"
    assert shipped["name"] == "X-Mock-Fault"
    assert shipped["schema"]["enum"] == list(load("faults.json")["faults"])

    catalogue = load("faults.json")
    catalogue["faults"] = {
        "teapot": {"action": "error", "error": "bad_gateway", "description": "x"}
    }
    path = tmp_path / "faults.json"
    path.write_text(json.dumps(catalogue), encoding="utf-8")
    own = served(fault_catalogue=path)

    assert own["components"]["parameters"]["MockFault"]["schema"]["enum"] == ["teapot"]
    generation = own["paths"][GENERATIONS]["post"]["responses"]
    assert "502" in generation
    assert "504" not in generation  # no fault of this catalogue answers gateway_timeout


def test_auth_headers_and_media_types(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearer"] == {
        **document["components"]["securitySchemes"]["bearer"],
        "type": "http",
        "scheme": "bearer",
    }
    for method, path, operation in operations(document):
        needs_key = {"bearer": []} in operation.get("security", [])
        assert needs_key == path.startswith("/v1/"), (method, path)
        assert "405" in operation["responses"], (method, path)
        for status, response in operation["responses"].items():
            headers = response.get("headers", {})
            if status in ("429", "503"):
                assert "Retry-After" in headers, (method, path, status)

    generation = document["paths"][GENERATIONS]["post"]
    parameters = [resolve(document, p["$ref"]) for p in generation["parameters"]]
    assert {(p["in"], p["name"]) for p in parameters} == {
        ("header", "X-Mock-Session"),
        ("header", "X-Mock-Fault"),
        ("header", "X-Mock-Latency-Ms"),
    }
    assert "X-Mock-Warnings" in generation["responses"]["200"]["headers"]

    image = document["paths"]["/images/{model}/{size}/{name}"]["get"]["responses"]
    assert list(image["200"]["content"]) == ["image/png"]
    assert "ETag" in image["200"]["headers"]
    assert "ETag" in image["304"]["headers"]
    assert "content" not in image["304"]


def test_every_reference_resolves_inside_the_document(document: dict[str, Any]) -> None:
    found = list(refs(document))
    assert found
    for pointer in found:
        resolve(document, pointer)


def test_schemas_with_definitions_are_embedded_with_their_references_rewritten() -> None:
    """A schema file with `$defs` (the stub file's) keeps resolving once it is a component,
    and a reference to another embedded file, by `$id`, goes to that file's component."""
    error = load("error.response.json")
    matcher = load("matcher.schema.json")
    stub = load("stub.schema.json")
    stub["properties"]["example_error"] = {"$ref": error["$id"]}
    names = {
        "error.response.json": "ErrorResponse",
        error["$id"]: "ErrorResponse",
        "matcher.schema.json": "Matcher",
    }
    schemas = {
        "Stub": embed(stub, "Stub", names),
        "ErrorResponse": embed(error, "ErrorResponse", names),
        "Matcher": embed(matcher, "Matcher", names),
    }
    document = {"components": {"schemas": schemas}}

    pointers = set(refs(document))
    assert pointers == {
        "#/components/schemas/Stub/$defs/regex",
        "#/components/schemas/Stub/$defs/value",
        "#/components/schemas/ErrorResponse",
        "#/components/schemas/Matcher",  # by file name, relative to the stub file's $id
        "#/components/schemas/Matcher/$defs/regex",
    }
    regex = resolve(document, "#/components/schemas/Stub/$defs/regex")
    assert resolve(document, regex["$ref"]) == matcher["$defs"]["regex"]
    assert resolve(document, "#/components/schemas/ErrorResponse") == as_file("error.response.json")
    assert not {"$schema", "$id"} & set(schemas["Stub"])


# The document from the route table and schemas/openapi.json.


def parts() -> tuple[Any, Any, Any]:
    """The contract and catalogues of an app with the default options."""
    state = create_app().state.mock
    return state.contract, state.catalogue, state.faults


def test_every_route_is_one_operation_with_its_operation_id(document: dict[str, Any]) -> None:
    found = {
        (method, path): operation["operationId"] for method, path, operation in operations(document)
    }
    assert found == {(spec.method.lower(), spec.path): spec.operation for spec in ROUTES}
    ids = Counter(operation["operationId"] for _, _, operation in operations(document))
    assert ids == Counter(spec.operation for spec in ROUTES)
    assert set(ids.values()) == {1}
    for spec in ROUTES:
        assert document["paths"][spec.path][spec.method.lower()]["tags"] == [spec.tag]


def test_the_paths_are_the_route_table_s(document: dict[str, Any]) -> None:
    assert list(document["paths"]) == list(dict.fromkeys(spec.path for spec in ROUTES))
    for path, item in document["paths"].items():
        assert set(item) == {spec.method.lower() for spec in ROUTES if spec.path == path}, path


def test_a_route_s_errors_are_its_spec_s() -> None:
    """Another table makes another document: its error codes are the route's."""
    routes = [
        dataclasses.replace(spec, errors=("not_found",)) if spec.operation == "health" else spec
        for spec in ROUTES
    ]
    health = build_document(routes, *parts())["paths"]["/healthz"]["get"]["responses"]
    assert sorted(health) == ["200", "404", "405"]
    assert documented_codes(health["404"]) == ["not_found"]
    assert documented_codes(health["405"]) == ["method_not_allowed"]


def test_an_operation_with_no_route_is_refused() -> None:
    text = load_text()
    text["operations"]["listThings"] = {"summary": "Things", "responses": {}}
    with pytest.raises(ConfigError, match="text for operations no route has: listThings"):
        build_document(ROUTES, *parts(), text=text)

    without_health = [spec for spec in ROUTES if spec.operation != "health"]
    with pytest.raises(ConfigError, match="no route has: health"):
        build_document(without_health, *parts())


def test_a_route_with_no_text_is_refused() -> None:
    health = next(spec for spec in ROUTES if spec.operation == "health")
    routes = [*ROUTES, RouteSpec("/livez", "GET", health.endpoint, "live", (), "service")]
    with pytest.raises(
        ConfigError, match="no text for the operation 'live' of the route GET /livez"
    ):
        build_document(routes, *parts())

    text = load_text()
    del text["operations"]["health"]
    with pytest.raises(ConfigError, match="no text for the operation 'health'"):
        build_document(ROUTES, *parts(), text=text)


def test_a_route_table_with_a_route_twice_is_refused() -> None:
    twice = [*ROUTES, ROUTES[-1]]
    with pytest.raises(ConfigError, match=r"GET /__admin/thumbnails/.* 2 times"):
        build_document(twice, *parts())


def test_the_text_s_placeholders_are_all_filled(document: dict[str, Any]) -> None:
    values = document_values(*parts(), load_text()["unknown_fields"])
    dumped = json.dumps(document)
    assert "$fill" not in dumped
    for name in values:
        assert "{" + name not in dumped, name
    assert document["components"]["schemas"]["Model"]["properties"]["id"]["enum"] == list(
        values["models"]
    )


def test_fill() -> None:
    values = {"n": 1234567, "name": "x", "names": ["a", "b"]}
    assert fill('{n:,} {name} {{name}} {"a": {}} {0}', values, "here") == (
        '1,234,567 x {name} {"a": {}} {0}'
    )
    assert fill({"enum": {"$fill": "names"}, "k": ["{name}"]}, values, "here") == {
        "enum": ["a", "b"],
        "k": ["x"],
    }
    with pytest.raises(ConfigError, match="here/k/0: no value is called 'other'"):
        fill({"k": ["{other}"]}, values, "here")
    with pytest.raises(ConfigError, match="not text"):
        fill("{names}", values, "here")
    with pytest.raises(ConfigError, match="one key"):
        fill({"$fill": "names", "extra": 1}, values, "here")


def test_an_unknown_name_in_the_text_is_refused() -> None:
    text = load_text()
    text["operations"]["health"]["summary"] = "Readiness of {service}"
    with pytest.raises(
        ConfigError, match="operations/health/summary: no value is called 'service'"
    ):
        build_document(ROUTES, *parts(), text=text)


# With --cors: the preflights and the headers the CORS middleware adds, documented.

CORS_PAGE = "http://page.example:3000"
CORS_DOCUMENT = served(cors=[CORS_PAGE])
CORS_MARKS = set(load_text()["cors"]["answer_headers"])  # the headers of every answer
# Only the preflights: every other operation is test_fuzz.py's, on a document without --cors.
CORS_SCHEMA = schemathesis.openapi.from_dict(
    CORS_DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "seed": 20250101,
            "generation": {"max-examples": 10, "deterministic": True, "database": "none"},
        }
    ),
).include(method="OPTIONS")


def concrete(path: str) -> str:
    """A URL path of a path template, each parameter a plain value."""
    return re.sub(r"\{\w+\}", "x", path)


def without_cors(document: dict[str, Any]) -> dict[str, Any]:
    """`document` less what --cors adds: its preflights, headers, and their components."""
    stripped = copy.deepcopy(document)
    for item in stripped["paths"].values():
        item.pop("options", None)
        for operation in item.values():
            for response in operation["responses"].values():
                kept = {k: v for k, v in response.get("headers", {}).items() if k not in CORS_MARKS}
                if kept:
                    response["headers"] = kept
                else:
                    response.pop("headers", None)
    headers = stripped["components"]["headers"]
    for name in load_text()["cors"]["components"]["headers"]:
        del headers[name]
    return stripped


def header_schema(document: dict[str, Any], header: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = resolve(document, header["$ref"]) if "$ref" in header else header
    return found


def assert_headers_as_documented(
    document: dict[str, Any], documented: dict[str, Any], response: httpx.Response
) -> None:
    """Each documented header: present if required, and its value valid by its schema."""
    for name, header in documented.items():
        header = header_schema(document, header)
        if name not in response.headers:
            assert not header.get("required"), (name, response.headers)
            continue
        errors = list(Draft202012Validator(header["schema"]).iter_errors(response.headers[name]))
        assert not errors, (name, response.headers[name], errors)


@pytest.fixture(scope="module")
def cors_server() -> Iterator[MockServer]:
    with MockServer(cors=[CORS_PAGE]) as server:
        yield server


@pytest.mark.parametrize("origins", [[CORS_PAGE], ["http://a.example", "https://b.example"], ["*"]])
def test_with_cors_the_document_is_valid_and_only_adds(origins: list[str]) -> None:
    plain, with_cors = served(), served(cors=origins)

    validate(with_cors, cls=OpenAPIV31SpecValidator)
    assert without_cors(with_cors) == plain
    assert with_cors != plain
    for name in ("options", "Access-Control", "preflight", "VaryOrigin"):
        assert name not in json.dumps(plain), name
    assert served(cors=[]) == plain
    allowed = resolve(with_cors, "#/components/headers/AccessControlAllowOrigin")
    assert allowed["schema"]["enum"] == origins
    ids = Counter(operation["operationId"] for _, _, operation in operations(with_cors))
    assert set(ids.values()) == {1}


def test_preflights_are_documented_on_exactly_the_paths_cors_answers(
    cors_server: MockServer,
) -> None:
    table = RouteTable(ROUTES)
    answered = {
        spec.path
        for spec in ROUTES
        if cors.covers(concrete(spec.path)) and table.allowed(concrete(spec.path))
    }
    documented = {path for path, item in CORS_DOCUMENT["paths"].items() if "options" in item}

    assert documented == answered
    assert GENERATIONS in answered
    assert "/images/{model}/{size}/{name}" in answered  # images are drawn into canvases
    assert not {path for path in answered if path.startswith("/__admin/")}
    for path in CORS_DOCUMENT["paths"]:
        response = httpx.options(
            cors_server.url + concrete(path),
            headers={"Origin": CORS_PAGE, "Access-Control-Request-Method": "GET"},
        )
        assert (response.status_code == 204) == (path in documented), (path, response.status_code)
    for path in documented:
        operation = CORS_DOCUMENT["paths"][path]["options"]
        assert operation["operationId"].startswith("preflight")
        assert set(operation["responses"]) == {"204", "405"}
        methods = operation["responses"]["204"]["headers"]["Access-Control-Allow-Methods"]
        assert methods["schema"]["enum"] == [", ".join(table.allowed(concrete(path)))]


def test_a_real_preflight_answers_the_headers_the_document_names(
    cors_server: MockServer,
) -> None:
    for path in (p for p, item in CORS_DOCUMENT["paths"].items() if "options" in item):
        documented = CORS_DOCUMENT["paths"][path]["options"]["responses"]["204"]["headers"]
        response = httpx.options(
            cors_server.url + concrete(path),
            headers={
                "Origin": CORS_PAGE,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization, x-mock-something",
            },
        )

        assert response.status_code == 204, (path, response.text)
        sent = {name.lower() for name in response.headers} - {"content-length", "date", "server"}
        assert sent == {name.lower() for name in documented}, path
        assert_headers_as_documented(CORS_DOCUMENT, documented, response)
        allowed = response.headers["access-control-allow-headers"]
        assert {"Authorization", "Content-Type", "x-mock-something"} <= set(allowed.split(", "))
        assert response.headers["access-control-max-age"] == str(cors.MAX_AGE)


def test_answers_carry_the_cors_headers_the_document_names(cors_server: MockServer) -> None:
    key = {"Authorization": f"Bearer {cors_server.api_key}"}
    for path, method, headers in [
        ("/healthz", "get", {}),
        ("/v1/models", "get", key),
        ("/v1/models/{model}", "get", key),  # a 404: the model `x` is unknown
        (GENERATIONS, "post", key),  # called with GET: a 405
    ]:
        for origin in ({"Origin": CORS_PAGE}, {"Origin": "http://elsewhere.example"}, {}):
            response = httpx.get(cors_server.url + concrete(path), headers={**headers, **origin})
            operation = CORS_DOCUMENT["paths"][path][method]
            documented = operation["responses"][str(response.status_code)]["headers"]

            assert set(documented) >= CORS_MARKS, (path, response.status_code)
            assert_headers_as_documented(CORS_DOCUMENT, documented, response)
            marked = "access-control-allow-origin" in response.headers
            assert marked == (origin.get("Origin") == CORS_PAGE), (path, origin)
            assert ("access-control-expose-headers" in response.headers) == marked


@CORS_SCHEMA.parametrize()
def test_the_preflights_hold_up_to_schemathesis(
    case: schemathesis.Case, cors_server: MockServer
) -> None:
    case.call_and_validate(
        base_url=cors_server.url,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )
