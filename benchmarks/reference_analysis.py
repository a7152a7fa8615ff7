"""Plain NumPy/SciPy reference implementation of the metrics of metrics.md.

This module is the independent check on the numba analysis core
(``steplab.dsp``): it was written from the metric definitions alone, in the most
obvious way (NumPy arrays, ``scipy.signal.butter`` + ``sosfiltfilt``,
``scipy.integrate.cumulative_trapezoid``, boolean masks, a Python loop over
reps).  It favours clarity over speed, but is vectorised within a rep so that
the benchmark against the core is fair.

It exposes the same two entry points as the core and returns the same result
records::

    analyze_forces(plates, rate_hz, protocol, *, lead=None, body_mass_kg=None,
                   params=None, provenance=None) -> AnalysisResult
    analyze_counts(counts, rate_hz, calibration, protocol, **same_kwargs) -> AnalysisResult

Choices where metrics.md leaves room (each one is the plainest reading):

* thresholds that detect events (quiet stance, movement, contact) read the
  unfiltered force; force values used in metrics (peaks, rates, impulse,
  box support, stabilisation band) read the ``force_cutoff_hz`` filtered force;
  velocity integrates the unfiltered force;
* SD of the quiet window is the population SD (ddof = 0);
* contact must hold for ``round(contact_min_s·rate)`` samples;
* COP is computed from the unfiltered Fz and moments where Fz ≥ cop_min_force_n,
  then each contiguous valid stretch is low-passed at ``cop_cutoff_hz``;
* a rep's integration starts at the 1 s window of smallest SD inside the
  ``quiet_search_s`` that precede its movement (after the last ≥ 1 s stretch
  of stillness); the end of a movement (forward step-down "back to quiet",
  squat) is where ``|F − BW|`` last falls below the movement threshold before a
  ≥ 1 s still stretch (force, not ``|v|``: velocity drift after seconds of
  integration is of the order of ``onset_speed_m_s``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.integrate import cumulative_trapezoid
from scipy.signal import butter, sosfiltfilt

from steplab.calibration.arrays import CalibrationArrays
from steplab.constants import G_M_S2 as G_M_S2  # re-exported (tests use it); g of metrics.md
from steplab.dsp.params import PROTOCOL_VERSIONS, PROTOCOLS, ROLES, AnalysisParams, PlateForces
from steplab.dsp.results import AnalysisResult, RepResult

IMPLEMENTATION = "steplab.benchmarks.reference_analysis"
DROP_PLATE_METRICS = ("landing_peak_force_bw", "time_to_peak_s", "loading_rate_bw_s",
                      "peak_loading_rate_bw_s", "impulse_100ms_bw_s")
LIMB_OF_ROLE: dict[str, str] = {"floor_left": "left", "floor_right": "right"}
ROLE_OF_LIMB: dict[str, str] = {"left": "floor_left", "right": "floor_right"}
LEAD_CONTRADICTION_S = 0.010  # metrics.md § Drop landing: a named lead struck this much later is contradicted
STEP_DOWN_METRICS = ("lowering_duration_s", "peak_descent_speed_m_s", "touchdown_speed_m_s",
                     "trail_support_at_contact_pct", *DROP_PLATE_METRICS, "peak_deceleration_m_s2",
                     "landing_phase_duration_s", "time_to_stabilization_s", "box_cop_ml_range_mm",
                     "box_cop_ml_velocity_mm_s")
FORWARD_METRICS = ("lowering_duration_s", "raising_duration_s", "tap_force_pct_bw", "peak_descent_speed_m_s",
                   "box_cop_ml_range_mm")
SQUAT_METRICS = ("left_share_pct", "left_share_descent_pct", "left_share_ascent_pct")
#: metrics that read the whole landing phase: None when the recording cuts it (decision 0003)
WHOLE_PHASE_METRICS = ("landing_peak_force_bw", "time_to_peak_s", "loading_rate_bw_s", "peak_loading_rate_bw_s",
                       "peak_deceleration_m_s2", "landing_phase_duration_s", "time_to_stabilization_s",
                       "integration_drift_m_s")
# decision 0003 constants (written rules, not read from the core)
BODY_MASS_MISMATCH_FRACTION = 0.02     # |m·g − measured quiet force| > max(2 % m·g, 10 N)
BODY_MASS_MISMATCH_MIN_N = 10.0
NO_QUIET_SD_FACTOR = 3.0               # no quiet stance: σ > 3 × max(10 N, 2 % BW)
BOUNCE_QUIET_S = 0.5                   # step-down: an in-band run ≥ 0.5 s separates two landings
MIN_FLIGHT_S = 0.100                   # drop landing: both floor plates < contact threshold ≥ 100 ms
SQUAT_QUIET_SPEED_FACTOR = 5.0         # closing stance: |v| ≤ 5 × onset_speed_m_s
SQUAT_RETURN_FRACTION = 0.5            # ... and |z| ≤ max(50 % of the depth so far, 2 cm)
SQUAT_RETURN_MIN_M = 0.02
SQUAT_MIN_DEPTH_M = 0.02               # a movement of < 2 cm is not a rep


# ---------------------------------------------------------------------------
# small signal helpers
# ---------------------------------------------------------------------------
def lowpass(x: np.ndarray, cutoff_hz: float, rate_hz: float, order: int) -> np.ndarray:
    """Zero-lag Butterworth low-pass: an ``order/2`` design run forward and backward.

    The ends are padded by odd extension over three periods of the cut-off (at
    least SciPy's default), so the start-up transient dies out inside the padding.
    """
    sos = butter(order // 2, cutoff_hz, btype="low", fs=rate_hz, output="sos")
    padlen = max(3 * (2 * len(sos) + 1), int(math.ceil(3 * rate_hz / cutoff_hz)))
    return sosfiltfilt(sos, x, padlen=max(min(padlen, len(x) - 1), 0))


def runs_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True as (start, stop) index pairs, stop exclusive."""
    m = np.concatenate(([False], np.asarray(mask, dtype=bool), [False]))
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2])]


def debounced(mask: np.ndarray, min_len: int) -> np.ndarray:
    """``mask`` with runs shorter than ``min_len`` samples removed."""
    out = np.zeros(len(mask), dtype=bool)
    for a, b in runs_of(mask):
        if b - a >= min_len:
            out[a:b] = True
    return out


def crossing_time(x: np.ndarray, i: int, level: float, dt: float) -> float:
    """Time (s) where ``x`` crosses ``level`` between samples ``i-1`` and ``i`` (linear)."""
    if i <= 0:
        return 0.0
    x0, x1 = float(x[i - 1]), float(x[i])
    if x1 == x0:
        return i * dt
    frac = (level - x0) / (x1 - x0)
    frac = min(max(frac, 0.0), 1.0)
    return (i - 1 + frac) * dt


def value_at(x: np.ndarray, t: float, dt: float) -> float:
    """Linear interpolation of the sampled signal ``x`` at time ``t`` (s)."""
    return float(np.interp(t, np.arange(len(x)) * dt, x))


def samples_between(t0: float, t1: float, dt: float, n: int) -> np.ndarray:
    """Indices of the samples with ``t0 <= t <= t1``."""
    first = max(int(math.ceil(t0 / dt - 1e-9)), 0)
    last = min(int(math.floor(t1 / dt + 1e-9)), n - 1)
    return np.arange(first, last + 1)


def integral_between(x: np.ndarray, t0: float, t1: float, dt: float) -> float:
    """∫ x dt over [t0, t1] of the piecewise-linear signal (trapezoid, exact ends)."""
    idx = samples_between(t0, t1, dt, len(x))
    ts = np.concatenate(([t0], idx * dt, [t1]))
    xs = np.concatenate(([value_at(x, t0, dt)], x[idx], [value_at(x, t1, dt)]))
    return float(np.trapezoid(xs, ts))


def min_sd_window(f: np.ndarray, lo: int, hi: int, w: int) -> tuple[int, float, float]:
    """The ``w``-sample window inside ``f[lo:hi]`` with the smallest SD: (start, mean, sd)."""
    seg = f[lo:hi] - np.mean(f[lo:hi])
    c1 = np.concatenate(([0.0], np.cumsum(seg)))
    c2 = np.concatenate(([0.0], np.cumsum(seg * seg)))
    mean = (c1[w:] - c1[:-w]) / w
    var = np.maximum((c2[w:] - c2[:-w]) / w - mean * mean, 0.0)
    k = int(np.argmin(var))
    start = lo + k
    window = f[start:start + w]
    return start, float(np.mean(window)), float(np.std(window))


