# syntax=docker/dockerfile:1
# The TripSage image: API (`uvicorn tripsage.api.main:app`), worker (`tripsage worker`) and
# migrations (`tripsage migrate`) from one image, built from uv.lock without dev dependencies.
#   docker build -t tripsage .
# The install steps are replayed without Docker by tests/e2e/test_deploy.py (no engine in CI).

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /app
# Dependencies first (a layer that changes only with the lock), then the project itself.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY alembic.ini ./
COPY migrations ./migrations
COPY core ./core
COPY commands ./commands
COPY queries ./queries
COPY projections ./projections
COPY workers ./workers
COPY tripsage ./tripsage
RUN uv sync --locked --no-dev

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 tripsage \
    && useradd --system --uid 10001 --gid tripsage --home-dir /app --shell /usr/sbin/nologin tripsage
WORKDIR /app
COPY --from=build --chown=tripsage:tripsage /app /app
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    LOG_FORMAT=json \
    PORT=8000
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=2)"]
# Several uvicorn worker processes per container; more containers behind the proxy (deploy/compose.yaml).
CMD ["sh", "-c", "exec uvicorn tripsage.api.main:app --host 0.0.0.0 --port \"$PORT\" --workers \"${API_WORKERS:-2}\" --timeout-graceful-shutdown 5 --no-access-log"]
