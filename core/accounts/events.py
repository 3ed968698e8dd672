"""The audit log: every change records who made it and when."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from storage.models import Event


def log_event(session: Session, kind: str, project_id: int | None = None, user_id: int | None = None,
              **payload: Any) -> None:
    """Append one event to the log inside the caller's transaction."""
    session.add(Event(kind=kind, project_id=project_id, user_id=user_id, payload=payload))