def cop_ml_ap_mm(plate: PlateForces, a: int, b: int, params: AnalysisParams,
                 rate_hz: float) -> tuple[np.ndarray, np.ndarray] | None:
    """COP (x = ML, y = AP, mm) of samples ``a..b-1``, filtered at ``cop_cutoff_hz``.

    Filters the whole contiguous loaded stretch that contains ``a..b-1``; None if
    the plate has no moments or is not loaded over the whole span.
    """
    if plate.mx_nm is None or plate.my_nm is None or b <= a:
        return None
    valid = plate.fz_n >= params.cop_min_force_n
    if not np.all(valid[a:b]):
        return None
    s = a
    while s > 0 and valid[s - 1]:
        s -= 1
    e = b
    while e < len(valid) and valid[e]:
        e += 1
    fz = plate.fz_n[s:e]
    x = -1000.0 * plate.my_nm[s:e] / fz
    y = 1000.0 * plate.mx_nm[s:e] / fz
    if e - s > 3:
        x = lowpass(x, params.cop_cutoff_hz, rate_hz, params.filter_order)
        y = lowpass(y, params.cop_cutoff_hz, rate_hz, params.filter_order)
    return x[a - s:b - s], y[a - s:b - s]


def symmetry_metrics(name: str, left: float | None, right: float | None) -> dict[str, float | None]:
    """Within-trial left/right indices of one metric: LSI (L/R), SI (Robinson), angle (Zifchock)."""
    out: dict[str, float | None] = {f"{name}_lsi_pct": None, f"{name}_symmetry_index_pct": None,
                                    f"{name}_symmetry_angle_pct": None}
    if left is None or right is None:
        return out
    if right != 0.0:
        out[f"{name}_lsi_pct"] = left / right * 100.0
        out[f"{name}_symmetry_angle_pct"] = (45.0 - math.degrees(math.atan(left / right))) / 90.0 * 100.0
    if left + right != 0.0:
        out[f"{name}_symmetry_index_pct"] = (right - left) / (0.5 * (right + left)) * 100.0
    return out


# ---------------------------------------------------------------------------
# the trial context shared by the protocols
# ---------------------------------------------------------------------------
class _Trial:
    """Signals, body weight and thresholds of one trial."""

    def __init__(self, plates: dict[str, PlateForces], rate_hz: float, params: AnalysisParams):
        self.plates = plates
        self.p = params
        self.rate = float(rate_hz)
        self.dt = 1.0 / self.rate
        self.n = len(next(iter(plates.values())).fz_n)
        self.F = np.sum([pl.fz_n for pl in plates.values()], axis=0)
        self.F_f = lowpass(self.F, params.force_cutoff_hz, self.rate, params.filter_order)
        self.fz_f = {r: lowpass(pl.fz_n, params.force_cutoff_hz, self.rate, params.filter_order)
                     for r, pl in plates.items()}
        self.w = max(int(round(params.quiet_window_s * self.rate)), 2)
        self.search = max(int(round(params.quiet_search_s * self.rate)), self.w)
        self.contact_min = max(int(round(params.contact_min_s * self.rate)), 1)
        self.loaded = {r: debounced(pl.fz_n >= params.contact_threshold_n, self.contact_min)
                       for r, pl in plates.items()}
        self.floor_roles: list[str] = [r for r in ("floor_left", "floor_right") if r in plates]
        self.bw = float("nan")
        self.sd_q = float("nan")
        self.level = float("nan")
        self.q_weigh = 0

    def set_weight(self, bw: float, sd_q: float, level: float) -> None:
        """Body weight ``bw`` (N, m·g when the mass is given), quiet SD and measured quiet force ``level`` (N).

        Every quiet-band search and the velocity baseline use ``level`` (what the
        plates read in quiet stance); ``bw`` and ``m`` normalise (decision 0003).
        """
        self.bw = bw
        self.sd_q = sd_q
        self.level = level
        self.m = bw / G_M_S2
        self.thr = max(self.p.onset_sd_factor * sd_q, self.p.onset_bw_fraction * bw)
        self.dev = self.F - level
        self.active = np.abs(self.dev) > self.thr
        self.inband_runs = [(a, b) for a, b in runs_of(~self.active) if b - a >= self.w]

    def velocity(self, start: int, stop: int) -> np.ndarray:
        """Centre-of-mass velocity (m/s) over samples ``start..stop-1``, 0 at ``start``.

        The baseline is the mean force of the quiet window starting at ``start``
        (metrics.md § kinematics: each rep integrates against its own quiet stance); m is the
        weighing's.
        """
        baseline_n = float(np.mean(self.F[start:start + self.w]))
        a = (self.F[start:stop] - baseline_n) / self.m
        return cumulative_trapezoid(a, dx=self.dt, initial=0.0)

    def first_quiet_run_after(self, i: int, stop: int | None = None) -> tuple[int, int] | None:
        """First in-band run of ≥ one quiet window that starts after sample ``i`` (and ends by ``stop``)."""
        for a, b in self.inband_runs:
            if a > i and (stop is None or b <= stop):
                return a, b
        return None

    def floor_runs(self) -> list[tuple[int, int]]:
        any_floor = np.zeros(self.n, dtype=bool)
        for r in self.floor_roles:
            any_floor |= self.loaded[r]
        return runs_of(any_floor)

    def quiet_before(self, lo: int, hi: int) -> tuple[int, int, bool]:
        """Integration start ``q0`` and movement detection index ``d`` for a movement before ``hi``.

        ``d`` = first above-threshold sample after the last ≥ 1 s still stretch in
        ``[lo, hi)``; ``q0`` = start of the min-SD window in the ``quiet_search_s``
        before ``d``.  Third item False when no still stretch exists (no_quiet_stance).
        """
        still = [(a, b) for a, b in runs_of(~self.active[lo:hi]) if b - a >= self.w]
        if still:
            a, b = still[-1]
            a, b = a + lo, b + lo
            d = b
            q_lo = max(a, d - self.search)
            q0, _, _ = min_sd_window(self.F, q_lo, d, self.w)
            return q0, d, True
        act = np.flatnonzero(self.active[lo:hi])
        d = lo + int(act[0]) if act.size else hi
        return lo, d, False

    def onset_time(self, v: np.ndarray, q0: int, d: int) -> float:
        """Last time at or before the detection index ``d`` with ``|v| ≤ onset_speed``."""
        vs = self.p.onset_speed_m_s
        speed = np.abs(v[: d - q0 + 1])
        if speed[-1] <= vs:  # still slow when the force leaves the band: onset = detection
            i = d
            return crossing_time(np.abs(self.dev), i, self.thr, self.dt) if i > 0 else 0.0
        slow = np.flatnonzero(speed <= vs)
        k = int(slow[-1])  # speed[k] <= vs < speed[k + 1]
        return (q0 + k + (vs - speed[k]) / (speed[k + 1] - speed[k])) * self.dt

    def end_time(self, last_active: int) -> float:
        """Back to quiet: where ``|F − BW|`` falls below the movement threshold after ``last_active``.

        Not read from ``|v|``: after several seconds of integration the drift of
        v is of the order of the onset speed itself.
        """
        return crossing_time(-np.abs(self.dev), last_active + 1, -self.thr, self.dt)

    def v_at(self, v: np.ndarray, q0: int, t: float) -> float:
        return float(np.interp(t, (q0 + np.arange(len(v))) * self.dt, v))

    def arrest(self, v: np.ndarray, q0: int, t_contact: float) -> tuple[float, str]:
        """End of the landing phase: (time, status), status "arrested", "not_arrested" or "truncated".

        ``arrested``: first time after contact with v ≥ 0, within the timeout;
        ``not_arrested``: none within ``arrest_timeout_s`` (phase ends at contact + timeout);
        ``truncated``: the recording ends before both (phase ends at the last sample).
        """
        timeout = t_contact + self.p.arrest_timeout_s
        i0 = int(math.floor(t_contact / self.dt)) + 1  # first sample after t_contact
        k0 = i0 - q0
        if self.v_at(v, q0, t_contact) >= 0.0:
            return t_contact, "arrested"
        up = np.flatnonzero(v[k0:] >= 0.0)
        if up.size:
            k = k0 + int(up[0])
            t = (q0 + k - 1 + (0.0 - v[k - 1]) / (v[k] - v[k - 1])) * self.dt
            if t <= timeout:
                return t, "arrested"
        t_last = (self.n - 1) * self.dt
        if timeout > t_last:
            return t_last, "truncated"
        return timeout, "not_arrested"

    def stabilization(self, t_contact: float, stop: int) -> float | None:
        """Time from contact until |F − BW| ≤ band for the next hold_s (None if not before ``stop``)."""
        band = self.p.stabilization_band_bw * self.bw
        hold = max(int(round(self.p.stabilization_hold_s * self.rate)), 1)
        dev = self.F_f - self.level
        ok = np.abs(dev) <= band
        i0 = int(math.ceil(t_contact / self.dt - 1e-9))
        for a, b in runs_of(ok[i0:stop]):
            a, b = a + i0, b + i0
            if b - a >= hold:
                if a == i0:
                    return 0.0
                level = band if dev[a - 1] > 0 else -band
                return max(crossing_time(dev, a, level, self.dt) - t_contact, 0.0)
        return None

    def contact_at(self, role: str, start: int, stop: int) -> tuple[int, float] | None:
        """First loaded-run start of plate ``role`` in [start, stop): (index, interpolated time)."""
        idx = np.flatnonzero(self.loaded[role][start:stop])
        if idx.size == 0:
            return None
        i = start + int(idx[0])
        return i, crossing_time(self.plates[role].fz_n, i, self.p.contact_threshold_n, self.dt)

    def landing_plate_metrics(self, role: str, t_contact: float, t_end: float) -> dict[str, float | None]:
        """Peak, time to peak, loading rates and 100 ms impulse of one plate (metrics.md)."""
        fz = self.fz_f[role]
        out: dict[str, float | None] = dict.fromkeys(DROP_PLATE_METRICS)
        idx = samples_between(t_contact, t_end, self.dt, self.n)
        if idx.size == 0:
            return out
        k = int(idx[np.argmax(fz[idx])])
        peak = float(fz[k])
        ttp = k * self.dt - t_contact
        out["landing_peak_force_bw"] = peak / self.bw
        out["time_to_peak_s"] = ttp
        if ttp > 0:
            out["loading_rate_bw_s"] = (peak - value_at(fz, t_contact, self.dt)) / ttp / self.bw
        slope = np.gradient(fz, self.dt)
        rate_idx = idx[idx <= k]
        out["peak_loading_rate_bw_s"] = float(np.max(slope[rate_idx])) / self.bw
        t1 = t_contact + 0.1
        if t1 <= (self.n - 1) * self.dt:
            out["impulse_100ms_bw_s"] = integral_between(fz, t_contact, t1, self.dt) / self.bw
        return out

    def peak_deceleration(self, t_contact: float, t_end: float) -> float | None:
        idx = samples_between(t_contact, t_end, self.dt, self.n)
        if idx.size == 0:
            return None
        return (float(np.max(self.F_f[idx])) - self.bw) / self.m

    def box_cop_ml(self, t0: float, t1: float) -> tuple[float | None, float | None]:
        if "box" not in self.plates:
            return None, None
        idx = samples_between(t0, t1, self.dt, self.n)
        if idx.size < 2:
            return None, None
        cop = cop_ml_ap_mm(self.plates["box"], int(idx[0]), int(idx[-1]) + 1, self.p, self.rate)
        if cop is None:
            return None, None
        x = cop[0]
        duration = (len(x) - 1) * self.dt
        return float(np.max(x) - np.min(x)), float(np.sum(np.abs(np.diff(x))) / duration)


