"""Saving trials with their analysis, re-analysis as new result versions, accepting and rejecting.

A save is ONE database transaction: the raw recording (content-addressed by
SHA-256, stored once however many trials share it), the rig, the trial, its
result version 1 and every rep commit together or not at all.  The analysis runs
before the transaction opens, so the write lock is held only for the inserts.

Fault hook for the tests: with ``STEPLAB_FAULT_SAVE_PAUSE_S`` set, a save stops
half-way (trial and result inserted, reps not yet) for that many seconds, after
touching the file named by ``STEPLAB_FAULT_SAVE_MARKER``; a test kills it there.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from steplab import __version__
from steplab.dsp import AnalysisParams, AnalysisResult
from steplab.records.analysis import Analysed, analyse_bytes, analyse_file
from steplab.records.db import Database
from steplab.records.models import RawRecording, Rep, Result, RigRecord, Trial, Visit, utcnow
from steplab.records.protocols import analysis_params, check_protocol, get_protocol
from steplab.records.upsert import insert_ignore

#: Data-quality facts copied from the analysis provenance into ``trials.data_quality``.
QUALITY_KEYS = ("lost_samples", "crc_errors", "interpolated_samples", "saturated_samples", "time_since_tare_s")


class TrialError(ValueError):
    """A trial that cannot be saved (unknown rig, visit, …): one line."""


@dataclass
class SavedTrial:
    trial_id: int
    result_id: int
    visit_id: int
    raw_sha256: str
    reps: int
    #: earlier trials with the very same raw recording (an import run twice shows here)
    same_recording_as: tuple[int, ...] = ()


def _fault_pause() -> None:
    pause = os.environ.get("STEPLAB_FAULT_SAVE_PAUSE_S")
    if not pause:
        return
    marker = os.environ.get("STEPLAB_FAULT_SAVE_MARKER")
    if marker:
        Path(marker).write_text("paused\n")
    time.sleep(float(pause))


def _source_format(analysed: Analysed) -> str:
    fmt = analysed.loaded.source_format
    return fmt if fmt in ("steplab-trial", "c3d", "csv") else "other"


def _rig_of(analysed: Analysed):
    trial = analysed.loaded.trial
    return getattr(trial, "rig", None)


def known_rig(session: Session, rig_hash: str) -> RigRecord | None:
    return session.scalars(select(RigRecord).where(RigRecord.rig_hash == rig_hash)).first()


def register_rig(session: Session, rig) -> RigRecord:
    """The rig's row (by the hash of its description), made if missing."""
    h = rig.hash()
    row = known_rig(session, h)
    if row is None:
        insert_ignore(session, RigRecord, {"rig_hash": h, "serial": rig.serial, "name": rig.name,
                                           "description": rig.to_dict()}, ("rig_hash",))
        row = known_rig(session, h)
    assert row is not None
    return row


def _add_result(session: Session, trial: Trial, result: AnalysisResult, params: AnalysisParams, version: int,
                protocol_version: str, reason: str | None, pause: bool = False) -> Result:
    d = result.to_json_dict()
    row = Result(trial_id=trial.id, version=version, protocol_version=protocol_version, parameters=params.to_dict(),
                 software_version=__version__, sample_rate_hz=d["sample_rate_hz"], body_weight_n=d["body_weight_n"],
                 body_mass_kg=d["body_mass_kg"], flags=d["flags"], provenance=d["provenance"], reason=reason,
                 created_at=utcnow())
    session.add(row)
    session.flush()
    if pause:
        _fault_pause()
    for i, rep in enumerate(d["reps"]):
        session.add(Rep(result_id=row.id, rep_index=i, lead=rep["lead"], t_onset_s=rep["t_onset_s"],
                        t_contact_s=rep["t_contact_s"], metrics=rep["metrics"], flags=rep["flags"]))
    session.flush()
    return row


