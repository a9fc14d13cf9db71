"""Trip ETags: `"<version>"` from commands, `"<version>-<digest>"` from queries.

A query's ETag changes whenever its document does (a rename changes the digest, not the version);
`If-Match` on a command compares only the version part, so it accepts either form.
"""

from __future__ import annotations

from core.errors import ApiError


def command_etag(version: int) -> str:
    """The ETag a command response carries."""
    return f'"{version}"'


def view_etag(version: int, digest: str) -> str:
    """The ETag of a TripView: version and a digest of the document bytes."""
    return f'"{version}-{digest}"'


def parse_if_match(header: str | None) -> int | None:
    """The trip version an `If-Match` header demands, or None when absent or `*`.

    Args:
        header: The raw header value.

    Returns:
        The version, or None.

    Raises:
        ApiError: 412 when the header is not an ETag this service issued (it cannot match).
    """
    if header is None:
        return None
    value = header.strip()
    if value == "*":
        return None
    value = value.removeprefix("W/").strip().strip('"')
    head = value.split("-", 1)[0]
    if not (head.isascii() and head.isdigit()) or len(head) > 18:
        raise ApiError(412, "If-Match does not match the current version")
    return int(head)
