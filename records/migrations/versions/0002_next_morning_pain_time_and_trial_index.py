"""When the next-morning pain was entered (it is entered a day later), and an index for a visit's trials.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("visits") as batch:
        batch.add_column(sa.Column("pain_next_morning_at", sa.DateTime, nullable=True))
    op.create_index("ix_trials_visit_id", "trials", ["visit_id"])


def downgrade() -> None:
    op.drop_index("ix_trials_visit_id", table_name="trials")
    with op.batch_alter_table("visits") as batch:
        batch.drop_column("pain_next_morning_at")
