"""COP helpers, single-limb balance and squat weight-bearing share (metrics.md § Balance, § Squat)."""

from __future__ import annotations

import math

import numpy as np

from steplab.calibration.cop import cop_mm
from steplab.dsp import analysis as A
from steplab.dsp.filters import design_lowpass, filtfilt_rows_inplace
from steplab.dsp.results import RepResult

BALANCE_METRICS = ("cop_path_mm", "cop_mean_velocity_mm_s", "cop_ml_range_mm", "cop_ap_range_mm", "cop_ellipse95_mm2")
SQUAT_METRICS = ("left_share_pct", "left_share_descent_pct", "left_share_ascent_pct")
CHI2_95_2DOF = 5.991  # metrics.md § Balance (Schubert & Kirchner 2014)


#: decision 0003: COP is filtered over its whole valid stretch; in practice over the part of it
#: within this many cut-off periods of the window (the zero-lag filter's response has decayed to
#: < 1e-9 there), so a short window costs a short filter and the edges are the stretch's own.
COP_MARGIN_PERIODS = 5.0


def filtered_cop(trial: A.Trial, role: str, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """COP (x = ML, y = AP, mm) of one plate over [lo, hi), low-passed at cop_cutoff_hz.

    metrics.md § Signals: NaN wherever Fz < cop_min_force_n (never huge; the one COP
    function, ``steplab.calibration.cop.cop_mm``).  Each
    contiguous valid stretch is filtered as a whole (decision 0003), i.e. the filter
    runs over the stretch beyond the window's edges (up to COP_MARGIN_PERIODS cut-off
    periods), so the window's ends are not filter edges; too-short stretches stay raw.
    """
    p = trial.params
    m = hi - lo
    if m <= 0 or not trial.has_moments(role):
        nanv = np.full(max(m, 0), np.nan)
        return nanv, nanv.copy()
    fz_all = trial.fz[role]
    margin = int(math.ceil(COP_MARGIN_PERIODS * trial.rate_hz / p.cop_cutoff_hz))
    thr = p.cop_min_force_n
    # extend the window into the valid stretch on both sides (at most `margin` samples)
    a = max(0, lo - margin)
    below = np.flatnonzero(fz_all[a:lo] < thr)
    elo = a + int(below[-1]) + 1 if below.size else a
    b = min(trial.n, hi + margin)
    below = np.flatnonzero(fz_all[hi:b] < thr)
    ehi = hi + int(below[0]) if below.size else b
    mx, my = trial.moments(role, elo, ehi)
    if mx is None:
        nanv = np.full(m, np.nan)
        return nanv, nanv.copy()
    x, y = cop_mm(fz_all[elo:ehi], mx, my, min_force_n=thr)
    valid = ~np.isnan(x)
    sos, _, _ = design_lowpass(p.filter_order, p.cop_cutoff_hz, trial.rate_hz)
    min_len = 3 * (2 * sos.shape[0] + 1)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], valid.view(np.int8), [0]))))
    for s, e in zip(edges[0::2], edges[1::2]):
        if e - s > min_len:
            seg = np.ascontiguousarray(np.vstack((x[s:e], y[s:e])))
            out = np.empty_like(seg)
            filtfilt_rows_inplace(seg, out, p.filter_order, p.cop_cutoff_hz, trial.rate_hz)
            x[s:e] = out[0]
            y[s:e] = out[1]
    return x[lo - elo:hi - elo], y[lo - elo:hi - elo]


def range_and_speed(x: np.ndarray, rate_hz: float) -> tuple[float | None, float | None]:
    """Range (max − min) and mean absolute speed (per s) over the valid samples of x."""
    ok = np.isfinite(x)
    if ok.sum() < 2:
        return None, None
    xv = x[ok]
    pair = ok[1:] & ok[:-1]
    if not pair.any():
        return float(xv.max() - xv.min()), None
    d = np.abs(np.diff(np.where(ok, x, 0.0)))[pair]
    return float(xv.max() - xv.min()), float(d.sum() / (pair.sum() / rate_hz))


def balance_metrics(x_mm: np.ndarray, y_mm: np.ndarray, rate_hz: float) -> dict[str, float | None]:
    """metrics.md § Single-limb balance, over the valid samples of a COP trace (mm)."""
    ok = np.isfinite(x_mm) & np.isfinite(y_mm)
    out = dict.fromkeys(BALANCE_METRICS)
    if ok.sum() < 3:
        return out
    pair = ok[1:] & ok[:-1]
    dx = np.diff(np.where(ok, x_mm, 0.0))[pair]
    dy = np.diff(np.where(ok, y_mm, 0.0))[pair]
    path = float(np.sum(np.hypot(dx, dy)))
    xv, yv = x_mm[ok], y_mm[ok]
    # metrics.md § Balance: cop_path_mm, cop_mean_velocity_mm_s (path / duration)
    out["cop_path_mm"] = path
    out["cop_mean_velocity_mm_s"] = path / (pair.sum() / rate_hz) if pair.any() else None
    # metrics.md § Balance: cop_ml_range_mm, cop_ap_range_mm
    out["cop_ml_range_mm"] = float(xv.max() - xv.min())
    out["cop_ap_range_mm"] = float(yv.max() - yv.min())
    # metrics.md § Balance: cop_ellipse95_mm2 = π·5.991·√det(Σ)
    cov = np.cov(np.vstack((xv, yv)))
    det = float(np.linalg.det(cov))
    out["cop_ellipse95_mm2"] = math.pi * CHI2_95_2DOF * math.sqrt(max(det, 0.0))
    return out


