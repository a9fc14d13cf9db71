# The two commands of the quickstart: `make up` (run the service) and `make test` (run the tests).
# Both install what they need: uv (from PyPI, if missing) and the locked dependencies. The other
# targets wrap the `tripsage` CLI, which lives in `.venv/bin/` (not on PATH on a fresh machine).
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PYTEST_ARGS ?=
PORT ?= 8000
EMAIL ?= dev@example.com
ARGS ?= --help

.PHONY: up test lint lint-deploy web-check setup migrate token status cli

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
	$(MAKE) --no-print-directory lint-deploy

# The deployment files (no Docker engine needed): the compose files against the Compose
# specification's schema, the Dockerfile with hadolint, the shell scripts with shellcheck, and
# nginx's own check of the proxy config when nginx is installed.
lint-deploy: setup
	$(UV) run check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml deploy/compose.yaml
	$(UV) run hadolint Dockerfile
	$(UV) run shellcheck deploy/postgres/*.sh .ci/run
	@if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then \
		d="$$(mktemp -d)" && PATH="$$PATH:/usr/sbin" nginx -q -t -p "$$d" -c "$(CURDIR)/deploy/nginx.conf" -e /dev/stderr && rm -rf "$$d"; \
	else echo "nginx not installed: deploy/nginx.conf not checked"; fi

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
