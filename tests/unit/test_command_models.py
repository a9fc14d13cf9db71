from __future__ import annotations

import inspect
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from commands import messages
from commands.handlers import HANDLERS
from commands.idempotency import fingerprint
from commands.payloads import ActivityPatch, NewActivity, NewItinerary, NewTrip, ProfilePatch, TripPatch
from commands.unit import changed_fields
from core.errors import PROBLEM_JSON
from core.models import drop_null_branch
from core.openapi import problem_responses

BASE = {"title": "T", "destination": "D", "start_date": "2026-01-01", "end_date": "2026-01-03"}


def errors(model: type[BaseModel], data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [(tuple(err["loc"]), err["type"]) for err in caught.value.errors()]


def test_new_trip_defaults_and_normalisation() -> None:
    trip = NewTrip.model_validate(BASE | {"tags": ["b", "a", "b", "c", "a"], "currency": "eur", "budget": 10})
    assert trip.tags == ["b", "a", "c"]
    assert trip.currency == "EUR" and trip.budget == Decimal("10")
    assert (trip.travelers, trip.status, trip.trip_type, trip.description) == (1, "planning", "leisure", None)
    assert NewTrip.model_validate(BASE).currency == "USD"


def test_tags_are_counted_after_merging_duplicates() -> None:
    assert len(NewTrip.model_validate(BASE | {"tags": [f"t{n % 20}" for n in range(40)]}).tags) == 20
    assert errors(NewTrip, BASE | {"tags": [f"t{n}" for n in range(21)]})[0][0] == ("tags",)
    assert errors(NewTrip, BASE | {"tags": [""]})[0][0] == ("tags", 0)


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"end_date": "2025-12-31"}, ("end_date",)),
        ({"title": "x" * 201}, ("title",)),
        ({"destination": ""}, ("destination",)),
        ({"description": "x" * 2001}, ("description",)),
        ({"budget": "-0.01"}, ("budget",)),
        ({"budget": "1.001"}, ("budget",)),
        ({"budget": "1e20"}, ("budget",)),
        ({"currency": "XYZ"}, ("currency",)),
        ({"travelers": 0}, ("travelers",)),
        ({"travelers": 1001}, ("travelers",)),
        ({"travelers": "3"}, ("travelers",)),
        ({"status": "paused"}, ("status",)),
        ({"trip_type": "work"}, ("trip_type",)),
        ({"title": "a\x00"}, ("title",)),
        ({"version": 2}, ("version",)),
    ],
)
def test_new_trip_refuses(data: dict[str, Any], loc: tuple[str, ...]) -> None:
    assert errors(NewTrip, BASE | data)[0][0] == loc


def test_patch_is_partial_and_null_clears_only_nullable_fields() -> None:
    patch = TripPatch.model_validate({"description": None, "budget": None, "title": "New"})
    assert patch.model_dump(exclude_unset=True) == {"description": None, "budget": None, "title": "New"}
    assert TripPatch.model_validate({}).model_dump(exclude_unset=True) == {}
    for field in ("title", "destination", "start_date", "end_date", "currency", "travelers", "status", "tags"):
        assert errors(TripPatch, {field: None})[0][0] == (field,)
    assert errors(TripPatch, {"start_date": "2026-02-02", "end_date": "2026-02-01"})[0][0] == ("end_date",)
    assert TripPatch.model_validate({"end_date": "2020-01-01"}).end_date == date(2020, 1, 1)


def test_itinerary_and_activity_payloads() -> None:
    assert NewItinerary.model_validate({"title": "x"}).position == 0
    assert errors(NewItinerary, {"title": "x", "position": 100_001})[0][0] == ("position",)
    activity = NewActivity.model_validate({"title": "x", "starts_at": "2026-01-01T10:00:00+02:00"})
    assert activity.currency is None and activity.item_type == "activity" and activity.booking_status == "planned"
    assert errors(NewActivity, {"title": "x", "starts_at": "2026-01-01T10:00:00"})[0][0] == ("starts_at",)
    backwards = {"title": "x", "starts_at": "2026-01-01T10:00:00Z", "ends_at": "2026-01-01T09:59:59Z"}
    assert errors(NewActivity, backwards)[0][0] == ("ends_at",)
    assert errors(NewActivity, {"title": "x", "notes": "x" * 5001})[0][0] == ("notes",)
    assert errors(ActivityPatch, {"currency": None})[0][0] == ("currency",)
    assert ActivityPatch.model_validate({"price": None}).model_dump(exclude_unset=True) == {"price": None}


