"""Handler of `UpdateProfile`: the caller's display name and travel preferences (partial merge).

A profile change never touches a trip's version; the change feed triggers record a display name or
preferences change so every TripView showing this person is rebuilt.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, select, true, update
from sqlalchemy.dialects.postgresql import insert

from commands.messages import UpdateProfile
from commands.records import ProfileRecord
from commands.unit import XID, UnitOfWork, Written, changed_fields
from core.errors import not_found
from core.schema import Profile, UserPreferences

profiles: Table = Profile.__table__  # type: ignore[assignment]
preferences: Table = UserPreferences.__table__  # type: ignore[assignment]
PROFILE_FIELDS = ("id", "email", "display_name", "created_at", "updated_at")
PREFERENCE_FIELDS = ("currency", "home_airport", "travel_style", "dietary_restrictions", "accessibility_needs")
LIST_FIELDS = frozenset({"dietary_restrictions", "accessibility_needs"})


def current_profile(user_id: Any) -> Any:
    """The caller's profile and preferences, the profile row locked (partial merges do not interleave)."""
    return (
        select(
            *(profiles.c[name] for name in PROFILE_FIELDS), *(preferences.c[name] for name in PREFERENCE_FIELDS), XID
        )
        .select_from(profiles.outerjoin(preferences, preferences.c.user_id == profiles.c.id))
        .where(profiles.c.id == user_id)
        .with_for_update(of=profiles)
    )


def profile_record(row: dict[str, Any]) -> ProfileRecord:
    """Shape a flat profile + preferences row as the response (lists never null)."""
    prefs = {name: row.get(name) for name in PREFERENCE_FIELDS}
    for name in LIST_FIELDS:
        prefs[name] = prefs[name] or []
    return ProfileRecord.model_validate({name: row[name] for name in PROFILE_FIELDS} | {"preferences": prefs})


async def update_profile(command: UpdateProfile, uow: UnitOfWork) -> Written[ProfileRecord]:
    """Lock the profile, merge the change, write only what differs (one statement); no change, no write."""
    row = (await uow.session.execute(current_profile(uow.user_id))).mappings().one_or_none()
    if row is None:
        raise not_found("profile")
    stored = dict(row)
    for name in LIST_FIELDS:
        stored[name] = stored[name] or []
    given = command.patch.model_dump(exclude_unset=True)
    name_change = changed_fields(stored, {k: v for k, v in given.items() if k == "display_name"})
    asked = {k: ([] if v is None and k in LIST_FIELDS else v) for k, v in given.get("preferences", {}).items()}
    pref_changes = changed_fields(stored, asked)
    if not name_change and not pref_changes:
        return Written(profile_record(stored), int(stored["xid"]), changed=False)
    written = (
        update(profiles)
        .where(profiles.c.id == uow.user_id)
        .values(**name_change, updated_at=func.now())
        .returning(*(profiles.c[name] for name in PROFILE_FIELDS))
        .cte("profile")
    )
    stmt = select(written)
    if pref_changes:
        upsert = insert(preferences).values(user_id=uow.user_id, **pref_changes)
        prefs = upsert.on_conflict_do_update(
            index_elements=[preferences.c.user_id], set_={**pref_changes, "updated_at": func.now()}
        ).returning(*(preferences.c[name] for name in PREFERENCE_FIELDS))
        prefs_cte = prefs.cte("prefs")
        stmt = select(written, prefs_cte).select_from(written.join(prefs_cte, true()))
    new = dict((await uow.session.execute(stmt)).mappings().one())
    return Written(profile_record(stored | new), int(stored["xid"]))
