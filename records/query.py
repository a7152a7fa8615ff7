"""Reading the records: the patient list, one patient's visits with trials and metrics, a visit list.

Each read is a handful of set-based queries (no query per trial), so a patient's
whole history reads in one go even in a clinic's year of data.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from steplab.records.models import Patient, Protocol, Rep, Result, Trial, Visit
from steplab.records.patients import identity, patient_by_code


def patient_list(s: Session) -> list[dict]:
    """Every patient: code, involved limb, year of birth, number of visits, last visit date."""
    counts = (select(Visit.patient_id, func.count(Visit.id).label("n"), func.max(Visit.date).label("last"))
              .group_by(Visit.patient_id).subquery())
    rows = s.execute(select(Patient.code, Patient.involved, Patient.birth_year, counts.c.n, counts.c.last)
                     .outerjoin(counts, counts.c.patient_id == Patient.id).order_by(Patient.code))
    return [{"code": code, "involved": involved, "birth_year": by, "visits": int(n or 0),
             "last_visit": last.isoformat() if last else None} for code, involved, by, n, last in rows]


def visit_dict(v: Visit) -> dict:
    return {"id": str(v.id), "date": v.date.isoformat(), "body_mass_kg": v.body_mass_kg, "pain_before": v.pain_before,
            "pain_after": v.pain_after, "pain_next_morning": v.pain_next_morning, "battery": v.battery,
            "notes": v.notes}


def visit_list(s: Session, code: str) -> list[dict]:
    p = patient_by_code(s, code)
    visits = list(s.scalars(select(Visit).where(Visit.patient_id == p.id).order_by(Visit.date, Visit.id)))
    n_trials = dict(s.execute(select(Trial.visit_id, func.count(Trial.id)).where(
        Trial.visit_id.in_([v.id for v in visits])).group_by(Trial.visit_id)).all()) if visits else {}
    return [{**visit_dict(v), "trials": int(n_trials.get(v.id, 0))} for v in visits]


def latest_results(s: Session, trial_ids: list[int]) -> dict[int, Result]:
    """trial id → its newest result version."""
    if not trial_ids:
        return {}
    newest = (select(Result.trial_id, func.max(Result.version).label("v")).where(Result.trial_id.in_(trial_ids))
              .group_by(Result.trial_id).subquery())
    rows = s.scalars(select(Result).join(newest, (newest.c.trial_id == Result.trial_id) & (newest.c.v == Result.version))
                     .options(defer(Result.provenance), defer(Result.parameters)))  # the big JSON, read when needed
    return {r.trial_id: r for r in rows}


def reps_of(s: Session, result_ids: list[int]) -> dict[int, list[Rep]]:
    out: dict[int, list[Rep]] = defaultdict(list)
    if result_ids:
        for rep in s.scalars(select(Rep).where(Rep.result_id.in_(result_ids)).order_by(Rep.result_id, Rep.rep_index)):
            out[rep.result_id].append(rep)
    return out


def patient_history(s: Session, code: str, *, identified: bool = False, metrics: bool = True) -> dict:
    """The ``patient show --json`` object: the patient, every visit with its trials (newest result).

    With ``metrics`` each trial carries its result version, flags and per-rep metrics.
    Identifying fields (name, birth date) only with ``identified``.
    """
    p = patient_by_code(s, code)
    out: dict = {"code": p.code, "involved": p.involved, "birth_year": p.birth_year, "height_cm": p.height_cm,
                 "notes": p.notes}
    if identified:
        ident = identity(s, p.id)
        out["name"] = ident.name if ident else None
        out["birth_date"] = ident.birth_date.isoformat() if ident and ident.birth_date else None
    visits = list(s.scalars(select(Visit).where(Visit.patient_id == p.id).order_by(Visit.date, Visit.id)))
    by_visit: dict[int, list[tuple[Trial, str, str]]] = defaultdict(list)
    if visits:
        rows = s.execute(select(Trial, Protocol.name, Protocol.version).join(Protocol, Protocol.id == Trial.protocol_id)
                         .where(Trial.visit_id.in_([v.id for v in visits])).order_by(Trial.id))
        for t, pname, pversion in rows:
            by_visit[t.visit_id].append((t, pname, pversion))
    trial_ids = [t.id for ts in by_visit.values() for t, _, _ in ts]
    results = latest_results(s, trial_ids)
    reps = reps_of(s, [r.id for r in results.values()]) if metrics else {}
    rep_counts: dict[int, int] = {}
    if not metrics and results:
        rep_counts = dict(s.execute(select(Rep.result_id, func.count(Rep.id)).where(
            Rep.result_id.in_([r.id for r in results.values()])).group_by(Rep.result_id)).all())
    out["visits"] = []
    for v in visits:
        vd = visit_dict(v)
        vd["trials"] = []
        for t, pname, pversion in by_visit.get(v.id, []):
            res = results.get(t.id)
            td: dict = {"id": str(t.id), "protocol": pname, "protocol_version": pversion, "lead": t.lead,
                        "accepted": bool(t.accepted), "reject_reason": t.reject_reason, "pain_during": t.pain_during,
                        "quality_score": t.quality_score, "raw_sha256": t.raw_sha256,
                        "data_quality": t.data_quality}
            if res is None:
                td["reps"] = 0
            elif metrics:
                rr = reps.get(res.id, [])
                td["reps"] = len(rr)
                td["result_version"] = res.version
                td["body_weight_n"] = res.body_weight_n
                td["flags"] = list(res.flags)
                td["rep_results"] = [{"lead": r.lead, "t_onset_s": r.t_onset_s, "t_contact_s": r.t_contact_s,
                                      "metrics": r.metrics, "flags": r.flags} for r in rr]
            else:
                td["reps"] = int(rep_counts.get(res.id, 0))
                td["result_version"] = res.version
            vd["trials"].append(td)
        out["visits"].append(vd)
    return out