def analyze_balance(trial: A.Trial, *, lead, body_mass_kg, flags) -> list[RepResult]:
    """metrics.md § Single-limb balance: COP sway of the loaded floor plate over its single-limb stance.

    The stance plate is the named limb's (``lead``) or else the floor plate with the larger
    mean Fz; the single-limb stance is the longest run in which that plate carries
    ≥ cop_min_force_n and every other floor plate < contact_threshold_n (double stance
    before and after the lift is excluded, decision 0003).
    """
    p = trial.params
    A.weigh_standing_start(trial, body_mass_kg, flags)
    floors = [r for r in ("floor_left", "floor_right") if r in trial.fz]
    if lead is not None and f"floor_{lead}" in trial.fz:
        role = f"floor_{lead}"
    else:
        role = max(floors, key=lambda r: float(np.mean(trial.fz[r])))
        lead = role.split("_", 1)[1]
    stance = trial.fz[role] >= p.cop_min_force_n
    for other in floors:
        if other != role:
            stance &= trial.fz[other] < p.contact_threshold_n
    edges = np.flatnonzero(np.diff(np.concatenate(([0], stance.view(np.int8), [0]))))
    if edges.size == 0:
        return [RepResult(lead=lead, t_onset_s=None, t_contact_s=None, metrics=dict.fromkeys(BALANCE_METRICS),
                          flags=["no_stance"])]
    k = int(np.argmax(edges[1::2] - edges[0::2]))
    a, b = int(edges[2 * k]), int(edges[2 * k + 1])
    x, y = filtered_cop(trial, role, a, b)
    metrics = balance_metrics(x, y, trial.rate_hz)
    rep_flags = [] if np.isfinite(x).any() else ["no_cop"]
    return [RepResult(lead=lead, t_onset_s=None, t_contact_s=None, metrics=metrics, flags=rep_flags)]


#: decision 0003: a squat rep ends at a quiet stance: an in-band stretch (|F − level| ≤ thr) of at least
#: quiet_window_s in which |v| ≤ SQUAT_QUIET_SPEED_FACTOR × onset_speed_m_s and the centre of mass is back
#: within max(SQUAT_RETURN_FRACTION × the rep's depth so far, SQUAT_RETURN_MIN_M) of its starting height
#: (a hold at the bottom is in band with v ≈ 0 but not back up; the middle of a slow descent is in band
#: but not slow).  A stretch that runs into the end of the recording needs MIN_QUIET_FRACTION of a window.
SQUAT_QUIET_SPEED_FACTOR = 5.0
SQUAT_RETURN_FRACTION = 0.5
SQUAT_RETURN_MIN_M = 0.02
#: decision 0003: a movement whose centre of mass moves less than this (a weight shift, a bump on
#: the plates) between quiet stances is not a squat rep
SQUAT_MIN_DEPTH_M = 0.02


def _first_true_run(mask: np.ndarray, min_len: int) -> int:
    """Index of the first run of True of at least min_len samples in mask, or -1."""
    if min_len < 1 or mask.shape[0] < min_len:
        return -1
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.view(np.int8), [0]))))
    starts, ends = edges[0::2], edges[1::2]
    hit = np.flatnonzero(ends - starts >= min_len)
    return int(starts[hit[0]]) if hit.size else -1


def _closing_stance(trial: A.Trial, qs: int, d: int, z: np.ndarray) -> tuple[int, int, int] | None:
    """The quiet stance that ends the squat detected at d (decision 0003): (run start, stance start, run end).

    ``z`` is the centre-of-mass displacement from sample qs (z[i − qs], m); trial.v holds v from qs.
    """
    p = trial.params
    w = trial.window_n(p.quiet_window_s)
    w_end = max(2, int(round(A.MIN_QUIET_FRACTION * w)))
    v_quiet = SQUAT_QUIET_SPEED_FACTOR * p.onset_speed_m_s
    starts = np.empty(A._EVENT_CAP, dtype=np.int64)
    ends = np.empty(A._EVENT_CAP, dtype=np.int64)
    k = A.K.band_runs(trial.total, d, trial.n, trial.level_n, trial.thr_n, w_end, starts, ends)
    depth = 0.0
    prev = d
    for i in range(k):
        rs, re = int(starts[i]), int(ends[i])
        need = w if re < trial.n else w_end
        if rs > prev:
            depth = max(depth, float(np.max(np.abs(z[prev - qs:rs - qs]))))
        prev = max(prev, rs)
        if re - rs < need:
            continue
        lim = max(SQUAT_RETURN_FRACTION * depth, SQUAT_RETURN_MIN_M)
        ok = (np.abs(trial.v[rs:re]) <= v_quiet) & (np.abs(z[rs - qs:re - qs]) <= lim)
        j = _first_true_run(ok, need)
        if j >= 0:
            return rs, rs + j, re
        depth = max(depth, float(np.max(np.abs(z[rs - qs:re - qs]))))
        prev = re
    return None