# ---------------------------------------------------------------------------
# protocols
# ---------------------------------------------------------------------------
def _none_metrics(names) -> dict[str, float | None]:
    return dict.fromkeys(names)


def _event_contact(tr: _Trial, start: int, stop: int, lead: str | None) -> tuple[str, int | None, float | None, str | None]:
    """Lead plate and contact of the floor event ``[start, stop)``: (role, index, time, flag).

    Without ``lead`` the plate whose own contact starts first leads.  With ``lead``
    contact is searched on that limb's plate only (decision 0003): none there →
    flag ``lead_plate_not_contacted``; the other floor plate already in contact
    when it is struck → flag ``lead_override_contradicted``.
    """
    contacts = {r: c for r in tr.floor_roles if (c := tr.contact_at(r, start, stop)) is not None}
    if lead is None:
        role: str = min(contacts, key=lambda r: contacts[r][1])
        return role, contacts[role][0], contacts[role][1], None
    role = ROLE_OF_LIMB[lead]
    if role not in contacts:
        return role, None, None, "lead_plate_not_contacted"
    ic, tc = contacts[role]
    others = [c for r, c in contacts.items() if r != role and c[1] < tc]
    return role, ic, tc, ("lead_override_contradicted" if others else None)


def _step_down_events(tr: _Trial) -> list[tuple[int, int, bool]]:
    """Floor-contact events (start, stop, bounce) after the start of the recording.

    Floor runs with no quiet stance (an in-band run ≥ ``BOUNCE_QUIET_S``) between
    them are one landing, flagged ``bounce``.
    """
    min_quiet = max(int(round(BOUNCE_QUIET_S * tr.rate)), 1)
    events: list[list] = []
    for a, b in tr.floor_runs():
        if a == 0:  # already on the floor when the recording starts: not a step down
            continue
        if events:
            gap = ~tr.active[events[-1][1]:a]
            if not any(e - s >= min_quiet for s, e in runs_of(gap)):
                events[-1][1] = b
                events[-1][2] = True
                continue
        events.append([a, b, False])
    return [(a, b, bounce) for a, b, bounce in events]


def _truncate(metrics: dict[str, float | None], flags: list[str]) -> None:
    """A landing phase cut by the end of the recording: whole-phase metrics None (decision 0003)."""
    flags.append("truncated")
    for name in list(metrics):
        base = name[:-5] if name.endswith("_left") else name[:-6] if name.endswith("_right") else name
        if base in WHOLE_PHASE_METRICS:
            metrics[name] = None
    if "not_stabilized" not in flags:
        flags.append("not_stabilized")


def _step_down_reps(tr: _Trial, lead: str | None, forward: bool) -> list[RepResult]:
    """Step-down (walk-off) and forward step-down (tap): one rep per floor-contact event after box stance."""
    p = tr.p
    names = FORWARD_METRICS if forward else STEP_DOWN_METRICS
    events = []
    for a, b, bounce in _step_down_events(tr):
        events.append((a, b, bounce, _event_contact(tr, a, b, lead)))
    reps: list[RepResult] = []
    for k, (a, b, bounce, (role, ic, t_contact, lead_flag)) in enumerate(events):
        limb = LIMB_OF_ROLE[role]
        flags: list[str] = ["bounce"] if bounce else []
        if lead_flag is not None:
            flags.append(lead_flag)
            reps.append(RepResult(lead=limb, t_onset_s=None, t_contact_s=t_contact, metrics=_none_metrics(names),
                                  flags=flags))
            continue
        assert ic is not None and t_contact is not None  # a contact was found (no lead flag)
        if k == 0 and tr.q_weigh + tr.w <= ic:  # the first rep integrates from the weighing window
            q0 = tr.q_weigh
            act = np.flatnonzero(tr.active[q0 + tr.w:ic + 1])
            d = q0 + tr.w + int(act[0]) if act.size else ic
        else:
            lo = events[k - 1][1] if k > 0 else 0
            q0, d, ok = tr.quiet_before(lo, ic)
            if not ok:
                flags.append("no_quiet_stance")
                reps.append(RepResult(lead=limb, t_onset_s=None, t_contact_s=t_contact,
                                      metrics=_none_metrics(names), flags=flags))
                continue
        seg_end = events[k + 1][0] if k + 1 < len(events) else tr.n  # next event's start
        v = tr.velocity(q0, seg_end)
        t_onset = tr.onset_time(v, q0, min(d, ic))
        idx_low = samples_between(t_onset, t_contact, tr.dt, tr.n)
        v_low = np.concatenate(([tr.v_at(v, q0, t_onset)], v[idx_low - q0], [tr.v_at(v, q0, t_contact)]))
        metrics: dict[str, float | None] = {}
        metrics["lowering_duration_s"] = t_contact - t_onset
        ml_range, ml_vel = tr.box_cop_ml(t_onset, t_contact)
        if forward:
            t_tap_end = crossing_time(tr.plates[role].fz_n, b, p.contact_threshold_n, tr.dt) if b < tr.n else None
            # the rep ends at the first ≥ 1 s still stretch after the tap
            t_quiet = None
            if t_tap_end is not None:
                still = [(s, e) for s, e in runs_of(~tr.active[b:]) if e - s >= tr.w]
                if still:
                    last_active = b + still[0][0] - 1
                    t_quiet = tr.end_time(last_active) if last_active >= b else t_tap_end
            tap_idx = np.arange(a, b)
            metrics["raising_duration_s"] = (t_quiet - t_tap_end) if t_quiet is not None and t_tap_end is not None else None
            metrics["tap_force_pct_bw"] = float(np.max(tr.fz_f[role][tap_idx])) / tr.bw * 100.0
            metrics["peak_descent_speed_m_s"] = -float(np.min(v_low))
            metrics["box_cop_ml_range_mm"] = ml_range
        else:
            t_end, status = tr.arrest(v, q0, t_contact)
            if status == "not_arrested":
                flags.append("descent_not_arrested")
            metrics["peak_descent_speed_m_s"] = -float(np.min(v_low))
            metrics["touchdown_speed_m_s"] = -tr.v_at(v, q0, t_contact)
            metrics["trail_support_at_contact_pct"] = (
                value_at(tr.fz_f["box"], t_contact, tr.dt) / tr.bw * 100.0 if "box" in tr.plates else None)
            metrics.update(tr.landing_plate_metrics(role, t_contact, t_end))
            metrics["peak_deceleration_m_s2"] = tr.peak_deceleration(t_contact, t_end)
            metrics["landing_phase_duration_s"] = t_end - t_contact
            tts = tr.stabilization(t_contact, b)
            if tts is None:
                flags.append("not_stabilized")
            metrics["time_to_stabilization_s"] = tts
            metrics["box_cop_ml_range_mm"] = ml_range
            metrics["box_cop_ml_velocity_mm_s"] = ml_vel
            # drift: mean v over the last second of the first ≥ 1 s quiet run after contact
            run = tr.first_quiet_run_after(ic, seg_end)
            if run is not None and status != "truncated":
                drift = float(np.mean(v[run[1] - tr.w - q0:run[1] - q0]))
                metrics["integration_drift_m_s"] = drift
                if abs(drift) > p.drift_flag_m_s:
                    flags.append("integration_drift")
            if status == "truncated":
                _truncate(metrics, flags)
        reps.append(RepResult(lead=limb, t_onset_s=t_onset, t_contact_s=t_contact, metrics=metrics, flags=flags))
    return reps


