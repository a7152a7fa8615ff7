"""Step-down metrics against analytic ground truth from a prescribed COM acceleration profile.

The trace is built from closed-form phases (see ``synthetic_step_down``); every
expected value below is derived here from those closed forms (roots, maxima and
integrals of the analytic functions), never from the analysis code.
"""

import math

import numpy as np
import pytest
from scipy import integrate, optimize

from steplab.analysis_pipeline import analyze_counts
from steplab.calibration.arrays import nominal_calibration
from steplab.calibration.warmup import forces_to_counts
from steplab.dsp import analyze_forces
from steplab.dsp.warmup import synthetic_step_down

G = 9.80665
M = 70.0
BW = M * G
A_LOW, T_LOW, T_LAND, T_BOX, T_REB, T_Q = 1.5, 0.6, 0.3, 0.15, 0.4, 2.0
RATE = 1000.0


def truth() -> dict:
    v_c = -2 * A_LOW * T_LOW / math.pi
    d = -v_c * math.pi / (1.5 * T_LAND)
    total = lambda tau: BW + M * d * math.sin(math.pi * tau / T_LAND)  # noqa: E731  (0 ≤ tau < T_LAND)
    floor = lambda tau: total(tau) * 0.5 * (1 - math.cos(math.pi * tau / T_BOX)) if tau < T_BOX else total(tau)  # noqa: E731
    box = lambda tau: total(tau) - floor(tau)  # noqa: E731
    v = lambda tau: v_c + d * T_LAND / math.pi * (1 - math.cos(math.pi * tau / T_LAND))  # noqa: E731
    tau_c = optimize.brentq(lambda x: floor(x) - 20.0, 1e-9, T_BOX)
    tau_a = 2 * T_LAND / 3  # v = 0 where cos(π τ/Tl) = −0.5
    res = optimize.minimize_scalar(lambda x: -floor(x), bounds=(tau_c, tau_a), method="bounded",
                                   options={"xatol": 1e-9})
    tau_p, peak = res.x, -res.fun
    grid = np.linspace(tau_c, tau_p, 20001)
    h = 1e-7
    dfloor = np.array([(floor(x + h) - floor(x - h)) / (2 * h) for x in grid])
    tau_on = T_LOW / math.pi * math.asin(0.025 * G / A_LOW)  # |F − BW| = 2.5 % BW
    v_on = A_LOW * T_LOW / math.pi * (1 - math.cos(math.pi * tau_on / T_LOW))
    assert v_on < 0.01  # so onset is the detection crossing itself
    v_after = v_c + 2 * d * T_LAND / math.pi
    e = v_after * math.pi / (2 * T_REB)
    tau_band = T_REB - T_REB / math.pi * math.asin(0.05 * G / e)
    t_c_abs = T_Q + T_LOW
    t_contact = t_c_abs + tau_c
    t_onset = T_Q + tau_on
    return {
        "t_contact": t_contact, "t_onset": t_onset,
        "lowering_duration_s": t_contact - t_onset,
        "peak_descent_speed_m_s": -v_c,
        "touchdown_speed_m_s": -v(tau_c),
        "trail_support_at_contact_pct": box(tau_c) / BW * 100,
        "landing_peak_force_bw": peak / BW,
        "time_to_peak_s": tau_p - tau_c,
        "loading_rate_bw_s": (peak - 20.0) / (tau_p - tau_c) / BW,
        "peak_loading_rate_bw_s": dfloor.max() / BW,
        "impulse_100ms_bw_s": integrate.quad(floor, tau_c, tau_c + 0.1, points=[T_BOX], limit=200)[0] / BW,
        "peak_deceleration_m_s2": d,
        "landing_phase_duration_s": tau_a - tau_c,
        "time_to_stabilization_s": t_c_abs + T_LAND + tau_band - t_contact,
        "box_cop_ml_range_mm": 20.0 * (t_contact - t_onset) / T_LOW,
        "box_cop_ml_velocity_mm_s": 20.0 / T_LOW,
    }


TOL = {  # absolute tolerances: sampling at 1 kHz and the 100 Hz zero-lag filter
    "lowering_duration_s": 2e-4, "peak_descent_speed_m_s": 2e-4, "touchdown_speed_m_s": 2e-4,
    "trail_support_at_contact_pct": 0.3, "landing_peak_force_bw": 2e-3, "time_to_peak_s": 1.5e-3,
    "loading_rate_bw_s": 0.1, "peak_loading_rate_bw_s": 0.1, "impulse_100ms_bw_s": 5e-4,
    "peak_deceleration_m_s2": 0.01, "landing_phase_duration_s": 1e-3, "time_to_stabilization_s": 2e-3,
    "box_cop_ml_range_mm": 0.1, "box_cop_ml_velocity_mm_s": 0.1,
}


@pytest.fixture(scope="module")
def expected():
    return truth()


def _check(rep, expected):
    assert rep.t_contact_s == pytest.approx(expected["t_contact"], abs=1e-4)
    assert rep.t_onset_s == pytest.approx(expected["t_onset"], abs=2e-4)
    for name, tol in TOL.items():
        assert rep.metrics[name] == pytest.approx(expected[name], abs=tol), name
    assert abs(rep.metrics["integration_drift_m_s"]) < 1e-3


def test_step_down_forces_match_analytic_truth(expected):
    res = analyze_forces(synthetic_step_down(rate_hz=RATE, mass_kg=M), RATE, "step-down")
    assert res.body_weight_n == pytest.approx(BW, rel=1e-9)
    assert res.body_mass_kg == pytest.approx(M, rel=1e-9)
    assert len(res.reps) == 1
    rep = res.reps[0]
    assert rep.lead == "left"
    assert rep.flags == []
    _check(rep, expected)


def test_step_down_counts_match_analytic_truth(expected):
    from steplab.acquisition.rig import default_rig

    rig = default_rig()
    counts = forces_to_counts(synthetic_step_down(rate_hz=RATE, mass_kg=M, lead="right"), rig)
    res = analyze_counts(counts, RATE, nominal_calibration(rig), "step-down")
    rep = res.reps[0]
    assert rep.lead == "right"
    # 4000 counts/N: quantisation of 0.25 mN per cell is far below every tolerance
    _check(rep, expected)
    assert res.provenance["calibration_id"] == "nominal"
    assert len(res.provenance["calibration_hash"]) == 64


def test_body_mass_overrides_weighing(expected):
    res = analyze_forces(synthetic_step_down(rate_hz=RATE, mass_kg=M), RATE, "step-down", body_mass_kg=M)
    assert res.body_weight_n == pytest.approx(BW, rel=1e-12)
    assert res.provenance["body_weight_source"] == "body_mass_kg"
    _check(res.reps[0], expected)


def test_lead_override_names_the_other_plate():
    res = analyze_forces(synthetic_step_down(rate_hz=RATE, mass_kg=M), RATE, "step-down", lead="right")
    rep = res.reps[0]
    assert rep.lead == "right"
    # the right plate was never struck: no contact, metrics None, never NaN
    assert rep.t_contact_s is None
    assert all(v is None for v in rep.metrics.values())
