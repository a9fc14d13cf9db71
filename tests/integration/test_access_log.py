"""One access-log line per request: request id (= the `X-Request-ID` header), method, route template, status, duration."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest

from tests.support import new_user


def _access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "tripsage.access"]


async def test_one_line_per_request_with_the_route_template_and_the_header_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    user = new_user("access")
    trip_id = uuid.uuid4()
    with caplog.at_level(logging.INFO, logger="tripsage.access"):
        response = await client.get(f"/api/trips/{trip_id}?q=secret-query", headers=user.headers)
    assert response.status_code == 404
    (record,) = _access_records(caplog)
    fields = vars(record)
    assert fields["request_id"] == response.headers["X-Request-ID"]
    assert fields["method"] == "GET" and fields["route"] == "/api/trips/{trip_id}" and fields["status"] == 404
    assert isinstance(fields["duration_ms"], float) and fields["duration_ms"] >= 0
    message = record.getMessage()
    assert message.startswith("GET /api/trips/{trip_id} 404 ") and response.headers["X-Request-ID"] in message
    logged = message + repr(vars(record))
    assert user.token not in logged and "secret-query" not in logged and str(trip_id) not in logged


async def test_a_given_request_id_is_kept_and_unmatched_paths_are_named_so(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tripsage.access"):
        response = await client.post("/no/such/path", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 404 and response.headers["X-Request-ID"] == "req-42"
    (record,) = _access_records(caplog)
    fields = vars(record)
    assert (fields["request_id"], fields["route"], fields["status"]) == ("req-42", "unmatched", 404)


async def test_no_access_line_when_its_logger_is_above_info(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tripsage.access"):
        assert (await client.get("/healthz")).status_code == 200
    assert _access_records(caplog) == []
