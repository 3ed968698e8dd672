"""The app's one clock: timezone-aware UTC, the same the database stores (pages take it from here, not from
``storage``)."""

from __future__ import annotations

from storage.models import utcnow

__all__ = ["utcnow"]
