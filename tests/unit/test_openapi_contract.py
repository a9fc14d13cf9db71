"""Contract §5 Operations: the OpenAPI document names each operation's error statuses."""

from __future__ import annotations

from typing import Any

from tests.support import make_settings
from tripsage.app import create_app


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    app = create_app(make_settings("postgresql+asyncpg://unused@127.0.0.1/unused", "redis://127.0.0.1/0"))
    paths: dict[str, dict[str, dict[str, Any]]] = app.openapi()["paths"]
    return [(method, path, op) for path, ops in paths.items() for method, op in ops.items()]


def test_every_api_operation_declares_its_error_statuses() -> None:
    missing = []
    operations = [(m, p, op) for m, p, op in _operations() if p.startswith("/api")]
    assert len(operations) >= 25
    for method, path, op in operations:
        declared = set(op.get("responses", {}))
        needed = {"401", "503"}
        has_query = any(param.get("in") == "query" for param in op.get("parameters", []))
        if "{" in path:
            needed |= {"404", "422"}
        if op.get("requestBody") or has_query:
            needed.add("422")
        if method in {"patch", "delete"} and path.startswith("/api/trips/{trip_id}"):
            needed.add("412")
        if path.startswith("/api/trips/{trip_id}") and method != "get":
            needed.add("403")
        if method != "get":
            needed.add("429")  # every command spends the caller's rate limit
        if needed - declared:
            missing.append((method.upper(), path, sorted(needed - declared)))
    assert missing == []


def test_problem_schema_is_a_shared_component() -> None:
    app = create_app(make_settings("postgresql+asyncpg://unused@127.0.0.1/unused", "redis://127.0.0.1/0"))
    spec = app.openapi()
    assert set(spec["components"]["schemas"]["Problem"]["required"]) == {"type", "title", "status", "detail"}
    listed = spec["paths"]["/api/trips"]["get"]["responses"]["422"]["content"]
    assert listed["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_503_documents_retry_after() -> None:
    app = create_app(make_settings("postgresql+asyncpg://unused@127.0.0.1/unused", "redis://127.0.0.1/0"))
    for path, ops in app.openapi()["paths"].items():
        for op in ops.values():
            if path.startswith("/api"):
                assert op["responses"]["503"]["headers"]["Retry-After"]["required"] is True


def test_optional_parameters_are_strings_or_absent_never_null() -> None:
    app = create_app(make_settings("postgresql+asyncpg://unused@127.0.0.1/unused", "redis://127.0.0.1/0"))
    documented = {}
    for path, ops in app.openapi()["paths"].items():
        for op in ops.values():
            for parameter in op.get("parameters", []) if path.startswith("/api") else []:
                assert "null" not in str(parameter["schema"]), (path, parameter["name"])
                documented[parameter["name"]] = parameter["schema"]
    assert documented["X-Consistency-Token"]["pattern"] == r"^v1\.[0-9]{1,18}$"
    assert (documented["Idempotency-Key"]["minLength"], documented["Idempotency-Key"]["maxLength"]) == (1, 255)
