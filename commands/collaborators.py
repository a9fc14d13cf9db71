"""Handlers of sharing: share a trip (or change a permission), stop sharing, leave a trip.

Owners and admins manage collaborators; any collaborator may remove themself. The owner is never
a collaborator. A collaborator must be an existing profile: the foreign key check bypasses the
profiles' RLS, so an unknown user is told apart (404) without reading other people's profiles.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, text, update

from commands.access import MANAGERS, MEMBERS, Child, claim_trip, collaborators, forbidden, write_under_trip
from commands.messages import InviteCollaborator, ShareTrip, UnshareTrip
from commands.records import CollaboratorRecord
from commands.unit import UnitOfWork, Written
from core.errors import ApiError, not_found

LEAVE_TRIP = text("SELECT tripsage.leave_trip(:trip_id)")
"""A collaborator leaves: their row goes and the trip's version rises, in one SECURITY DEFINER call.

A `view` collaborator may delete their own row (RLS allows it) but may not write the trip row; the
function does both for the caller (`auth.uid()`) only, so the request never leaves its role."""


def _collaborator(command: ShareTrip | UnshareTrip, *, sharing: bool) -> Child:
    # Never required by the claim: sharing may create the row, and removing decides between 403
    # and 404 itself. Removing takes no row lock (the trip's serialises sharing): an `edit`
    # collaborator leaving could not, as FOR UPDATE applies the UPDATE policy (owners and admins).
    return Child(collaborators, {"user_id": command.user_id}, "collaborator", lock=sharing, required=False)


async def share_trip(command: ShareTrip, uow: UnitOfWork) -> Written[CollaboratorRecord]:
    """Add a collaborator or change their permission (owner/admin); the same permission again is a no-op."""
    claim = await claim_trip(
        uow, command, allowed=MANAGERS, action="managing collaborators", child=_collaborator(command, sharing=True)
    )
    assert claim.trip is not None
    if command.user_id == claim.trip["owner_id"]:
        raise ApiError(
            422,
            "the request is invalid",
            errors=[{"loc": ["path", "user_id"], "msg": "the trip's owner cannot be added as a collaborator"}],
        )
    stored = claim.child
    if stored is not None and stored["permission"] == command.permission:
        record = CollaboratorRecord.model_validate(stored | {"trip_version": claim.trip["version"]})
        return Written(record, claim.xid, changed=False)
    if stored is None:
        dml: Any = insert(collaborators).values(
            trip_id=command.trip_id, user_id=command.user_id, permission=command.permission
        )
    else:
        dml = (
            update(collaborators)
            .where(collaborators.c.trip_id == command.trip_id, collaborators.c.user_id == command.user_id)
            .values(permission=command.permission, updated_at=func.now())
        )
    # An unknown user fails the foreign key check (23503), which core.errors answers with 404.
    row = await write_under_trip(uow, command.trip_id, dml.returning(*collaborators.c).cte("written"))
    return Written(CollaboratorRecord.model_validate(row), claim.xid)


COLLABORATOR_BY_EMAIL = text("SELECT tripsage.collaborator_by_email(:trip_id, :email)")
"""The profile id of an email, for a caller who may manage the trip's collaborators (else NULL)."""


async def invite_collaborator(command: InviteCollaborator, uow: UnitOfWork) -> Written[CollaboratorRecord]:
    """Share a trip with the profile of an email: the same as `share_trip` once the user is found."""
    user_id = await uow.session.scalar(COLLABORATOR_BY_EMAIL, {"trip_id": command.trip_id, "email": command.email})
    if user_id is None:
        # Not found, or not the caller's to manage: the claim answers 404/403 for the trip itself.
        await claim_trip(uow, command, allowed=MANAGERS, action="managing collaborators")
        raise not_found("user with this email")
    share = ShareTrip(
        trip_id=command.trip_id,
        user_id=user_id,
        permission=command.permission,
        expected_version=command.expected_version,
    )
    return await share_trip(share, uow)


async def unshare_trip(command: UnshareTrip, uow: UnitOfWork) -> Written[None]:
    """Remove a collaborator (owner/admin), or leave a trip shared with you (any collaborator)."""
    claim = await claim_trip(
        uow, command, allowed=MEMBERS, action="managing collaborators", child=_collaborator(command, sharing=False)
    )
    leaving = command.user_id == uow.user_id
    if claim.permission not in MANAGERS and not leaving:
        raise forbidden("managing collaborators")
    if claim.trip is None:
        await leave_as_viewer(command, uow)
        return Written(None, claim.xid)
    if claim.child is None:
        raise not_found("collaborator")
    written = delete(collaborators).where(
        collaborators.c.trip_id == command.trip_id, collaborators.c.user_id == command.user_id
    )
    await write_under_trip(uow, command.trip_id, written.returning(collaborators.c.user_id).cte("written"))
    return Written(None, claim.xid)


async def leave_as_viewer(command: UnshareTrip, uow: UnitOfWork) -> None:
    """A `view` collaborator leaves: `tripsage.leave_trip` removes their row and bumps the version.

    Raises:
        ApiError: 404 when the caller is not a collaborator; 412 when `If-Match` is stale (the
            transaction then rolls back, undoing the removal).
    """
    version = (await uow.session.execute(LEAVE_TRIP, {"trip_id": command.trip_id})).scalar_one_or_none()
    if version is None:
        raise not_found("collaborator")
    if command.expected_version is not None and version - 1 != command.expected_version:
        raise ApiError(412, "If-Match does not match the current version")
