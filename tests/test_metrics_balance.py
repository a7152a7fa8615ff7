"""dsp.metrics_balance: single-limb balance COP metrics and the bilateral squat's weight-bearing
share on traces with known answers; squat pauses, slow descents, cut squats and non-reps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steplab.benchmarks.reference_analysis import SyntheticSquat
from steplab.dsp import PlateForces, analyze_forces

G = 9.80665
RATE = 1000.0


def _balance_plates(x_mm, y_mm, fz=650.0, side="left"):
    n = x_mm.shape[0]
    f = np.full(n, fz)
    other = "floor_right" if side == "left" else "floor_left"
    # COP_x = −1000·My/Fz, COP_y = 1000·Mx/Fz
    return {f"floor_{side}": PlateForces(f, f * y_mm / 1000.0, -f * x_mm / 1000.0),
            other: PlateForces(np.zeros(n), np.zeros(n), np.zeros(n))}


def _squat(left_desc=0.56, left_asc=0.46, m=75.0):
    """Quiet 2 s at 50/50, then one squat with v = −V·sin(2πτ/P): descent (v < 0) for
    τ in (0, P/2) with left share 56 %, ascent (v > 0) for τ in (P/2, P) with 46 %."""
    bw = m * G
    P, V = 3.0, 0.5
    n = int(8.0 * RATE)
    t = np.arange(n) / RATE
    tau = t - 2.0
    a = np.zeros(n)
    ph = (tau >= 0) & (tau < P)
    a[ph] = -V * (2 * np.pi / P) * np.cos(2 * np.pi * tau[ph] / P)
    f = bw + m * a
    share = np.full(n, 0.5)
    share[(tau > 0) & (tau < P / 2)] = left_desc
    share[(tau >= P / 2) & (tau < P)] = left_asc
    return {"floor_left": PlateForces(f * share), "floor_right": PlateForces(f * (1 - share))}


# ------------------------------------------------------------------ 3. squat pauses and slow descents
DEPTH_M = 0.4


SQUAT_BW = 700.0


def one_squat(descent_s: float, hold_s: float, ascent_s: float | None = None, reps: int = 1):
    """Analytic squats: v = (2D/T)·sin²(π·τ/T) down then up; left share 40 % going down, 60 % up.

    Quiet 3 s before, between and after; the share is 50 % while v = 0 (standing, the hold).
    Returns plates, the movement spans and the time axis.
    """
    ascent_s = descent_s if ascent_s is None else ascent_s
    m = SQUAT_BW / G
    rep_s = descent_s + hold_s + ascent_s
    t = np.arange(int(round((3.0 + reps * (rep_s + 3.0)) * RATE))) / RATE
    a = np.zeros_like(t)
    v = np.zeros_like(t)
    spans = []
    for k in range(reps):
        t0 = 3.0 + k * (rep_s + 3.0)
        for start, dur, sign in ((t0, descent_s, -1.0), (t0 + descent_s + hold_s, ascent_s, 1.0)):
            x = np.clip((t - start) / dur, 0.0, 1.0)
            inside = (t >= start) & (t <= start + dur)
            a += np.where(inside, sign * (2 * DEPTH_M / dur) * np.pi / dur * np.sin(2 * np.pi * x), 0.0)
            v += np.where(inside, sign * (2 * DEPTH_M / dur) * np.sin(np.pi * x) ** 2, 0.0)
        spans.append((t0, t0 + rep_s))
    f = SQUAT_BW + m * a
    share = np.where(v < 0, 40.0, np.where(v > 0, 60.0, 50.0))
    left = f * share / 100.0
    return {"floor_left": PlateForces(left), "floor_right": PlateForces(f - left)}, spans


def squat_onset_s(descent_s: float) -> float:
    """metrics.md onset on one_squat: detection where |a| = 0.025·g (|F − BW| = 2.5 % BW), then back to
    the last |v| ≤ 0.01 m/s; if v is still slower at detection, the detection itself (decision 0003)."""
    peak_acc = 2 * DEPTH_M / descent_s * math.pi / descent_s
    tau_det = descent_s / (2 * math.pi) * math.asin(0.025 * G / peak_acc)
    tau_v = descent_s / math.pi * math.asin(math.sqrt(0.01 * descent_s / (2 * DEPTH_M)))
    return min(tau_det, tau_v)


def test_balance_ellipse_of_known_axes():
    a_mm, b_mm, f_hz, dur = 12.0, 5.0, 0.5, 20.0
    t = np.arange(int(dur * RATE)) / RATE
    x = 3.0 + a_mm * np.cos(2 * np.pi * f_hz * t)
    y = -7.0 + b_mm * np.sin(2 * np.pi * f_hz * t)
    res = analyze_forces(_balance_plates(x, y, side="right"), RATE, "balance")
    m = res.reps[0].metrics
    assert res.reps[0].lead == "right"
    n = t.shape[0]
    # population covariance of an ellipse traversed uniformly: diag(a²/2, b²/2); np.cov uses n − 1
    det = (a_mm ** 2 / 2) * (b_mm ** 2 / 2) * (n / (n - 1)) ** 2
    assert m["cop_ellipse95_mm2"] == pytest.approx(math.pi * 5.991 * math.sqrt(det), rel=1e-3)
    assert m["cop_ml_range_mm"] == pytest.approx(2 * a_mm, rel=1e-3)
    assert m["cop_ap_range_mm"] == pytest.approx(2 * b_mm, rel=1e-3)
    # perimeter of the ellipse (Ramanujan II, exact to ~1e-10 here) times the number of revolutions
    h = ((a_mm - b_mm) / (a_mm + b_mm)) ** 2
    perim = math.pi * (a_mm + b_mm) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))
    path = perim * f_hz * (n - 1) / RATE
    assert m["cop_path_mm"] == pytest.approx(path, rel=1e-3)
    assert m["cop_mean_velocity_mm_s"] == pytest.approx(path / ((n - 1) / RATE), rel=1e-3)


def test_balance_circle_path():
    r_mm, f_hz, dur = 8.0, 0.25, 12.0
    t = np.arange(int(dur * RATE)) / RATE
    res = analyze_forces(_balance_plates(r_mm * np.cos(2 * np.pi * f_hz * t), r_mm * np.sin(2 * np.pi * f_hz * t)),
                         RATE, "balance")
    m = res.reps[0].metrics
    assert res.reps[0].lead == "left"
    assert m["cop_path_mm"] == pytest.approx(2 * math.pi * r_mm * f_hz * (t.shape[0] - 1) / RATE, rel=1e-3)


def test_squat_share_on_known_split():
    plates = _squat()
    res = analyze_forces(plates, RATE, "squat")
    assert len(res.reps) == 1
    m = res.reps[0].metrics
    assert m["left_share_descent_pct"] == pytest.approx(56.0, abs=0.05)
    assert m["left_share_ascent_pct"] == pytest.approx(46.0, abs=0.05)
    # overall mean over [onset, end]: equal descent and ascent durations → (56 + 46)/2
    assert m["left_share_pct"] == pytest.approx(51.0, abs=0.05)
    assert res.reps[0].t_onset_s == pytest.approx(2.0, abs=2e-3)
    assert res.reps[0].lead is None


@pytest.mark.parametrize("descent_s, hold_s", [(1.3, 1.0), (3.0, 1.0), (1.3, 0.0), (3.0, 2.0), (1.3, 0.6)])
def test_squat_with_a_hold_or_a_slow_descent_is_one_rep(descent_s, hold_s):
    plates, spans = one_squat(descent_s, hold_s)
    res = analyze_forces(plates, RATE, "squat")
    assert len(res.reps) == 1, [r.metrics for r in res.reps]
    rep = res.reps[0]
    assert rep.flags == []
    assert rep.t_onset_s == pytest.approx(spans[0][0] + squat_onset_s(descent_s), abs=2e-3)
    # descent and ascent by the sign of v, the hold (v ≈ 0) in neither (decision 0003: dead band)
    assert rep.metrics["left_share_descent_pct"] == pytest.approx(40.0, abs=0.01)
    assert rep.metrics["left_share_ascent_pct"] == pytest.approx(60.0, abs=0.01)
    # equal descent and ascent times around a 50 % hold: ≈ 50 %; the movement's ends are the band
    # crossings (decision 0003), which cut slightly more of a slow ascent's tail than of its start
    assert rep.metrics["left_share_pct"] == pytest.approx(50.0, abs=1.0)


def test_consecutive_squats_with_holds_are_separate_reps():
    plates, spans = one_squat(2.0, 1.0, reps=3)
    res = analyze_forces(plates, RATE, "squat")
    assert len(res.reps) == 3
    tau_on = squat_onset_s(2.0)
    for rep, (t0, _) in zip(res.reps, spans):
        assert rep.t_onset_s == pytest.approx(t0 + tau_on, abs=2e-3)
        assert rep.metrics["left_share_descent_pct"] == pytest.approx(40.0, abs=0.01)
        assert rep.metrics["left_share_ascent_pct"] == pytest.approx(60.0, abs=0.01)


def test_squat_cut_during_the_movement_is_truncated():
    plates, spans = one_squat(1.3, 1.0)
    stop = int((spans[0][0] + 2.0) * RATE)  # in the hold at the bottom
    cut = {r: PlateForces(pf.fz_n[:stop]) for r, pf in plates.items()}
    res = analyze_forces(cut, RATE, "squat")
    assert len(res.reps) == 1 and res.reps[0].flags == ["truncated"]
    assert all(v is None for v in res.reps[0].metrics.values())


def test_squat_bump_and_stepping_off_are_not_reps():
    plates, spans = one_squat(1.3, 1.0, reps=2)
    left, right = plates["floor_left"].fz_n.copy(), plates["floor_right"].fz_n.copy()
    # a bump in the stance between the squats, +40 N for 50 ms then −40 N for 50 ms (no net impulse):
    # out of band, but the COM moves 1 mm
    i = int((spans[0][1] + 1.5) * RATE)
    left[i:i + 50] += 40.0
    left[i + 50:i + 100] -= 40.0
    # then the subject steps off the plates over 0.5 s at the end of the recording
    n = left.shape[0]
    ramp = np.concatenate((np.ones(n - 1500), np.linspace(1.0, 0.0, 500), np.zeros(1000)))
    res = analyze_forces({"floor_left": PlateForces(left * ramp), "floor_right": PlateForces(right * ramp)},
                         RATE, "squat")
    assert len(res.reps) == 2 and all(r.flags == [] for r in res.reps)
    for rep, (t0, _) in zip(res.reps, spans):
        assert rep.t_onset_s == pytest.approx(t0 + squat_onset_s(1.3), abs=2e-3)
        assert rep.metrics["left_share_descent_pct"] == pytest.approx(40.0, abs=0.01)


def test_squat_dead_band_on_the_reference_synthetic_against_its_closed_form():
    s = SyntheticSquat(reps=2)
    res = analyze_forces(s.sample(RATE), RATE, "squat")
    assert len(res.reps) == 2
    t = np.arange(int(round(s.duration_s * RATE))) / RATE
    v = s.com_vel(t)
    share = s.left_share_pct(t)
    thr_a = 0.025 * G  # |F − BW| = 2.5 % BW ↔ |a| = 0.025 g
    tau_det = s.td / (2 * math.pi) * math.asin(thr_a / s.a)
    for rep, start in zip(res.reps, s.starts_s):
        t_end = start + s.td + s.ta - s.ta / (2 * math.pi) * math.asin(thr_a / s.a)
        sel = (t >= start + tau_det) & (t <= t_end)
        assert rep.metrics["left_share_descent_pct"] == pytest.approx(share[sel & (v < -0.01)].mean(), abs=0.02)
        assert rep.metrics["left_share_ascent_pct"] == pytest.approx(share[sel & (v > 0.01)].mean(), abs=0.02)