def analyze_squat(trial: A.Trial, *, lead, body_mass_kg, flags) -> list[RepResult]:
    """metrics.md § Bilateral squat: left share of the floor load over each squat rep.

    A rep runs from quiet stance to quiet stance (decision 0003): it starts at the onset
    after its quiet window and ends where |F − level| re-enters the onset band for the
    closing quiet stance (see ``_closing_stance``); in-band pauses inside the movement
    (a hold at the bottom, the middle of a slow descent) are not rep boundaries.
    Descent is v < −onset_speed_m_s, ascent v > onset_speed_m_s; samples in the dead
    band |v| ≤ onset_speed_m_s (standing, the turn, a hold) belong to neither.
    """
    p = trial.params
    if not A.weigh_standing_start(trial, body_mass_kg, flags):
        return A.no_reps(flags)
    w = trial.window_n(p.quiet_window_s)
    search = trial.window_n(p.quiet_search_s)
    v = trial.v
    reps = []
    qs, qe = trial.quiet_start, trial.quiet_end
    assert qs is not None and qe is not None  # set by the successful weighing above
    while True:
        d = A.K.first_outside(trial.total, qe, trial.n, trial.level_n, trial.thr_n)
        if d < 0:
            break
        # metrics.md § kinematics: v from the rep's quiet window (v = 0 there, baseline its own mean
        # force), z its integral
        A.K.integrate_velocity(trial.total, qs, trial.n, A.quiet_level_n(trial, qs, qe), trial.mass_kg, trial.dt, v)
        z = np.empty(trial.n - qs)
        z[0] = 0.0
        np.cumsum((v[qs + 1:] + v[qs:-1]) * (0.5 * trial.dt), out=z[1:])
        t_on, _ = A.onset_time(trial, qe, d + 1, qs)
        i_on = int(math.ceil(t_on * trial.rate_hz - 1e-9)) if t_on is not None else d
        closing = _closing_stance(trial, qs, d, z)
        if closing is None:
            # decision 0003: no quiet stance after the movement.  Ending off the plates is stepping
            # off, not a rep; ending on them, the recording stopped during the movement: cut rep
            if trial.total[trial.n - 1] >= p.contact_threshold_n:
                reps.append(RepResult(None, t_on, None, dict.fromkeys(SQUAT_METRICS), ["truncated"]))
            break
        rs, j, re = closing
        if float(np.max(np.abs(z[i_on - qs:rs - qs + 1]))) >= SQUAT_MIN_DEPTH_M:
            reps.append(_squat_rep(trial, i_on, rs, t_on))
        if re >= trial.n:
            break
        # the next rep integrates from the quietest window in the last quiet_search_s of this stance
        ww = min(w, re - j)
        s0, _, _ = A.K.min_sd_window(trial.total, max(j, re - search), re, ww)
        qs, qe = int(s0), int(s0 + ww)
    return reps


def _squat_rep(trial: A.Trial, i_on: int, i_end: int, t_on: float | None) -> RepResult:
    """The weight-bearing shares of one squat over samples [i_on, i_end) (trial.v holds its v)."""
    p = trial.params
    left = trial.fz["floor_left"]
    right = trial.fz["floor_right"]
    v_dead = p.onset_speed_m_s
    # decision 0003: the movement ends where |F − level| re-enters the onset band for the closing
    # stance (sample i_end), not at |v| ≤ onset speed: the integration drift of v can keep |v| above
    # the onset speed through the following stance.
    sl = slice(i_on, i_end)
    tot = left[sl] + right[sl]
    ok = tot >= p.cop_min_force_n
    share = np.full(tot.shape, np.nan)
    np.divide(100.0 * left[sl], tot, out=share, where=ok)
    vv = trial.v[sl]
    m = {}
    # metrics.md § Squat: left_share_pct = Fz_left / (Fz_left + Fz_right) × 100, mean over the movement
    m["left_share_pct"] = float(np.mean(share[ok])) if ok.any() else None
    # metrics.md § Squat: separated by the sign of v; decision 0003: |v| ≤ onset_speed_m_s is neither
    dsc = ok & (vv < -v_dead)
    asc = ok & (vv > v_dead)
    m["left_share_descent_pct"] = float(np.mean(share[dsc])) if dsc.any() else None
    m["left_share_ascent_pct"] = float(np.mean(share[asc])) if asc.any() else None
    return RepResult(None, t_on, None, m, [])
