"""Limb symmetry and change across visits (metrics.md § Symmetry, § Change across visits).

Two levels:

* scalar indices, used within a trial (drop landing left/right plates) and
  between limbs at visit level: :func:`lsi_pct`, :func:`symmetry_index_pct`
  (Robinson 1987), :func:`symmetry_angle_pct` (Zifchock 2008);
* visit level: :func:`visit_symmetry` groups the accepted reps of a visit by the
  limb each metric belongs to (landing metrics → the lead limb, lowering metrics
  → the trail / stance limb), gives per limb mean, SD, CV, typical error and
  MDC95, the indices, which limb is worse and out-of-band flags;
  :func:`compare_visits` says whether a change between two visits exceeds the
  minimal detectable change.

Conventions: SD is the sample SD (ddof = 1); CV = SD / |mean| × 100 %; the
typical error (TE) is the pooled within-visit SD of the reps of one limb,
``sqrt(Σ (n_i − 1)·s_i² / Σ (n_i − 1))``; ``mdc95 = 1.96·√2·TE/√n`` for a visit
mean of ``n`` reps.  Values that cannot be computed are ``None`` (never NaN).
See rig_docs/decisions/0004-symmetry-indices.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

LIMBS: tuple[str, str] = ("left", "right")

#: Which way is better for each metric ("higher" or "lower"); metrics not listed
#: have no declared direction (the display then names no worse limb).
BETTER_DIRECTION: dict[str, str] = {
    # step-down: lowering (trail limb)
    "lowering_duration_s": "higher",        # a slow, controlled eccentric lowering
    "peak_descent_speed_m_s": "lower",
    "touchdown_speed_m_s": "lower",         # less of the descent left unbraked
    "trail_support_at_contact_pct": "higher",
    "box_cop_ml_range_mm": "lower",         # less frontal-plane wobble of the trail limb
    "box_cop_ml_velocity_mm_s": "lower",
    # step-down / drop landing: landing (lead limb)
    "landing_peak_force_bw": "lower",
    "time_to_peak_s": "higher",
    "loading_rate_bw_s": "lower",
    "peak_loading_rate_bw_s": "lower",
    "impulse_100ms_bw_s": "lower",
    "peak_deceleration_m_s2": "lower",
    "landing_phase_duration_s": "higher",   # a longer, softer absorption
    "time_to_stabilization_s": "lower",
    # forward step-down (stance limb)
    "raising_duration_s": "higher",
    "tap_force_pct_bw": "lower",            # metrics.md: lower is better control
    # single-limb balance (stance limb)
    "cop_path_mm": "lower",
    "cop_mean_velocity_mm_s": "lower",
    "cop_ml_range_mm": "lower",
    "cop_ap_range_mm": "lower",
    "cop_ellipse95_mm2": "lower",
}

#: Metrics of the landing: they belong to the lead limb (step-down, drop landing).
LANDING_METRICS: frozenset[str] = frozenset({
    "landing_peak_force_bw", "time_to_peak_s", "loading_rate_bw_s", "peak_loading_rate_bw_s",
    "impulse_100ms_bw_s", "peak_deceleration_m_s2", "landing_phase_duration_s", "time_to_stabilization_s",
})

#: Metrics of the lowering: they belong to the trail limb (step-down).
LOWERING_METRICS: frozenset[str] = frozenset({
    "lowering_duration_s", "peak_descent_speed_m_s", "touchdown_speed_m_s",
    "trail_support_at_contact_pct", "box_cop_ml_range_mm", "box_cop_ml_velocity_mm_s",
})

#: Per-rep quality metrics that are not limb properties (never compared between limbs).
NOT_LIMB_METRICS: frozenset[str] = frozenset({"integration_drift_m_s", "left_share_pct",
                                             "left_share_descent_pct", "left_share_ascent_pct"})

#: Whole-body metrics of a drop landing (metrics.md § Drop landing): a limb property only when one
#: limb landed (single-limb landing); for a bilateral landing they belong to neither limb.
WHOLE_BODY_LANDING_METRICS: frozenset[str] = frozenset({
    "peak_deceleration_m_s2", "time_to_stabilization_s", "landing_phase_duration_s",
})

#: Rep flags that exclude a rep from the visit statistics by default.
DEFAULT_EXCLUDE_FLAGS: tuple[str, ...] = ("saturated",)

_Z95 = 1.96


def _finite(v) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def other_limb(limb: str) -> str:
    """The contralateral limb: ``"left"`` ↔ ``"right"``."""
    if limb not in LIMBS:
        raise ValueError(f"limb must be 'left' or 'right', got {limb!r}")
    return "right" if limb == "left" else "left"


# -- scalar indices --------------------------------------------------------------

def lsi_pct(involved: float | None, uninvolved: float | None) -> float | None:
    """Limb symmetry index, involved / uninvolved × 100 [%].

    With no involved limb on record, call it as ``lsi_pct(left, right)``.
    Returns None if a value is missing or the uninvolved value is 0.
    """
    a, b = _finite(involved), _finite(uninvolved)
    if a is None or b is None or b == 0.0:
        return None
    return a / b * 100.0


def symmetry_index_pct(left: float | None, right: float | None) -> float | None:
    """Robinson (1987) symmetry index, (R − L) / (0.5·(R + L)) × 100 [%].

    0 is perfect symmetry; positive means the right value is larger.  None when
    a value is missing or R + L = 0.
    """
    lv, rv = _finite(left), _finite(right)
    if lv is None or rv is None or (rv + lv) == 0.0:
        return None
    return (rv - lv) / (0.5 * (rv + lv)) * 100.0


def symmetry_angle_pct(left: float | None, right: float | None) -> float | None:
    """Zifchock (2008) symmetry angle, (45° − arctan(L/R)) / 90° × 100 [%].

    0 is perfect symmetry, ±100 % the extremes; positive when R > L (for
    positive values).  Uses Zifchock's correction (subtract 180° when
    45° − arctan(L/R) exceeds 90°, i.e. for values of opposite sign).  None when
    a value is missing or both are 0.
    """
    lv, rv = _finite(left), _finite(right)
    if lv is None or rv is None or (lv == 0.0 and rv == 0.0):
        return None
    if rv == 0.0:
        theta = math.copysign(90.0, lv)
    else:
        theta = math.degrees(math.atan(lv / rv))
    angle = 45.0 - theta
    if angle > 90.0:
        angle -= 180.0
    return angle / 90.0 * 100.0


# -- typical error and MDC -------------------------------------------------------

def typical_error(groups: Iterable[Sequence[float]]) -> float | None:
    """Pooled within-visit SD of reps (typical error, TE), in the metric's unit.

    Parameters
    ----------
    groups : iterable of sequences of float
        The reps of one limb, one sequence per visit (a single visit is one group).
        Missing values (None / NaN) are dropped; groups with < 2 values add nothing.

    Returns
    -------
    float or None
        ``sqrt(Σ (n_i − 1)·s_i² / Σ (n_i − 1))``; None with no degrees of freedom.
    """
    ss = 0.0
    dof = 0
    for g in groups:
        vals = [v for v in (_finite(x) for x in g) if v is not None]
        if len(vals) < 2:
            continue
        m = sum(vals) / len(vals)
        ss += sum((v - m) ** 2 for v in vals)
        dof += len(vals) - 1
    if dof == 0:
        return None
    return math.sqrt(ss / dof)


def mdc95(te: float | None, n_reps: int) -> float | None:
    """Minimal detectable change (95 %) of a visit mean of ``n_reps`` reps: 1.96·√2·TE/√n.

    Raises ValueError for ``n_reps < 1`` or a negative TE.
    """
    if int(n_reps) != n_reps or n_reps < 1:
        raise ValueError(f"n_reps must be a positive integer, got {n_reps!r}")
    t = _finite(te)
    if t is None:
        return None
    if t < 0:
        raise ValueError(f"typical error must be >= 0, got {te!r}")
    return _Z95 * math.sqrt(2.0) * t / math.sqrt(n_reps)


# -- visit level ----------------------------------------------------------------

@dataclass
class LimbStats:
    """One metric, one limb, one visit: statistics over the accepted reps (metric unit)."""

    n: int
    mean: float | None
    sd: float | None
    cv_pct: float | None
    typical_error: float | None
    mdc95: float | None
    values: list[float] = field(default_factory=list)


@dataclass
class MetricSymmetry:
    """One metric at one visit: both limbs, the indices, the worse limb and flags."""

    metric: str
    left: LimbStats
    right: LimbStats
    involved: str | None
    lsi_pct: float | None
    symmetry_index_pct: float | None
    symmetry_angle_pct: float | None
    better: str | None         # "higher" | "lower" | None
    worse_limb: str | None      # "left" | "right" | None (equal, unknown direction or missing)
    flags: list[str] = field(default_factory=list)

    def limb(self, name: str) -> LimbStats:
        if name not in LIMBS:
            raise ValueError(f"limb must be 'left' or 'right', got {name!r}")
        return self.left if name == "left" else self.right

    def to_dict(self) -> dict:
        return asdict(self)


def _limb_stats(values: list[float]) -> LimbStats:
    n = len(values)
    if n == 0:
        return LimbStats(0, None, None, None, None, None, [])
    mean = sum(values) / n
    sd = typical_error([values])
    cv = None if sd is None or mean == 0.0 else sd / abs(mean) * 100.0
    return LimbStats(n, mean, sd, cv, sd, mdc95(sd, n), list(values))


def metric_limb(protocol: str, metric: str, lead: str | None, *, bilateral: bool = False) -> str | None:
    """The limb a rep's metric belongs to (``"left"``/``"right"``), or None.

    * names ending ``_left`` / ``_right`` (per-plate drop-landing metrics): that limb;
    * step-down: landing metrics → the lead limb, lowering metrics → the trail limb;
    * drop landing, whole-body metrics (peak deceleration, time to stabilisation, landing
      phase duration): the lead limb for a single-limb landing; None for a bilateral
      landing (``bilateral=True``: both plates were landed on), where they are whole-body
      properties and whichever foot touched first says nothing about a limb;
    * forward step-down: the stance limb, i.e. the limb that does *not* tap
      (``lead`` is the tapping limb, the one whose floor plate is touched);
    * balance: the stance limb, which is the rep's ``lead``.
    Metrics that are not limb properties (drift, left share) → None.
    """
    if metric.endswith("_left"):
        return "left"
    if metric.endswith("_right"):
        return "right"
    if metric in NOT_LIMB_METRICS or lead not in LIMBS:
        return None
    if protocol == "step-down":
        if metric in LANDING_METRICS:
            return lead
        if metric in LOWERING_METRICS:
            return other_limb(lead)
        return None
    if protocol == "drop-landing":
        if bilateral and metric in WHOLE_BODY_LANDING_METRICS:
            return None
        return lead
    if protocol == "forward-step-down":
        return other_limb(lead)
    if protocol == "balance":
        return lead
    return None


def is_bilateral_landing(metrics: Mapping) -> bool:
    """True when a drop-landing rep's per-plate metrics have values on both plates (both feet landed)."""
    sides = set()
    for name, v in metrics.items():
        if _finite(v) is None:
            continue
        if name.endswith("_left"):
            sides.add("left")
        elif name.endswith("_right"):
            sides.add("right")
    return len(sides) == 2


