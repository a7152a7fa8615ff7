"""Putting recordings into a patient's visit: the one entry point of ``steplab record --patient`` and ``import``.

:func:`check_target` validates the patient, visit and protocol before anything is
recorded; :func:`save_recording` reads and analyses a file (with the visit's body
mass and the protocol's parameters) and saves it in one transaction, making
today's visit in that same transaction when none is given and none exists, so a
failed import leaves no empty visit behind.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from steplab.records.analysis import Analysed, analyse_file
from steplab.records.db import Database
from steplab.records.models import Visit, utcnow
from steplab.records.patients import RecordsError, check_pain, patient_by_code
from steplab.records.protocols import analysis_params, check_protocol
from steplab.records.trials import SavedTrial, get_protocol_readonly, save_analysed


@dataclass(frozen=True)
class Target:
    """Where a recording goes: the patient, an explicit visit or None (today's, made if missing)."""

    patient: str
    protocol: str
    visit_id: int | None = None
    lead: str | None = None
    pain_during: float | None = None
    quality_score: int | None = None


def check_target(db: Database, target: Target) -> None:
    """Raise RecordsError (one line) when the target cannot take a trial; reads only."""
    try:
        check_protocol(target.protocol)
    except ValueError as exc:
        raise RecordsError(str(exc)) from None
    if target.lead not in (None, "left", "right"):
        raise RecordsError(f"--lead must be left or right, got {target.lead!r}")
    check_pain(target.pain_during, "--pain")
    if target.quality_score is not None and not 0 <= target.quality_score <= 6:
        raise RecordsError(f"--quality-score must be 0-6 (lateral step-down score), got {target.quality_score}")
    with db.read() as s:
        p = patient_by_code(s, target.patient)
        if target.visit_id is not None:
            v = s.get(Visit, target.visit_id)
            if v is None or v.patient_id != p.id:
                raise RecordsError(f"patient {target.patient} has no visit {target.visit_id}")


def _visit_for(db: Database, target: Target) -> tuple[int | None, float | None]:
    """(visit id or None when today's is still to be made, its body mass)."""
    with db.read() as s:
        p = patient_by_code(s, target.patient)
        if target.visit_id is not None:
            v = s.get(Visit, target.visit_id)
            if v is None or v.patient_id != p.id:
                raise RecordsError(f"patient {target.patient} has no visit {target.visit_id}")
            return v.id, v.body_mass_kg
        v = s.scalars(select(Visit).where(Visit.patient_id == p.id, Visit.date == dt.date.today())
                      .order_by(Visit.id.desc())).first()
        return (v.id, v.body_mass_kg) if v else (None, None)


def save_analysed_to(db: Database, target: Target, analysed: Analysed, *, visit_id: int | None,
                     load_options: dict, allow_new_rig: bool, params) -> SavedTrial:
    if visit_id is not None:
        return save_analysed(db, visit_id, target.protocol, analysed, lead=target.lead, pain_during=target.pain_during,
                             quality_score=target.quality_score, load_options=load_options,
                             allow_new_rig=allow_new_rig, params=params)

    def make_visit(s) -> int:
        p = patient_by_code(s, target.patient)
        v = s.scalars(select(Visit).where(Visit.patient_id == p.id, Visit.date == dt.date.today())
                      .order_by(Visit.id.desc())).first()
        if v is None:
            v = Visit(patient_id=p.id, date=dt.date.today(), created_at=utcnow())
            s.add(v)
            s.flush()
        return v.id

    return save_analysed(db, make_visit, target.protocol, analysed, lead=target.lead, pain_during=target.pain_during,
                         quality_score=target.quality_score, load_options=load_options, allow_new_rig=allow_new_rig,
                         params=params)


def save_recording(db: Database, path: str | Path, target: Target, *, rate_hz: float | None = None,
                   plates: str | None = None, allow_new_rig: bool = False) -> SavedTrial:
    """Read, analyse and save one recording into the target visit: all or nothing."""
    check_target(db, target)
    visit_id, mass = _visit_for(db, target)
    with db.read() as s:
        params = analysis_params(get_protocol_readonly(s, target.protocol))
    analysed = analyse_file(path, target.protocol, lead=target.lead, rate_hz=rate_hz, plates=plates,
                            body_mass_kg=mass, params=params)
    return save_analysed_to(db, target, analysed, visit_id=visit_id, allow_new_rig=allow_new_rig, params=params,
                            load_options={"rate_hz": rate_hz, "plates": plates, "lead": target.lead})
