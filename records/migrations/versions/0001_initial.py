"""The first schema: users, patients (+ identities apart), visits, protocols, rigs, raw recordings,
trials, result versions, reps and the audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(80), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.CheckConstraint("role IN ('admin', 'clinician')", name="ck_users_role"),
    )
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("involved", sa.String(8)),
        sa.Column("birth_year", sa.Integer),
        sa.Column("height_cm", sa.Float),
        sa.Column("notes", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.CheckConstraint("involved IS NULL OR involved IN ('left', 'right', 'none')", name="ck_patients_involved"),
    )
    op.create_table(
        "patient_identities",
        sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), primary_key=True),
        sa.Column("name", sa.String(200)),
        sa.Column("birth_date", sa.Date),
    )
    op.create_table(
        "visits",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=False, index=True),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("body_mass_kg", sa.Float),
        sa.Column("pain_before", sa.Float),
        sa.Column("pain_after", sa.Float),
        sa.Column("pain_next_morning", sa.Float),
        sa.Column("battery", sa.JSON),
        sa.Column("notes", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
        *[sa.CheckConstraint(f"{c} IS NULL OR ({c} >= 0 AND {c} <= 10)", name=f"ck_visits_{c}")
          for c in ("pain_before", "pain_after", "pain_next_morning")],
    )
    op.create_table(
        "protocols",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("version", sa.String(20), nullable=False),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_protocols_name_version"),
    )
    op.create_table(
        "rigs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("rig_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("serial", sa.String(80), nullable=False, index=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("description", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "raw_recordings",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("source_format", sa.String(20), nullable=False),
        sa.Column("suffix", sa.String(16), nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "trials",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("visit_id", sa.Integer, sa.ForeignKey("visits.id"), nullable=False),
        sa.Column("protocol_id", sa.Integer, sa.ForeignKey("protocols.id"), nullable=False),
        sa.Column("lead", sa.String(8)),
        sa.Column("pain_during", sa.Float),
        sa.Column("quality_score", sa.Integer),
        sa.Column("raw_sha256", sa.String(64), sa.ForeignKey("raw_recordings.sha256"), nullable=False),
        sa.Column("rig_id", sa.Integer, sa.ForeignKey("rigs.id")),
        sa.Column("calibration_id", sa.String(120)),
        sa.Column("data_quality", sa.JSON, nullable=False),
        sa.Column("load_options", sa.JSON, nullable=False),
        sa.Column("accepted", sa.Boolean, nullable=False),
        sa.Column("reject_reason", sa.Text),
        sa.Column("recorded_at", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.CheckConstraint("lead IS NULL OR lead IN ('left', 'right')", name="ck_trials_lead"),
        sa.CheckConstraint("pain_during IS NULL OR (pain_during >= 0 AND pain_during <= 10)", name="ck_trials_pain"),
        sa.CheckConstraint("quality_score IS NULL OR (quality_score >= 0 AND quality_score <= 6)",
                           name="ck_trials_quality_score"),
        sa.CheckConstraint("accepted OR reject_reason IS NOT NULL", name="ck_trials_reject_reason"),
    )
    op.create_table(
        "results",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("trial_id", sa.Integer, sa.ForeignKey("trials.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("protocol_version", sa.String(20), nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("software_version", sa.String(40), nullable=False),
        sa.Column("sample_rate_hz", sa.Float, nullable=False),
        sa.Column("body_weight_n", sa.Float),
        sa.Column("body_mass_kg", sa.Float),
        sa.Column("flags", sa.JSON, nullable=False),
        sa.Column("provenance", sa.JSON, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("trial_id", "version", name="uq_results_trial_version"),
    )
    op.create_table(
        "reps",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("result_id", sa.Integer, sa.ForeignKey("results.id"), nullable=False, index=True),
        sa.Column("rep_index", sa.Integer, nullable=False),
        sa.Column("lead", sa.String(8)),
        sa.Column("t_onset_s", sa.Float),
        sa.Column("t_contact_s", sa.Float),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("flags", sa.JSON, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(120)),
        sa.Column("identified", sa.Boolean, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    for table in ("audit_log", "reps", "results", "trials", "raw_recordings", "rigs", "protocols", "visits",
                  "patient_identities", "patients", "users"):
        op.drop_table(table)
