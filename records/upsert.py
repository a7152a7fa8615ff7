"""INSERT … ON CONFLICT DO NOTHING for SQLite and PostgreSQL (rows that two writers may both make)."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from steplab.records.models import utcnow


def insert_ignore(session: Session, model, values: dict, conflict_columns: tuple[str, ...]) -> None:
    """Insert one row unless a row with the same ``conflict_columns`` exists (then nothing)."""
    values = dict(values)
    if "created_at" in model.__table__.c and "created_at" not in values:
        values["created_at"] = utcnow()
    name = session.get_bind().dialect.name
    dialect_insert = postgresql.insert if name == "postgresql" else sqlite.insert
    stmt = dialect_insert(model.__table__).values(**values).on_conflict_do_nothing(index_elements=list(conflict_columns))
    session.execute(stmt)