def test_profile_patch() -> None:
    patch = ProfilePatch.model_validate({"preferences": {"currency": "gbp", "dietary_restrictions": None}})
    assert patch.model_dump(exclude_unset=True) == {"preferences": {"currency": "GBP", "dietary_restrictions": None}}
    assert errors(ProfilePatch, {"preferences": {"home_airport": "lhr"}})[0][0] == ("preferences", "home_airport")
    assert errors(ProfilePatch, {"display_name": None})[0][0] == ("display_name",)


def test_changed_fields_compares_values_not_representations() -> None:
    stored = {"budget": Decimal("10.00"), "currency": "EUR", "tags": ["a"], "title": "T"}
    given = {"budget": Decimal("10"), "currency": "EUR", "tags": ["a", "b"], "title": "T"}
    assert changed_fields(stored, given) == {"tags": ["a", "b"]}


def test_fingerprint_is_canonical() -> None:
    assert fingerprint("POST", "/api/trips", {"a": 1, "b": [1, 2]}) == fingerprint(
        "POST", "/api/trips", {"b": [1, 2], "a": 1}
    )
    assert fingerprint("POST", "/api/trips", {"a": 1}) != fingerprint("POST", "/api/trips/x/itineraries", {"a": 1})
    assert fingerprint("POST", "/api/trips", {"a": 1}) != fingerprint("POST", "/api/trips", {"a": 2})


def test_every_command_has_exactly_one_handler() -> None:
    commands = {
        cls
        for _, cls in inspect.getmembers(messages, inspect.isclass)
        if cls.__module__ == messages.__name__ and cls is not messages.TripCommand
    }
    assert set(HANDLERS) == commands
    assert all(inspect.iscoroutinefunction(handler) for handler in HANDLERS.values())


def test_problem_responses_are_problem_json() -> None:
    declared = problem_responses(404, 412)
    assert set(declared) == {401, 403, 404, 412}
    assert PROBLEM_JSON in declared[412]["content"]
    assert declared[404]["content"][PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("12.50", Decimal("12.50")),
        ("7", Decimal(7)),
        (85.5, Decimal("85.5")),
        (0.5700000000000001, Decimal("0.57")),  # 57 * 0.01 in binary: the amount 0.57
        (10, Decimal(10)),
        ("1e2", None),
        (" 5", None),
        ("5.", None),
        (".5", None),
        ("10.005", None),
        (0.001, None),
        (456006150381.9386, None),
        (True, None),
    ],
)
def test_money_accepts_what_the_document_declares(value: Any, accepted: Decimal | None) -> None:
    if accepted is None:
        assert errors(NewActivity, {"title": "x", "price": value})[0][0] == ("price",)
    else:
        assert NewActivity.model_validate({"title": "x", "price": value}).price == accepted


@pytest.mark.parametrize(("value", "accepted"), [(3, 3), (3.0, 3), (3.5, None), ("3", None), (True, None)])
def test_integers_are_json_schema_integers(value: Any, accepted: int | None) -> None:
    if accepted is None:
        assert errors(NewItinerary, {"title": "x", "position": value})[0][0] == ("position",)
    else:
        assert NewItinerary.model_validate({"title": "x", "position": value}).position == accepted


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (NewTrip, "start_date", 0),
        (NewTrip, "start_date", "1700000000"),
        (NewTrip, "start_date", "2026-01-01T00:00:00"),
        (NewItinerary, "day", 1.5),
        (NewActivity, "starts_at", 1_700_000_000),
        (NewActivity, "starts_at", "1700000000.5"),
        (NewActivity, "ends_at", False),
    ],
)
def test_a_number_is_never_a_date_or_a_timestamp(model: type[BaseModel], field: str, value: Any) -> None:
    body = (BASE if model is NewTrip else {"title": "x"}) | {field: value}
    assert (field,) in [loc for loc, _ in errors(model, body)]


def test_patch_fields_that_cannot_be_cleared_are_documented_without_null() -> None:
    trip = TripPatch.model_json_schema()["properties"]
    assert trip["title"]["type"] == "string" and "default" not in trip["title"]
    assert {"type": "null"} in trip["description"]["anyOf"]  # clearable: null documented and accepted
    assert ProfilePatch.model_json_schema()["properties"]["preferences"]["$ref"].endswith("PreferencesPatch")


def test_python_callers_may_pass_parsed_dates() -> None:
    trip = NewTrip.model_validate(BASE | {"start_date": date(2026, 1, 1)})
    assert trip.start_date == date(2026, 1, 1)


def test_drop_null_branch_keeps_every_other_branch() -> None:
    schema: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}], "default": None}
    drop_null_branch(schema)
    assert schema == {"anyOf": [{"type": "string"}, {"type": "number"}]}
