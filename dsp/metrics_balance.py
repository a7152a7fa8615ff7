"""COP helpers, single-limb balance and squat weight-bearing share (metrics.md § Balance, § Squat)."""

from __future__ import annotations

import math

import numpy as np

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

    metrics.md § Signals: NaN wherever Fz < cop_min_force_n (never huge).  Each
    contiguous valid stretch is filtered as a whole (decision 0003), i.e. the filter
    runs over the stretch beyond the window's edges (up to COP_MARGIN_PERIODS cut-off
    periods), so the window's ends are not filter edges; too-short stretches stay raw.
    """
    p = trial.params
    m = hi - lo
    if m <= 0 or (role not in trial.mx and trial.calibration is None):
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
    fz = fz_all[elo:ehi]
    me = ehi - elo
    valid = fz >= thr
    x = np.full(me, np.nan)
    y = np.full(me, np.nan)
    np.divide(-1000.0 * my, fz, out=x, where=valid)
    np.divide(1000.0 * mx, fz, out=y, where=valid)
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


def _bursts(trial: A.Trial, lo: int, gap_n: int) -> list[tuple[int, int]]:
    """Movement bursts after lo: runs of |F − BW| > thr joined across in-band gaps < gap_n."""
    out_band = np.abs(trial.total[lo:] - trial.bw_n) > trial.thr_n
    idx = np.flatnonzero(out_band)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > gap_n)
    starts = np.concatenate(([idx[0]], idx[breaks + 1])) + lo
    ends = np.concatenate((idx[breaks], [idx[-1]])) + lo + 1
    return [(int(s), int(e)) for s, e in zip(starts, ends)]


def analyze_squat(trial: A.Trial, *, lead, body_mass_kg, flags) -> list[RepResult]:
    """metrics.md § Bilateral squat: left share of the floor load over each squat rep."""
    p = trial.params
    if not A.weigh_standing_start(trial, body_mass_kg, flags):
        return [RepResult(None, None, None, dict.fromkeys(SQUAT_METRICS), ["no_quiet_stance"])]
    w = trial.window_n(p.quiet_window_s)
    gap_n = max(2, int(round(A.MIN_QUIET_FRACTION * w)))
    bursts = _bursts(trial, trial.quiet_end, gap_n)
    left = trial.fz["floor_left"]
    right = trial.fz["floor_right"]
    reps = []
    prev_end = trial.quiet_end
    for k, (bs, be) in enumerate(bursts):
        hi = bursts[k + 1][0] if k + 1 < len(bursts) else trial.n
        if k == 0:
            q = (trial.quiet_start, trial.quiet_end)
        else:
            q = A.rep_quiet_window(trial, prev_end, bs)
        prev_end = be
        if q is None:
            reps.append(RepResult(None, None, None, dict.fromkeys(SQUAT_METRICS), ["no_quiet_stance"]))
            continue
        qs, qe = q
        A.K.integrate_velocity(trial.total, qs, hi, trial.bw_n, trial.mass_kg, trial.dt, trial.v)
        t_on, _ = A.onset_time(trial, qe, bs + 1, qs)
        v = trial.v
        # decision 0003: the movement ends where |F − BW| re-enters the onset band after the burst
        # (the crossing between its last out-of-band sample be − 1 and be), not at |v| ≤ onset speed:
        # the integration drift of v can keep |v| above the onset speed through the following stance.
        i_on = int(math.ceil(t_on * trial.rate_hz - 1e-9)) if t_on is not None else bs
        sl = slice(i_on, min(be, trial.n))
        tot = left[sl] + right[sl]
        ok = tot >= p.cop_min_force_n
        share = np.full(tot.shape, np.nan)
        np.divide(100.0 * left[sl], tot, out=share, where=ok)
        vv = v[sl]
        m = {}
        # metrics.md § Squat: left_share_pct = Fz_left / (Fz_left + Fz_right) × 100, mean over the movement
        m["left_share_pct"] = float(np.mean(share[ok])) if ok.any() else None
        dsc = ok & (vv < 0)
        asc = ok & (vv > 0)
        # metrics.md § Squat: separated by the sign of v (descent v < 0, ascent v > 0)
        m["left_share_descent_pct"] = float(np.mean(share[dsc])) if dsc.any() else None
        m["left_share_ascent_pct"] = float(np.mean(share[asc])) if asc.any() else None
        reps.append(RepResult(None, t_on, None, m, []))
    return reps
