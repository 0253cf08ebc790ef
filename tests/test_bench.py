"""The benchmark harness runs: smoke runs of its quick items print the table and the JSON.

The figures themselves are not checked here: timing belongs to `make bench`, not to tests.
Nothing is installed or downloaded: `--no-install` leaves WireMock out (its row says
skipped) unless Java and the jar are already here.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import wiremock
from bench.load import write_lua
from bench.loadgen import _State
from bench.profile import RULES
from bench.throughput import new_prompts

ROOT = Path(__file__).parent.parent


def _bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--no-install", "--json", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads(out.read_text())


def test_a_quick_bench_run_prints_its_table_and_writes_json(tmp_path: Path) -> None:
    result, data = _bench(tmp_path, "--only", "3,4")

    assert "MockServer start() + stop()" in result.stdout
    assert "jimeng-mock start to ready line" in result.stdout
    assert data["machine"]["cores"] >= 1
    assert data["machine"]["mock_http"] in ("httptools", "h11")
    assert data["machine"]["floor_http"] == "httptools"
    figures = json.dumps(data)
    assert "mockserver.start_stop" in figures
    assert "cli.ready" in figures


def test_the_throughput_item_loads_every_server_and_counts_statuses(tmp_path: Path) -> None:
    result, data = _bench(tmp_path, "--only", "1")

    figures = {f["key"]: f for f in data["figures"]}
    for key in ("generations.new.rps", "generations.new.p99", "generations.same.rps"):
        assert figures[key]["runs"], key
        assert figures[key]["error"] is None
    extra = figures["generations.new.rps"]["extra"]
    assert extra["non_200_or_socket_errors"]["new"] == 0
    assert extra["non_200_or_socket_errors"]["same"] == 0
    assert extra["distinct_bodies_sent"] > 0
    assert "--log-level" not in extra["mock_cmd"]
    wm = figures["generations.wiremock.rps"]
    if wiremock.describe().startswith("unavailable"):
        assert wm["skipped"], wm
        assert "skipped" in result.stdout
    else:
        assert wm["runs"], wm
        assert extra["non_200_or_socket_errors"]["wiremock"] == 0
        assert figures["generations.new_vs_wiremock"]["ratio"] is not None


def test_new_prompt_requests_are_all_different() -> None:
    template = new_prompts("127.0.0.1:1", "run1")
    made = [template.make(n) for n in range(1, 2001)]
    assert len(set(made)) == len(made)
    head, _, body = made[0].partition(b"\r\n\r\n")
    assert json.loads(body)["prompt"] == "a lighthouse run1-1"
    assert f"Content-Length: {len(body)}".encode() in head
    assert template.with_tag("run2").make(1) != made[0]

    state = _State(requests=[], count=None, deadline=None, unique=template.loadgen_config())
    sent = [state.next_request() for _ in range(3)]
    assert sent == made[:3]


def test_the_wrk_script_makes_each_body_afresh(tmp_path: Path) -> None:
    script = write_lua(tmp_path, new_prompts("127.0.0.1:1", "t")).read_text()
    assert "wrk.format(method, path, headers, prefix .. made .. suffix)" in script
    assert "a lighthouse t-" in script


def test_a_quick_profile_prints_the_shares(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.profile", "--only", "app", "--requests", "200"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for label in ("JSON parsing", "validation", "jsonschema_rs", "journal", "image URL signing"):
        assert label in result.stdout


def test_the_profile_rules_name_modules_and_functions_of_the_package() -> None:
    """A module moved or a function renamed would leave its time to "other", unnoticed."""
    named = [row for row in RULES if row.package == "mockserver" and row.module]
    assert {row.module for row in named} >= {"record/journal.py", "contract/validation.py"}
    for row in named:
        path = ROOT / "mockserver" / row.module
        assert path.is_file(), row.module
        defined = {
            node.name
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        assert set(row.functions) <= defined, (row.module, set(row.functions) - defined)
