"""The API process's document cache (`queries.documents`): bounds, eviction, what a read names."""

from __future__ import annotations

import uuid

from queries.documents import DocumentCache, known

A, B, C = (uuid.UUID(int=n) for n in (1, 2, 3))


def test_keeps_the_newest_document_of_a_trip_and_counts_its_bytes() -> None:
    cache = DocumentCache(max_bytes=1000)
    cache.put(A, '"1-aa"', b"x" * 100)
    cache.put(A, '"2-bb"', b"y" * 150)
    assert cache.get(A) == ('"2-bb"', b"y" * 150)
    assert (len(cache), cache.size) == (1, 150)
    assert cache.get(B) is None


def test_least_recently_used_documents_leave_first_when_over_the_budget() -> None:
    cache = DocumentCache(max_bytes=600)
    cache.put(A, "a", b"a" * 150)
    cache.put(B, "b", b"b" * 150)
    cache.put(C, "c", b"c" * 150)
    assert cache.get(A) is not None  # A is now the most recently used: B goes first
    cache.put(uuid.UUID(int=4), "d", b"d" * 150)
    cache.put(uuid.UUID(int=5), "e", b"e" * 150)
    assert cache.get(B) is None and cache.get(A) is not None
    kept = cache.held([A, B, C, uuid.UUID(int=4), uuid.UUID(int=5)])
    assert set(kept) == {A, uuid.UUID(int=4), uuid.UUID(int=5)} or set(kept) == {
        A,
        C,
        uuid.UUID(int=4),
        uuid.UUID(int=5),
    }
    assert cache.size <= 600 and cache.size == sum(len(doc) for _, doc in kept.values()) == 150 * len(kept)


def test_a_zero_budget_keeps_nothing_and_a_huge_document_is_not_kept() -> None:
    off = DocumentCache(max_bytes=0)
    off.put(A, "a", b"a")
    off.remember_page("key", (A,))
    assert (len(off), off.size, off.page("key")) == (0, 0, ())
    small = DocumentCache(max_bytes=1000)
    small.put(B, "b", b"b" * 100)
    small.put(A, "a", b"a" * 251)  # over a quarter of the budget: would flush what the others use
    assert small.get(A) is None and small.get(B) is not None


def test_pages_remember_their_trips_up_to_a_count() -> None:
    cache = DocumentCache(max_bytes=1000, max_pages=2)
    cache.remember_page("p1", (A, B))
    cache.remember_page("p2", (C,))
    assert cache.page("p1") == (A, B)  # p1 used: p2 is the oldest now
    cache.remember_page("p3", ())
    assert (cache.page("p2"), cache.page("p1"), cache.page("p3")) == ((), (A, B), ())


def test_held_documents_are_the_callers_own_and_named_by_trip_and_etag() -> None:
    cache = DocumentCache(max_bytes=400)
    cache.put(A, '"1-aa"', b"a" * 100)
    cache.put(B, '"4-bb"', b"b" * 100)
    held = cache.held([A, B, C])
    assert held == {A: ('"1-aa"', b"a" * 100), B: ('"4-bb"', b"b" * 100)}
    for n in range(4):  # evicting everything leaves what the reader holds intact
        cache.put(uuid.UUID(int=10 + n), "z", b"z" * 100)
    assert cache.get(A) is None and held[A][1] == b"a" * 100
    assert known(held) == [f'{A}"1-aa"', f'{B}"4-bb"']


def test_fill_keeps_what_the_database_sent_and_takes_the_held_bytes_for_null() -> None:
    cache = DocumentCache(max_bytes=1000)
    cache.put(A, '"1-aa"', b"held a")
    held = cache.held([A])
    docs = cache.fill([(A, '"1-aa"', None), (B, '"2-bb"', b"sent b")], held)
    assert docs == [b"held a", b"sent b"]
    assert cache.get(B) == ('"2-bb"', b"sent b")
