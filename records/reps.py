"""The reviewer's decision on single reps, and a trial as the review page shows it.

A rep is never deleted: it is rejected with a reason (and may be accepted again).
The decision belongs to one result version; :func:`set_rep_accepted` acts on the
trial's newest version, which is the one summaries, progress and exports use.
Reps are numbered from 1 for people (``rep_index + 1`` in the database).

:func:`trial_review` gathers what the trial review page shows in one read: the
trial, every result version with what changed against version 1, who made it
(from the audit log), and each rep's decision and event times (metrics.md §3-§6:
onset, contact, peak, arrest, stabilisation; the later ones are contact plus the
rep's ``time_to_peak_s``, ``landing_phase_duration_s`` and ``time_to_stabilization_s``).
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from steplab.records.audit import add_entry
from steplab.records.db import Database
from steplab.records.models import AuditEntry, Rep, Result, Trial
from steplab.records.trials import TrialError, latest_result

__all__ = ["set_rep_accepted", "trial_review", "rep_events", "EVENT_NAMES", "changed_parameters"]

#: Event name → (metric added to the contact time, or None for a stored time), in time order.
EVENT_NAMES: dict[str, str | None] = {"onset": None, "contact": None, "peak": "time_to_peak_s",
                                      "arrest": "landing_phase_duration_s",
                                      "stabilisation": "time_to_stabilization_s"}


def _finite(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def rep_events(t_onset_s: float | None, t_contact_s: float | None, metrics: dict[str, Any]) -> dict[str, float]:
    """The rep's event times [s from the trial's first sample] that its analysis gives (missing ones left out)."""
    out: dict[str, float] = {}
    onset, contact = _finite(t_onset_s), _finite(t_contact_s)
    if onset is not None:
        out["onset"] = onset
    if contact is None:
        return out
    out["contact"] = contact
    for name, metric in EVENT_NAMES.items():
        if metric is None:
            continue
        dt_s = _finite(metrics.get(metric))
        if dt_s is not None:
            out[name] = contact + dt_s
    return out


def set_rep_accepted(db: Database, trial_id: int, rep_number: int, accepted: bool, reason: str | None = None,
                     actor: str | None = None) -> int:
    """Accept rep ``rep_number`` (1, 2, …) of the trial's newest result, or reject it with a reason.

    Returns the result version the decision was made on.  Audited (``reject-rep`` /
    ``accept-rep``).  Raises TrialError (one line, nothing changed) for an unknown
    trial, a trial without a result, a rep number it does not have, or a rejection
    without a reason.
    """
    reason = (reason or "").strip() or None
    if not accepted and reason is None:
        raise TrialError("a rejected rep needs a reason")
    if isinstance(rep_number, bool) or not isinstance(rep_number, int):
        raise TrialError(f"a rep number is a whole number, got {rep_number!r}")

    def work(s: Session) -> int:
        t = s.get(Trial, trial_id)
        if t is None:
            raise TrialError(f"there is no trial {trial_id}")
        res = latest_result(s, trial_id)
        if res is None:
            raise TrialError(f"trial {trial_id} has no analysis")
        reps = list(s.scalars(select(Rep).where(Rep.result_id == res.id).order_by(Rep.rep_index)))
        if not reps:
            raise TrialError(f"trial {trial_id} has no reps")
        if not 1 <= rep_number <= len(reps):
            raise TrialError(f"trial {trial_id} has reps 1-{len(reps)}, not {rep_number}")
        rep = reps[rep_number - 1]
        rep.accepted = accepted
        rep.reject_reason = None if accepted else reason
        add_entry(s, actor, "accept-rep" if accepted else "reject-rep", f"trial {trial_id}",
                  detail={"rep": rep_number, "version": res.version, "reason": reason})
        return res.version

    return db.write(work)


def changed_parameters(base: dict[str, Any], params: dict[str, Any]) -> dict[str, list[Any]]:
    """name → [value in ``base``, value in ``params``] for every parameter that differs."""
    return {k: [base.get(k), params.get(k)] for k in sorted(set(base) | set(params)) if base.get(k) != params.get(k)}


def _authors(s: Session, trial_id: int) -> dict[int, tuple[str, str]]:
    """result version → (actor, time) of the re-analyses of this trial, from the audit log."""
    rows = s.scalars(select(AuditEntry).where(AuditEntry.subject == f"trial {trial_id}",
                                              AuditEntry.action == "reanalyze").order_by(AuditEntry.id))
    out: dict[int, tuple[str, str]] = {}
    for e in rows:
        v = (e.detail or {}).get("version")
        if isinstance(v, int):
            out[v] = (e.actor, e.at.isoformat(timespec="seconds"))
    return out


def _rep_dict(r: Rep) -> dict[str, Any]:
    return {"number": r.rep_index + 1, "lead": r.lead, "t_onset_s": r.t_onset_s, "t_contact_s": r.t_contact_s,
            "metrics": dict(r.metrics or {}), "flags": list(r.flags or []), "accepted": bool(r.accepted),
            "reject_reason": r.reject_reason, "events": rep_events(r.t_onset_s, r.t_contact_s, r.metrics or {})}


def trial_review(s: Session, trial_id: int) -> dict[str, Any] | None:
    """One trial for review (JSON-safe), or None if there is no such trial.

    ``{"id", "visit_id", "patient", "visit_date", "protocol", "protocol_version", "lead", "accepted",
    "reject_reason", "pain_during", "quality_score", "data_quality", "versions": [{"version",
    "created_at", "parameters", "changed": {name: [v1 value, this value]}, "reason", "by",
    "software_version", "body_weight_n", "flags", "reps": [{"number", "lead", "t_onset_s",
    "t_contact_s", "metrics", "flags", "accepted", "reject_reason", "events": {name: t_s}}]}]}``,
    versions oldest first (the newest is the one that counts).
    """
    t = s.get(Trial, trial_id)
    if t is None:
        return None
    results = list(s.scalars(select(Result).where(Result.trial_id == trial_id).order_by(Result.version)))
    reps: dict[int, list[Rep]] = {r.id: [] for r in results}
    if results:
        for rep in s.scalars(select(Rep).where(Rep.result_id.in_(list(reps))).order_by(Rep.rep_index)):
            reps[rep.result_id].append(rep)
    authors = _authors(s, trial_id)
    base = dict(results[0].parameters) if results else {}
    versions = []
    for r in results:
        by = authors.get(r.version, ("recorded", ""))[0] if r.version > 1 else "recorded"
        versions.append({"version": r.version, "created_at": r.created_at.isoformat(timespec="seconds"),
                         "parameters": dict(r.parameters), "changed": changed_parameters(base, dict(r.parameters)),
                         "reason": r.reason, "by": by, "software_version": r.software_version,
                         "body_weight_n": r.body_weight_n, "flags": list(r.flags or []),
                         "reps": [_rep_dict(x) for x in reps[r.id]]})
    v = t.visit
    return {"id": t.id, "visit_id": v.id, "patient": v.patient.code, "visit_date": v.date.isoformat(),
            "protocol": t.protocol.name, "protocol_version": t.protocol.version, "lead": t.lead,
            "accepted": bool(t.accepted), "reject_reason": t.reject_reason, "pain_during": t.pain_during,
            "quality_score": t.quality_score, "data_quality": dict(t.data_quality or {}), "versions": versions}
