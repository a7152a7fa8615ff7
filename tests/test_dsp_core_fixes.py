"""Core behaviours defined while fixing the known bugs (decision 0003): no-weighing body weight,
lead override against the data, per-plate contact under idle-plate offset and noise, and the
drop-landing flight rule (one rep per landing, bounces are not landings)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from steplab.benchmarks import reference_analysis as ref
from steplab.dsp import PlateForces, analyze_forces
from steplab.dsp.kinematics import G_M_S2
from steplab.dsp.metrics_landing import MIN_FLIGHT_S

RATE_HZ = 1000.0
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


# ------------------------------------------------------------------------ no usable weighing
def test_walking_c3d_without_quiet_stance_has_no_body_weight():
    from steplab.records.importers import load_forces

    t = load_forces(REAL / "c3d_sample10" / "TYPE-2.C3D")
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
    res = analyze_forces(plates, RATE_HZ, "step-down")
    assert "no_quiet_stance" in res.flags and math.isnan(res.body_weight_n)


# ----------------------------------------------------------------------------- lead override
def test_lead_override_against_the_data_is_flagged_not_measured():
    s = ref.SyntheticStepDown(leads=("left",))
    plates = s.sample(RATE_HZ, 0.5, 1)
    right = analyze_forces(plates, RATE_HZ, "step-down", lead="right")
    rep = right.reps[0]
    # the right plate is struck by the trail foot 0.5 s after the left landed: not a lead landing
    assert rep.lead == "right" and "lead_override_contradicted" in rep.flags
    assert all(v is None for v in rep.metrics.values())
    assert rep.t_contact_s > s.starts_s[0] + s.touch_s + 0.1
    left = analyze_forces(plates, RATE_HZ, "step-down", lead="left").reps[0]
    auto = analyze_forces(plates, RATE_HZ, "step-down").reps[0]
    assert auto.lead == "left" and left.flags == [] and left.t_contact_s == auto.t_contact_s
    assert left.metrics == auto.metrics
    assert s.starts_s[0] + s.touch_s < left.t_contact_s < s.starts_s[0] + s.touch_s + 0.03  # 20 N after touch
    assert left.metrics["time_to_peak_s"] > 0.03


def test_lead_override_on_a_plate_never_contacted():
    s = ref.SyntheticStepDown(leads=("left",))
    plates = dict(s.sample(RATE_HZ))
    n = len(plates["floor_right"].fz_n)
    plates["floor_left"] = PlateForces(plates["floor_left"].fz_n + plates["floor_right"].fz_n,
                                       plates["floor_left"].mx_nm, plates["floor_left"].my_nm)
    plates["floor_right"] = PlateForces(np.zeros(n), np.zeros(n), np.zeros(n))
    rep = analyze_forces(plates, RATE_HZ, "step-down", lead="right").reps[0]
    assert rep.flags == ["lead_plate_not_contacted"] and rep.t_contact_s is None
    assert all(v is None for v in rep.metrics.values())


# ------------------------------------------------------- per-plate contact, idle plate offsets
@pytest.mark.parametrize("offset_n, noise_n", [(-1.0, 0.0), (-1.0, 0.5), (-3.0, 0.5), (0.0, 2.0)])
def test_forward_step_down_tap_found_on_its_own_plate(offset_n, noise_n):
    s = ref.SyntheticForwardStepDown(taps=("left", "right"))
    plates = dict(s.sample(RATE_HZ, noise_n, 5))
    clean = [r.t_contact_s for r in analyze_forces(s.sample(RATE_HZ), RATE_HZ, "forward-step-down").reps]
    for role in ("floor_left", "floor_right"):
        p = plates[role]
        plates[role] = PlateForces(p.fz_n + offset_n, p.mx_nm, p.my_nm)
    res = analyze_forces(plates, RATE_HZ, "forward-step-down")
    other = ref.analyze_forces(plates, RATE_HZ, "forward-step-down")  # independent per-plate contacts
    assert [r.lead for r in res.reps] == [r.lead for r in other.reps] == ["left", "right"]
    for rep, rb, t in zip(res.reps, other.reps, clean):
        assert "no_contact" not in rep.flags
        assert rep.t_contact_s == pytest.approx(rb.t_contact_s, abs=1e-3)
        # an offset of a few N moves the 20 N crossing of the tap's rise by a few ms, never more
        assert rep.t_contact_s == pytest.approx(t, abs=8e-3)


# ------------------------------------------------------------------ drop landing flight rule
def _with_airborne_gap(gap_s: float):
    s = ref.SyntheticDropLanding()
    plates = dict(s.sample(RATE_HZ))
    total = sum(p.fz_n for r, p in plates.items() if r != "box")
    contact = int(np.flatnonzero(total >= 20.0)[0])
    i = contact + 150
    k = int(round(gap_s * RATE_HZ))
    for r in ("floor_left", "floor_right"):
        fz = plates[r].fz_n.copy()
        fz[i:i + k] = 0.0
        plates[r] = PlateForces(fz, plates[r].mx_nm, plates[r].my_nm)
    return plates, (i + k) / RATE_HZ


@pytest.mark.parametrize("gap_s", [0.010, 0.040, MIN_FLIGHT_S - 0.002])
def test_drop_landing_bounce_without_flight_is_the_same_landing(gap_s):
    plates, _ = _with_airborne_gap(gap_s)
    res = analyze_forces(plates, RATE_HZ, "drop-landing")
    assert len(res.reps) == 1 and "bounce" in res.reps[0].flags


@pytest.mark.parametrize("gap_s", [MIN_FLIGHT_S + 0.002, 0.3])
def test_drop_landing_after_a_flight_is_a_new_rep(gap_s):
    plates, t_second = _with_airborne_gap(gap_s)
    res = analyze_forces(plates, RATE_HZ, "drop-landing")
    assert len(res.reps) == 2
    assert res.reps[1].t_contact_s == pytest.approx(t_second, abs=1.5e-3)
    assert "bounce" not in res.reps[0].flags


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
    trial = Trial(rate_hz=RATE_HZ, params=params, fz={"box": x}, mx={}, my={}, total=x, n=n)
    _, _, padlen = design_lowpass(4, 100.0, RATE_HZ)
    sos = butter(2, 100.0, fs=RATE_HZ, output="sos")
    whole = sosfiltfilt(sos, x, padtype="odd", padlen=padlen)  # the same edge convention (decision 0003)
    for lo, hi in ((0, 50), (5_000, 5_300), (19_900, 20_000), (7_000, 12_000)):
        seg = trial.filtered("total", lo, hi)[lo:hi]
        assert np.max(np.abs(seg - whole[lo:hi])) < 1e-9
