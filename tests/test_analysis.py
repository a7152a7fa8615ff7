"""dsp.analysis: the public edge (bad input), odd trials, weighing and body mass, segmentation,
no-rep trials and lazy filtering."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import plates_of, real_dual, real_file, sim_truth

from steplab.acquisition.rig import default_rig
from steplab.analysis_pipeline import analyze_counts
from steplab.calibration.arrays import nominal_calibration
from steplab.dsp import AnalysisParams, PlateForces, analyze_forces
from steplab.dsp.kinematics import G_M_S2
from steplab.dsp.warmup import synthetic_step_down

G = 9.80665
RATE = 1000.0


def _pad(plates, before_s=0.0, after_s=0.0, value=None):
    out = {}
    nb, na = int(before_s * RATE), int(after_s * RATE)
    for r, pf in plates.items():
        arrs = []
        for a in (pf.fz_n, pf.mx_nm, pf.my_nm):
            pre = np.zeros(nb) if value is None else np.full(nb, a[0])
            arrs.append(np.concatenate((pre, a, np.full(na, a[-1]))))
        out[r] = PlateForces(*arrs)
    return out


def _cut(plates, stop):
    return {r: PlateForces(pf.fz_n[:stop], pf.mx_nm[:stop], pf.my_nm[:stop]) for r, pf in plates.items()}


@pytest.fixture(scope="module")
def base():
    plates = synthetic_step_down(rate_hz=RATE)
    return plates, analyze_forces(plates, RATE, "step-down").reps[0]




# ------------------------------------------------------------------ 1. body mass vs the plates
STEP_ROLES = ("box", "floor_left", "floor_right")


# ---------------------------------------------------------------- the public edge
@pytest.mark.parametrize("rate", [0.0, -1000.0, float("nan"), float("inf"), 1e9, "fast"])
def test_absurd_rate_is_rejected(base, rate):
    with pytest.raises(ValueError, match="sample rate"):
        analyze_forces(base[0], rate, "step-down")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_force_is_rejected(base, bad):
    plates = dict(base[0])
    fz = plates["box"].fz_n.copy()
    fz[1234] = bad
    plates["box"] = PlateForces(fz, plates["box"].mx_nm, plates["box"].my_nm)
    with pytest.raises(ValueError, match="box fz_n holds NaN or inf"):
        analyze_forces(plates, RATE, "step-down")


@pytest.mark.parametrize("n", [0, 1])
def test_empty_or_single_sample_is_rejected(n):
    plates = {r: PlateForces(np.full(n, 700.0)) for r in ("box", "floor_left", "floor_right")}
    with pytest.raises(ValueError, match="at least 2"):
        analyze_forces(plates, RATE, "step-down")
    with pytest.raises(ValueError, match="at least 2"):
        analyze_counts(np.zeros((n, 12), dtype=np.int32), RATE, nominal_calibration(default_rig()), "step-down")


def test_other_bad_arguments(base):
    plates = base[0]
    with pytest.raises(ValueError, match="unknown protocol"):
        analyze_forces(plates, RATE, "hop")
    with pytest.raises(ValueError, match="needs the box plate"):
        analyze_forces({"floor_left": plates["floor_left"]}, RATE, "step-down")
    with pytest.raises(ValueError, match="lead"):
        analyze_forces(plates, RATE, "step-down", lead="middle")
    with pytest.raises(ValueError, match="body_mass_kg"):
        analyze_forces(plates, RATE, "step-down", body_mass_kg=-3)
    with pytest.raises(ValueError, match="Nyquist"):
        analyze_forces(plates, 150.0, "step-down")
    with pytest.raises(ValueError, match="samples"):
        analyze_forces({**plates, "box": PlateForces(plates["box"].fz_n[:-5])}, RATE, "step-down")
    with pytest.raises(ValueError, match="filter_order"):
        AnalysisParams(filter_order=3)
    with pytest.raises(ValueError, match="integers"):
        analyze_counts(np.zeros((100, 12)), RATE, nominal_calibration(default_rig()), "step-down")
    with pytest.raises(ValueError, match="channels"):
        analyze_counts(np.zeros((100, 8), dtype=np.int32), RATE, nominal_calibration(default_rig()), "step-down")


# ---------------------------------------------------------------- odd trials
def test_trial_starting_off_the_plates(base):
    plates, ref = base
    res = analyze_forces(_pad(plates, before_s=1.5), RATE, "step-down")
    rep = res.reps[0]
    assert res.body_weight_n == pytest.approx(70 * G, rel=1e-9)
    assert rep.t_contact_s == pytest.approx(ref.t_contact_s + 1.5, abs=1e-9)
    assert rep.t_onset_s == pytest.approx(ref.t_onset_s + 1.5, abs=1e-9)
    for k, v in ref.metrics.items():
        assert rep.metrics[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k


def test_stays_on_plate_and_recording_ends_early(base):
    plates, ref = base
    # cut 0.6 s after contact: still landing-ish, no 1 s hold possible → not_stabilized, no drift
    stop = int((ref.t_contact_s + 0.6) * RATE)
    rep = analyze_forces(_cut(plates, stop), RATE, "step-down").reps[0]
    assert "not_stabilized" in rep.flags
    assert rep.metrics["time_to_stabilization_s"] is None
    assert rep.metrics["integration_drift_m_s"] is None
    assert rep.metrics["landing_peak_force_bw"] == pytest.approx(ref.metrics["landing_peak_force_bw"], rel=1e-3)
    # cut 40 ms after contact: the landing phase is truncated, nothing crashes, no NaN anywhere
    stop = int((ref.t_contact_s + 0.04) * RATE)
    res = analyze_forces(_cut(plates, stop), RATE, "step-down")
    d = res.to_json_dict()
    assert all(v is None or math.isfinite(v) for v in d["reps"][0]["metrics"].values())
    assert d["reps"][0]["metrics"]["impulse_100ms_bw_s"] is None


def test_no_quiet_stance_flags_and_returns_none():
    t = np.arange(int(4 * RATE)) / RATE
    box = 700 + 300 * np.sin(2 * np.pi * 1.3 * t)
    zero = np.zeros_like(t)
    plates = {"box": PlateForces(box, zero, zero), "floor_left": PlateForces(zero.copy()), "floor_right": PlateForces(zero.copy())}
    res = analyze_forces(plates, RATE, "step-down")
    # decision 0003: no usable weighing → trial flags, no placeholder rep
    assert "no_quiet_stance" in res.flags and "no_reps" in res.flags
    assert res.reps == []
    assert res.to_json_dict()["reps"] == []
    # a recording shorter than the quiet window: same
    short = {r: PlateForces(pf.fz_n[:500]) for r, pf in plates.items()}
    assert "no_quiet_stance" in analyze_forces(short, RATE, "step-down").flags
    # nobody on the plates
    empty = {r: PlateForces(np.zeros(3000)) for r in plates}
    assert "no_quiet_stance" in analyze_forces(empty, RATE, "step-down").flags


def test_unsteady_weighing_flag(base):
    plates, ref = base
    rng = np.random.default_rng(1)
    noisy = dict(plates)
    fz = plates["box"].fz_n + rng.normal(0, 20.0, plates["box"].fz_n.shape)  # σ 20 N > max(10 N, 2 % BW)
    noisy["box"] = PlateForces(fz, plates["box"].mx_nm, plates["box"].my_nm)
    res = analyze_forces(noisy, RATE, "step-down")
    assert "unsteady_weighing" in res.flags
    quiet = analyze_forces(plates, RATE, "step-down")
    assert "unsteady_weighing" not in quiet.flags


def test_bounce_is_one_rep_flagged(base):
    plates, ref = base
    # lift the subject off the floor for 60 ms 0.25 s after contact (a bounce): two floor contacts
    fl = plates["floor_left"].fz_n.copy()
    i = int((ref.t_contact_s + 0.25) * RATE)
    fl[i:i + 60] = 0.0
    p2 = dict(plates)
    p2["floor_left"] = PlateForces(fl, plates["floor_left"].mx_nm, plates["floor_left"].my_nm)
    res = analyze_forces(p2, RATE, "step-down")
    assert len(res.reps) == 1
    assert "bounce" in res.reps[0].flags
    assert res.reps[0].t_contact_s == pytest.approx(ref.t_contact_s, abs=1e-9)


def test_body_mass_15_percent_too_high_is_flagged_not_used_for_segmentation(base):
    plates, ref = base
    # decision 0003: v is integrated about the measured quiet force, so a recorded body mass 15 % too
    # high no longer leaves a = (F − m·g)/m negative for ever (it used to give descent_not_arrested);
    # the disagreement is flagged and the landing is found as with the weighed BW
    res = analyze_forces(plates, RATE, "step-down", body_mass_kg=70.0 * 1.15)
    assert "body_mass_mismatch" in res.flags
    rep = res.reps[0]
    assert "descent_not_arrested" not in rep.flags
    assert rep.t_contact_s == ref.t_contact_s
    assert rep.metrics["landing_phase_duration_s"] == pytest.approx(ref.metrics["landing_phase_duration_s"], abs=1e-3)


def test_multi_rep_segmentation_matches_single(base):
    plates, ref = base
    tiled = {r: PlateForces(np.tile(pf.fz_n, 3), np.tile(pf.mx_nm, 3), np.tile(pf.my_nm, 3)) for r, pf in plates.items()}
    res = analyze_forces(tiled, RATE, "step-down")
    n = len(plates["box"].fz_n) / RATE
    assert len(res.reps) == 3  # the step back up onto the box is not a rep
    for k, rep in enumerate(res.reps):
        assert rep.t_contact_s == pytest.approx(ref.t_contact_s + k * n, abs=1e-6)
        for name in ("touchdown_speed_m_s", "landing_peak_force_bw", "time_to_stabilization_s", "lowering_duration_s"):
            assert rep.metrics[name] == pytest.approx(ref.metrics[name], rel=1e-4, abs=1e-6), (k, name)


def test_json_is_strict_and_has_provenance(base):
    import json

    plates, _ = base
    res = analyze_forces(plates, RATE, "step-down", provenance={"rig_hash": "abc", "lost_samples": 3,
                                                                  "crc_errors": 1, "saturated_samples": 2,
                                                                  "time_since_tare_s": 12.5})
    d = res.to_json_dict()
    json.dumps(d, allow_nan=False)
    p = d["provenance"]
    import steplab
    assert p["software_version"] == steplab.__version__
    assert p["protocol"] == "step-down" and p["protocol_version"]
    assert p["params"] == AnalysisParams().to_dict()
    assert p["rig_hash"] == "abc" and p["lost_samples"] == 3 and p["crc_errors"] == 1
    assert "saturated" in d["flags"] and "saturated" in p["flags"]
    assert set(d) >= {"protocol", "sample_rate_hz", "body_weight_n", "body_mass_kg", "reps", "provenance"}


def test_saturated_counts_are_counted_and_flagged_from_the_counts_themselves():
    from steplab.analysis_pipeline import analyze_counts
    from steplab.calibration.arrays import nominal_calibration
    from steplab.calibration.warmup import forces_to_counts
    from steplab.dsp.warmup import synthetic_step_down

    rig = default_rig()
    counts = forces_to_counts(synthetic_step_down(rate_hz=1000.0), rig)
    clean = analyze_counts(counts, 1000.0, nominal_calibration(rig), "step-down")
    assert "saturated" not in clean.flags and clean.provenance["saturated_samples"] == 0
    hit = counts.copy()
    hit[4000:4007, 5] = 2**23 - 1  # a floor cell at full scale for 7 samples
    hit[5000, 0] = -(2**23)
    res = analyze_counts(hit, 1000.0, nominal_calibration(rig), "step-down")
    assert res.provenance["saturated_samples"] == 8 and "saturated" in res.flags


# ------------------------------------------------------------------------ no usable weighing
def test_walking_c3d_without_quiet_stance_has_no_body_weight():
    from steplab.records.importers import load_forces

    t = load_forces(real_file("c3d_sample10", "TYPE-2.C3D"))
    res = analyze_forces(t.plates, t.rate_hz, "balance")
    assert "no_quiet_stance" in res.flags
    # never the mean of a window that is not stance (was −0.34 N): NaN inside, null in JSON
    assert math.isnan(res.body_weight_n) and math.isnan(res.body_mass_kg)
    d = res.to_json_dict()
    assert d["body_weight_n"] is None and d["body_mass_kg"] is None
    # the visit's body mass is the best available estimate when given
    given = analyze_forces(t.plates, t.rate_hz, "balance", body_mass_kg=40.0)
    assert given.body_weight_n == pytest.approx(40.0 * G_M_S2) and given.body_mass_kg == 40.0


def test_unloaded_trial_has_no_body_weight():
    zero = np.zeros(4000)
    plates = {r: PlateForces(zero + 0.3 * np.sin(np.arange(4000))) for r in ("box", "floor_left", "floor_right")}
    res = analyze_forces(plates, RATE, "step-down")
    assert "no_quiet_stance" in res.flags and math.isnan(res.body_weight_n)


# ------------------------------------------------------------- lazy segment filtering is exact
def test_filtered_segments_equal_the_whole_recording_filter():
    from scipy.signal import butter, sosfiltfilt

    from steplab.dsp.analysis import Trial
    from steplab.dsp.filters import design_lowpass
    from steplab.dsp.params import AnalysisParams

    rng = np.random.default_rng(3)
    n = 20_000
    x = np.cumsum(rng.normal(0, 5.0, n)) + 700.0
    params = AnalysisParams()
    trial = Trial(rate_hz=RATE, params=params, fz={"box": x}, mx={}, my={}, total=x, n=n)
    _, _, padlen = design_lowpass(4, 100.0, RATE)
    sos = butter(2, 100.0, fs=RATE, output="sos")
    whole = sosfiltfilt(sos, x, padtype="odd", padlen=padlen)  # the same edge convention (decision 0003)
    for lo, hi in ((0, 50), (5_000, 5_300), (19_900, 20_000), (7_000, 12_000)):
        seg = trial.filtered("total", lo, hi)[lo:hi]
        assert np.max(np.abs(seg - whole[lo:hi])) < 1e-9


@pytest.mark.parametrize("mass_kg", [68.0, 72.0, 75.0])
def test_step_down_segmentation_ignores_a_wrong_body_mass(mass_kg):
    truth = sim_truth("step-down", 30.0, 0)
    assert truth.body_mass_kg == pytest.approx(70.0)
    plates = plates_of(truth, STEP_ROLES)
    weighed = analyze_forces(plates, RATE, "step-down")
    given = analyze_forces(plates, RATE, "step-down", body_mass_kg=mass_kg)
    # one rep per simulated step down, at the true contact times, whatever the given mass (the
    # recording stops 0.2 s after a fourth contact: that rep is truncated in both)
    assert len(truth.events) == 3 and len(given.reps) == len(weighed.reps) == 4
    assert "truncated" in given.reps[3].flags and "truncated" in weighed.reps[3].flags
    for rep, ev in zip(given.reps, truth.events):
        assert rep.t_contact_s == pytest.approx(ev.t_contact_s, abs=2e-3)
        assert "bounce" not in rep.flags and "descent_not_arrested" not in rep.flags
    assert "body_mass_mismatch" in given.flags and "body_mass_mismatch" not in weighed.flags
    assert given.body_weight_n == pytest.approx(mass_kg * G) and given.body_mass_kg == mass_kg
    level = weighed.body_weight_n  # the measured quiet force: what the plates read in stance
    assert given.provenance["measured_quiet_force_n"] == pytest.approx(level, rel=1e-12)
    for rg, rw in zip(given.reps[:3], weighed.reps[:3]):
        # BW-normalised metrics use the given BW (metrics.md "use the visit's body mass"): same force, other BW
        assert rg.metrics["landing_peak_force_bw"] == pytest.approx(
            rw.metrics["landing_peak_force_bw"] * level / (mass_kg * G), rel=1e-9)
        # v = ∫ (F − measured level)/m: the given m scales the same integral
        assert rg.metrics["touchdown_speed_m_s"] == pytest.approx(
            rw.metrics["touchdown_speed_m_s"] * (level / G) / mass_kg, rel=1e-9)
        assert rg.t_onset_s == pytest.approx(rw.t_onset_s, abs=0.02)


def test_correct_body_mass_is_not_flagged():
    truth = sim_truth("step-down", 30.0, 0)
    res = analyze_forces(plates_of(truth, STEP_ROLES), RATE, "step-down", body_mass_kg=truth.body_mass_kg)
    assert "body_mass_mismatch" not in res.flags and len(res.reps) == 4


@pytest.mark.parametrize("mass_kg, true_kg, flagged", [
    (70.0 * 1.019, 70.0, False), (70.0 * 1.021, 70.0, True), (70.0 * 0.981, 70.0, False), (70.0 * 0.979, 70.0, True),
    # below 50 kg the 10 N floor rules: 30 kg reads 294.2 N, 2 % would be 5.9 N
    (30.0 + 9.5 / G, 30.0, False), (30.0 + 10.5 / G, 30.0, True),
])
def test_body_mass_mismatch_threshold(mass_kg, true_kg, flagged):
    # decision 0003: |m·g − measured quiet force| > max(2 % of m·g, 10 N)
    res = analyze_forces(synthetic_step_down(rate_hz=RATE, mass_kg=true_kg), RATE, "step-down", body_mass_kg=mass_kg)
    assert ("body_mass_mismatch" in res.flags) == flagged
    assert len(res.reps) == 1 and res.reps[0].metrics["landing_phase_duration_s"] is not None


@pytest.mark.parametrize("mass_kg", [60.0, 75.0])
def test_real_drop_jump_with_a_wrong_body_mass(mass_kg):
    plates = real_dual("DJ")  # one subject of 67.8 kg
    weighed = analyze_forces(plates, RATE, "drop-landing")
    given = analyze_forces(plates, RATE, "drop-landing", body_mass_kg=mass_kg)
    assert len(given.reps) == len(weighed.reps) == 2
    assert "body_mass_mismatch" in given.flags and "no_quiet_stance" not in given.flags
    level = weighed.body_weight_n
    for rg, rw in zip(given.reps, weighed.reps):
        assert rg.t_contact_s == rw.t_contact_s and rg.lead == rw.lead
        assert "no_quiet_stance" not in rg.flags
        for side in ("left", "right"):
            key = f"landing_peak_force_bw_{side}"
            assert rg.metrics[key] == pytest.approx(rw.metrics[key] * level / (mass_kg * G), rel=1e-9)
        assert rg.metrics["landing_phase_duration_s"] == pytest.approx(rw.metrics["landing_phase_duration_s"],
                                                                      abs=2e-3)


# ------------------------------------------------------------------ 6. no rep at all
def test_squat_without_movement_flags_no_reps():
    rng = np.random.default_rng(2)
    n = int(8 * RATE)
    plates = {"floor_left": PlateForces(350.0 + rng.normal(0, 1.0, n)),
              "floor_right": PlateForces(340.0 + rng.normal(0, 1.0, n))}
    res = analyze_forces(plates, RATE, "squat")
    assert res.reps == [] and "no_reps" in res.flags
    assert "no_reps" in res.to_json_dict()["provenance"]["flags"]


def test_drop_landing_without_a_landing_flags_no_reps():
    rng = np.random.default_rng(3)
    n = int(6 * RATE)
    plates = {"floor_left": PlateForces(340.0 + rng.normal(0, 1.0, n)),
              "floor_right": PlateForces(340.0 + rng.normal(0, 1.0, n))}
    res = analyze_forces(plates, RATE, "drop-landing")
    assert res.reps == [] and "no_reps" in res.flags


def test_a_trial_with_reps_has_no_no_reps_flag():
    res = analyze_forces(synthetic_step_down(rate_hz=RATE), RATE, "step-down")
    assert len(res.reps) == 1 and "no_reps" not in res.flags
