# Every target sets up .venv itself, so a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

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
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/jimeng-mock $(ARGS)

# The browser tests (tests/test_admin_page.py) drive the system's chromium. Install it when
# it is missing and this is root with apt-get (a fresh CI machine); anywhere else, say so and
# go on: those tests then skip, or fail when CI is set.
browser:
	@if command -v chromium >/dev/null 2>&1; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "chromium is not installed: installing it with apt-get"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
		echo "note: chromium is not installed, and 'make test' installs it only as root with"; \
		echo "      apt-get: the browser tests will skip (or fail, with CI set). To run them:"; \
		echo "      sudo apt-get install chromium"; \
	fi

# The whole suite on the current versions, then the smoke tests on the lowest ones.
test: $(STAMP) browser
	$(BIN)/pytest $(ARGS)
	$(MAKE) lowest

$(LOWEST_STAMP): pyproject.toml $(STAMP)
	$(BIN)/uv venv --quiet --clear --python $(BIN)/python $(LOWEST)
	$(BIN)/uv pip install --quiet --python $(LOWEST)/bin/python --resolution lowest-direct \
		-e . $(LOWEST_TOOLS)
	touch $(LOWEST_STAMP)

lowest: $(LOWEST_STAMP)
	$(LOWEST)/bin/pytest -m smoke -p no:cacheprovider $(LOWEST_WARNINGS) $(SMOKE_TESTS)

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
bench: $(STAMP) wrk
	$(BIN)/python -m bench.run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(LOWEST) .pytest_cache .mypy_cache .ruff_cache