def _landings(tr: _Trial) -> list[tuple[int, int, bool]]:
    """Drop-landing events (start, stop, bounce): floor runs that follow a flight.

    A flight is ≥ ``MIN_FLIGHT_S`` with every floor plate below the contact
    threshold; a floor run after a shorter airborne gap joins the previous landing
    (flag ``bounce``); a run at the start of the recording with no flight before it
    is not a landing.
    """
    nf = max(int(math.ceil(MIN_FLIGHT_S * tr.rate - 1e-9)), 1)
    air = np.ones(tr.n, dtype=bool)
    for r in tr.floor_roles:
        air &= tr.plates[r].fz_n < tr.p.contact_threshold_n
    out: list[list] = []
    for a, b in tr.floor_runs():
        if (a > 0 and not out) or (a >= nf and np.all(air[a - nf:a])):
            out.append([a, b, False])  # the first floor run after the start (off the floor) is a landing
        elif out:
            out[-1][1] = b
            out[-1][2] = True
    return [(a, b, bounce) for a, b, bounce in out]


def _weigh_drop(tr: _Trial) -> tuple[int, float, float, bool] | None:
    """Drop-landing weighing (decision 0003): (window start, mean, SD, unsteady) or None.

    The last window when it is quiet stance; else the min-SD window inside the
    floor contact of the latest landing that has a steady one (latest first); else
    the latest landing with any stance, flagged unsteady.
    """
    p = tr.p

    def limit(mean: float) -> float:
        return max(p.unsteady_sd_n, p.unsteady_bw_fraction * mean)

    last = tr.F[tr.n - tr.w:]
    mean, sd = float(np.mean(last)), float(np.std(last))
    if mean >= p.contact_threshold_n and sd <= limit(mean):
        return tr.n - tr.w, mean, sd, False
    fallback = None
    for a, b, _ in reversed(_landings(tr)):
        if b - a < tr.w:
            continue
        q0, mean, sd = min_sd_window(tr.F, a, b, tr.w)
        if mean < p.contact_threshold_n:
            continue
        if sd <= limit(mean):
            return q0, mean, sd, False
        if fallback is None and sd <= NO_QUIET_SD_FACTOR * limit(mean):
            fallback = (q0, mean, sd, True)
    return fallback


def _drop_landing_reps(tr: _Trial, lead: str | None) -> list[RepResult]:
    """One rep per landing; velocity integrated backwards from the quiet stance after it."""
    p = tr.p
    names = tuple(f"{m}_{s}" for m in DROP_PLATE_METRICS for s in ("left", "right")) + (
        "peak_deceleration_m_s2", "time_to_stabilization_s")
    V = None
    if not math.isnan(tr.level):
        V = cumulative_trapezoid((tr.F - tr.level) / tr.m, dx=tr.dt, initial=0.0)
    reps: list[RepResult] = []
    for a, b, bounce in _landings(tr):
        # metrics.md § Drop landing: the plate struck first leads; a lead override only names it
        # (flagged where the named plate was struck > 10 ms later, or not at all), metrics kept
        role, ic, t_contact, _ = _event_contact(tr, a, b, None)
        assert ic is not None and t_contact is not None  # without a lead, the plate struck first
        limb = LIMB_OF_ROLE[role]
        flags: list[str] = ["bounce"] if bounce else []
        if lead is not None:
            limb = lead
            named = tr.contact_at(ROLE_OF_LIMB[lead], a, b)
            if named is None:
                flags.append("lead_plate_not_contacted")
            elif named[1] - t_contact > LEAD_CONTRADICTION_S:
                flags.append("lead_override_contradicted")
        run = tr.first_quiet_run_after(ic) if V is not None else None
        if run is None:
            flags.append("no_quiet_stance")
            if t_contact + p.arrest_timeout_s > (tr.n - 1) * tr.dt:
                flags.append("truncated")
            reps.append(RepResult(lead=limb, t_onset_s=None, t_contact_s=t_contact, metrics=_none_metrics(names),
                                  flags=flags))
            continue
        assert V is not None  # run is None without a velocity
        q0, _, _ = min_sd_window(tr.F, run[0], min(run[1], run[0] + tr.search), tr.w)
        anchor = q0 + tr.w - 1  # v = 0 at the end of the quiet window
        v = V - V[anchor]
        t_end, status = tr.arrest(v, 0, t_contact)
        if status == "not_arrested":
            flags.append("descent_not_arrested")
        contacts = {r: c for r in tr.floor_roles if (c := tr.contact_at(r, a, b)) is not None}
        metrics: dict[str, float | None] = {}
        per_plate: dict[str, dict[str, float | None]] = {}
        for r in ("floor_left", "floor_right"):
            if r in contacts and contacts[r][1] < t_end:
                per_plate[r] = tr.landing_plate_metrics(r, contacts[r][1], t_end)
            else:
                per_plate[r] = dict.fromkeys(DROP_PLATE_METRICS)
        for name in DROP_PLATE_METRICS:
            metrics[f"{name}_left"] = per_plate["floor_left"][name]
            metrics[f"{name}_right"] = per_plate["floor_right"][name]
        metrics["peak_deceleration_m_s2"] = tr.peak_deceleration(t_contact, t_end)
        tts = tr.stabilization(t_contact, b)
        if tts is None:
            flags.append("not_stabilized")
        metrics["time_to_stabilization_s"] = tts
        if status == "truncated":
            _truncate(metrics, flags)
        if len(tr.floor_roles) == 2:
            for name in DROP_PLATE_METRICS:
                metrics.update(symmetry_metrics(name, metrics[f"{name}_left"], metrics[f"{name}_right"]))
        reps.append(RepResult(lead=limb, t_onset_s=None, t_contact_s=t_contact, metrics=metrics, flags=flags))
    return reps


