"""The records data model (SQLAlchemy 2, typed ORM).  The schema itself is made by the migrations.

Tables
------
users             admins and clinicians; password hashes only.
patients          the pseudonymous code and non-identifying facts (involved limb, year of birth, height).
patient_identities  name and date of birth, optional, in their own table (never joined unless asked).
visits            one visit of a patient: date, body mass, pain (NRS 0–10) before / after / next morning.
protocols         versioned protocol templates with their analysis parameters.
rigs              the rig descriptions trials were recorded on (by content hash).
raw_recordings    the raw recording bytes, lossless and immutable, keyed by their SHA-256.
trials            one trial: protocol version, lead limb, pain, movement-quality score, raw recording,
                  rig and calibration ids, data quality, accepted/rejected.  Never deleted.
results           one analysis of a trial; re-analysis adds a version, never overwrites.
reps              per-rep metrics of a result.
audit_log         exports, identified exports, result changes, user changes (no patient names).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

LIMBS = ("left", "right")
INVOLVED = ("left", "right", "none")
ROLES = ("admin", "clinician")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    #: a one-time password (first run, reset by an admin): a new one is chosen at the next login (migration 0003)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (CheckConstraint("role IN ('admin', 'clinician')", name="ck_users_role"),)


class Patient(Base):
    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    involved: Mapped[str | None] = mapped_column(String(8))
    birth_year: Mapped[int | None] = mapped_column(Integer)
    height_cm: Mapped[float | None] = mapped_column(Float)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    visits: Mapped[list[Visit]] = relationship(back_populates="patient", order_by="Visit.date, Visit.id")
    __table_args__ = (CheckConstraint("involved IS NULL OR involved IN ('left', 'right', 'none')",
                                      name="ck_patients_involved"),)


class PatientIdentity(Base):
    """Identifying fields, kept apart: read only for identified exports and ``--identified`` views."""

    __tablename__ = "patient_identities"
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)


class Visit(Base):
    __tablename__ = "visits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    date: Mapped[dt.date] = mapped_column(Date)
    body_mass_kg: Mapped[float | None] = mapped_column(Float)
    pain_before: Mapped[float | None] = mapped_column(Float)
    pain_after: Mapped[float | None] = mapped_column(Float)
    pain_next_morning: Mapped[float | None] = mapped_column(Float)
    #: when the next-morning pain was entered (migration 0002)
    pain_next_morning_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    battery: Mapped[list[Any] | None] = mapped_column(JSON)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    patient: Mapped[Patient] = relationship(back_populates="visits")
    trials: Mapped[list[Trial]] = relationship(back_populates="visit", order_by="Trial.id")
    __table_args__ = tuple(
        CheckConstraint(f"{c} IS NULL OR ({c} >= 0 AND {c} <= 10)", name=f"ck_visits_{c}")
        for c in ("pain_before", "pain_after", "pain_next_morning"))


class Protocol(Base):
    __tablename__ = "protocols"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    version: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(120))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("name", "version", name="uq_protocols_name_version"),)


class RigRecord(Base):
    __tablename__ = "rigs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rig_hash: Mapped[str] = mapped_column(String(64), unique=True)
    serial: Mapped[str] = mapped_column(String(80), index=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class RawRecording(Base):
    """A recording exactly as received (trial file, C3D, CSV bytes); immutable, named by SHA-256."""

    __tablename__ = "raw_recordings"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_format: Mapped[str] = mapped_column(String(20))
    suffix: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Trial(Base):
    __tablename__ = "trials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), index=True)  # index: migration 0002
    protocol_id: Mapped[int] = mapped_column(ForeignKey("protocols.id"))
    lead: Mapped[str | None] = mapped_column(String(8))
    pain_during: Mapped[float | None] = mapped_column(Float)
    quality_score: Mapped[int | None] = mapped_column(Integer)
    raw_sha256: Mapped[str] = mapped_column(ForeignKey("raw_recordings.sha256"))
    rig_id: Mapped[int | None] = mapped_column(ForeignKey("rigs.id"))
    calibration_id: Mapped[str | None] = mapped_column(String(120))
    data_quality: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: how the raw recording is read (plates, rate of a CSV): replayed by re-analysis
    load_options: Mapped[dict[str, Any]] = mapped_column(JSON)
    accepted: Mapped[bool] = mapped_column(Boolean, default=True)
    reject_reason: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    visit: Mapped[Visit] = relationship(back_populates="trials")
    protocol: Mapped[Protocol] = relationship()
    raw: Mapped[RawRecording] = relationship()
    rig: Mapped[RigRecord | None] = relationship()
    results: Mapped[list[Result]] = relationship(back_populates="trial", order_by="Result.version")
    __table_args__ = (
        CheckConstraint("lead IS NULL OR lead IN ('left', 'right')", name="ck_trials_lead"),
        CheckConstraint("pain_during IS NULL OR (pain_during >= 0 AND pain_during <= 10)", name="ck_trials_pain"),
        CheckConstraint("quality_score IS NULL OR (quality_score >= 0 AND quality_score <= 6)",
                        name="ck_trials_quality_score"),
        CheckConstraint("accepted OR reject_reason IS NOT NULL", name="ck_trials_reject_reason"),
    )


class Result(Base):
    """One analysis of a trial (version 1, 2, …): parameters, software version and provenance."""

    __tablename__ = "results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"))
    version: Mapped[int] = mapped_column(Integer)
    protocol_version: Mapped[str] = mapped_column(String(20))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    software_version: Mapped[str] = mapped_column(String(40))
    sample_rate_hz: Mapped[float] = mapped_column(Float)
    body_weight_n: Mapped[float | None] = mapped_column(Float)
    body_mass_kg: Mapped[float | None] = mapped_column(Float)
    flags: Mapped[list[Any]] = mapped_column(JSON)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    trial: Mapped[Trial] = relationship(back_populates="results")
    reps: Mapped[list[Rep]] = relationship(back_populates="result", order_by="Rep.rep_index")
    __table_args__ = (UniqueConstraint("trial_id", "version", name="uq_results_trial_version"),)


class Rep(Base):
    __tablename__ = "reps"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id"), index=True)
    rep_index: Mapped[int] = mapped_column(Integer)
    lead: Mapped[str | None] = mapped_column(String(8))
    t_onset_s: Mapped[float | None] = mapped_column(Float)
    t_contact_s: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    flags: Mapped[list[Any]] = mapped_column(JSON)
    #: the reviewer's decision on this rep of this result version (migration 0003); summaries count accepted reps
    accepted: Mapped[bool] = mapped_column(Boolean, default=True)
    reject_reason: Mapped[str | None] = mapped_column(Text)
    result: Mapped[Result] = relationship(back_populates="reps")


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str | None] = mapped_column(String(120))
    identified: Mapped[bool] = mapped_column(Boolean, default=False)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
