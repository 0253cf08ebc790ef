"""`jimeng-mock conform URL`: the contract cases run against a service over HTTP.

The services here are mocks on 127.0.0.1: the default mock agrees with every case, and a mock
configured otherwise (strict, another size table) disagrees with exactly the cases that
depend on that option, computed here from the case files and schemas, not from the runner.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mockserver import MockServer, paths
from mockserver.cli import main
from mockserver.contract import cases

ROOT = Path(__file__).resolve().parent.parent
CASE_DIR = ROOT / "fixtures" / "contract"
SCHEMAS = ROOT / "schemas"
GENERATIONS = "/v1/images/generations"
ALL = "1000"  # --max-generations: every case that generates images


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _case_specs() -> dict[str, dict[str, Any]]:
    specs = {}
    for path in sorted(CASE_DIR.glob("*.json")):
        for case in _read_json(path)["cases"]:
            specs[f"{path.stem}::{case['name']}"] = case
    return specs


SPECS = _case_specs()
# The API base of each case's file (`api`, default /v1): conform runs a case against a URL
# of its API only.
APIS = {
    f"{path.stem}::{case['name']}": _read_json(path).get("api", "/v1")
    for path in sorted(CASE_DIR.glob("*.json"))
    for case in _read_json(path)["cases"]
}


def _conform(url: str, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """Run the command in-process; its exit code and its --report."""
    report = tmp_path / "report.json"
    code = main(["conform", url, "--report", str(report), *args])
    return code, _read_json(report)


def _by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["case"]: entry for entry in report["cases"]}


def _ran(report: dict[str, Any]) -> set[str]:
    return {entry["case"] for entry in report["cases"] if entry["skipped"] is None}


def _disagreeing(report: dict[str, Any]) -> set[str]:
    return {entry["case"] for entry in report["cases"] if entry["agree"] is False}


@pytest.fixture(scope="module")
def default_mock() -> Iterator[MockServer]:
    with MockServer() as server:
        yield server


# ------------------------------------------------------------------------------ agreement


def test_the_default_mock_agrees_with_every_case(default_mock: MockServer, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mockserver", "conform", default_mock.api_base],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.splitlines()[0].split() == ["case", "expected", "got", "agree"]
    assert "size::below-min-pixels" in result.stdout
    assert "[1/" in result.stderr  # the progress line
    assert " disagree" not in result.stderr


def test_every_generation_agrees_too(default_mock: MockServer, tmp_path: Path) -> None:
    code, report = _conform(default_mock.api_base, tmp_path, "--max-generations", ALL)
    assert code == 0, [e for e in report["cases"] if e["agree"] is False]
    ran = _ran(report)
    assert "ratio-resolution::ratio-21-9-4k" in ran
    assert report["totals"]["disagree"] == 0
    assert report["totals"]["agree"] == len(ran)


def test_the_mock_only_cases_are_skipped(default_mock: MockServer, tmp_path: Path) -> None:
    code, report = _conform(default_mock.api_base, tmp_path, "--max-generations", ALL)
    assert code == 0
    entries = _by_id(report)
    for case_id, spec in SPECS.items():
        request = spec["request"]
        path = request.get("path", GENERATIONS)
        headers = {name.lower() for name in request.get("headers", {})}
        if (
            path.startswith(("/__admin/", "/images/"))
            or path in ("/healthz", "/openapi.json")
            or any(name.startswith("x-mock-") for name in headers)
        ):
            assert entries[case_id]["skipped"] == "mock-only", case_id
        elif APIS[case_id] != "/v1":
            assert entries[case_id]["skipped"].startswith("another API: "), case_id
        elif "server" in spec:
            assert entries[case_id]["skipped"].startswith("mock-options"), case_id
    assert entries["faults::rate-limit"]["got"] is None


# ------------------------------------------------------------------------------ disagreement


def _body(spec: dict[str, Any]) -> Any:
    request = spec["request"]
    if "raw_body" in request:
        try:
            return json.loads(request["raw_body"])
        except (ValueError, RecursionError):  # not JSON, or nested past Python's bound
            return None
    return request.get("body")


def _strict_changes(spec: dict[str, Any], known: set[str]) -> bool:
    """Whether --strict changes the answer: the body has a field the request schema does not
    define, and the mock serves it, or refuses it only for the value of a known field (an
    unknown field wins over that; a missing one wins over it: strict.json)."""
    body = _body(spec)
    if not isinstance(body, dict) or not set(body) - known:
        return False
    expect = spec["expect"]
    if expect["status"] < 400:
        return True
    error = expect["error"]
    return error["param"] in known and error["code"] != "missing_required_parameter"


def test_a_strict_service_disagrees_with_the_cases_of_unknown_fields(tmp_path: Path) -> None:
    known = set(_read_json(SCHEMAS / "images-generations.request.json")["properties"])
    with MockServer(strict=True) as server:
        code, report = _conform(server.api_base, tmp_path, "--max-generations", ALL)
        warnings = ["--select", "warnings::*", "--max-generations", ALL]
        assert main(["conform", server.api_base, *warnings]) == 1
    expected = {case_id for case_id in _ran(report) if _strict_changes(SPECS[case_id], known)}
    assert expected, "no case sends an unknown field"
    assert code == 1
    assert _disagreeing(report) == expected
    for case_id in expected:
        assert _by_id(report)[case_id]["got"]["error"]["code"] == "unknown_parameter"


def test_another_size_table_disagrees_with_the_cases_of_the_table(tmp_path: Path) -> None:
    default = _read_json(SCHEMAS / "sizes.json")
    custom = {
        "defaults": default["defaults"],
        "explicit_size_bounds": default["explicit_size_bounds"],
        "table": {"1:1": {"1k": [1000, 1000], "2k": [2000, 2000], "4k": [4000, 4000]}},
    }
    table_file = tmp_path / "sizes.json"
    table_file.write_text(json.dumps(custom), encoding="utf-8")

    def depends_on_the_table(spec: dict[str, Any]) -> bool:
        body = spec["request"].get("body")
        if not isinstance(body, dict):
            return False
        sized_by_the_table = spec["expect"]["status"] == 200 and body.get("size") is None
        ratio = body.get("ratio")
        ratio_gone = ratio in default["table"] and ratio not in custom["table"]
        return sized_by_the_table or ratio_gone

    with MockServer(sizes=table_file) as server:
        code, report = _conform(server.api_base, tmp_path, "--max-generations", ALL)
    expected = {case_id for case_id in _ran(report) if depends_on_the_table(SPECS[case_id])}
    assert code == 1
    assert "ratio-resolution::defaults" in expected
    assert _disagreeing(report) == expected
    assert _by_id(report)["ratio-resolution::ratio-1-1-1k"]["got"]["images"] == [[1000, 1000]]


def test_a_disagreement_is_named_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with MockServer(strict=True) as server:
        code = main(["conform", server.api_base, "--max-generations", ALL, "--select", "strict::*"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "disagree: strict::unknown-field-accepted" in err
    row = next(line for line in out.splitlines() if line.startswith("strict::unknown-field-"))
    assert row.split()[-1] == "NO"
    assert "unknown_parameter(style)" in row


# ------------------------------------------------------------------------------ cost control


def test_max_generations_bounds_the_cases_that_generate(
    default_mock: MockServer, tmp_path: Path
) -> None:
    code, none = _conform(default_mock.api_base, tmp_path, "--max-generations", "0")
    assert code == 0
    ran_none = _by_id(none)
    for case_id in _ran(none):
        assert (
            ran_none[case_id]["expected"]["status"] != 200
            or "images" not in (ran_none[case_id]["expected"])
        ), case_id
    skipped_for_cost = {
        e["case"] for e in none["cases"] if (e["skipped"] or "").startswith("generates images")
    }
    generating = {
        case_id
        for case_id, spec in SPECS.items()
        if spec["expect"]["status"] == 200
        and spec["request"].get("path", GENERATIONS) == GENERATIONS
        and spec["request"].get("method", "POST") == "POST"
    }
    assert skipped_for_cost
    assert skipped_for_cost <= generating
    assert "--max-generations 0" in ran_none[min(skipped_for_cost)]["skipped"]

    code, three = _conform(default_mock.api_base, tmp_path, "--max-generations", "3")
    assert code == 0
    newly_ran = _ran(three) - _ran(none)
    assert len(newly_ran) == 3
    assert newly_ran <= skipped_for_cost
    assert three["totals"]["ran"] == none["totals"]["ran"] + 3


def test_rate_bounds_the_requests_per_second(default_mock: MockServer, tmp_path: Path) -> None:
    started = time.monotonic()
    code, report = _conform(
        default_mock.api_base, tmp_path, "--rate", "10", "--select", "content-type::*"
    )
    elapsed = time.monotonic() - started
    ran = report["totals"]["ran"]
    assert code == 0
    assert ran >= 5
    assert elapsed >= (ran - 1) / 10  # at most 10 a second


# ------------------------------------------------------------------------------ the report


def test_the_report(default_mock: MockServer, tmp_path: Path) -> None:
    code, report = _conform(default_mock.api_base, tmp_path, "--max-generations", "1")
    assert code == 0
    assert set(report) == {"url", "totals", "cases"}
    assert report["url"] == default_mock.api_base
    totals = report["totals"]
    assert set(totals) == {"cases", "ran", "agree", "disagree", "skipped"}
    assert totals["cases"] == len(report["cases"]) == len(SPECS)
    assert totals["ran"] + totals["skipped"] == totals["cases"]
    assert totals["agree"] + totals["disagree"] == totals["ran"]
    entries = _by_id(report)
    for entry in report["cases"]:
        assert set(entry) == {"case", "expected", "got", "agree", "skipped"}
    refused = entries["size::below-min-pixels"]
    assert refused["expected"] == {
        "status": 400,
        "error": {"code": "invalid_value", "param": "size"},
    }
    assert refused["got"] == refused["expected"]
    assert refused["agree"] is True
    assert refused["skipped"] is None
    generated = next(e for e in report["cases"] if e["skipped"] is None and "images" in e["got"])
    assert generated["got"]["images"] == generated["expected"]["images"]
    assert entries["routes::healthz"] == {
        "case": "routes::healthz",
        "expected": {"status": 200, "headers": {"content-type": "application/json"}},
        "got": None,
        "agree": None,
        "skipped": "mock-only",
    }


def test_own_cases_run_too(default_mock: MockServer, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    cases = [
        {
            "name": "no-prompt",
            "request": {"body": {"model": "jimeng-4.0", "n": 1}},
            "expect": {"status": 400, "error": {"code": "invalid_value", "param": "prompt"}},
        },
        {
            "name": "unknown-model",
            "request": {"body": {"model": "nope", "prompt": "a cat", "n": 1}},
            "expect": {"status": 404, "error": {"code": "model_not_found", "param": "model"}},
        },
    ]
    (mine / "mine.json").write_text(
        json.dumps({"description": "mine", "cases": cases}), encoding="utf-8"
    )
    code, report = _conform(
        default_mock.api_base, tmp_path, "--cases", str(mine), "--select", "mine::*"
    )
    entries = _by_id(report)
    assert set(entries) == {"mine::no-prompt", "mine::unknown-model"}
    assert entries["mine::unknown-model"]["agree"] is True
    no_prompt = entries["mine::no-prompt"]
    assert no_prompt["got"]["error"]["param"] == "prompt"
    assert code == (0 if no_prompt["agree"] else 1)


def _own_cases(tmp_path: Path, *cases: dict[str, Any]) -> Path:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "own.json").write_text(
        json.dumps({"description": "own cases", "cases": list(cases)}), encoding="utf-8"
    )
    return mine


def test_the_headers_a_case_names_are_compared_but_the_mocks_own(
    default_mock: MockServer, tmp_path: Path
) -> None:
    refused = {"code": "method_not_allowed", "param": None}
    mine = _own_cases(
        tmp_path,
        {
            "name": "allow-as-the-mock-says",
            "request": {"method": "POST", "path": "/v1/models"},
            "expect": {
                "status": 405,
                "error": refused,
                "headers": {"Allow": "GET, HEAD", "X-Mock-Never-Sent": "1"},
            },
        },
        {
            "name": "allow-otherwise",
            "request": {"method": "POST", "path": "/v1/models"},
            "expect": {"status": 405, "error": refused, "headers": {"allow": "GET, HEAD, PUT"}},
        },
    )
    code, report = _conform(
        default_mock.api_base, tmp_path, "--cases", str(mine), "--select", "own::*"
    )
    entries = _by_id(report)
    assert code == 1
    as_said = entries["own::allow-as-the-mock-says"]
    assert as_said["agree"] is True
    assert as_said["expected"]["headers"] == {"Allow": "GET, HEAD"}  # X-Mock-* left out
    assert as_said["got"] == as_said["expected"]
    otherwise = entries["own::allow-otherwise"]
    assert otherwise["agree"] is False
    assert otherwise["got"]["headers"] == {"allow": "GET, HEAD"}


def test_an_image_that_does_not_decode_disagrees(tmp_path: Path) -> None:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "orange").save(out, format="PNG")
    png = out.getvalue()
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    # The whole PNG, and one cut short: its header still says 64x48, but it does not decode.
    for name, data in (("whole", png), ("cut", png[: len(png) // 2])):
        entry = {"b64_json": base64.b64encode(data).decode("ascii"), "revised_prompt": "a cat"}
        stub = {
            "match": {"headers": {"X-Scenario": name}},
            "response": {"status": 200, "body": {"created": "{{created}}", "data": [entry]}},
        }
        (stubs / f"{name}.json").write_text(json.dumps(stub), encoding="utf-8")
    mine = _own_cases(
        tmp_path,
        *(
            {
                "name": name,
                "request": {
                    "headers": {"X-Scenario": name},
                    "body": {"model": "jimeng-4.0", "prompt": "a cat", "n": 1},
                },
                "expect": {"status": 200, "images": [[64, 48]]},
            }
            for name in ("whole", "cut")
        ),
    )
    with MockServer(fixtures=stubs) as server:
        code, report = _conform(
            server.api_base,
            tmp_path,
            "--cases",
            str(mine),
            "--select",
            "own::*",
            "--max-generations",
            "2",
        )
    entries = _by_id(report)
    assert code == 1
    assert entries["own::whole"]["agree"] is True
    assert entries["own::cut"]["agree"] is False
    assert entries["own::cut"]["got"]["images"] == [None]


def test_a_case_file_that_does_not_match_the_case_schema_is_bad_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = {
        "name": "typo",
        "request": {"body": {"model": "jimeng-4.0", "n": 1}},
        "expect": {"status": 400, "eror": {"code": "invalid_value", "param": "prompt"}},
    }
    mine = _own_cases(tmp_path, typo)
    assert main(["conform", "http://127.0.0.1:9/v1", "--cases", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "jimeng-mock conform:" in err
    assert "own.json: does not match contract.schema.json" in err
    assert "'eror' was unexpected" in err


# ------------------------------------------------------------------------------ usage


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["ftp://example.com/v1"],
        ["not a url"],
        ["http://127.0.0.1:9/v1", "--max-generations", "-1"],
        ["http://127.0.0.1:9/v1", "--rate", "0"],
        ["http://127.0.0.1:9/v1", "--cases", "/no/such/folder"],
        ["http://127.0.0.1:9/v1", "--select", "no-such::*"],
        ["http://127.0.0.1:9/v1", "--no-such-option"],
    ],
)
def test_bad_usage_exits_2(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mockserver", "conform", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "jimeng-mock conform" in result.stderr


def test_a_service_that_does_not_answer_disagrees(tmp_path: Path) -> None:
    code, report = _conform(
        "http://127.0.0.1:9/v1", tmp_path, "--select", "size::below-min-pixels", "--timeout", "5"
    )
    assert code == 1
    (entry,) = report["cases"]
    assert entry["got"]["status"] is None
    assert entry["got"]["failure"]


@pytest.mark.parametrize(
    ("base", "path", "url"),
    [
        ("http://h:8000/v1", GENERATIONS, "http://h:8000/v1/images/generations"),
        ("http://h:8000/v1/", GENERATIONS, "http://h:8000/v1/images/generations"),
        ("http://h:8000", GENERATIONS, "http://h:8000/v1/images/generations"),
        ("http://h:8000/", "/v1/models", "http://h:8000/v1/models"),
        ("https://h/api/v1", GENERATIONS, "https://h/api/v1/images/generations"),
        ("https://h/api", "/v1/models/x", "https://h/api/v1/models/x"),
        ("https://h/api/v1", "/images/generations", "https://h/api/images/generations"),
        ("https://h/v1", "/", "https://h/"),
    ],
)
def test_case_paths_join_the_base_url(base: str, path: str, url: str) -> None:
    assert cases.join(base, path) == url


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://h/api/v3", "https://h/api/v3/images/generations"),
        ("https://h/api/v3/", "https://h/api/v3/images/generations"),
        ("https://h/gateway/api/v3", "https://h/gateway/api/v3/images/generations"),
        ("https://h", "https://h/api/v3/images/generations"),
    ],
)
def test_ark_s_case_paths_join_an_ark_base_url(base: str, url: str) -> None:
    assert cases.join(base, "/api/v3/images/generations", "/api/v3") == url


def test_an_ark_base_url_runs_ark_s_cases_and_agrees_on_every_one(tmp_path: Path) -> None:
    """Against a mock's Ark route: only Ark's cases run (those of /v1 are another API's),
    and every one agrees; against its /v1 base, none of them runs."""
    ark_cases = {case_id for case_id, api in APIS.items() if api == "/api/v3"}
    with MockServer(ark=True) as mock:
        code, report = _conform(mock.url + "/api/v3", tmp_path)
        assert code == 0, [e for e in report["cases"] if e["agree"] is False]
        ran = _ran(report)
        wanted = {i for i in ark_cases if not SPECS[i].get("server", {}).keys() - {"ark"}}
        assert ran == wanted
        assert len(ran) >= 10
        assert report["totals"]["agree"] == len(ran)
        skipped = _by_id(report)
        assert skipped["size::below-min-pixels"]["skipped"].startswith("another API: /v1")
        code, plain = _conform(mock.url + "/v1", tmp_path)
        assert code == 0
        assert not _ran(plain) & ark_cases


def test_ark_s_cases_disagree_with_a_service_that_answers_in_the_openai_shape(
    tmp_path: Path,
) -> None:
    """A mock without Ark's route (404 for it) disagrees on every one of Ark's cases."""
    with MockServer() as plain:
        code, report = _conform(plain.url + "/api/v3", tmp_path)
    assert code == 1
    ran = _ran(report)
    assert ran
    assert _disagreeing(report) == ran


def test_the_cases_ship_in_the_wheel() -> None:
    """contract_dir() finds the cases in the checkout, and their schema beside them; a wheel puts
    both where it looks."""
    assert paths.contract_dir().resolve() == CASE_DIR
    assert paths.case_schema_file().resolve() == ROOT / "fixtures" / "contract.schema.json"
    assert paths.data_dir().resolve() == SCHEMAS
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    force_include = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    packaged = paths.PACKAGED.relative_to(ROOT).as_posix()
    assert force_include["fixtures/contract"] == f"{packaged}/contract"
    assert force_include["fixtures/contract.schema.json"] == f"{packaged}/contract.schema.json"
    assert force_include["schemas"] == f"{packaged}/schemas"
