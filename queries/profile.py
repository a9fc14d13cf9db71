"""The caller's profile: one statement that returns the response body as JSON text (on the primary)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text

from core.deps import ContextDep, CurrentUser
from core.errors import not_found
from core.openapi import problem_responses
from queries.plumbing import consistency_headers, read_transaction
from queries.views import FRESHNESS_HEADER_DOC, ConsistencyToken, ProfileView

router = APIRouter(tags=["profile"])

PROFILE_STATEMENT = text(
    """
    SELECT json_build_object(
      'id', p.id,
      'email', p.email,
      'display_name', p.display_name,
      'preferences', json_build_object(
        'currency', u.currency,
        'home_airport', u.home_airport,
        'travel_style', u.travel_style,
        'dietary_restrictions', coalesce(u.dietary_restrictions, '{}'::text[]),
        'accessibility_needs', coalesce(u.accessibility_needs, '{}'::text[])
      ),
      'created_at', to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
      'updated_at', to_char(p.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    )::text
    FROM profiles p
    LEFT JOIN user_preferences u ON u.user_id = p.id
    WHERE p.id = :user_id
    """
)
"""The profile with all five preference keys (null / [] when unset) and UTC timestamps, built in SQL
in the same form `PATCH /api/users/me` answers (which touches `profiles.updated_at` on any change)."""


@router.get(
    "/users/me",
    response_model=ProfileView,
    summary="Get my profile",
    responses={200: {"headers": FRESHNESS_HEADER_DOC}, **problem_responses(422)},
)
async def get_me(ctx: ContextDep, user: CurrentUser, x_consistency_token: ConsistencyToken = None) -> Response:
    """Your profile and travel preferences."""
    headers = await consistency_headers(ctx, x_consistency_token)
    # The primary, not a replica: a first request provisions the profile there in this very request
    # (CurrentUser), and a rename is read back right after it; a replica may not have either yet.
    async with read_transaction(ctx.db.engine, user, ctx.db.timeouts) as conn:
        body = (await conn.execute(PROFILE_STATEMENT, {"user_id": user.user_id})).scalar()
    if body is None:  # pragma: no cover  # provisioned by CurrentUser; only a concurrent delete gets here
        raise not_found("profile")
    return Response(body.encode(), media_type="application/json", headers=headers)
