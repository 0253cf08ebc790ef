# Every target sets up .venv itself, so a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

ARGS ?=

.PHONY: run test lint clean browser bench wrk

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

test: $(STAMP) browser
	$(BIN)/pytest $(ARGS)

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
