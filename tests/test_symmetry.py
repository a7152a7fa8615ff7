"""Visit-level symmetry, typical error and MDC: against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import real_dual

from steplab.dsp import analyze_forces
from steplab.dsp.results import RepResult
from steplab.dsp.symmetry import (
    BETTER_DIRECTION,
    change_exceeds_mdc,
    compare_visits,
    live_left_share_pct,
    lsi_pct,
    mdc95,
    metric_limb,
    symmetry_angle_pct,
    symmetry_index_pct,
    typical_error,
    visit_symmetry,
)


def test_scalar_indices_hand_values():
    # Robinson: (110 - 90) / (0.5 * 200) * 100 = 20
    assert symmetry_index_pct(90.0, 110.0) == pytest.approx(20.0)
    assert symmetry_index_pct(110.0, 90.0) == pytest.approx(-20.0)
    assert symmetry_index_pct(5.0, 5.0) == 0.0
    # Zifchock: L/R = 1/sqrt(3) -> arctan = 30 deg -> (45 - 30) / 90 * 100 = 16.666...
    assert symmetry_angle_pct(1.0, math.sqrt(3.0)) == pytest.approx(100.0 / 6.0)
    assert symmetry_angle_pct(2.0, 2.0) == pytest.approx(0.0)
    assert symmetry_angle_pct(1.0, 0.0) == pytest.approx(-50.0)  # arctan -> 90 deg
    assert lsi_pct(80.0, 100.0) == pytest.approx(80.0)
    for f in (lsi_pct, symmetry_index_pct, symmetry_angle_pct):
        assert f(None, 1.0) is None
        assert f(float("nan"), 1.0) is None
    assert lsi_pct(1.0, 0.0) is None
    assert symmetry_index_pct(-1.0, 1.0) is None
    assert symmetry_angle_pct(0.0, 0.0) is None


def test_typical_error_and_mdc_hand_values():
    # visit 1: [1, 2, 3] mean 2, SS 2; visit 2: [2, 4] mean 3, SS 2; dof 3 -> sqrt(4/3)
    assert typical_error([[1.0, 2.0, 3.0], [2.0, 4.0]]) == pytest.approx(math.sqrt(4.0 / 3.0))
    assert typical_error([[1.0], [5.0]]) is None
    assert typical_error([[1.0, None, float("nan"), 3.0]]) == pytest.approx(math.sqrt(2.0))
    # 1.96 * sqrt(2) * 2 / sqrt(4)
    assert mdc95(2.0, 4) == pytest.approx(1.96 * math.sqrt(2.0))
    assert mdc95(None, 3) is None
    with pytest.raises(ValueError, match="n_reps"):
        mdc95(1.0, 0)
    with pytest.raises(ValueError, match="typical error"):
        mdc95(-1.0, 2)


def test_metric_limb_assignment():
    assert metric_limb("step-down", "landing_peak_force_bw", "left") == "left"
    assert metric_limb("step-down", "lowering_duration_s", "left") == "right"
    assert metric_limb("step-down", "trail_support_at_contact_pct", "right") == "left"
    assert metric_limb("drop-landing", "time_to_peak_s_right", None) == "right"
    assert metric_limb("balance", "cop_path_mm", "right") == "right"
    assert metric_limb("forward-step-down", "tap_force_pct_bw", "left") == "right"
    assert metric_limb("step-down", "integration_drift_m_s", "left") is None
    assert metric_limb("step-down", "landing_peak_force_bw", None) is None


def _step_down_visit(landing_left, landing_right, lowering_after_left_lead, lowering_after_right_lead):
    reps = []
    for lp, lo in zip(landing_left, lowering_after_left_lead):
        reps.append(RepResult("left", 1.0, 2.0, {"landing_peak_force_bw": lp, "lowering_duration_s": lo,
                                                 "integration_drift_m_s": 0.01}, []))
    for lp, lo in zip(landing_right, lowering_after_right_lead):
        reps.append(RepResult("right", 1.0, 2.0, {"landing_peak_force_bw": lp, "lowering_duration_s": lo,
                                                  "touchdown_speed_m_s": None}, []))
    return reps


def test_visit_symmetry_hand_values():
    reps = _step_down_visit([1.2, 1.4], [1.5, 1.7], [1.0, 1.2], [0.8, 0.6])
    # a saturated rep is excluded by default
    reps.append(RepResult("left", 1.0, 2.0, {"landing_peak_force_bw": 9.0}, ["saturated"]))
    s = visit_symmetry(reps, "step-down")
    assert set(s) == {"landing_peak_force_bw", "lowering_duration_s"}
    land = s["landing_peak_force_bw"]
    assert land.left.n == 2 and land.right.n == 2
    assert land.left.mean == pytest.approx(1.3)
    assert land.right.mean == pytest.approx(1.6)
    assert land.left.sd == pytest.approx(math.sqrt(0.02))
    assert land.left.cv_pct == pytest.approx(math.sqrt(0.02) / 1.3 * 100.0)
    assert land.left.mdc95 == pytest.approx(1.96 * math.sqrt(2.0) * math.sqrt(0.02) / math.sqrt(2.0))
    assert land.lsi_pct == pytest.approx(1.3 / 1.6 * 100.0)
    assert land.symmetry_index_pct == pytest.approx((1.6 - 1.3) / 1.45 * 100.0)
    assert land.symmetry_angle_pct == pytest.approx((45.0 - math.degrees(math.atan(1.3 / 1.6))) / 90.0 * 100.0)
    assert land.better == "lower" and land.worse_limb == "right"
    assert land.flags == ["lsi_below_band"]
    low = s["lowering_duration_s"]
    # lowering belongs to the trail limb: left-lead reps give the right limb's values
    assert low.right.mean == pytest.approx(1.1) and low.left.mean == pytest.approx(0.7)
    assert low.better == "higher" and low.worse_limb == "left"
    # with an involved right limb the LSI is right / left
    s2 = visit_symmetry(reps, "step-down", involved="right", lsi_low_pct=80.0, lsi_high_pct=120.0)
    assert s2["landing_peak_force_bw"].lsi_pct == pytest.approx(1.6 / 1.3 * 100.0)
    assert s2["landing_peak_force_bw"].flags == ["lsi_above_band"]
    # a wide band raises no flag
    s3 = visit_symmetry(reps, "step-down", lsi_low_pct=50.0, lsi_high_pct=150.0)
    assert s3["landing_peak_force_bw"].flags == []


def test_visit_symmetry_drop_landing_suffixes_and_bad_args():
    reps = [RepResult(None, None, 1.0, {"landing_peak_force_bw_left": 2.0, "landing_peak_force_bw_right": 2.5,
                                        "landing_peak_force_bw_symmetry_index_pct": 22.2}, []),
            RepResult(None, None, 3.0, {"landing_peak_force_bw_left": 2.2, "landing_peak_force_bw_right": 2.5}, [])]
    s = visit_symmetry(reps, "drop-landing")
    assert set(s) == {"landing_peak_force_bw"}
    assert s["landing_peak_force_bw"].left.mean == pytest.approx(2.1)
    assert s["landing_peak_force_bw"].right.sd == pytest.approx(0.0)
    assert s["landing_peak_force_bw"].lsi_pct == pytest.approx(2.1 / 2.5 * 100.0)
    with pytest.raises(ValueError, match="involved"):
        visit_symmetry(reps, "drop-landing", involved="both")
    with pytest.raises(ValueError, match="LSI band"):
        visit_symmetry(reps, "drop-landing", lsi_low_pct=110.0, lsi_high_pct=90.0)


def test_compare_visits_against_mdc():
    before = visit_symmetry(_step_down_visit([1.2, 1.4], [1.5, 1.7], [1.0, 1.2], [0.8, 0.6]), "step-down")
    small = visit_symmetry(_step_down_visit([1.0, 1.2], [1.5, 1.7], [1.0, 1.2], [0.8, 0.6]), "step-down")
    big = visit_symmetry(_step_down_visit([0.6, 0.8], [2.1, 2.3], [1.0, 1.2], [0.8, 0.6]), "step-down")
    c = compare_visits(before, small)["landing_peak_force_bw"]["left"]
    # pooled TE = sqrt((0.02 + 0.02) / 2); MDC = 1.96 * TE * sqrt(1/2 + 1/2)
    assert c.change == pytest.approx(-0.2)
    assert c.typical_error == pytest.approx(math.sqrt(0.02))
    assert c.mdc95 == pytest.approx(1.96 * math.sqrt(0.02))
    assert c.exceeds_mdc is False and c.verdict == "within_noise"
    cb = compare_visits(before, big)["landing_peak_force_bw"]
    assert cb["left"].exceeds_mdc is True and cb["left"].verdict == "improved"   # lower peak force
    assert cb["right"].verdict == "worsened"
    # a given TE overrides the pooled one
    ct = compare_visits(before, small, typical_errors={("landing_peak_force_bw", "left"): 0.05})
    assert ct["landing_peak_force_bw"]["left"].verdict == "improved"
    assert change_exceeds_mdc([1.0], [2.0]) == (1.0, None, None, None)


def test_directions_declared_and_live_share():
    for name in ("landing_peak_force_bw", "lowering_duration_s", "tap_force_pct_bw", "cop_ellipse95_mm2"):
        assert BETTER_DIRECTION[name] in ("higher", "lower")
    assert live_left_share_pct(300.0, 100.0) == pytest.approx(75.0)
    assert live_left_share_pct(5.0, 5.0) is None


RATE = 1000.0


# ------------------------------------------------------------------ 4. whole-body metrics in symmetry
def test_bilateral_landings_do_not_give_whole_body_metrics_to_a_limb():
    reps = []
    for name in ("CMJ", "SJ"):
        reps.extend(analyze_forces(real_dual(name), RATE, "drop-landing").reps)
    assert [r.lead for r in reps] == ["left", "right"]  # first foot down differs between the trials
    s = visit_symmetry(reps, "drop-landing")
    for whole_body in ("peak_deceleration_m_s2", "time_to_stabilization_s", "landing_phase_duration_s"):
        assert whole_body not in s
    # the per-plate metrics are the limb metrics: one value per limb per landing
    for name in ("landing_peak_force_bw", "time_to_peak_s", "impulse_100ms_bw_s"):
        assert s[name].left.n == 2 and s[name].right.n == 2
        left = [r.metrics[f"{name}_left"] for r in reps]
        right = [r.metrics[f"{name}_right"] for r in reps]
        assert s[name].lsi_pct == pytest.approx(np.mean(left) / np.mean(right) * 100.0, rel=1e-12)


def test_single_limb_landings_keep_whole_body_metrics_on_the_landing_limb():
    assert metric_limb("drop-landing", "peak_deceleration_m_s2", "left", bilateral=True) is None
    assert metric_limb("drop-landing", "peak_deceleration_m_s2", "left") == "left"
    reps = [type("R", (), {"lead": "left", "flags": [], "metrics": {
                "landing_peak_force_bw_left": 3.0, "landing_peak_force_bw_right": None,
                "peak_deceleration_m_s2": 20.0}})(),
            type("R", (), {"lead": "right", "flags": [], "metrics": {
                "landing_peak_force_bw_left": None, "landing_peak_force_bw_right": 2.0,
                "peak_deceleration_m_s2": 30.0}})()]
    s = visit_symmetry(reps, "drop-landing")
    assert s["peak_deceleration_m_s2"].lsi_pct == pytest.approx(20.0 / 30.0 * 100.0)
    assert s["landing_peak_force_bw"].lsi_pct == pytest.approx(150.0)
