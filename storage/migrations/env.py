"""Alembic environment: the app's metadata, the connection handed over by ``storage.migrate``."""

from __future__ import annotations

from alembic import context

from storage.models import Base

connection = context.config.attributes.get("connection")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=False)
with context.begin_transaction():
    context.run_migrations()
