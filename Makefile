# The two commands of the quickstart: `make up` (run the service) and `make test` (run the tests).
# Both install what they need: uv (from PyPI, if missing) and the locked dependencies.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PYTEST_ARGS ?=

.PHONY: up test lint setup

setup:
	@command -v uv >/dev/null 2>&1 || [ -x "$(HOME)/.local/bin/uv" ] || python3 -m pip install --user --quiet uv \
		|| python3 -m pip install --user --quiet --break-system-packages uv
	@$(UV) sync --locked --quiet

up: setup
	$(UV) run tripsage up

test: setup
	$(UV) run pytest --cov --cov-branch --cov-report=term $(PYTEST_ARGS)

lint: setup
	$(UV) run ruff format --check .
	$(UV) run ruff check .
	$(UV) run mypy .
	$(UV) run pylint core commands queries projections workers tripsage
