"""Where `projections.rebuild.state` lived before the rebuild got a package of its own.

Kept only because the landed migration 0005 imports `definition_version` from here, and landed
migrations are never edited. New code imports `projections.rebuild.state`.
"""

from __future__ import annotations

from projections.rebuild.state import definition_version

__all__ = ["definition_version"]
