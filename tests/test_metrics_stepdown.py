"""Step-down metrics against analytic ground truth from a prescribed COM acceleration profile.

The trace is built from closed-form phases (see ``synthetic_step_down``); every
expected value below is derived here from those closed forms (roots, maxima and
integrals of the analytic functions), never from the analysis code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import plates_of, sim_truth
from scipy import integrate, optimize

from steplab.analysis_pipeline import analyze_counts
from steplab.benchmarks import reference_analysis as ref
from steplab.calibration.arrays import nominal_calibration
from steplab.calibration.warmup import forces_to_counts
from steplab.dsp import PlateForces, analyze_forces
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


# -- metrics.md § kinematics: each rep integrates against the mean force of its own quiet stance --
@pytest.mark.parametrize("analyze", [analyze_forces, ref.analyze_forces], ids=["core", "reference"])
def test_a_cell_offset_arising_between_reps_moves_no_onset_or_speed(analyze):
    """A 2 N box-cell offset that appears while the subject is on the floor (slow drift, a knock)
    changes no later rep's onset or centre-of-mass speeds: each rep's baseline is its own quiet stance."""
    s = ref.SyntheticStepDown(leads=("left", "right", "left"))
    plates = s.sample(1000.0)
    t = np.arange(plates["box"].fz_n.size) / 1000.0
    assert s.starts_s[0] + 2.0 < 5.0 < s.starts_s[1] - 2.0 and plates["box"].fz_n[5000] == 0.0  # box unloaded then
    box = plates["box"]
    shifted = dict(plates, box=PlateForces(box.fz_n + np.where(t >= 5.0, 2.0, 0.0), box.mx_nm, box.my_nm))
    before = analyze(plates, 1000.0, "step-down")
    after = analyze(shifted, 1000.0, "step-down")
    assert len(before.reps) == len(after.reps) == 3
    for a, b in zip(before.reps, after.reps):
        assert b.t_onset_s == pytest.approx(a.t_onset_s, abs=1e-9)
        for name in ("peak_descent_speed_m_s", "touchdown_speed_m_s", "lowering_duration_s"):
            assert b.metrics[name] == pytest.approx(a.metrics[name], abs=1e-9), name


# ------------------------------------------------------------------ 1. body mass vs the plates
STEP_ROLES = ("box", "floor_left", "floor_right")


# ------------------------------------------------------------------ 5. recordings cut within the landing
PHASE_METRICS = ("landing_peak_force_bw", "time_to_peak_s", "loading_rate_bw_s", "peak_loading_rate_bw_s",
                 "peak_deceleration_m_s2", "landing_phase_duration_s", "time_to_stabilization_s")


# ----------------------------------------------------------------------------- lead override
def test_lead_override_against_the_data_is_flagged_not_measured():
    s = ref.SyntheticStepDown(leads=("left",))
    plates = s.sample(RATE, 0.5, 1)
    right = analyze_forces(plates, RATE, "step-down", lead="right")
    rep = right.reps[0]
    # the right plate is struck by the trail foot 0.5 s after the left landed: not a lead landing
    assert rep.lead == "right" and "lead_override_contradicted" in rep.flags
    assert all(v is None for v in rep.metrics.values())
    assert rep.t_contact_s > s.starts_s[0] + s.touch_s + 0.1
    left = analyze_forces(plates, RATE, "step-down", lead="left").reps[0]
    auto = analyze_forces(plates, RATE, "step-down").reps[0]
    assert auto.lead == "left" and left.flags == [] and left.t_contact_s == auto.t_contact_s
    assert left.metrics == auto.metrics
    assert s.starts_s[0] + s.touch_s < left.t_contact_s < s.starts_s[0] + s.touch_s + 0.03  # 20 N after touch
    assert left.metrics["time_to_peak_s"] > 0.03


def test_lead_override_on_a_plate_never_contacted():
    s = ref.SyntheticStepDown(leads=("left",))
    plates = dict(s.sample(RATE))
    n = len(plates["floor_right"].fz_n)
    plates["floor_left"] = PlateForces(plates["floor_left"].fz_n + plates["floor_right"].fz_n,
                                       plates["floor_left"].mx_nm, plates["floor_left"].my_nm)
    plates["floor_right"] = PlateForces(np.zeros(n), np.zeros(n), np.zeros(n))
    rep = analyze_forces(plates, RATE, "step-down", lead="right").reps[0]
    assert rep.flags == ["lead_plate_not_contacted"] and rep.t_contact_s is None
    assert all(v is None for v in rep.metrics.values())


# ------------------------------------------------------- per-plate contact, idle plate offsets
@pytest.mark.parametrize("offset_n, noise_n", [(-1.0, 0.0), (-1.0, 0.5), (-3.0, 0.5), (0.0, 2.0)])
def test_forward_step_down_tap_found_on_its_own_plate(offset_n, noise_n):
    s = ref.SyntheticForwardStepDown(taps=("left", "right"))
    plates = dict(s.sample(RATE, noise_n, 5))
    clean = [r.t_contact_s for r in analyze_forces(s.sample(RATE), RATE, "forward-step-down").reps]
    for role in ("floor_left", "floor_right"):
        p = plates[role]
        plates[role] = PlateForces(p.fz_n + offset_n, p.mx_nm, p.my_nm)
    res = analyze_forces(plates, RATE, "forward-step-down")
    other = ref.analyze_forces(plates, RATE, "forward-step-down")  # independent per-plate contacts
    assert [r.lead for r in res.reps] == [r.lead for r in other.reps] == ["left", "right"]
    for rep, rb, t in zip(res.reps, other.reps, clean):
        assert "no_contact" not in rep.flags
        assert rep.t_contact_s == pytest.approx(rb.t_contact_s, abs=1e-3)
        # an offset of a few N moves the 20 N crossing of the tap's rise by a few ms, never more
        assert rep.t_contact_s == pytest.approx(t, abs=8e-3)


def test_step_down_cut_within_the_landing_phase_is_truncated():
    truth = sim_truth("step-down", 30.0, 0)
    whole = analyze_forces(plates_of(truth, STEP_ROLES), RATE, "step-down").reps[0]
    assert whole.metrics["landing_phase_duration_s"] > 0.44  # the cut below falls before the arrest
    stop = int(math.floor((whole.t_contact_s + 0.44) * RATE))
    res = analyze_forces(plates_of(truth, STEP_ROLES, stop), RATE, "step-down")
    assert len(res.reps) == 1
    rep = res.reps[0]
    assert "truncated" in rep.flags and "descent_not_arrested" not in rep.flags
    for name in PHASE_METRICS:
        assert rep.metrics[name] is None, name
    assert rep.metrics["integration_drift_m_s"] is None
    # what happened before the cut is still reported, as in the whole recording
    assert rep.t_contact_s == whole.t_contact_s
    for name in ("lowering_duration_s", "peak_descent_speed_m_s", "touchdown_speed_m_s"):
        assert rep.metrics[name] == pytest.approx(whole.metrics[name], rel=1e-9), name
    assert rep.metrics["impulse_100ms_bw_s"] == pytest.approx(whole.metrics["impulse_100ms_bw_s"], rel=1e-6)


def test_step_down_cut_after_the_arrest_is_complete():
    plates = synthetic_step_down(rate_hz=RATE)
    whole = analyze_forces(plates, RATE, "step-down").reps[0]
    t_arr = whole.t_contact_s + whole.metrics["landing_phase_duration_s"]
    stop = int(math.ceil((t_arr + 0.05) * RATE))
    rep = analyze_forces({r: PlateForces(pf.fz_n[:stop]) for r, pf in plates.items()}, RATE, "step-down").reps[0]
    assert "truncated" not in rep.flags and "not_stabilized" in rep.flags
    for name in ("landing_peak_force_bw", "time_to_peak_s", "landing_phase_duration_s", "peak_deceleration_m_s2"):
        assert rep.metrics[name] == pytest.approx(whole.metrics[name], rel=1e-3, abs=1e-3), name


def test_descent_not_arrested_within_the_timeout():
    """An analytic landing arrested only 2.4 s after the landing starts (v < 0 throughout the 1 s timeout)."""
    m, a_low, t_low, t_arr, t_box, t_q = 70.0, 0.5, 0.6, 2.4, 0.15, 2.0
    bw = m * G
    v_c = -2 * a_low * t_low / math.pi
    d = -v_c * math.pi / (2 * t_arr)  # a = d·sin(πτ/T_arr) brings v back to 0 at τ = T_arr
    t = np.arange(int((t_q + t_low + t_arr + 3.0) * RATE)) / RATE
    tau = t - t_q
    acc = np.where((tau >= 0) & (tau < t_low), -a_low * np.sin(np.pi * tau / t_low), 0.0)
    tl = tau - t_low
    acc += np.where((tl >= 0) & (tl < t_arr), d * np.sin(np.pi * tl / t_arr), 0.0)
    total = m * (G + acc)
    floor_share = np.where(tl < 0, 0.0, np.where(tl < t_box, 0.5 * (1 - np.cos(np.pi * np.clip(tl, 0, t_box) / t_box)), 1.0))
    floor = total * floor_share
    plates = {"box": PlateForces(total - floor), "floor_left": PlateForces(floor),
              "floor_right": PlateForces(np.zeros_like(t))}
    res = analyze_forces(plates, RATE, "step-down")
    rep = res.reps[0]
    assert "descent_not_arrested" in rep.flags and "truncated" not in rep.flags
    assert rep.metrics["landing_phase_duration_s"] == pytest.approx(1.0)
    # the phase ends at t_contact + 1 s, before the force maximum at τ = T_arr/2
    tau_c = rep.t_contact_s - (t_q + t_low)
    expected = d * math.sin(math.pi * (tau_c + 1.0) / t_arr)
    assert rep.metrics["peak_deceleration_m_s2"] == pytest.approx(expected, rel=1e-3)
    assert bw > 0