def _base_metric(metric: str) -> str:
    for suffix in ("_left", "_right"):
        if metric.endswith(suffix):
            return metric[: -len(suffix)]
    return metric


def visit_symmetry(reps: Sequence, protocol: str, *, involved: str | None = None,
                   lsi_low_pct: float = 90.0, lsi_high_pct: float = 110.0,
                   exclude_flags: Sequence[str] = DEFAULT_EXCLUDE_FLAGS) -> dict[str, MetricSymmetry]:
    """Per-metric limb statistics and symmetry of one visit's reps.

    Parameters
    ----------
    reps : sequence of RepResult (or objects with ``lead``, ``metrics``, ``flags``)
        The visit's reps of one protocol (several trials may be pooled).
    protocol : str
        The protocol name (decides which limb each metric belongs to, see :func:`metric_limb`).
    involved : {"left", "right"} or None
        The involved limb on the patient's record; None → LSI is left / right.
    lsi_low_pct, lsi_high_pct : float
        The band of acceptable LSI [%]; outside it the metric is flagged
        ``lsi_below_band`` / ``lsi_above_band``.
    exclude_flags : sequence of str
        A rep carrying any of these flags is not accepted.

    Returns
    -------
    dict
        metric name (drop-landing per-plate names without their ``_left``/``_right``
        suffix) → :class:`MetricSymmetry`, for every metric with a value on at
        least one limb.
    """
    if involved is not None and involved not in LIMBS:
        raise ValueError(f"involved must be 'left', 'right' or None, got {involved!r}")
    lo, hi = _finite(lsi_low_pct), _finite(lsi_high_pct)
    if lo is None or hi is None or lo < 0 or hi <= lo:
        raise ValueError(f"LSI band must satisfy 0 <= low < high, got {lsi_low_pct!r}..{lsi_high_pct!r}")
    excluded = set(exclude_flags)
    values: dict[str, dict[str, list[float]]] = {}
    for rep in reps:
        if excluded.intersection(getattr(rep, "flags", []) or []):
            continue
        lead = getattr(rep, "lead", None)
        metrics = getattr(rep, "metrics", {}) or {}
        bilateral = protocol == "drop-landing" and is_bilateral_landing(metrics)
        for name, v in metrics.items():
            fv = _finite(v)
            if fv is None:
                continue
            limb = metric_limb(protocol, name, lead, bilateral=bilateral)
            if limb is None:
                continue
            base = _base_metric(name)
            if base.endswith("_symmetry_index_pct") or base.endswith("_symmetry_angle_pct") or base.endswith("_lsi_pct"):
                continue
            values.setdefault(base, {"left": [], "right": []})[limb].append(fv)
    out: dict[str, MetricSymmetry] = {}
    for name, per_limb in values.items():
        left, right = _limb_stats(per_limb["left"]), _limb_stats(per_limb["right"])
        if involved is None:
            lsi = lsi_pct(left.mean, right.mean)
        else:
            inv, uninv = (left, right) if involved == "left" else (right, left)
            lsi = lsi_pct(inv.mean, uninv.mean)
        better = BETTER_DIRECTION.get(name)
        worse = None
        if better is not None and left.mean is not None and right.mean is not None and left.mean != right.mean:
            left_better = (left.mean > right.mean) if better == "higher" else (left.mean < right.mean)
            worse = "right" if left_better else "left"
        flags: list[str] = []
        if lsi is not None:
            if lsi < lo:
                flags.append("lsi_below_band")
            elif lsi > hi:
                flags.append("lsi_above_band")
        if left.n == 0 or right.n == 0:
            flags.append("one_limb_only")
        out[name] = MetricSymmetry(
            metric=name, left=left, right=right, involved=involved, lsi_pct=lsi,
            symmetry_index_pct=symmetry_index_pct(left.mean, right.mean),
            symmetry_angle_pct=symmetry_angle_pct(left.mean, right.mean),
            better=better, worse_limb=worse, flags=flags,
        )
    return out