def _squat_reps(tr: _Trial) -> list[RepResult]:
    """Squat reps from quiet stance to closing stance (decision 0003); left share over each movement.

    A rep starts at the onset after its quiet window (the weighing window, then
    the min-SD window in the last ``quiet_search_s`` of the stance that closed the
    previous rep) and ends at the first closing stance: ≥ one quiet window of
    samples in band with ``|v| ≤ 5·onset_speed`` and the centre of mass back within
    ``max(50 % of the depth so far, 2 cm)`` of its start (half a window suffices at
    the end of the recording).  Descent is ``v < −onset_speed``, ascent
    ``v > onset_speed``.
    """
    p = tr.p
    vs = p.onset_speed_m_s
    inband = ~tr.active
    fl, fr = tr.fz_f["floor_left"], tr.fz_f["floor_right"]
    reps: list[RepResult] = []
    q0 = tr.q_weigh
    act = np.flatnonzero(tr.active[q0 + tr.w:])
    d = q0 + tr.w + int(act[0]) if act.size else tr.n
    while d < tr.n:
        v = tr.velocity(q0, tr.n)
        z = cumulative_trapezoid(v, dx=tr.dt, initial=0.0)
        t_onset = tr.onset_time(v, q0, d)
        depth = np.maximum.accumulate(np.abs(z))
        ok = inband[q0:] & (np.abs(v) <= SQUAT_QUIET_SPEED_FACTOR * vs) \
            & (np.abs(z) <= np.maximum(SQUAT_RETURN_FRACTION * depth, SQUAT_RETURN_MIN_M))
        ok[:d - q0] = False
        close = None
        for s, e in runs_of(ok):
            if e - s >= tr.w or (q0 + e == tr.n and e - s >= tr.w / 2):
                close = (q0 + s, q0 + e)
                break
        if close is None:  # the recording ends inside the movement
            if tr.F[-1] >= p.contact_threshold_n:
                reps.append(RepResult(lead=None, t_onset_s=t_onset, t_contact_s=None,
                                      metrics=_none_metrics(SQUAT_METRICS), flags=["truncated"]))
            break
        ca = close[0]
        j = d + int(np.flatnonzero(~inband[d:ca])[-1])  # last out-of-band sample before the stance
        t_end = crossing_time(-np.abs(tr.dev), j + 1, -tr.thr, tr.dt)
        if float(np.max(np.abs(z[:ca - q0]))) >= SQUAT_MIN_DEPTH_M:
            idx = samples_between(t_onset, t_end, tr.dt, tr.n)
            total = fl[idx] + fr[idx]
            use = total >= p.cop_min_force_n
            share = np.full(idx.size, np.nan)
            share[use] = fl[idx][use] / total[use] * 100.0
            vv = v[idx - q0]
            metrics: dict[str, float | None] = {}
            for name, sel in (("left_share_pct", use), ("left_share_descent_pct", use & (vv < -vs)),
                              ("left_share_ascent_pct", use & (vv > vs))):
                metrics[name] = float(np.mean(share[sel])) if np.any(sel) else None
            reps.append(RepResult(lead=None, t_onset_s=t_onset, t_contact_s=None, metrics=metrics, flags=[]))
        # the stance that closed this rep: in-band from j + 1 to the next out-of-band sample
        out = np.flatnonzero(~inband[ca:])
        stance_end = ca + int(out[0]) if out.size else tr.n
        if stance_end >= tr.n:
            break
        q0, _, _ = min_sd_window(tr.F, max(j + 1, stance_end - tr.search), stance_end, tr.w)
        d = stance_end
    return reps


def _balance_reps(tr: _Trial, lead: str | None) -> list[RepResult]:
    """Single-limb stance on the loaded floor plate: COP sway over its longest loaded stretch."""
    if lead is not None:
        role = ROLE_OF_LIMB[lead]
        if role not in tr.plates:
            raise ValueError(f"balance with lead={lead!r} needs the {role} plate")
    else:
        role = max(tr.floor_roles, key=lambda r: float(np.mean(tr.plates[r].fz_n)))
    plate = tr.plates[role]
    if plate.mx_nm is None or plate.my_nm is None:
        raise ValueError(f"balance needs the moments (mx_nm, my_nm) of the {role} plate")
    stance = plate.fz_n >= tr.p.cop_min_force_n
    for other in tr.floor_roles:
        if other != role:
            stance &= tr.plates[other].fz_n < tr.p.contact_threshold_n
    runs = runs_of(stance)
    metrics: dict[str, float | None] = dict.fromkeys(
        ("cop_path_mm", "cop_mean_velocity_mm_s", "cop_ml_range_mm", "cop_ap_range_mm", "cop_ellipse95_mm2"))
    flags: list[str] = []
    if not runs:
        flags.append("no_stance")
        return [RepResult(lead=LIMB_OF_ROLE[role], t_onset_s=None, t_contact_s=None, metrics=metrics, flags=flags)]
    a, b = max(runs, key=lambda r: r[1] - r[0])
    cop = cop_ml_ap_mm(plate, a, b, tr.p, tr.rate)
    if cop is not None and b - a >= 3:
        x, y = cop
        path = float(np.sum(np.hypot(np.diff(x), np.diff(y))))
        metrics["cop_path_mm"] = path
        metrics["cop_mean_velocity_mm_s"] = path / ((b - a - 1) * tr.dt)
        metrics["cop_ml_range_mm"] = float(np.ptp(x))
        metrics["cop_ap_range_mm"] = float(np.ptp(y))
        cov = np.cov(np.vstack((x, y)))
        metrics["cop_ellipse95_mm2"] = math.pi * 5.991 * math.sqrt(max(float(np.linalg.det(cov)), 0.0))
    return [RepResult(lead=LIMB_OF_ROLE[role], t_onset_s=None, t_contact_s=None, metrics=metrics, flags=flags)]


