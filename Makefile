# The two commands of the quickstart: `make up` (run the service) and `make test` (run the tests).
# Both install what they need: uv (from PyPI, if missing) and the locked dependencies. The other
# targets wrap the `tripsage` CLI, which lives in `.venv/bin/` (not on PATH on a fresh machine).
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PYTEST_ARGS ?=
PORT ?= 8000
EMAIL ?= dev@example.com
ARGS ?= --help

.PHONY: up test lint web-check setup migrate token status cli

setup:
	@command -v uv >/dev/null 2>&1 || [ -x "$(HOME)/.local/bin/uv" ] || python3 -m pip install --user --quiet uv \
		|| python3 -m pip install --user --quiet --break-system-packages uv
	@$(UV) sync --locked --quiet

up: setup
	$(UV) run tripsage up --port $(PORT)

test: setup
	$(UV) run pytest --cov --cov-branch --cov-report=term $(PYTEST_ARGS)

lint: setup
	$(UV) run ruff format --check .
	$(UV) run ruff check .
	$(UV) run mypy .
	$(UV) run pylint core commands queries projections workers tripsage

# The web client's checks (Node is for these only; the app itself needs no build): the locked npm dev tools,
# Biome lint + format check, Vitest unit tests with the coverage floor of vitest.config.js.
web-check:
	npm ci --no-audit --no-fund --loglevel=error
	npx --no-install biome ci .
	npx --no-install vitest run --coverage

migrate: setup
	@$(UV) run tripsage migrate

# `TOKEN=$(make -s token EMAIL=bob@example.com)`: the same email gives the same user (embedded mode).
token: setup
	@$(UV) run tripsage token --user "$(EMAIL)"

status: setup
	@$(UV) run tripsage projections status

# Any other subcommand: `make cli ARGS="projections verify"`.
cli: setup
	@$(UV) run tripsage $(ARGS)