@dataclass
class LimbChange:
    """The change of one limb's visit mean between two visits (metric unit)."""

    metric: str
    limb: str
    before_mean: float | None
    after_mean: float | None
    change: float | None
    typical_error: float | None
    mdc95: float | None
    exceeds_mdc: bool | None   # None when it cannot be decided (missing values, no TE)
    verdict: str               # "improved" | "worsened" | "changed" | "within_noise" | "unknown"


def change_exceeds_mdc(before: Sequence[float], after: Sequence[float], *,
                       typical_error_value: float | None = None) -> tuple[float | None, float | None, float | None, bool | None]:
    """Change of the mean between two visits against the MDC95.

    ``TE`` is ``typical_error_value`` when given (e.g. from a reliability study),
    else pooled over the two visits' reps.  ``MDC95 = 1.96·TE·√(1/n₁ + 1/n₂)``,
    which is metrics.md's ``1.96·√2·TE/√n`` when both visits have ``n`` reps.

    Returns
    -------
    (change, te, mdc95, exceeds) : the mean change (after − before), TE, MDC95,
    and whether ``|change| > MDC95`` (None when undecidable).
    """
    b = [v for v in (_finite(x) for x in before) if v is not None]
    a = [v for v in (_finite(x) for x in after) if v is not None]
    if not b or not a:
        return None, None, None, None
    change = sum(a) / len(a) - sum(b) / len(b)
    if typical_error_value is not None:
        te = _finite(typical_error_value)
        if te is None or te < 0:
            raise ValueError(f"typical_error_value must be a finite number >= 0, got {typical_error_value!r}")
    else:
        te = typical_error([b, a])
    if te is None:
        return change, None, None, None
    mdc = _Z95 * te * math.sqrt(1.0 / len(b) + 1.0 / len(a))
    return change, te, mdc, abs(change) > mdc