# ---------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------
def _check_plates(plates: dict, protocol: str) -> int:
    if not isinstance(plates, dict) or not plates:
        raise ValueError("plates must be a non-empty dict of role -> PlateForces")
    n: int | None = None
    for role, pl in plates.items():
        if role not in ROLES:
            raise ValueError(f"unknown plate role {role!r} (expected one of {ROLES})")
        if not isinstance(pl, PlateForces):
            raise ValueError(f"plate {role!r} must be a PlateForces")
        for name in ("fz_n", "mx_nm", "my_nm"):
            arr = getattr(pl, name)
            if arr is None:
                continue
            arr = np.asarray(arr)
            if arr.ndim != 1:
                raise ValueError(f"plate {role!r} {name} must be 1-D, got shape {arr.shape}")
            if n is None:
                n = arr.shape[0]
            if arr.shape[0] != n:
                raise ValueError(f"plate {role!r} {name} has {arr.shape[0]} samples, expected {n}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"plate {role!r} {name} holds NaN or inf")
    floors = [r for r in ("floor_left", "floor_right") if r in plates]
    if protocol == "squat" and len(floors) != 2:
        raise ValueError("squat needs both floor plates (floor_left and floor_right)")
    if protocol != "squat" and not floors:
        raise ValueError(f"{protocol} needs at least one floor plate (floor_left or floor_right)")
    assert n is not None  # plates is non-empty
    return int(n)


def analyze_forces(plates: dict[str, PlateForces], rate_hz: float, protocol: str, *,
                   lead: str | None = None, body_mass_kg: float | None = None,
                   params: AnalysisParams | None = None, provenance: dict | None = None) -> AnalysisResult:
    """Reference analysis of calibrated plate forces (metrics.md, plain NumPy/SciPy).

    Parameters
    ----------
    plates : dict of str to PlateForces
        Keyed by role (``"box"``, ``"floor_left"``, ``"floor_right"``); Fz in N,
        moments in N·m, all sampled at ``rate_hz``.
    rate_hz : float
        Sample rate in Hz.
    protocol : str
        One of ``PROTOCOLS``.
    lead : {"left", "right"} or None
        Lead (balance: stance) limb; detected from the first struck floor plate when None.
    body_mass_kg : float or None
        The visit's body mass in kg; when given it replaces weighing.
    params : AnalysisParams or None
        Thresholds and defaults (metrics.md defaults when None).
    provenance : dict or None
        Caller facts merged into the result's provenance (``flags`` and
        ``saturated_samples`` there become trial flags).

    Returns
    -------
    AnalysisResult
        One ``RepResult`` per rep, metric names as in metrics.md.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (expected one of {PROTOCOLS})")
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, (int, float, np.integer, np.floating)) \
            or not math.isfinite(rate_hz) or rate_hz <= 0:
        raise ValueError(f"rate_hz must be a positive finite number, got {rate_hz!r}")
    if lead not in (None, "left", "right"):
        raise ValueError(f"lead must be 'left', 'right' or None, got {lead!r}")
    if body_mass_kg is not None and (not isinstance(body_mass_kg, (int, float, np.integer, np.floating))
                                     or not math.isfinite(body_mass_kg) or body_mass_kg <= 0):
        raise ValueError(f"body_mass_kg must be a positive finite number, got {body_mass_kg!r}")
    params = AnalysisParams() if params is None else params
    if not isinstance(params, AnalysisParams):
        raise ValueError("params must be an AnalysisParams")
    if params.force_cutoff_hz >= rate_hz / 2 or params.cop_cutoff_hz >= rate_hz / 2:
        raise ValueError(f"filter cut-offs must be below the Nyquist frequency {rate_hz / 2} Hz")
    n = _check_plates(plates, protocol)
    if lead is not None and protocol in ("step-down", "forward-step-down", "drop-landing", "balance") \
            and ROLE_OF_LIMB[lead] not in plates:
        raise ValueError(f"lead={lead!r} needs the {ROLE_OF_LIMB[lead]} plate")
    w = int(round(params.quiet_window_s * rate_hz))
    if n < max(w, 2) + 1:
        raise ValueError(f"recording of {n} samples is shorter than the quiet window ({w} samples)")
    plates = {r: PlateForces(np.asarray(pl.fz_n, dtype=np.float64),
                             None if pl.mx_nm is None else np.asarray(pl.mx_nm, dtype=np.float64),
                             None if pl.my_nm is None else np.asarray(pl.my_nm, dtype=np.float64))
              for r, pl in plates.items()}
    tr = _Trial(plates, rate_hz, params)
    flags: list[str] = []
    # weighing (decision 0003): the quiet window is always found and measured; its mean, the
    # measured quiet force, centres every quiet band; a given body mass sets BW = m·g and m.
    if protocol == "drop-landing":
        drop_weigh = _weigh_drop(tr)
        if drop_weigh is not None and drop_weigh[3]:
            flags.append("unsteady_weighing")
        weigh = None if drop_weigh is None else drop_weigh[:3]
    else:
        loaded = np.flatnonzero(tr.F >= params.contact_threshold_n)
        lo = int(loaded[0]) if loaded.size else 0
        hi = min(n, lo + tr.search)
        weigh = min_sd_window(tr.F, lo, hi, tr.w) if hi - lo >= tr.w else None
    given_bw = None if body_mass_kg is None else float(body_mass_kg) * G_M_S2
    stance = False
    if weigh is not None:
        q_w, level, sd_q = weigh
        ref_bw = given_bw if given_bw is not None else level
        limit = max(params.unsteady_sd_n, params.unsteady_bw_fraction * ref_bw)
        stance = level >= params.contact_threshold_n and sd_q <= NO_QUIET_SD_FACTOR * limit
        if stance and protocol != "drop-landing" and sd_q > limit:
            flags.append("unsteady_weighing")
    reps: list[RepResult] = []
    bw = given_bw if given_bw is not None else float("nan")
    if stance:
        bw = given_bw if given_bw is not None else level
        if given_bw is not None and abs(given_bw - level) > max(BODY_MASS_MISMATCH_FRACTION * given_bw,
                                                                BODY_MASS_MISMATCH_MIN_N):
            flags.append("body_mass_mismatch")
        tr.q_weigh = q_w
        tr.set_weight(bw, sd_q, level)
        if protocol in ("step-down", "forward-step-down"):
            reps = _step_down_reps(tr, lead, forward=protocol == "forward-step-down")
        elif protocol == "drop-landing":
            reps = _drop_landing_reps(tr, lead)
        elif protocol == "squat":
            reps = _squat_reps(tr)
        else:
            reps = _balance_reps(tr, lead)
    else:
        flags.append("no_quiet_stance")
        if protocol == "drop-landing" and given_bw is not None:  # landings still give contact and lead
            tr.set_weight(given_bw, 0.0, float("nan"))
            reps = _drop_landing_reps(tr, lead)
    if not reps:
        flags.append("no_reps")
    caller = dict(provenance or {})
    for f in caller.get("flags", []) or []:
        if f not in flags:
            flags.append(str(f))
    if (caller.get("saturated_samples") or 0) > 0 and "saturated" not in flags:
        flags.append("saturated")
    prov: dict[str, Any] = {
        "implementation": IMPLEMENTATION,
        "protocol": protocol,
        "protocol_version": PROTOCOL_VERSIONS.get(protocol),
        "params": params.to_dict(),
        "sample_rate_hz": float(rate_hz),
        "weighing": "body_mass" if body_mass_kg is not None
        else ("final_quiet_window" if protocol == "drop-landing" else "quiet_window"),
    }
    if stance:
        prov["measured_quiet_force_n"] = float(level)
    prov.update(caller)
    prov["flags"] = list(flags) + sorted({f for r in reps for f in r.flags})
    return AnalysisResult(protocol=protocol, sample_rate_hz=float(rate_hz), body_weight_n=bw,
                          body_mass_kg=bw / G_M_S2, reps=reps, flags=flags, provenance=prov)


def counts_to_plates(counts: np.ndarray, calibration: CalibrationArrays) -> dict[str, PlateForces]:
    """Apply a calibration: raw counts (n, channels) → per-role PlateForces (N, N·m)."""
    counts = np.asarray(counts)
    if counts.ndim != 2:
        raise ValueError(f"counts must be 2-D (samples, channels), got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.integer):
        raise ValueError(f"counts must be integers, got dtype {counts.dtype}")
    if calibration.max_channel >= counts.shape[1]:
        raise ValueError(f"calibration uses channel {calibration.max_channel} but counts have "
                         f"{counts.shape[1]} channels")
    plates: dict[str, PlateForces] = {}
    for p, role in enumerate(calibration.plate_roles):
        rows = np.zeros((3, counts.shape[0]))
        for k, ch in enumerate(calibration.channel_index[p]):
            if ch < 0:
                continue
            c = counts[:, ch].astype(np.float64) - calibration.offsets_counts[p, k]
            rows += calibration.linear[p, :, k][:, None] * c + calibration.quadratic[p, :, k][:, None] * c * c
        plates[role] = PlateForces(rows[0], rows[1], rows[2])
    return plates


def analyze_counts(counts: np.ndarray, rate_hz: float, calibration: CalibrationArrays, protocol: str,
                   **kwargs) -> AnalysisResult:
    """Reference full pipeline: raw counts → calibrated plates → metrics.

    Parameters
    ----------
    counts : numpy.ndarray
        Integer (n, channels) raw 24-bit counts.
    rate_hz : float
        Sample rate in Hz.
    calibration : CalibrationArrays
        Counts → (Fz [N], Mx, My [N·m]) per plate.
    protocol : str
        One of ``PROTOCOLS``.
    **kwargs
        ``lead``, ``body_mass_kg``, ``params``, ``provenance`` as for :func:`analyze_forces`.

    Returns
    -------
    AnalysisResult
    """
    if not isinstance(calibration, CalibrationArrays):
        raise ValueError("calibration must be a CalibrationArrays")
    plates = counts_to_plates(counts, calibration)
    prov = {"calibration_id": calibration.calibration_id, "calibration_hash": calibration.calibration_hash}
    prov.update(kwargs.pop("provenance", None) or {})
    return analyze_forces(plates, rate_hz, protocol, provenance=prov, **kwargs)


# ---------------------------------------------------------------------------
# synthetic trials: continuous-time prescriptions (for tests and benchmarks)
# ---------------------------------------------------------------------------
def _sinb(x: np.ndarray, period_s: float) -> np.ndarray:
    """sin(π·x/T) on [0, T], 0 elsewhere (a half-sine bump of unit height)."""
    return np.where((x >= 0) & (x <= period_s), np.sin(np.pi * np.clip(x, 0, period_s) / period_s), 0.0)


def _fullsin(x: np.ndarray, period_s: float) -> np.ndarray:
    """sin(2π·x/T) on [0, T], 0 elsewhere (one full cycle: zero net impulse)."""
    return np.where((x >= 0) & (x <= period_s), np.sin(2 * np.pi * np.clip(x, 0, period_s) / period_s), 0.0)


def _fall(x: np.ndarray, dur_s: float) -> np.ndarray:
    """Smooth step 1 → 0 over [0, dur]: cos²(π·x/(2·dur)); 1 before, 0 after."""
    xc = np.clip(x, 0.0, dur_s)
    return np.cos(np.pi * xc / (2 * dur_s)) ** 2


def _landing_shape(x: np.ndarray, peak_n: float, rise_s: float, level_n: float, decay_s: float | None,
                   dip_n: float = 0.0, dip_s: float = 0.2) -> np.ndarray:
    """A plate's landing force (N) at x s after the foot touches.

    sin² rise from 0 to ``peak_n`` at ``rise_s``; cos² decay to ``level_n`` over
    ``decay_s``; then an optional sin² dip of ``dip_n`` lasting ``dip_s``; then ``level_n``.
    ``decay_s=None`` matches the curvature of both sides of the crest (a smooth peak
    that a zero-lag filter does not move): ``decay = rise·√((peak − level)/peak)``.
    """
    if decay_s is None:
        decay_s = rise_s * math.sqrt((peak_n - level_n) / peak_n)
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    r = (x >= 0) & (x < rise_s)
    out[r] = peak_n * np.sin(np.pi * x[r] / (2 * rise_s)) ** 2
    d = (x >= rise_s) & (x < rise_s + decay_s)
    out[d] = level_n + (peak_n - level_n) * np.cos(np.pi * (x[d] - rise_s) / (2 * decay_s)) ** 2
    after = x >= rise_s + decay_s
    out[after] = level_n - dip_n * _sinb(x[after] - rise_s - decay_s, dip_s) ** 2
    return out


class SyntheticStepDown:
    """Step-down reps from a prescribed centre-of-mass acceleration (continuous time).

    Each rep (local time τ from its movement start ``starts_s[k]``): lowering
    ``a = −A1·sin(πτ/T1)`` then braking ``+A2·sin`` over T2 (velocity ``v_c`` at
    foot touch, τ = T1 + T2), landing ``+A3·sin`` over T3, settling ``−A4·sin``
    over T4 back to v = 0; standing on the floor; stepping back up (one full
    sine cycle of ``a`` while the load moves from the floor plates to the box);
    quiet on the box.  The lead plate carries a ``_landing_shape`` from foot
    touch; the box keeps the rest until the trail foot moves to the other floor
    plate.  Box COP follows ``box_cop_mm(t)``.  Forces in N, times in s.
    """

    def __init__(self, leads=("left", "right", "left"), mass_kg: float = 72.0, quiet_s: float = 2.0,
                 t1_s: float = 1.0, a1_m_s2: float = 0.6, t2_s: float = 0.4, v_touch_m_s: float = -0.25,
                 t3_s: float = 0.3, a3_m_s2: float = 2.5, t4_s: float = 0.5,
                 lead_peak_bw: float = 1.1, lead_rise_s: float = 0.12, lead_level_bw: float = 0.55,
                 lead_decay_s: float | None = None, floor_stand_s: float = 2.5, step_up_s: float = 1.0,
                 step_up_a_m_s2: float = 1.0, rest_s: float = 2.5):
        self.leads = tuple(leads)
        self.m = mass_kg
        self.bw = mass_kg * G_M_S2
        self.t1, self.a1, self.t2, self.t3, self.a3, self.t4 = t1_s, a1_m_s2, t2_s, t3_s, a3_m_s2, t4_s
        v1 = -2 * a1_m_s2 * t1_s / np.pi
        self.v_touch = v_touch_m_s
        self.a2 = (v_touch_m_s - v1) * np.pi / (2 * t2_s)
        v3 = v_touch_m_s + 2 * a3_m_s2 * t3_s / np.pi
        self.a4 = v3 * np.pi / (2 * t4_s)
        self.touch_s = t1_s + t2_s  # foot touch, local time
        self.lead_shape: dict[str, Any] = dict(peak_n=lead_peak_bw * self.bw, rise_s=lead_rise_s,
                               level_n=lead_level_bw * self.bw, decay_s=lead_decay_s)
        self.taper_at_s = self.touch_s + 0.5
        self.taper_s = 0.3
        self.step_up_at_s = self.touch_s + floor_stand_s
        self.step_up_s = step_up_s
        self.step_up_a = step_up_a_m_s2
        rep_len = self.step_up_at_s + step_up_s + rest_s
        self.starts_s = tuple(quiet_s + k * rep_len for k in range(len(self.leads)))
        self.duration_s = quiet_s + len(self.leads) * rep_len

    # continuous-time signals --------------------------------------------------
    def com_acc(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        a = np.zeros_like(t)
        for s in self.starts_s:
            x = t - s
            a += (-self.a1 * _sinb(x, self.t1) + self.a2 * _sinb(x - self.t1, self.t2)
                  + self.a3 * _sinb(x - self.touch_s, self.t3) - self.a4 * _sinb(x - self.touch_s - self.t3, self.t4)
                  + self.step_up_a * _fullsin(x - self.step_up_at_s, self.step_up_s))
        return a

    def total_force(self, t: np.ndarray) -> np.ndarray:
        return self.bw + self.m * self.com_acc(t)

    def box_cop_mm(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = np.asarray(t, dtype=np.float64)
        return 8.0 * np.sin(2 * np.pi * 1.3 * t + 0.4), 5.0 * np.cos(2 * np.pi * 0.7 * t)

    def plate_forces(self, t: np.ndarray) -> dict[str, np.ndarray]:
        t = np.asarray(t, dtype=np.float64)
        f = self.total_force(t)
        left = np.zeros_like(t)
        right = np.zeros_like(t)
        box = f.copy()
        for s, lead in zip(self.starts_s, self.leads):
            x = t - s
            seg = (x >= 0) & (x < self.step_up_at_s + self.step_up_s + 1e-9)
            lead_f = _landing_shape(x - self.touch_s, **self.lead_shape)
            keep_box = _fall(x - self.taper_at_s, self.taper_s)
            on_floor = _fall(x - self.step_up_at_s, self.step_up_s)
            trail_f = (f - lead_f) * (1 - keep_box)
            lead_f, trail_f = lead_f * on_floor, trail_f * on_floor
            lf, rf = (lead_f, trail_f) if lead == "left" else (trail_f, lead_f)
            left = np.where(seg, lf, left)
            right = np.where(seg, rf, right)
        box = f - left - right
        return {"box": box, "floor_left": left, "floor_right": right}

    def sample(self, rate_hz: float = 1000.0, noise_n: float = 0.0, seed: int = 0) -> dict[str, PlateForces]:
        """The trial sampled at ``rate_hz`` (t_i = i/rate), with optional Gaussian noise (N)."""
        t = np.arange(int(round(self.duration_s * rate_hz))) / rate_hz
        return _with_cop(self.plate_forces(t), t, {"box": self.box_cop_mm(t)}, noise_n, seed)


def _with_cop(forces: dict[str, np.ndarray], t: np.ndarray, cops: dict, noise_n: float,
              seed: int) -> dict[str, PlateForces]:
    rng = np.random.default_rng(seed)
    out = {}
    for role, fz in forces.items():
        x_mm, y_mm = cops.get(role, (np.zeros_like(t), np.zeros_like(t)))
        mx = y_mm * fz / 1000.0
        my = -x_mm * fz / 1000.0
        if noise_n > 0:
            fz = fz + rng.normal(0.0, noise_n, fz.shape)
            mx = mx + rng.normal(0.0, noise_n * 0.05, fz.shape)
            my = my + rng.normal(0.0, noise_n * 0.05, fz.shape)
        out[role] = PlateForces(fz, mx, my)
    return out


class SyntheticDropLanding:
    """A drop from the box onto both floor plates, then quiet stance (continuous time).

    Quiet on the box, step-off (box force falls to 0 over ``stepoff_s``), flight,
    then each foot lands with a ``_landing_shape`` (touch times ``touch_left_s``,
    ``touch_right_s``), settling to half body weight per plate after a dip.
    """

    def __init__(self, mass_kg: float = 68.0, quiet_s: float = 2.0, stepoff_s: float = 0.15, flight_s: float = 0.3,
                 right_delay_s: float = 0.012, peak_left_bw: float = 2.0, peak_right_bw: float = 1.7,
                 rise_left_s: float = 0.05, rise_right_s: float = 0.06, decay_s: float | None = None,
                 dip_bw: float = 0.1, dip_s: float = 0.3, after_s: float = 3.0, with_box: bool = True,
                 swap: bool = False):
        self.m = mass_kg
        self.bw = mass_kg * G_M_S2
        self.quiet_s, self.stepoff_s = quiet_s, stepoff_s
        self.with_box = with_box
        self.touch_s = quiet_s + stepoff_s + flight_s
        first, second = ("right", "left") if swap else ("left", "right")
        self.touch = {first: self.touch_s, second: self.touch_s + right_delay_s}
        self.shape: dict[str, dict[str, Any]] = {
            first: dict(peak_n=peak_left_bw * self.bw, rise_s=rise_left_s, level_n=self.bw / 2, decay_s=decay_s,
                        dip_n=dip_bw * self.bw, dip_s=dip_s),
            second: dict(peak_n=peak_right_bw * self.bw, rise_s=rise_right_s, level_n=self.bw / 2,
                         decay_s=decay_s, dip_n=dip_bw * self.bw, dip_s=dip_s),
        }
        self.duration_s = self.touch_s + 1.0 + after_s

    def plate_forces(self, t: np.ndarray) -> dict[str, np.ndarray]:
        t = np.asarray(t, dtype=np.float64)
        out = {f"floor_{limb}": _landing_shape(t - self.touch[limb], **self.shape[limb]) for limb in ("left", "right")}
        if self.with_box:
            out["box"] = self.bw * _fall(t - self.quiet_s, self.stepoff_s)
        return out

    def total_force(self, t: np.ndarray) -> np.ndarray:
        return np.sum(list(self.plate_forces(t).values()), axis=0)

    def sample(self, rate_hz: float = 1000.0, noise_n: float = 0.0, seed: int = 0) -> dict[str, PlateForces]:
        t = np.arange(int(round(self.duration_s * rate_hz))) / rate_hz
        return _with_cop(self.plate_forces(t), t, {}, noise_n, seed)


class SyntheticSquat:
    """Bilateral squats on the two floor plates with a velocity-dependent left share.

    Each rep: descent ``a = −A·sin(2πτ/Td)`` (v returns to 0 at the bottom), an
    optional hold of ``hold_s`` at the bottom (a = v = 0), ascent
    ``a = +Aa·sin(2πτ/Ta)`` with ``Aa = A·Td²/Ta²`` unless given (the centre of mass
    returns to its start: each phase moves it by A·T²/(2π)); quiet stance between reps.  ``left_share_pct(t) =
    share0 + gain·v(t)`` (v in m/s, analytic).
    """

    def __init__(self, reps: int = 2, mass_kg: float = 80.0, quiet_s: float = 2.0, descent_s: float = 1.5,
                 ascent_s: float = 1.2, a_m_s2: float = 1.5, share0_pct: float = 45.0, gain_pct_per_m_s: float = -20.0,
                 hold_s: float = 0.0, ascent_a_m_s2: float | None = None):
        self.m = mass_kg
        self.bw = mass_kg * G_M_S2
        self.td, self.ta, self.a = descent_s, ascent_s, a_m_s2
        self.hold = hold_s
        self.a_up = a_m_s2 * descent_s ** 2 / ascent_s ** 2 if ascent_a_m_s2 is None else ascent_a_m_s2
        self.share0, self.gain = share0_pct, gain_pct_per_m_s
        rep_len = descent_s + hold_s + ascent_s + quiet_s
        self.starts_s = tuple(quiet_s + k * rep_len for k in range(reps))
        self.duration_s = quiet_s + reps * rep_len

    def com_acc(self, t):
        t = np.asarray(t, dtype=np.float64)
        a = np.zeros_like(t)
        for s in self.starts_s:
            a += -self.a * _fullsin(t - s, self.td) + self.a_up * _fullsin(t - s - self.td - self.hold, self.ta)
        return a

    def com_vel(self, t):
        """Analytic velocity (m/s): ∫ of ``com_acc``."""
        t = np.asarray(t, dtype=np.float64)
        v = np.zeros_like(t)
        for s in self.starts_s:
            x = np.clip(t - s, 0, self.td)
            v += -self.a * self.td / (2 * np.pi) * (1 - np.cos(2 * np.pi * x / self.td))
            y = np.clip(t - s - self.td - self.hold, 0, self.ta)
            v += self.a_up * self.ta / (2 * np.pi) * (1 - np.cos(2 * np.pi * y / self.ta))
        return v

    def left_share_pct(self, t):
        return self.share0 + self.gain * self.com_vel(t)

    def plate_forces(self, t):
        f = self.bw + self.m * self.com_acc(t)
        share = self.left_share_pct(t) / 100.0
        return {"floor_left": f * share, "floor_right": f * (1 - share)}

    def sample(self, rate_hz: float = 1000.0, noise_n: float = 0.0, seed: int = 0) -> dict[str, PlateForces]:
        t = np.arange(int(round(self.duration_s * rate_hz))) / rate_hz
        return _with_cop(self.plate_forces(t), t, {}, noise_n, seed)


class SyntheticBalance:
    """Single-limb stance on one floor plate; COP on a rotated ellipse (a, b, angle) at ``freq_hz``.

    ``x = a·cos θ·cos α − b·sin θ·sin α``, ``y = a·cos θ·sin α + b·sin θ·cos α``,
    θ = 2π·f·t + phase; the other floor plate is unloaded.
    """

    def __init__(self, limb: str = "left", mass_kg: float = 70.0, seconds: float = 10.0, a_mm: float = 12.0,
                 b_mm: float = 6.0, angle_rad: float = 0.5, freq_hz: float = 0.5, phase_rad: float = 1.0,
                 centre_mm: tuple[float, float] = (5.0, -20.0)):
        self.limb = limb
        self.m = mass_kg
        self.bw = mass_kg * G_M_S2
        self.duration_s = seconds
        self.a, self.b, self.alpha, self.f, self.phase = a_mm, b_mm, angle_rad, freq_hz, phase_rad
        self.centre = centre_mm

    def cop_mm(self, t):
        th = 2 * np.pi * self.f * np.asarray(t, dtype=np.float64) + self.phase
        ca, sa = np.cos(self.alpha), np.sin(self.alpha)
        x = self.a * np.cos(th) * ca - self.b * np.sin(th) * sa + self.centre[0]
        y = self.a * np.cos(th) * sa + self.b * np.sin(th) * ca + self.centre[1]
        return x, y

    def sample(self, rate_hz: float = 1000.0, noise_n: float = 0.0, seed: int = 0) -> dict[str, PlateForces]:
        t = np.arange(int(round(self.duration_s * rate_hz))) / rate_hz
        other = "right" if self.limb == "left" else "left"
        forces = {f"floor_{self.limb}": np.full_like(t, self.bw), f"floor_{other}": np.zeros_like(t)}
        return _with_cop(forces, t, {f"floor_{self.limb}": self.cop_mm(t)}, noise_n, seed)


class SyntheticForwardStepDown:
    """Forward step-down (tap) reps: single-limb stance on the box, heel tap on one floor plate.

    Each rep (local time τ from ``starts_s[k]``): lowering ``−A1·sin(πτ/T1)`` then
    braking ``+A2·sin`` over T2 to v = 0 at the bottom; the heel touches the
    floor plate ``tap_lead_s`` before the bottom with a sin² bump of ``tap_peak_bw``
    lasting ``tap_s``; raising one full sine cycle ``+Ar·sin(2πx/Tr)`` starting
    ``rise_delay_s`` after the bottom; then quiet on the box.  Box COP as for
    :class:`SyntheticStepDown`.
    """

    def __init__(self, taps=("left", "right"), mass_kg: float = 66.0, quiet_s: float = 2.0, t1_s: float = 1.0,
                 a1_m_s2: float = 0.6, t2_s: float = 0.6, tap_lead_s: float = 0.15, tap_s: float = 0.4,
                 tap_peak_bw: float = 0.12, rise_delay_s: float = 0.1, tr_s: float = 1.2, ar_m_s2: float = 0.8,
                 rest_s: float = 2.5):
        self.taps = tuple(taps)
        self.m = mass_kg
        self.bw = mass_kg * G_M_S2
        self.t1, self.a1, self.t2 = t1_s, a1_m_s2, t2_s
        self.a2 = 2 * a1_m_s2 * t1_s / np.pi * np.pi / (2 * t2_s)  # brings v back to 0
        self.bottom_s = t1_s + t2_s
        self.tap_at_s = self.bottom_s - tap_lead_s
        self.tap_s, self.tap_peak_n = tap_s, tap_peak_bw * self.bw
        self.rise_at_s = self.bottom_s + rise_delay_s
        self.tr, self.ar = tr_s, ar_m_s2
        rep_len = self.rise_at_s + tr_s + rest_s
        self.starts_s = tuple(quiet_s + k * rep_len for k in range(len(self.taps)))
        self.duration_s = quiet_s + len(self.taps) * rep_len

    def com_acc(self, t):
        t = np.asarray(t, dtype=np.float64)
        a = np.zeros_like(t)
        for s in self.starts_s:
            x = t - s
            a += (-self.a1 * _sinb(x, self.t1) + self.a2 * _sinb(x - self.t1, self.t2)
                  + self.ar * _fullsin(x - self.rise_at_s, self.tr))
        return a

    def tap_force(self, x):
        return self.tap_peak_n * _sinb(np.asarray(x, dtype=np.float64), self.tap_s) ** 2

    def box_cop_mm(self, t):
        t = np.asarray(t, dtype=np.float64)
        return 6.0 * np.sin(2 * np.pi * 1.1 * t + 0.3), 4.0 * np.cos(2 * np.pi * 0.6 * t)

    def plate_forces(self, t):
        t = np.asarray(t, dtype=np.float64)
        f = self.bw + self.m * self.com_acc(t)
        left = np.zeros_like(t)
        right = np.zeros_like(t)
        for s, limb in zip(self.starts_s, self.taps):
            tap = self.tap_force(t - s - self.tap_at_s)
            if limb == "left":
                left += tap
            else:
                right += tap
        return {"box": f - left - right, "floor_left": left, "floor_right": right}

    def sample(self, rate_hz: float = 1000.0, noise_n: float = 0.0, seed: int = 0) -> dict[str, PlateForces]:
        t = np.arange(int(round(self.duration_s * rate_hz))) / rate_hz
        return _with_cop(self.plate_forces(t), t, {"box": self.box_cop_mm(t)}, noise_n, seed)
