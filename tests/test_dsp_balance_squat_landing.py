"""Balance COP metrics, squat weight-bearing share and drop landing on traces with known answers."""

import math

import numpy as np
import pytest

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


def _drop(left_frac=0.6, m=70.0, h=0.30, bounce=False):
    """Stand on the box 2 s, fall freely from h (v_td = −√(2gh)), land on both plates with a
    half-sine deceleration that stops the body, stand 3 s.  Box and floors are all plates."""
    bw = m * G
    v_td = -math.sqrt(2 * G * h)
    t_fall = math.sqrt(2 * h / G)
    tl = 0.25
    d = -v_td * math.pi / (2 * tl)  # ∫ D sin(πτ/tl) = 2 D tl / π = −v_td: stops exactly
    n = int((2.0 + t_fall + tl + 3.0) * RATE)
    t = np.arange(n) / RATE
    box = np.where(t < 2.0, bw, 0.0)
    tau = t - 2.0 - t_fall
    floor = np.where(tau >= tl, bw, 0.0)
    ph = (tau >= 0) & (tau < tl)
    floor[ph] = bw + m * d * np.sin(np.pi * tau[ph] / tl)
    # the force must ramp from 0 at touchdown: blend in the weight over the pulse
    floor[ph] = m * d * np.sin(np.pi * tau[ph] / tl) + bw * (tau[ph] / tl)
    return {"box": PlateForces(box), "floor_left": PlateForces(floor * left_frac),
            "floor_right": PlateForces(floor * (1 - left_frac))}, bw, d, tl, 2.0 + t_fall


def test_drop_landing_symmetry_and_whole_body():
    plates, bw, d, tl, t0 = _drop()
    res = analyze_forces(plates, RATE, "drop-landing")
    assert len(res.reps) == 1
    rep = res.reps[0]
    m = rep.metrics
    assert res.body_weight_n == pytest.approx(bw, rel=1e-9)
    assert rep.lead == "left"  # both strike together: left is reported first on a tie
    # peak of the floor total (m·D·sin + BW·τ/tl) over the pulse, split 60/40
    tau = np.linspace(0, tl, 200001)
    ftot = 70.0 * d * np.sin(np.pi * tau / tl) + bw * tau / tl
    assert m["landing_peak_force_bw_left"] == pytest.approx(0.6 * ftot.max() / bw, rel=2e-3)
    assert m["landing_peak_force_bw_right"] == pytest.approx(0.4 * ftot.max() / bw, rel=2e-3)
    # Robinson: (R − L)/(0.5 (R + L)) × 100 = (0.4 − 0.6)/0.5 × 100 = −40 %
    assert m["landing_peak_force_bw_symmetry_index_pct"] == pytest.approx(-40.0, abs=0.05)
    # each plate's 100 ms impulse starts at its own contact (its own 20 N crossing)
    from scipy import integrate, optimize
    fcont = lambda x: 70.0 * d * math.sin(math.pi * x / tl) + bw * x / tl  # noqa: E731
    imp = {}
    for side, frac in (("left", 0.6), ("right", 0.4)):
        tc = optimize.brentq(lambda x, frac=frac: frac * fcont(x) - 20.0, 0.0, tl / 2)
        imp[side] = integrate.quad(lambda x, frac=frac: frac * fcont(x), tc, tc + 0.1)[0] / bw
        assert m[f"impulse_100ms_bw_s_{side}"] == pytest.approx(imp[side], rel=2e-3)
    si = (imp["right"] - imp["left"]) / (0.5 * (imp["right"] + imp["left"])) * 100
    assert m["impulse_100ms_bw_s_symmetry_index_pct"] == pytest.approx(si, abs=0.2)
    assert rep.t_contact_s == pytest.approx(t0 + optimize.brentq(lambda x: 0.6 * fcont(x) - 20.0, 0.0, tl / 2), abs=1e-4)
    assert m["time_to_peak_s_symmetry_index_pct"] == pytest.approx(0.0, abs=1.0)
    # whole body: deceleration = (max F − BW)/m where F = floor total
    assert m["peak_deceleration_m_s2"] == pytest.approx((ftot.max() - bw) / 70.0, rel=2e-3)


def test_drop_landing_bounce_is_one_rep():
    plates, bw, d, tl, t0 = _drop()
    i = int((t0 + 0.1) * RATE)
    p2 = {}
    for r, pf in plates.items():
        fz = pf.fz_n.copy()
        if r != "box":
            fz[i:i + 50] = 0.0
        p2[r] = PlateForces(fz)
    res = analyze_forces(p2, RATE, "drop-landing")
    assert len(res.reps) == 1
    assert "bounce" in res.reps[0].flags
