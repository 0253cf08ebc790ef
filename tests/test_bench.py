"""The benchmark harness runs: a smoke run of its quick items prints the table and the JSON.

The figures themselves are not checked here: timing belongs to `make bench`, not to tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_a_quick_bench_run_prints_its_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--only", "3,4", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "MockServer start() + stop()" in result.stdout
    assert "jimeng-mock start to ready line" in result.stdout
    data = json.loads(out.read_text())
    assert data["machine"]["cores"] >= 1
    figures = json.dumps(data)
    assert "mockserver.start_stop" in figures
    assert "cli.ready" in figures