def save_analysed(db: Database, visit_id: int | Callable[[Session], int], protocol: str, analysed: Analysed, *, lead: str | None = None,
                  pain_during: float | None = None, quality_score: int | None = None,
                  load_options: dict | None = None, allow_new_rig: bool = False,
                  params: AnalysisParams | None = None, recorded_at: dt.datetime | None = None) -> SavedTrial:
    """Save an analysed recording as a new trial of ``visit_id`` (one transaction).

    ``visit_id`` may be a function that finds or makes the visit inside that same
    transaction (today's visit, made only when the trial is saved).
    """
    check_protocol(protocol)
    rig = _rig_of(analysed)
    prov = analysed.result.provenance or {}
    quality = {k: prov[k] for k in QUALITY_KEYS if k in prov}
    quality["flags"] = list(analysed.result.flags)
    calibration_id = prov.get("calibration_id")
    if recorded_at is None and analysed.loaded.trial is not None:
        started = (getattr(analysed.loaded.trial, "meta", None) or {}).get("started_at")
        try:
            recorded_at = dt.datetime.fromisoformat(started).astimezone(dt.UTC).replace(tzinfo=None) if started else None
        except (TypeError, ValueError):
            recorded_at = None

    def work(s: Session) -> SavedTrial:
        vid = visit_id(s) if callable(visit_id) else visit_id
        if s.get(Visit, vid) is None:
            raise TrialError(f"there is no visit {vid}")
        rig_row = None
        if rig is not None:
            rig_row = known_rig(s, rig.hash())
            if rig_row is None:
                if not allow_new_rig:
                    raise TrialError(f"the trial was recorded on an unknown rig (serial {rig.serial}, description "
                                     f"{rig.hash()[:12]}); import it with --new-rig to register that rig")
                rig_row = register_rig(s, rig)
        proto = get_protocol(s, protocol)
        used = params or analysis_params(proto)
        earlier = tuple(s.scalars(select(Trial.id).where(Trial.raw_sha256 == analysed.sha256).order_by(Trial.id)))
        insert_ignore(s, RawRecording, {"sha256": analysed.sha256, "source_format": _source_format(analysed),
                                        "suffix": analysed.suffix, "size_bytes": len(analysed.raw),
                                        "data": analysed.raw}, ("sha256",))
        trial = Trial(visit_id=vid, protocol_id=proto.id, lead=lead or _detected_lead(analysed.result),
                      pain_during=pain_during, quality_score=quality_score, raw_sha256=analysed.sha256,
                      rig_id=rig_row.id if rig_row else None, calibration_id=calibration_id, data_quality=quality,
                      load_options=dict(load_options or {}), accepted=True, recorded_at=recorded_at,
                      created_at=utcnow())
        s.add(trial)
        s.flush()
        res = _add_result(s, trial, analysed.result, used, 1, proto.version, None, pause=True)
        return SavedTrial(trial.id, res.id, vid, analysed.sha256, len(analysed.result.reps), earlier)

    return db.write(work)


def _detected_lead(result: AnalysisResult) -> str | None:
    leads = {r.lead for r in result.reps if r.lead}
    return leads.pop() if len(leads) == 1 else None


def visit_body_mass(db: Database, visit_id: int) -> float | None:
    with db.read() as s:
        v = s.get(Visit, visit_id)
        if v is None:
            raise TrialError(f"there is no visit {visit_id}")
        return v.body_mass_kg


def save_file(db: Database, visit_id: int, path: str | Path, protocol: str, *, lead: str | None = None,
              rate_hz: float | None = None, plates: str | None = None, pain_during: float | None = None,
              quality_score: int | None = None, allow_new_rig: bool = False) -> SavedTrial:
    """Read, analyse (with the visit's body mass) and save one recording file: all or nothing."""
    check_protocol(protocol)
    mass = visit_body_mass(db, visit_id)
    with db.read() as s:
        params = analysis_params(get_protocol_readonly(s, protocol))
    analysed = analyse_file(path, protocol, lead=lead, rate_hz=rate_hz, plates=plates, body_mass_kg=mass,
                            params=params)
    return save_analysed(db, visit_id, protocol, analysed, lead=lead, pain_during=pain_during,
                         quality_score=quality_score, load_options={"rate_hz": rate_hz, "plates": plates, "lead": lead},
                         allow_new_rig=allow_new_rig, params=params)


def get_protocol_readonly(s: Session, name: str):
    """The current protocol row if it exists, else an unsaved one with the template's defaults."""
    from steplab.records.models import Protocol
    from steplab.records.protocols import TEMPLATES, current_version, template_parameters

    version = current_version(name)
    row = s.scalars(select(Protocol).where(Protocol.name == name, Protocol.version == version)).first()
    return row or Protocol(name=name, version=version, title=TEMPLATES[name].title, parameters=template_parameters(name))