def compare_visits(before: Mapping[str, MetricSymmetry], after: Mapping[str, MetricSymmetry], *,
                   typical_errors: Mapping[tuple[str, str], float] | None = None) -> dict[str, dict[str, LimbChange]]:
    """Per metric and limb: did the visit mean change by more than the MDC95?

    Parameters
    ----------
    before, after : mapping metric → MetricSymmetry
        Two visits' :func:`visit_symmetry` results (same protocol).
    typical_errors : mapping (metric, limb) → TE, optional
        Known typical errors; otherwise TE is pooled from the two visits' reps.

    Returns
    -------
    dict
        metric → {"left": LimbChange, "right": LimbChange} for metrics present in both.
        ``verdict`` is "improved"/"worsened" (by the metric's better direction)
        when the change exceeds the MDC, "changed" when it does but the metric
        has no direction, "within_noise" when it does not, "unknown" when
        undecidable.
    """
    out: dict[str, dict[str, LimbChange]] = {}
    for name in before:
        if name not in after:
            continue
        per: dict[str, LimbChange] = {}
        for limb in LIMBS:
            b, a = before[name].limb(limb), after[name].limb(limb)
            te_given = None if typical_errors is None else typical_errors.get((name, limb))
            change, te, mdc, exceeds = change_exceeds_mdc(b.values, a.values, typical_error_value=te_given)
            better = BETTER_DIRECTION.get(name)
            if exceeds is None:
                verdict = "unknown"
            elif not exceeds:
                verdict = "within_noise"
            elif better is None:
                verdict = "changed"
            else:
                verdict = "improved" if ((change is not None and change > 0) == (better == "higher")) else "worsened"
            per[limb] = LimbChange(name, limb, b.mean, a.mean, change, te, mdc, exceeds, verdict)
        out[name] = per
    return out


def live_left_share_pct(fz_left_n: float, fz_right_n: float, min_total_n: float = 20.0) -> float | None:
    """Instantaneous left share of the weight on two plates, Fz_L / (Fz_L + Fz_R) × 100 [%].

    None when the total is below ``min_total_n`` (nobody on the plates).
    """
    l, r = _finite(fz_left_n), _finite(fz_right_n)
    if l is None or r is None:
        return None
    tot = l + r
    if tot < min_total_n or tot <= 0.0:
        return None
    return l / tot * 100.0
