# Every target sets up .venv itself, so a fresh clone needs only `make run` or `make test`.
# `make run` installs only what serving needs; the targets that run tools (test, lint, bench)
# add the dev extra to the same venv. Each has its stamp, so neither installs twice.
PYTHON    ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PIP       := $(BIN)/python -m pip install --quiet --disable-pip-version-check

# The suite runs on this many pytest-xdist workers; WORKERS=0 runs it in one process.
WORKERS ?= 2
# pytest keeps the modules it rewrites (the tests, and every module of each installed pytest
# plugin: some 450) beside their bytecode. Where writing bytecode is turned off, each pytest
# process rewrites them again: some 3 s per worker, and part of each suite run in pytester.
PYTEST_ENV := env -u PYTHONDONTWRITEBYTECODE

ARGS ?=

# `make lowest`: the smoke tests on the lowest versions pyproject.toml allows, in a venv of
# their own. uv's "lowest-direct" takes each direct requirement at its lower bound (so every
# one needs a bound: an unbounded one would be the first release ever made).
LOWEST       := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.installed
# The bounds of the test tools the smoke tests use, as in pyproject.toml's dev extra.
LOWEST_TOOLS := 'pytest>=8.3' 'openai>=1.50' 'httpx>=0.27'
# Only these files: the others import test tools (hypothesis, playwright...) not installed there.
SMOKE_TESTS  := tests/test_serving.py tests/test_server.py tests/test_cli.py tests/test_sessions.py tests/test_plugin_coverage.py
# pyproject.toml turns warnings into errors, on the lowest versions too. Should one of them
# warn where the current versions do not (a deprecation since fixed upstream), ignore it here
# with -W, for this run only, and say which version warns. None does at present.
LOWEST_WARNINGS :=

.PHONY: run test lint clean browser bench wrk lowest

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $(STAMP)

# The dev extra holds the serving dependencies too: its install brings the serving stamp
# up to date as well, so a `make run` after it installs nothing.
$(DEV_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[dev]'
	touch $(STAMP) $(DEV_STAMP)

run: $(STAMP)
	$(BIN)/jimeng-mock $(ARGS)

# The browser tests (tests/test_admin_page.py) drive the system's chromium. Install it when
# it is missing and this is root with apt-get (a fresh CI machine), without its recommends
# (with them it brings some 130 packages, avahi and samba among them; headless needs none);
# anywhere else, say so and go on: those tests then skip, or fail when CI is set.
browser:
	@if command -v chromium >/dev/null 2>&1; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "chromium is not installed: installing it with apt-get"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; \
	else \
		echo "note: chromium is not installed, and 'make test' installs it only as root with"; \
		echo "      apt-get: the browser tests will skip (or fail, with CI set). To run them:"; \
		echo "      sudo apt-get install --no-install-recommends chromium"; \
	fi

# The whole suite on the current versions, then the smoke tests on the lowest ones.
test: $(DEV_STAMP) browser
	$(PYTEST_ENV) $(BIN)/pytest -n $(WORKERS) --dist loadfile $(ARGS)
	$(MAKE) lowest

$(LOWEST_STAMP): pyproject.toml $(DEV_STAMP)
	$(BIN)/uv venv --quiet --clear --python $(BIN)/python $(LOWEST)
	$(BIN)/uv pip install --quiet --python $(LOWEST)/bin/python --resolution lowest-direct \
		-e . $(LOWEST_TOOLS)
	touch $(LOWEST_STAMP)

lowest: $(LOWEST_STAMP)
	$(PYTEST_ENV) $(LOWEST)/bin/pytest -m smoke -p no:cacheprovider $(LOWEST_WARNINGS) $(SMOKE_TESTS)

# The benchmarks (bench/) load the server with wrk. Install it when it is missing and this is
# root with apt-get; anywhere else, say so and go on: they then use a Python load generator.
wrk:
	@if command -v wrk >/dev/null 2>&1; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "wrk is not installed: installing it with apt-get"; \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk) || \
			echo "note: wrk could not be installed: the benchmarks use a Python load generator"; \
	else \
		echo "note: wrk is not installed, and 'make bench' installs it only as root with"; \
		echo "      apt-get: the benchmarks use a Python load generator instead. To use wrk:"; \
		echo "      sudo apt-get install wrk"; \
	fi

# Prints one table and writes bench/results.json; ARGS=--quick for a short smoke run.
bench: $(DEV_STAMP) wrk
	$(BIN)/python -m bench.run $(ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(LOWEST) .pytest_cache .mypy_cache .ruff_cache