def reanalyze(db: Database, trial_id: int, *, params: AnalysisParams | None = None, reason: str | None = None,
              actor: str = "steplab") -> int:
    """Analyse a stored trial again from its raw recording; adds a result version and returns its number.

    Uses only what the database holds (raw bytes, load options, the visit's body mass),
    so any workstation on the same database can do it.  The result versions before
    stay as they are.
    """
    from steplab.records.audit import add_entry

    with db.read() as s:
        t = s.get(Trial, trial_id)
        if t is None:
            raise TrialError(f"there is no trial {trial_id}")
        raw, suffix = t.raw.data, t.raw.suffix
        opts = dict(t.load_options or {})
        protocol, proto_params = t.protocol.name, analysis_params(t.protocol)
        mass = t.visit.body_mass_kg
    used = params or proto_params
    analysed = analyse_bytes(raw, suffix, protocol, lead=opts.get("lead"), rate_hz=opts.get("rate_hz"),
                             plates=opts.get("plates"), body_mass_kg=mass, params=used, label=f"trial-{trial_id}")

    def work(s: Session) -> int:
        trial = s.get(Trial, trial_id)
        assert trial is not None
        version = int(s.scalar(select(func.max(Result.version)).where(Result.trial_id == trial_id)) or 0) + 1
        before = latest_result(s, trial_id)
        row = _add_result(s, trial, analysed.result, used, version, trial.protocol.version, reason)
        carried = _carry_rejections(s, before, row)
        add_entry(s, actor, "reanalyze", f"trial {trial_id}", detail={"version": version, "reason": reason,
                                                                       "parameters": used.to_dict(),
                                                                       "rejected_reps_carried": carried})
        return version

    return db.write(work)


#: A rep of a new version is the same movement as a rep of the version before when their contacts
#: are this close [s] (reps are seconds apart; a filter change moves a contact by milliseconds).
SAME_REP_S = 0.25


def _carry_rejections(s: Session, before: Result | None, after: Result) -> list[int]:
    """Reject in ``after`` the reps that were rejected in ``before`` (same lead, contact within SAME_REP_S).

    A rep is rejected for what the patient did (a stumble, a hand on the rail), which
    a re-analysis does not change.  Returns the new version's rep numbers (1, 2, …) so rejected.
    """
    if before is None:
        return []
    old = [r for r in s.scalars(select(Rep).where(Rep.result_id == before.id)) if not r.accepted]
    new = list(s.scalars(select(Rep).where(Rep.result_id == after.id).order_by(Rep.rep_index)))
    carried = []
    for o in old:
        if o.t_contact_s is None:
            continue
        near = [n for n in new if n.t_contact_s is not None and n.lead == o.lead
                and abs(n.t_contact_s - o.t_contact_s) <= SAME_REP_S and n.accepted]
        if near:
            n = min(near, key=lambda r: abs((r.t_contact_s or 0.0) - (o.t_contact_s or 0.0)))
            n.accepted, n.reject_reason = False, o.reject_reason
            carried.append(n.rep_index + 1)
    s.flush()
    return sorted(carried)


def set_scores(db: Database, trial_id: int, *, pain_during: float | None = None, quality_score: int | None = None,
               actor: str | None = None) -> None:
    """Set the pain during a trial (0-10 NRS) and/or its movement-quality score (0-6); audited (``scores``).

    Raises TrialError (one line, nothing changed) for a value out of range or an unknown trial.
    """
    import math

    from steplab.records.audit import add_entry

    if pain_during is not None and not (isinstance(pain_during, (int, float)) and math.isfinite(pain_during)
                                        and 0 <= pain_during <= 10):
        raise TrialError(f"pain during the trial must be on the 0-10 numeric rating scale, got {pain_during}")
    if quality_score is not None and (isinstance(quality_score, bool) or not isinstance(quality_score, int)
                                      or not 0 <= quality_score <= 6):
        raise TrialError(f"the movement-quality score must be a whole number 0-6, got {quality_score}")
    if pain_during is None and quality_score is None:
        raise TrialError("give a pain score, a movement-quality score or both")

    def work(s: Session) -> None:
        t = s.get(Trial, trial_id)
        if t is None:
            raise TrialError(f"there is no trial {trial_id}")
        detail: dict = {}
        if pain_during is not None:
            detail["pain_during"] = [t.pain_during, float(pain_during)]
            t.pain_during = float(pain_during)
        if quality_score is not None:
            detail["quality_score"] = [t.quality_score, int(quality_score)]
            t.quality_score = int(quality_score)
        add_entry(s, actor, "scores", f"trial {trial_id}", detail=detail)

    db.write(work)


def min_max_downsample(traces: np.ndarray, max_points: int) -> np.ndarray:
    """Sample indices keeping, in each time bucket, every trace's minimum and maximum (peaks survive).

    ``traces``: (k, n) array, k traces of n samples.  At most about ``max_points``
    indices, sorted (all of them when n is small enough).
    """
    traces = np.atleast_2d(traces)
    k, n = traces.shape
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, max_points // (2 * k))
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    out = []
    for b in range(buckets):
        lo, hi = int(edges[b]), int(max(edges[b + 1], edges[b] + 1))
        seg = traces[:, lo:hi]
        out.append(lo + np.argmin(seg, axis=1))
        out.append(lo + np.argmax(seg, axis=1))
    out.append(np.array([0, n - 1]))
    return np.unique(np.concatenate(out))


