"""The live session's records: the visit in progress, its trials and the weigh-in (a trial's scores: records.trials.set_scores).

What the dashboard's session page needs from the database, each change one
transaction with its audit entry (actor = the logged-in clinician):

- :func:`save_live_trial`: a recording made from the live view, analysed with the
  visit's body mass and the protocol's parameters, saved into the visit;
- :func:`set_visit_body_mass`: the weigh-in;
- :func:`visit_brief`, :func:`visit_trials`, :func:`patient_codes`: what the page shows.
"""

from __future__ import annotations

import math
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from steplab.records.analysis import analyse_file
from steplab.records.audit import add_entry
from steplab.records.db import Database
from steplab.records.models import Patient, Protocol, Rep, Result, Trial, Visit
from steplab.records.patients import RecordsError
from steplab.records.protocols import analysis_params, check_protocol
from steplab.records.trials import SavedTrial, get_protocol_readonly, save_analysed

QUALITY_SCORE_RANGE = (0, 6)  # the lateral step-down movement-quality score


def patient_codes(db: Database) -> list[str]:
    """Every patient's pseudonymous code, sorted."""
    with db.read() as s:
        return list(s.scalars(select(Patient.code).order_by(Patient.code)))


def _visit(s: Session, visit_id: int) -> Visit:
    v = s.get(Visit, visit_id)
    if v is None:
        raise RecordsError(f"there is no visit {visit_id}")
    return v


def visit_brief(db: Database, visit_id: int) -> dict:
    """The visit's id, patient code, date, body mass [kg] and battery (protocol names)."""
    with db.read() as s:
        v = _visit(s, visit_id)
        code = s.scalars(select(Patient.code).where(Patient.id == v.patient_id)).one()
        return {"id": v.id, "patient": code, "date": v.date.isoformat(), "body_mass_kg": v.body_mass_kg,
                "battery": list(v.battery or [])}


def set_visit_body_mass(db: Database, visit_id: int, body_mass_kg: float, *, actor: str) -> None:
    """Store the weigh-in's body mass [kg] in the visit (5-500 kg), audited."""
    if not (math.isfinite(body_mass_kg) and 5 <= body_mass_kg <= 500):
        raise RecordsError(f"body mass must be between 5 and 500 kg, got {body_mass_kg:g}")

    def work(s: Session) -> None:
        v = _visit(s, visit_id)
        old = v.body_mass_kg
        v.body_mass_kg = round(float(body_mass_kg), 2)
        add_entry(s, actor, "visit-body-mass", f"visit {visit_id}",
                  detail={"body_mass_kg": v.body_mass_kg, "previous_kg": old})

    db.write(work)


def save_live_trial(db: Database, visit_id: int, path: str | Path, protocol: str, *, lead: str | None,
                    actor: str) -> SavedTrial:
    """Analyse the recording at ``path`` (the visit's body mass, the protocol's parameters) and save it
    as a trial of ``visit_id``, with its audit entry, in one transaction.

    The rig the dashboard records from is registered when it is new (it is this
    clinic's rig).  Raises RecordsError / TrialError (one line) and saves nothing on failure.
    """
    try:
        check_protocol(protocol)
    except ValueError as exc:
        raise RecordsError(str(exc)) from None
    if lead not in (None, "left", "right"):
        raise RecordsError(f"lead must be left or right, got {lead!r}")
    with db.read() as s:
        mass = _visit(s, visit_id).body_mass_kg
        params = analysis_params(get_protocol_readonly(s, protocol))
    analysed = analyse_file(path, protocol, lead=lead, body_mass_kg=mass, params=params)
    name = Path(path).name

    def visit_with_audit(s: Session) -> int:  # runs inside save_analysed's transaction
        add_entry(s, actor, "trial-recorded", f"visit {visit_id}",
                  detail={"file": name, "protocol": protocol, "lead": lead, "body_mass_kg": mass})
        return visit_id

    return save_analysed(db, visit_with_audit, protocol, analysed, lead=lead, allow_new_rig=True, params=params,
                         load_options={"rate_hz": None, "plates": None, "lead": lead})


def visit_trials(db: Database, visit_id: int) -> list[dict]:
    """The visit's trials, oldest first: id, protocol, lead, reps (newest result), lost samples, scores, accepted."""
    with db.read() as s:
        _visit(s, visit_id)
        newest = (select(Result.trial_id, func.max(Result.version).label("v")).join(Trial, Trial.id == Result.trial_id)
                  .where(Trial.visit_id == visit_id).group_by(Result.trial_id).subquery())
        reps = dict(s.execute(select(Result.trial_id, func.count(Rep.id))
                              .join(newest, (newest.c.trial_id == Result.trial_id) & (newest.c.v == Result.version))
                              .outerjoin(Rep, Rep.result_id == Result.id).group_by(Result.trial_id)).all())
        rows = s.execute(select(Trial, Protocol.name).join(Protocol, Protocol.id == Trial.protocol_id)
                         .where(Trial.visit_id == visit_id).order_by(Trial.id)).all()
        return [{"id": t.id, "protocol": name, "lead": t.lead, "reps": int(reps.get(t.id, 0)),
                 "lost_samples": int((t.data_quality or {}).get("lost_samples", 0) or 0),
                 "pain_during": t.pain_during, "quality_score": t.quality_score, "accepted": t.accepted,
                 "recorded_at": t.recorded_at.isoformat(timespec="seconds") if t.recorded_at else None}
                for t, name in rows]
