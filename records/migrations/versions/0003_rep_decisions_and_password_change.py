"""A reviewer's decision on each rep (accepted, or rejected with a reason), and users who must choose a
new password at their next login (the first-run admin's one-time password, a reset by an admin).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reps") as batch:
        batch.add_column(sa.Column("accepted", sa.Boolean, nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("reject_reason", sa.Text, nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("must_change_password", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("must_change_password")
    with op.batch_alter_table("reps") as batch:
        batch.drop_column("reject_reason")
        batch.drop_column("accepted")
