"""A patient's history from the database as the export model (``records.export_model``).

Pseudonymised by default: the subject is the code only, visits carry day offsets
from the first visit instead of dates, provenance loses the original file names.
Identifying fields are read only with ``identified=True``.  Raw recordings are
loaded only with ``with_raw=True`` (exports); summaries and progress work from the
stored results alone.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from steplab.records.export_model import ExportPatientHistory, ExportSubject, ExportTrial, ExportVisit
from steplab.records.models import RawRecording, Rep, Result, Trial, Visit
from steplab.records.patients import RecordsError, identity, patient_by_code
from steplab.records.query import patient_history

#: Provenance keys that may carry identifying text (file names) or device serials.
PRIVATE_PROVENANCE = ("source_file", "rig_name", "calibration_reference")


def _subject(s: Session, code: str, identified: bool) -> ExportSubject:
    p = patient_by_code(s, code)
    involved = p.involved if p.involved in ("left", "right") else None
    if identified:
        ident = identity(s, p.id)
        return ExportSubject.identified_as(p.code, ident.name if ident else None,
                                           ident.birth_date if ident else None, involved, p.birth_year)
    return ExportSubject.pseudonymised(p.code, involved, p.birth_year)


def pseudonymised_analysis(analysis: dict) -> dict:
    d = dict(analysis)
    d["provenance"] = {k: v for k, v in (analysis.get("provenance") or {}).items() if k not in PRIVATE_PROVENANCE}
    return d


def rejected_reps(s: Session, trial_ids: list[int]) -> dict[tuple[int, int], set[int]]:
    """(trial id, result version) → the rep indices (0-based) a reviewer rejected, for these trials (one query)."""
    out: dict[tuple[int, int], set[int]] = {}
    if not trial_ids:
        return out
    rows = s.execute(select(Result.trial_id, Result.version, Rep.rep_index).join(Rep, Rep.result_id == Result.id)
                     .where(Result.trial_id.in_(trial_ids), Rep.accepted.is_(False)))
    for tid, version, index in rows:
        out.setdefault((int(tid), int(version)), set()).add(int(index))
    return out


def _rep_decisions(td: dict, analysis: dict, rejected: dict[tuple[int, int], set[int]]) -> list[bool] | None:
    gone = rejected.get((int(td["id"]), int(td.get("result_version") or 1)))
    if not gone:
        return None
    return [i not in gone for i in range(len(analysis.get("reps") or []))]


def _make_trial(td: dict, analysis: dict, identified: bool, raw: Any = None, all_results=None,
                params: dict | None = None, rep_accepted: list[bool] | None = None) -> ExportTrial:
    kw: dict = {}
    if raw is not None:
        kw["trial"] = raw.trial
    else:
        kw["trial"] = None
    t = ExportTrial(trial_id=td["id"], protocol=td["protocol"], analysis=analysis if identified else
                    pseudonymised_analysis(analysis), protocol_version=td.get("protocol_version"), lead=td["lead"],
                    result_version=int(td.get("result_version") or 1), analysis_params=params or {},
                    all_results=all_results or [], accepted=td["accepted"], reject_reason=td["reject_reason"],
                    rep_accepted=rep_accepted,
                    pain_during=td["pain_during"], quality_score=td["quality_score"], **kw)
    if raw is not None:
        try:
            t.loaded = raw  # type: ignore[attr-defined]  # optional field of the export model (C3D/CSV imports)
        except AttributeError:
            pass
    return t


def _analysis_of(td: dict, body_mass_kg) -> dict:
    return {"protocol": td["protocol"], "sample_rate_hz": None, "body_weight_n": td.get("body_weight_n"),
            "body_mass_kg": body_mass_kg, "reps": td.get("rep_results", []), "flags": td.get("flags", []),
            "provenance": {}}


def history_from_db(s: Session, code: str, *, identified: bool = False, with_raw: bool = False,
                    visit_ids: set[str] | None = None, history: dict | None = None) -> ExportPatientHistory:
    """The patient's ExportPatientHistory (visits in date order; only ``visit_ids`` get raw data).

    ``history``: the patient's ``query.patient_history(…, metrics=True)`` when the caller has it already.
    """
    from steplab.records.analysis import load_bytes
    from steplab.records.trials import result_json

    subject = _subject(s, code, identified)
    h = history if history is not None and "rep_results" in _first_trial(history) else \
        patient_history(s, code, identified=False, metrics=True)
    rejected = rejected_reps(s, [int(td["id"]) for vd in h["visits"] for td in vd["trials"]])
    first: dt.date | None = None
    visits = []
    for vd in h["visits"]:
        date = dt.date.fromisoformat(vd["date"])
        first = first or date
        trials = []
        for td in vd["trials"]:
            raw = None
            analysis = _analysis_of(td, vd["body_mass_kg"])
            all_results: list[dict] = []
            params: dict = {}
            if with_raw and (visit_ids is None or vd["id"] in visit_ids):
                trow = s.get(Trial, int(td["id"]))
                assert trow is not None
                rec = s.get(RawRecording, trow.raw_sha256)
                assert rec is not None
                opts = trow.load_options or {}
                try:
                    raw = load_bytes(rec.data, rec.suffix, rate_hz=opts.get("rate_hz"), plates=opts.get("plates"),
                                     label=f"trial-{td['id']}")
                except ValueError as exc:
                    raise RecordsError(f"trial {td['id']}: its raw recording cannot be read ({exc})") from None
                results = list(s.scalars(select(Result).where(Result.trial_id == trow.id).order_by(Result.version)))
                for r in results:
                    a = result_json(r)
                    all_results.append({"version": r.version, "analysis": a if identified else
                                        pseudonymised_analysis(a), "params": r.parameters,
                                        "software_version": r.software_version, "reason": r.reason,
                                        "created_at": r.created_at.isoformat(timespec="seconds") if identified else None})
                if results:
                    analysis = result_json(results[-1])
                    params = results[-1].parameters
            trials.append(_make_trial(td, analysis, identified, raw, all_results, params,
                                      _rep_decisions(td, analysis, rejected)))
        battery = ",".join(vd["battery"]) if vd.get("battery") else None
        visits.append(ExportVisit(visit_id=vd["id"], trials=trials, date=date if identified else None,
                                  day_offset=(date - first).days, body_mass_kg=vd["body_mass_kg"],
                                  pain_before=vd["pain_before"], pain_after=vd["pain_after"],
                                  pain_next_morning=vd["pain_next_morning"], battery=battery))
    return ExportPatientHistory(subject=subject, visits=visits)


def _first_trial(history: dict) -> dict:
    for v in history.get("visits", []):
        for t in v.get("trials", []):
            return t
    return {"rep_results": []}


def patient_code_of_visit(s: Session, visit_id: int) -> str:
    v = s.get(Visit, visit_id)
    if v is None:
        raise RecordsError(f"there is no visit {visit_id}")
    return v.patient.code


def progress_json(s: Session, code: str, history: dict | None = None) -> dict | None:
    """``records.summary.progress`` of the patient (None until that module exists)."""
    try:
        from steplab.records import summary
    except ImportError:
        return None
    return summary.progress(history_from_db(s, code, history=history))


def visit_summary_json(s: Session, visit_id: int) -> dict | None:
    try:
        from steplab.records import summary
    except ImportError:
        return None
    code = patient_code_of_visit(s, visit_id)
    h = history_from_db(s, code)
    return summary.visit_summary(h.visit(str(visit_id)), h.subject.involved)


def visit_overview(s: Session, visit_id: int) -> dict | None:
    """One visit for its summary page (JSON-safe), or None if there is no such visit.

    ``{"visit_id", "patient", "date", "body_mass_kg", "pain_before", "pain_after", "pain_next_morning",
    "battery", "trials": [{"id", "protocol", "lead", "accepted", "reject_reason", "pain_during",
    "quality_score", "result_version", "reps", "reps_rejected"}], "summary": records.summary.visit_summary}``.
    """
    from steplab.records.models import Protocol
    from steplab.records.query import latest_results, reps_of

    v = s.get(Visit, visit_id)
    if v is None:
        return None
    rows = list(s.execute(select(Trial, Protocol.name).join(Protocol, Protocol.id == Trial.protocol_id)
                          .where(Trial.visit_id == visit_id).order_by(Trial.id)))
    results = latest_results(s, [t.id for t, _ in rows])
    reps = reps_of(s, [r.id for r in results.values()])
    trials = []
    for t, pname in rows:
        res = results.get(t.id)
        rr = reps.get(res.id, []) if res is not None else []
        trials.append({"id": t.id, "protocol": pname, "lead": t.lead, "accepted": bool(t.accepted),
                       "reject_reason": t.reject_reason, "pain_during": t.pain_during,
                       "quality_score": t.quality_score, "result_version": res.version if res else None,
                       "reps": len(rr), "reps_rejected": sum(1 for r in rr if not r.accepted)})
    return {"visit_id": v.id, "patient": v.patient.code, "date": v.date.isoformat(), "body_mass_kg": v.body_mass_kg,
            "pain_before": v.pain_before, "pain_after": v.pain_after, "pain_next_morning": v.pain_next_morning,
            "battery": v.battery, "trials": trials, "summary": visit_summary_json(s, visit_id)}
