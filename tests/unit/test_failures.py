"""Which errors end a connection (it must be dropped, never pooled) and which leave it serving."""

from __future__ import annotations

import asyncpg
import pytest

from core.failures import ends_connection, unavailable_cause


def server_error(sqlstate: str) -> asyncpg.PostgresError:
    """The driver's exception class for a SQLSTATE, as asyncpg raises it for a server's error message."""
    error = asyncpg.PostgresError.get_message_class_for_sqlstate(sqlstate)("from the server")
    assert error.sqlstate == sqlstate
    return error


@pytest.mark.parametrize("sqlstate", ["57P01", "57P02", "57P03", "57P04", "57P05", "25P03", "08006", "08003"])
def test_errors_the_server_sends_as_it_ends_the_session(sqlstate: str) -> None:
    assert ends_connection(server_error(sqlstate))


@pytest.mark.parametrize("sqlstate", ["57014", "55P03", "23505", "42501", "22P02", "40001"])
def test_errors_after_which_the_connection_serves_on(sqlstate: str) -> None:
    assert not ends_connection(server_error(sqlstate))


def test_no_answer_from_the_server_leaves_the_state_unknown() -> None:
    assert ends_connection(ConnectionResetError("reset by peer"))


def test_a_driver_left_mid_protocol_is_a_dependency_failure() -> None:
    error = asyncpg.exceptions.InternalClientError("cannot switch to state 12; another operation (2) is in progress")
    assert unavailable_cause(RuntimeError("unrelated")) is None
    wrapped = RuntimeError("wrapped")
    wrapped.__cause__ = error  # as `raise ... from error` leaves it
    assert unavailable_cause(wrapped) is error
