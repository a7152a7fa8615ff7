"""Patients and visits: adding, editing, finding and listing them.

The identifying fields (name, date of birth) live in ``patient_identities`` and
are read only by :func:`identity`; nothing here logs them.
"""

from __future__ import annotations

import datetime as dt
import math
import re

from sqlalchemy import func, or_, select
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


#: The longest note kept with a patient [characters].
NOTES_MAX_CHARS = 4000


def _check_facts(involved: str | None, birth_year: int | None, height_cm: float | None) -> None:
    if involved is not None and involved not in INVOLVED:
        raise RecordsError(f"--involved must be left, right or none, got {involved!r}")
    this_year = dt.date.today().year
    if birth_year is not None and not 1900 <= birth_year <= this_year:
        raise RecordsError(f"--birth-year must be between 1900 and {this_year}, got {birth_year}")
    if height_cm is not None and not (math.isfinite(height_cm) and 40 <= height_cm <= 260):
        raise RecordsError(f"--height must be between 40 and 260 cm, got {height_cm:g}")


def add_patient(db: Database, code: str, *, involved: str | None = None, birth_year: int | None = None,
                height_cm: float | None = None, notes: str | None = None, name: str | None = None,
                birth_date: dt.date | None = None, actor: str | None = None) -> int:
    """Add a patient; returns its id.  With ``actor`` the addition is written to the audit log (code only)."""
    if not CODE_RE.match(code or ""):
        raise RecordsError(f"patient code {code!r} must be 1-64 letters, digits or . _ -")
    _check_facts(involved, birth_year, height_cm)
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
        if actor is not None:
            from steplab.records.audit import add_entry

            add_entry(s, actor, "patient-add", f"patient {code}",
                      detail={"involved": involved, "birth_year": birth_year, "height_cm": height_cm})
        return p.id

    try:
        return db.write(work)
    except IntegrityError:
        raise RecordsError(f"there is already a patient {code}") from None


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


#: The default of :func:`update_patient`'s fields: leave the field as it is (None clears it).
UNCHANGED: object = _Unchanged()


def update_patient(db: Database, code: str, *, involved: object = UNCHANGED, birth_year: object = UNCHANGED,
                   height_cm: object = UNCHANGED, notes: object = UNCHANGED, actor: str | None = None) -> list[str]:
    """Change a patient's involved limb, year of birth, height [cm] or notes; returns the names of changed fields.

    A field left ``UNCHANGED`` is kept, ``None`` clears it.  All checks pass before anything is written
    (bad input changes nothing).  A change is written to the audit log with ``actor`` (the new values of the
    facts; for the notes only that they changed, as notes are free text).
    """
    new: dict[str, object] = {k: v for k, v in (("involved", involved), ("birth_year", birth_year),
                                                 ("height_cm", height_cm), ("notes", notes)) if v is not UNCHANGED}
    by = new.get("birth_year")
    if by is not None and (isinstance(by, bool) or not isinstance(by, int | float) or float(by) != int(by)):
        raise RecordsError(f"--birth-year must be a whole year, got {by!r}")
    if by is not None:
        new["birth_year"] = int(by)  # type: ignore[call-overload]
    h = new.get("height_cm")
    if h is not None and (isinstance(h, bool) or not isinstance(h, int | float)):
        raise RecordsError(f"--height must be a number of cm, got {h!r}")
    if h is not None:
        new["height_cm"] = float(h)  # type: ignore[arg-type]
    inv = new.get("involved")
    if inv is not None and not isinstance(inv, str):
        raise RecordsError(f"--involved must be left, right or none, got {inv!r}")
    _check_facts(inv, new.get("birth_year"), new.get("height_cm"))  # type: ignore[arg-type]
    if "notes" in new:
        text = new["notes"]
        if text is not None and not isinstance(text, str):
            raise RecordsError("notes must be text")
        text = (text or "").strip() or None
        if text is not None and len(text) > NOTES_MAX_CHARS:
            raise RecordsError(f"notes must be at most {NOTES_MAX_CHARS} characters, got {len(text)}")
        new["notes"] = text

    def work(s: Session) -> list[str]:
        p = patient_by_code(s, code)
        changed = [k for k, v in new.items() if getattr(p, k) != v]
        for k in changed:
            setattr(p, k, new[k])
        if changed and actor is not None:
            from steplab.records.audit import add_entry

            add_entry(s, actor, "patient-edit", f"patient {p.code}",
                      detail={k: ("changed" if k == "notes" else new[k]) for k in changed})
        return changed

    return db.write(work)


def search(s: Session, text: str | None = None, *, limit: int | None = None) -> list[dict]:
    """Patients whose code or notes contain ``text`` (any case; every patient when empty), by code.

    Each: code, involved limb, year of birth, height [cm], number of visits, last visit date (ISO) or None.
    One query (visits counted in a grouped subquery); names are never read.
    """
    counts = (select(Visit.patient_id, func.count(Visit.id).label("n"), func.max(Visit.date).label("last"))
              .group_by(Visit.patient_id).subquery())
    q = (select(Patient.code, Patient.involved, Patient.birth_year, Patient.height_cm, counts.c.n, counts.c.last)
         .outerjoin(counts, counts.c.patient_id == Patient.id).order_by(Patient.code))
    needle = (text or "").strip().lower()
    if needle:
        like = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        q = q.where(or_(func.lower(Patient.code).like(like, escape="\\"),
                        func.lower(func.coalesce(Patient.notes, "")).like(like, escape="\\")))
    if limit is not None:
        q = q.limit(limit)
    return [{"code": code, "involved": involved, "birth_year": by, "height_cm": height, "visits": int(n or 0),
             "last_visit": last.isoformat() if last else None}
            for code, involved, by, height, n, last in s.execute(q)]


def patient_facts(s: Session, code: str) -> dict:
    """A patient's pseudonymous facts: code, involved limb, year of birth, height [cm], notes (no name)."""
    p = patient_by_code(s, code)
    return {"code": p.code, "involved": p.involved, "birth_year": p.birth_year, "height_cm": p.height_cm,
            "notes": p.notes}


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
             before: float | None = None, actor: str | None = None) -> None:
    """Enter the pain after the visit and/or the next morning (0-10 NRS); the time of entry is kept.

    Audited (``pain``, with the old and new values) when ``actor`` is given.
    """
    check_pain(before, "--before")
    check_pain(after, "--after")
    check_pain(next_morning, "--next-morning")

    def work(s: Session) -> None:
        v = s.get(Visit, visit_id)
        if v is None:
            raise RecordsError(f"there is no visit {visit_id}")
        detail: dict = {}
        if before is not None:
            detail["before"] = [v.pain_before, before]
            v.pain_before = before
        if after is not None:
            detail["after"] = [v.pain_after, after]
            v.pain_after = after
        if next_morning is not None:
            detail["next_morning"] = [v.pain_next_morning, next_morning]
            v.pain_next_morning = next_morning
            v.pain_next_morning_at = utcnow()
        if actor is not None and detail:
            from steplab.records.audit import add_entry

            add_entry(s, actor, "pain", f"visit {visit_id}", detail=detail)

    db.write(work)