def trial_traces(db: Database, trial_id: int, max_points: int = 4000) -> dict:
    """The trial's plate forces for plotting: the stored raw recording read again the way it was analysed.

    Returns ``{"rate_hz", "n_samples", "t_s": [...], "fz_n": {role: [...], "total": [...]}}`` with at most
    about ``max_points`` samples per trace, chosen by min/max buckets of every trace (so peaks stay).
    Raises TrialError for an unknown trial or a recording that cannot be read.
    """
    from steplab.records.analysis import load_bytes

    with db.read() as s:
        t = s.get(Trial, trial_id)
        if t is None:
            raise TrialError(f"there is no trial {trial_id}")
        raw, suffix, opts = bytes(t.raw.data), t.raw.suffix, dict(t.load_options or {})
    try:
        loaded = load_bytes(raw, suffix, rate_hz=opts.get("rate_hz"), plates=opts.get("plates"),
                            label=f"trial-{trial_id}")
    except ValueError as exc:
        raise TrialError(f"trial {trial_id}: its raw recording cannot be read ({exc})") from None
    roles: list[str] = [r for r in ("box", "floor_left", "floor_right") if r in loaded.plates]
    roles += [r for r in loaded.plates if r not in roles]
    fz = {r: np.asarray(loaded.plates[r].fz_n, dtype=float) for r in roles}
    total = np.sum([fz[r] for r in roles], axis=0) if roles else np.zeros(0)
    idx = min_max_downsample(np.vstack([fz[r] for r in roles] + [total]), max_points) if total.size else \
        np.zeros(0, dtype=np.int64)
    rate = float(loaded.rate_hz)
    return {"rate_hz": rate, "n_samples": int(total.size), "t_s": (idx / rate).round(5).tolist(),
            "fz_n": {**{r: fz[r][idx].round(2).tolist() for r in roles}, "total": total[idx].round(2).tolist()}}


def set_accepted(db: Database, trial_id: int, accepted: bool, reason: str | None = None, actor: str = "steplab") -> None:
    """Accept a trial, or reject it with a reason (a trial is never deleted)."""
    from steplab.records.audit import add_entry

    if not accepted and not (reason and reason.strip()):
        raise TrialError("a rejected trial needs a reason")

    def work(s: Session) -> None:
        t = s.get(Trial, trial_id)
        if t is None:
            raise TrialError(f"there is no trial {trial_id}")
        t.accepted = accepted
        t.reject_reason = None if accepted else reason
        add_entry(s, actor, "accept" if accepted else "reject", f"trial {trial_id}", detail={"reason": reason})

    db.write(work)


def latest_result(s: Session, trial_id: int) -> Result | None:
    return s.scalars(select(Result).where(Result.trial_id == trial_id).order_by(Result.version.desc())).first()


def result_json(result: Result) -> dict:
    """A stored result as the ``steplab analyze --json`` object."""
    return {
        "protocol": result.trial.protocol.name,
        "sample_rate_hz": result.sample_rate_hz,
        "body_weight_n": result.body_weight_n,
        "body_mass_kg": result.body_mass_kg,
        "reps": [{"lead": r.lead, "t_onset_s": r.t_onset_s, "t_contact_s": r.t_contact_s, "metrics": dict(r.metrics),
                  "flags": list(r.flags)} for r in result.reps],
        "flags": list(result.flags),
        "provenance": dict(result.provenance),
    }


def trial_details(s: Session, trial_id) -> dict | None:
    """One trial with every result version (JSON-safe, `steplab trial show --json`); None if unknown."""
    t = s.get(Trial, trial_id)
    if t is None:
        return None
    results = list(s.scalars(select(Result).where(Result.trial_id == trial_id).order_by(Result.version)))
    return {"id": str(t.id), "visit": str(t.visit_id), "patient": t.visit.patient.code,
            "protocol": t.protocol.name, "protocol_version": t.protocol.version, "lead": t.lead,
            "accepted": t.accepted, "reject_reason": t.reject_reason, "pain_during": t.pain_during,
            "quality_score": t.quality_score, "raw_sha256": t.raw_sha256, "raw_format": t.raw.source_format,
            "raw_bytes": t.raw.size_bytes, "calibration_id": t.calibration_id, "data_quality": t.data_quality,
            "results": [{"version": r.version, "parameters": r.parameters, "software_version": r.software_version,
                         "reason": r.reason, "created_at": r.created_at.isoformat(timespec="seconds"),
                         "analysis": result_json(r)} for r in results]}
