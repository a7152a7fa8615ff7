"""Patients and visits: adding, finding and listing them.

The identifying fields (name, date of birth) live in ``patient_identities`` and
are read only by :func:`identity`; nothing here logs them.
"""

from __future__ import annotations

import datetime as dt
import math
import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from steplab.records.db import Database
from steplab.records.models import INVOLVED, Patient, PatientIdentity, Visit, utcnow
from steplab.records.protocols import check_protocol

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class RecordsError(ValueError):
    """Bad input for the records (unknown patient, bad value…): one line."""


def check_pain(value: float | None, what: str) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or not 0 <= value <= 10:
        raise RecordsError(f"{what} must be on the 0-10 numeric rating scale, got {value:g}")
    return float(value)


def add_patient(db: Database, code: str, *, involved: str | None = None, birth_year: int | None = None,
                height_cm: float | None = None, notes: str | None = None, name: str | None = None,
                birth_date: dt.date | None = None) -> int:
    if not CODE_RE.match(code or ""):
        raise RecordsError(f"patient code {code!r} must be 1-64 letters, digits or . _ -")
    if involved is not None and involved not in INVOLVED:
        raise RecordsError(f"--involved must be left, right or none, got {involved!r}")
    this_year = dt.date.today().year
    if birth_year is not None and not 1900 <= birth_year <= this_year:
        raise RecordsError(f"--birth-year must be between 1900 and {this_year}, got {birth_year}")
    if height_cm is not None and not (math.isfinite(height_cm) and 40 <= height_cm <= 260):
        raise RecordsError(f"--height must be between 40 and 260 cm, got {height_cm:g}")
    if birth_date is not None:
        if birth_year is None:
            birth_year = birth_date.year
        elif birth_year != birth_date.year:
            raise RecordsError("--birth-year and the year of --birth-date differ")

    def work(s: Session) -> int:
        if s.scalars(select(Patient.id).where(Patient.code == code)).first() is not None:
            raise RecordsError(f"there is already a patient {code}")
        p = Patient(code=code, involved=involved, birth_year=birth_year, height_cm=height_cm, notes=notes,
                    created_at=utcnow())
        s.add(p)
        s.flush()
        if name or birth_date:
            s.add(PatientIdentity(patient_id=p.id, name=name, birth_date=birth_date))
        return p.id

    try:
        return db.write(work)
    except IntegrityError:
        raise RecordsError(f"there is already a patient {code}") from None


def patient_by_code(s: Session, code: str) -> Patient:
    p = s.scalars(select(Patient).where(Patient.code == code)).first()
    if p is None:
        raise RecordsError(f"there is no patient {code!r} (steplab patient add {code})")
    return p


def identity(s: Session, patient_id: int) -> PatientIdentity | None:
    return s.get(PatientIdentity, patient_id)


def add_visit(db: Database, code: str, *, date: dt.date | None = None, body_mass_kg: float | None = None,
              pain_before: float | None = None, battery: list[str] | None = None, notes: str | None = None) -> int:
    if body_mass_kg is not None and not (math.isfinite(body_mass_kg) and 5 <= body_mass_kg <= 500):
        raise RecordsError(f"--body-mass must be between 5 and 500 kg, got {body_mass_kg:g}")
    check_pain(pain_before, "--pain-before")
    for name in battery or []:
        try:
            check_protocol(name)
        except ValueError as exc:
            raise RecordsError(str(exc)) from None

    def work(s: Session) -> int:
        p = patient_by_code(s, code)
        v = Visit(patient_id=p.id, date=date or dt.date.today(), body_mass_kg=body_mass_kg, pain_before=pain_before,
                  battery=list(battery) if battery else None, notes=notes, created_at=utcnow())
        s.add(v)
        s.flush()
        return v.id

    return db.write(work)


def todays_visit(db: Database, code: str) -> int:
    """The patient's latest visit of today, made if missing."""
    today = dt.date.today()
    with db.read() as s:
        p = patient_by_code(s, code)
        vid = s.scalars(select(Visit.id).where(Visit.patient_id == p.id, Visit.date == today)
                        .order_by(Visit.id.desc())).first()
    if vid is not None:
        return vid
    return add_visit(db, code, date=today)


def visit_of_patient(db: Database, code: str, visit_id: int) -> int:
    """``visit_id`` after checking it is a visit of patient ``code``."""
    with db.read() as s:
        p = patient_by_code(s, code)
        v = s.get(Visit, visit_id)
        if v is None or v.patient_id != p.id:
            raise RecordsError(f"patient {code} has no visit {visit_id}")
    return visit_id


def set_pain(db: Database, visit_id: int, *, after: float | None = None, next_morning: float | None = None,
             before: float | None = None) -> None:
    """Enter the pain after the visit and/or the next morning (0-10 NRS); the time of entry is kept."""
    check_pain(before, "--before")
    check_pain(after, "--after")
    check_pain(next_morning, "--next-morning")

    def work(s: Session) -> None:
        v = s.get(Visit, visit_id)
        if v is None:
            raise RecordsError(f"there is no visit {visit_id}")
        if before is not None:
            v.pain_before = before
        if after is not None:
            v.pain_after = after
        if next_morning is not None:
            v.pain_next_morning = next_morning
            v.pain_next_morning_at = utcnow()

    db.write(work)
