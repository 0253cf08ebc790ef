"""The data files in schemas/: valid, in agreement with each other, and checked at start-up."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mockserver import ConfigError, MockConfig, create_app
from mockserver.app import ROUTES
from mockserver.contract.schemas import data_dir, read_data_file, registry, schema_validator
from mockserver.errors import REQUIRED_CODES

SCHEMAS = Path(__file__).parent.parent / "schemas"


def load(name: str) -> Any:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


SCHEMA_FILES = [p for p in sorted(SCHEMAS.glob("*.json")) if "$schema" in load(p.name)]


def test_the_schema_files_are_the_expected_ones() -> None:
    assert [p.name for p in SCHEMA_FILES] == [
        "admin-faults.request.json",
        "error.response.json",
        "faults.schema.json",
        "images-generations.request.json",
        "images-generations.response.json",
        "matcher.schema.json",
        "sizes.schema.json",
        "stub.schema.json",
    ]


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_every_schema_is_valid_draft_2020_12(path: Path) -> None:
    Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))


def test_the_data_are_found_in_the_checkout() -> None:
    assert data_dir().resolve() == SCHEMAS.resolve()


@pytest.mark.parametrize(
    ("data", "schema"), [("faults.json", "faults.schema.json"), ("sizes.json", "sizes.schema.json")]
)
def test_the_shipped_data_files_pass_the_mocks_own_check(data: str, schema: str) -> None:
    assert read_data_file(SCHEMAS / data, schema, "data file") == load(data)


def test_every_schema_with_an_id_is_in_the_registry() -> None:
    ids = [load(p.name)["$id"] for p in SCHEMA_FILES]
    assert ids
    for schema_id in ids:
        assert registry().contents(schema_id) == next(
            load(p.name) for p in SCHEMA_FILES if load(p.name)["$id"] == schema_id
        )


def test_a_ref_to_another_schema_file_is_followed() -> None:
    # admin-faults.request.json takes its matchers from matcher.schema.json.
    validator = schema_validator("admin-faults.request.json")
    good = {"fault": "rate_limit", "match": {"prompt": {"regex": "cat", "flags": "i"}}}
    bad = {"fault": "rate_limit", "match": {"prompt": {"regex": "cat", "flags": "x"}}}
    assert validator.is_valid(good)
    assert not validator.is_valid(bad)


def test_patterns_end_where_ecma_262_ends_them(tmp_path: Path) -> None:
    """`$` is the very end of the text: a ratio "1:1\n" is no ratio, though Python's `$`
    would take it."""
    table = load("sizes.json")
    table["table"]["1:1\n"] = table["table"]["1:1"]
    path = tmp_path / "sizes.json"
    path.write_text(json.dumps(table), encoding="utf-8")

    assert Draft202012Validator(load("sizes.schema.json")).is_valid(table)
    with pytest.raises(ConfigError, match=r"size table .*sizes\.json: at table"):
        create_app(sizes=path)


def test_the_shipped_fault_catalogue_matches_its_schema() -> None:
    faults = load("faults.json")

    Draft202012Validator(load("faults.schema.json")).validate(faults)
    assert {f["error"] for f in faults["faults"].values() if "error" in f} <= set(
        load("errors.json")["errors"]
    )


def test_the_shipped_size_table_matches_its_schema_and_the_request_schema() -> None:
    table, request = load("sizes.json"), load("images-generations.request.json")

    Draft202012Validator(load("sizes.schema.json")).validate(table)
    resolutions = list(dict.fromkeys(r for row in table["table"].values() for r in row))
    assert request["properties"]["ratio"]["enum"] == list(table["table"])
    assert request["properties"]["resolution"]["enum"] == resolutions


def test_the_catalogue_has_every_code_the_mock_raises() -> None:
    catalogue = load("errors.json")["errors"]
    answered_by_faults = {
        f["error"] for f in load("faults.json")["faults"].values() if "error" in f
    }

    assert set(catalogue) == REQUIRED_CODES | answered_by_faults
    for code, entry in catalogue.items():
        assert 400 <= entry["status"] <= 599, code
        assert entry["message"], code
        assert entry["when"], code


def test_a_catalogue_without_a_code_is_refused(tmp_path: Path) -> None:
    catalogue = load("errors.json")
    del catalogue["errors"]["invalid_json"]
    path = tmp_path / "errors.json"
    path.write_text(json.dumps(catalogue))

    with pytest.raises(ConfigError, match="lacks the codes invalid_json"):
        create_app(errors=path)


def test_a_missing_sizes_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no-such\.json"):
        create_app(sizes=tmp_path / "no-such.json")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"created": -1}, "Unix timestamp"),
        ({"created": True}, "Unix timestamp"),
        ({"created": "tomorrow"}, "Unix timestamp"),
        ({"public_url": "mock.example"}, "http"),
        ({"public_url": "http://mock.example/?a=1"}, "http"),
        ({"api_keys": ["ok", "has space"]}, "without spaces"),
        ({"secret": ""}, "secret"),
        ({"max_body": 10}, "at least 1024"),
        ({"journal_size": 0}, "journal size"),
        ({"rpm": 0}, "rpm"),
        ({"rpm": 1.5}, "rpm"),
        ({"seed": -1}, "seed"),
        ({"latency_ms": -5}, "latency"),
        ({"latency_ms": (300, 100)}, "backwards"),
        ({"fault_rate": 1.5, "fault_names": ["rate_limit"]}, "probability"),
        ({"fault_rate": 0.5}, "at least one fault"),
        ({"fault_names": ["rate_limit"]}, "fault rate above 0"),
    ],
)
def test_bad_settings_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MockConfig(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fault_rate": 0.5, "fault_names": ["gremlins"]}, "unknown fault 'gremlins'"),
        ({"fixtures": "no-such-folder"}, "no-such-folder"),
    ],
)
def test_settings_that_name_missing_things_are_refused_at_start(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        create_app(**options)


def test_a_fault_answering_a_code_the_catalogue_lacks_is_refused(tmp_path: Path) -> None:
    faults = load("faults.json")
    faults["faults"]["rate_limit"]["error"] = "too_many"
    path = tmp_path / "faults.json"
    path.write_text(json.dumps(faults))

    with pytest.raises(ConfigError, match="'rate_limit' answers 'too_many'"):
        create_app(fault_catalogue=path)


def test_settings_are_normalised_once() -> None:
    config = MockConfig(api_keys="sk-one", public_url="http://proxy/mock/")  # type: ignore[arg-type]

    assert config.api_keys == ("sk-one",)
    assert config.public_url == "http://proxy/mock"
    assert hash(config) == hash(MockConfig(api_keys=["sk-one"], public_url="http://proxy/mock"))


def test_the_docs_document_every_error_code_and_the_size_table() -> None:
    contract = (SCHEMAS.parent / "docs" / "contract.md").read_text(encoding="utf-8")
    catalogue = load("errors.json")["errors"]
    table = load("sizes.json")["table"]

    documented = {
        code: int(status)
        for status, code in re.findall(r"^\| (\d{3}) \| `(\w+)` \|", contract, flags=re.MULTILINE)
    }
    assert documented == {code: entry["status"] for code, entry in catalogue.items()}
    for ratio, row in table.items():
        cells = " | ".join(f"{w}x{h}" for w, h in row.values())
        assert f"| {ratio} | {cells} |" in contract, ratio


def _documented_routes(text: str) -> set[tuple[str, str]]:
    """The (method, path) pairs of the route tables' first column: "`GET`/`HEAD /path`"."""
    routes = set()
    for cell in re.findall(r"^\| ((?:`[A-Z]+`/)*`[A-Z]+ /[^`]*`) \|", text, flags=re.MULTILINE):
        *methods, last = re.findall(r"`([^`]+)`", cell)
        method, path = last.split(" ", 1)
        routes.update((m, path) for m in (*methods, method))
    return routes


def test_the_docs_route_tables_list_every_route_of_the_route_table() -> None:
    docs = SCHEMAS.parent / "docs"
    text = "\n".join(
        (docs / page).read_text(encoding="utf-8") for page in ("contract.md", "journal.md")
    )
    declared = {(method, spec.path) for spec in ROUTES for method in spec.methods}
    documented = _documented_routes(text)
    # A GET route answers HEAD as well; the tables name HEAD only where it matters (images).
    assert documented - declared == set()
    assert {(m, p) for m, p in declared if m != "HEAD"} - documented == set()
