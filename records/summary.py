"""Visit summary and progress across visits, on ``steplab.dsp.symmetry`` (metrics.md § Symmetry, § Change).

* :func:`visit_summary`: per protocol, per metric: per-limb n, mean, SD, CV, typical
  error and MDC95 over the accepted reps of the accepted trials; LSI (involved /
  uninvolved, or left / right with no involved limb), Robinson's symmetry index,
  Zifchock's symmetry angle, the worse limb (by the metric's better direction) and
  flags (``lsi_below_band`` / ``lsi_above_band``, ``one_limb_only``).
* :func:`progress`: per protocol, per metric: each visit's limb means with their
  MDC95 band (mean ± MDC95 of that visit's mean: a later visit outside it is a real
  change), the LSI series, and each change from the previous visit and from the
  first (baseline) visit judged against the MDC (``dsp.symmetry.compare_visits``);
  plus the pain series (before, after, next morning, during) on the same time axis
  (days since the first visit).

Everything returned is JSON-safe (no NaN or inf: missing is None).  Only accepted
trials and accepted reps count; reps flagged ``saturated`` are left out by
``visit_symmetry``'s default.  No identifying data: visits are named by id and day.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from types import SimpleNamespace
from typing import Any

from steplab.dsp.symmetry import BETTER_DIRECTION, LIMBS, MetricSymmetry, compare_visits, visit_symmetry
from steplab.records.export_model import ExportPatientHistory, ExportVisit

__all__ = ["visit_summary", "progress", "metric_label", "metric_unit", "METRIC_INFO", "visit_reps", "visit_day"]

#: Display name and unit of each metric of metrics.md.
METRIC_INFO: dict[str, tuple[str, str]] = {
    "lowering_duration_s": ("Lowering duration", "s"),
    "peak_descent_speed_m_s": ("Peak descent speed", "m/s"),
    "touchdown_speed_m_s": ("Touchdown speed", "m/s"),
    "trail_support_at_contact_pct": ("Trail support at contact", "% BW"),
    "box_cop_ml_range_mm": ("Box COP ML range", "mm"),
    "box_cop_ml_velocity_mm_s": ("Box COP ML velocity", "mm/s"),
    "landing_peak_force_bw": ("Landing peak force", "×BW"),
    "time_to_peak_s": ("Time to peak", "s"),
    "loading_rate_bw_s": ("Loading rate", "BW/s"),
    "peak_loading_rate_bw_s": ("Peak loading rate", "BW/s"),
    "impulse_100ms_bw_s": ("Impulse 0-100 ms", "BW·s"),
    "peak_deceleration_m_s2": ("Peak deceleration", "m/s²"),
    "landing_phase_duration_s": ("Landing phase", "s"),
    "time_to_stabilization_s": ("Time to stabilisation", "s"),
    "raising_duration_s": ("Raising duration", "s"),
    "tap_force_pct_bw": ("Tap force", "% BW"),
    "cop_path_mm": ("COP path", "mm"),
    "cop_mean_velocity_mm_s": ("COP mean velocity", "mm/s"),
    "cop_ml_range_mm": ("COP ML range", "mm"),
    "cop_ap_range_mm": ("COP AP range", "mm"),
    "cop_ellipse95_mm2": ("COP 95 % ellipse", "mm²"),
    "left_share_pct": ("Left share of weight", "%"),
    "left_share_descent_pct": ("Left share, descent", "%"),
    "left_share_ascent_pct": ("Left share, ascent", "%"),
    "integration_drift_m_s": ("Integration drift", "m/s"),
}

#: Per-rep metrics that belong to no limb but are reported per visit (weight-bearing share of a squat).
WHOLE_BODY_METRICS = ("left_share_pct", "left_share_descent_pct", "left_share_ascent_pct")


def metric_label(name: str) -> str:
    return METRIC_INFO.get(name, (name.replace("_", " "), ""))[0]


def metric_unit(name: str) -> str:
    return METRIC_INFO.get(name, ("", ""))[1]


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN / inf → None, tuples → lists."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    try:
        f = float(obj)
    except (TypeError, ValueError):
        return str(obj)
    return f if math.isfinite(f) else None


def visit_reps(visit: ExportVisit) -> dict[str, list[SimpleNamespace]]:
    """protocol → the reps that count at this visit (accepted trials, accepted reps), as rep-like objects."""
    out: dict[str, list[SimpleNamespace]] = {}
    for et in visit.trials:
        for rep in et.accepted_reps():
            out.setdefault(et.protocol, []).append(
                SimpleNamespace(lead=rep.get("lead"), metrics=dict(rep.get("metrics") or {}), flags=list(rep.get("flags") or [])))
    return out


def visit_day(history: ExportPatientHistory, visit: ExportVisit) -> float:
    """The visit's position on the progress time axis: days since the first visit (its index if undated)."""
    if visit.day_offset is not None:
        return float(visit.day_offset)
    first = history.visits[0] if history.visits else visit
    if visit.date is not None and first.date is not None:
        return float((visit.date - first.date).days)
    return float(history.visits.index(visit)) if visit in history.visits else 0.0


