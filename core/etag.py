"""Trip ETags: `"<version>"` from commands, `"<version>-<digest>"` from queries.

A query's ETag changes whenever its document does (a rename changes the digest, not the version);
`If-Match` on a command compares only the version part, so it accepts either form.
"""

from __future__ import annotations

NEVER_MATCHES = -1
"""The version an `If-Match` that is not an ETag of this service demands: no trip ever has it."""


def command_etag(version: int) -> str:
    """The ETag a command response carries."""
    return f'"{version}"'


def view_etag(version: int, digest: str) -> str:
    """The ETag of a TripView: version and a digest of the document bytes."""
    return f'"{version}-{digest}"'


def parse_if_match(header: str | None) -> int | None:
    """The trip version an `If-Match` header demands, or None when absent or `*`.

    A header that is not an ETag this service issued (empty, garbage) cannot match any trip: it
    demands `NEVER_MATCHES`, so the command answers 412 where it compares versions, after the
    body was validated (422) and the trip found (404) and allowed (403), never before.

    Args:
        header: The raw header value.

    Returns:
        The version, `NEVER_MATCHES`, or None.
    """
    if header is None:
        return None
    value = header.strip()
    if value == "*":
        return None
    value = value.removeprefix("W/").strip().strip('"')
    head = value.split("-", 1)[0]
    if not (head.isascii() and head.isdigit()) or len(head) > 18:
        return NEVER_MATCHES
    return int(head)
