from __future__ import annotations

import uuid

from sqlalchemy.exc import DBAPIError

from projections.dead_letters import RetryPolicy
from projections.feed import batch_from_rows
from projections.locks import lock_key, lock_keys
from projections.poison import describe, is_poison


class _DriverError(Exception):
    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _error(sqlstate: str | None, message: str = "boom\nDETAIL: Failing row contains (secret).") -> DBAPIError:
    return DBAPIError("UPDATE ...", {}, _DriverError(message, sqlstate))


def test_lock_keys_are_distinct_sorted_signed_32_bit() -> None:
    ids = [uuid.uuid4() for _ in range(50)]
    keys = lock_keys([*ids, *ids])
    assert keys == sorted(set(keys)) and len(keys) == len({lock_key(i) for i in ids})
    assert all(-(2**31) <= k < 2**31 for k in keys)
    assert lock_key(uuid.UUID("ffffffff-0000-0000-0000-000000000000")) == -1
    assert lock_keys([]) == []


def test_batch_groups_tokens_by_trip_and_ignores_profile_rows() -> None:
    a, b, profile = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    batch = batch_from_rows([(10, a, None, 2), (11, b, None, 2), (12, a, None, 2), (13, None, profile, 2)])
    assert batch.rows == 4 and batch.fanned_out == 2
    assert batch.tokens == {a: {10, 12}, b: {11}}
    assert batch.trip_ids == sorted([a, b])
    assert batch_from_rows([]).trip_ids == []


def test_poison_versus_transient_errors() -> None:
    assert is_poison(_error("23514"))  # check violation: the data's fault
    assert is_poison(_error("22P02"))
    # Timeouts, lock waits, deadlocks, serialization failures and connection trouble retry; never parked.
    for transient in ("40001", "40P01", "08006", "08003", "53300", "57P01", "57014", "55P03", "55006", "25P03"):
        assert not is_poison(_error(transient))
    assert not is_poison(_error(None))
    invalidated = _error("23514")
    invalidated.connection_invalidated = True
    assert not is_poison(invalidated)


def test_describe_keeps_the_first_line_only() -> None:
    text = describe(_error("23514", 'new row violates check constraint "x"\nDETAIL: Failing row contains (secret).'))
    assert text == '23514: new row violates check constraint "x"'
    assert "secret" not in text
    assert describe(_error(None, "")).startswith("error: ")
    assert len(describe(_error("23514", "y" * 2000))) == 500


def test_retry_policy_caps_the_delay() -> None:
    policy = RetryPolicy(max_attempts=4, base_delay_s=0.5, max_delay_s=3.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