def _symmetry_dict(ms: MetricSymmetry) -> dict[str, Any]:
    d = asdict(ms)
    d["label"] = metric_label(ms.metric)
    d["unit"] = metric_unit(ms.metric)
    return d


def _protocol_symmetry(visit: ExportVisit, involved: str | None, lsi_low_pct: float, lsi_high_pct: float
                       ) -> dict[str, dict[str, MetricSymmetry]]:
    return {protocol: visit_symmetry(reps, protocol, involved=involved, lsi_low_pct=lsi_low_pct, lsi_high_pct=lsi_high_pct)
            for protocol, reps in visit_reps(visit).items()}


def _whole_body(reps: list[SimpleNamespace]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in WHOLE_BODY_METRICS:
        vals = [float(r.metrics[name]) for r in reps if r.metrics.get(name) is not None
                and math.isfinite(float(r.metrics[name])) and "saturated" not in r.flags]
        if not vals:
            continue
        n = len(vals)
        mean = sum(vals) / n
        sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else None
        out[name] = {"n": n, "mean": mean, "sd": sd, "label": metric_label(name), "unit": metric_unit(name)}
    return out


def _pain(visit: ExportVisit) -> dict[str, Any]:
    during = [float(t.pain_during) for t in visit.trials if t.pain_during is not None]
    return {"before": visit.pain_before, "after": visit.pain_after, "next_morning": visit.pain_next_morning,
            "during": during, "during_max": max(during) if during else None,
            "during_mean": sum(during) / len(during) if during else None}


def visit_summary(visit: ExportVisit, involved: str | None, *, lsi_low_pct: float = 90.0,
                  lsi_high_pct: float = 110.0) -> dict[str, Any]:
    """One visit's per-limb statistics and symmetry, per protocol and metric (JSON-safe).

    Returns ``{"visit_id", "body_mass_kg", "involved", "lsi_band_pct": [lo, hi], "pain": {...},
    "protocols": {protocol: {"trials", "trials_rejected", "reps", "reps_rejected",
    "quality_score_mean", "whole_body": {metric: {n, mean, sd, label, unit}} (weight-bearing share),
    "metrics": {metric: {"left": {n, mean, sd, cv_pct, typical_error,
    mdc95, values}, "right": {...}, "lsi_pct", "symmetry_index_pct", "symmetry_angle_pct",
    "better", "worse_limb", "involved", "flags", "label", "unit"}}}}}``.
    """
    if involved not in (None, "left", "right"):
        raise ValueError(f"involved must be left, right or None, got {involved!r}")
    sym = _protocol_symmetry(visit, involved, lsi_low_pct, lsi_high_pct)
    reps_by_protocol = visit_reps(visit)
    protocols: dict[str, Any] = {}
    for et in visit.trials:
        p = protocols.setdefault(et.protocol, {"trials": 0, "trials_rejected": 0, "reps": 0, "reps_rejected": 0,
                                               "quality_scores": [], "metrics": {}})
        n_reps = len(et.analysis.get("reps") or [])
        if et.accepted:
            p["trials"] += 1
            n_ok = len(et.accepted_reps())
            p["reps"] += n_ok
            p["reps_rejected"] += n_reps - n_ok
        else:
            p["trials_rejected"] += 1
            p["reps_rejected"] += n_reps
        if et.quality_score is not None and et.accepted:
            p["quality_scores"].append(et.quality_score)
    for protocol, p in protocols.items():
        scores = p.pop("quality_scores")
        p["quality_score_mean"] = sum(scores) / len(scores) if scores else None
        p["metrics"] = {name: _symmetry_dict(ms) for name, ms in sorted(sym.get(protocol, {}).items())}
        p["whole_body"] = _whole_body(reps_by_protocol.get(protocol, []))
    return _clean({"visit_id": visit.visit_id, "body_mass_kg": visit.body_mass_kg, "involved": involved,
                   "lsi_band_pct": [lsi_low_pct, lsi_high_pct], "pain": _pain(visit), "protocols": protocols})


def _limb_point(ms: MetricSymmetry | None, limb: str) -> dict[str, Any]:
    if ms is None:
        return {"n": 0, "mean": None, "sd": None, "mdc95": None, "band_low": None, "band_high": None}
    s = ms.limb(limb)
    band = (s.mean - s.mdc95, s.mean + s.mdc95) if s.mean is not None and s.mdc95 is not None else (None, None)
    return {"n": s.n, "mean": s.mean, "sd": s.sd, "mdc95": s.mdc95, "band_low": band[0], "band_high": band[1]}


def _change(before: dict[str, MetricSymmetry], after: dict[str, MetricSymmetry], name: str) -> dict[str, Any] | None:
    if name not in before or name not in after:
        return None
    ch = compare_visits({name: before[name]}, {name: after[name]})[name]
    return {limb: {k: v for k, v in asdict(ch[limb]).items() if k not in ("metric", "limb")} for limb in LIMBS}


def progress(history: ExportPatientHistory, *, until_visit_id: str | None = None, lsi_low_pct: float = 90.0,
             lsi_high_pct: float = 110.0) -> dict[str, Any]:
    """Per protocol and metric, the visit series with MDC bands and the changes against the MDC (JSON-safe).

    Returns ``{"involved", "visits": [{"visit_id", "day", "label"}], "pain": [{"visit_id", "day",
    "before", "after", "next_morning", "during_max", "during_mean"}], "protocols": {protocol:
    {metric: {"label", "unit", "better", "series": [{"visit_id", "day", "left": {n, mean, sd, mdc95,
    band_low, band_high}, "right": {...}, "lsi_pct", "symmetry_index_pct", "worse_limb", "flags"}],
    "changes": [{"from_visit", "to_visit", "from_day", "to_day", "left": {before_mean, after_mean,
    change, typical_error, mdc95, exceeds_mdc, verdict}, "right": {...}}], "from_baseline": [...]}}}}``.
    ``until_visit_id`` cuts the history after that visit (a report shows the progress up to its visit).
    """
    visits = history.visits_until(until_visit_id) if until_visit_id is not None else list(history.visits)
    involved = history.subject.involved
    per_visit = [_protocol_symmetry(v, involved, lsi_low_pct, lsi_high_pct) for v in visits]
    days = [visit_day(history, v) for v in visits]
    out_protocols: dict[str, dict[str, Any]] = {}
    protocols = sorted({p for s in per_visit for p in s})
    for protocol in protocols:
        names = sorted({n for s in per_visit for n in s.get(protocol, {})})
        metrics: dict[str, Any] = {}
        for name in names:
            series: list[dict[str, Any]] = []
            changes: list[dict[str, Any]] = []
            from_base: list[dict[str, Any]] = []
            prev: tuple[int, dict[str, MetricSymmetry]] | None = None
            base: tuple[int, dict[str, MetricSymmetry]] | None = None
            for i, (v, sym) in enumerate(zip(visits, per_visit, strict=True)):
                ps = sym.get(protocol, {})
                ms = ps.get(name)
                if ms is None:
                    continue
                series.append({"visit_id": v.visit_id, "day": days[i], "left": _limb_point(ms, "left"),
                               "right": _limb_point(ms, "right"), "lsi_pct": ms.lsi_pct,
                               "symmetry_index_pct": ms.symmetry_index_pct, "worse_limb": ms.worse_limb,
                               "flags": list(ms.flags)})
                for ref, target in ((prev, changes), (base, from_base)):
                    if ref is None:
                        continue
                    c = _change(ref[1], ps, name)
                    if c is not None:
                        j = ref[0]
                        target.append({"from_visit": visits[j].visit_id, "to_visit": v.visit_id,
                                       "from_day": days[j], "to_day": days[i], **c})
                if base is None:
                    base = (i, ps)
                prev = (i, ps)
            metrics[name] = {"label": metric_label(name), "unit": metric_unit(name), "better": BETTER_DIRECTION.get(name),
                             "series": series, "changes": changes, "from_baseline": from_base}
        out_protocols[protocol] = metrics
    pain = [{"visit_id": v.visit_id, "day": days[i], **{k: val for k, val in _pain(v).items() if k != "during"}}
            for i, v in enumerate(visits)]
    return _clean({"involved": involved, "lsi_band_pct": [lsi_low_pct, lsi_high_pct],
                   "visits": [{"visit_id": v.visit_id, "day": days[i], "label": v.date_label(history.subject)}
                              for i, v in enumerate(visits)],
                   "pain": pain, "protocols": out_protocols})


def summary_rows(summary: dict[str, Any], protocol: str, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The metrics of one protocol of a :func:`visit_summary`, in a stable display order."""
    metrics = summary.get("protocols", {}).get(protocol, {}).get("metrics", {})
    order = list(METRIC_INFO) if names is None else list(names)
    ranked = sorted(metrics, key=lambda n: (order.index(n) if n in order else len(order), n))
    return [metrics[n] | {"metric": n} for n in ranked]
