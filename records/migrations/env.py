"""Alembic environment: runs on the connection steplab hands over (``records.migrate``)."""

from __future__ import annotations

from alembic import context

from steplab.records.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
