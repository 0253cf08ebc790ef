"""The set-up the README promises: `make run` installs only what serving needs, the targets that
run tools add the dev extra to the same venv, the suite runs on both cores, and chromium comes
without its recommends. Read from what make would run, without running it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DEV_INSTALL = "pip install --quiet --disable-pip-version-check -e '.[dev]'"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def planned(target: str) -> list[str]:
    """The commands `make TARGET` would run with every stamp out of date (`-n -B`: none runs),
    with the make defaults: not the variables of a make this suite runs under (`WORKERS=0`)."""
    outer = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "ARGS", "WORKERS")
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", target],
        cwd=ROOT,
        env={name: value for name, value in os.environ.items() if name not in outer},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def installs(lines: list[str]) -> list[str]:
    return [line for line in lines if "pip install" in line]


def test_make_run_installs_only_what_serving_needs() -> None:
    lines = planned("run")

    assert [line.split("pip install", 1)[1] for line in installs(lines)] == [
        " --quiet --disable-pip-version-check -e ."
    ]
    assert lines[-1].split()[0].endswith("/jimeng-mock")


@pytest.mark.parametrize("target", ["test", "lint", "bench"])
def test_the_targets_that_run_tools_add_the_dev_extra(target: str) -> None:
    assert any(line.endswith(DEV_INSTALL) for line in installs(planned(target)))


def test_make_test_runs_the_suite_on_two_workers_then_the_lowest_versions() -> None:
    lines = planned("test")

    suite = [line for line in lines if "/pytest " in line]
    assert len(suite) == 2, suite
    assert " -n 2" in suite[0]
    # Whole files to a worker: tests/test_fuzz.py's last test reads what the others saw.
    assert " --dist loadfile" in suite[0]
    assert "-m smoke" in suite[1]


def test_chromium_is_installed_without_its_recommends() -> None:
    browser = "\n".join(planned("browser"))

    assert "apt-get install -y --no-install-recommends chromium" in browser
    assert browser.count("apt-get install") == browser.count("--no-install-recommends")
