"""Visit summary and progress against hand-computed NumPy values (metrics.md § Symmetry, § Change across visits)."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest

from steplab.acquisition.rig import default_rig
from steplab.acquisition.trial_file import Trial
from steplab.records.export_model import ExportPatientHistory, ExportSubject, ExportTrial, ExportVisit
from steplab.records.summary import progress, visit_summary


def _tiny_trial() -> Trial:
    rig = default_rig()
    return Trial(np.zeros((2, rig.channels), dtype=np.int32), np.arange(2, dtype=np.int64), 1000.0, rig, {})


def _rep(lead: str, peak: float, lowering: float, flags=()) -> dict:
    return {"lead": lead, "t_onset_s": 1.0, "t_contact_s": 2.0, "flags": list(flags),
            "metrics": {"landing_peak_force_bw": peak, "lowering_duration_s": lowering, "integration_drift_m_s": 0.001,
                        "time_to_peak_s": None}}


def _trial(tid: str, reps: list[dict], **kw) -> ExportTrial:
    return ExportTrial(trial_id=tid, protocol="step-down", trial=_tiny_trial(),
                       analysis={"protocol": "step-down", "reps": reps}, **kw)


# visit 1: left lead peaks (involved limb landing), right lead peaks; lowering belongs to the trail limb
V1_LEFT_PEAK = [1.62, 1.58, 1.65, 1.60]
V1_RIGHT_PEAK = [1.40, 1.43, 1.38]
V1_LEFT_LEAD_LOWERING = [0.95, 0.90, 0.97, 0.93]   # trail = right
V1_RIGHT_LEAD_LOWERING = [0.70, 0.74, 0.69]        # trail = left
V2_LEFT_PEAK = [1.31, 1.29, 1.33]
V2_RIGHT_PEAK = [1.41, 1.39, 1.42]


def visit1() -> ExportVisit:
    good = [_rep("left", p, lw) for p, lw in zip(V1_LEFT_PEAK, V1_LEFT_LEAD_LOWERING, strict=True)]
    good += [_rep("right", p, lw) for p, lw in zip(V1_RIGHT_PEAK, V1_RIGHT_LEAD_LOWERING, strict=True)]
    # trial A holds the first 4 reps plus a rep rejected by the clinician; trial B the rest plus a saturated rep
    a = _trial("A", good[:4] + [_rep("left", 9.0, 9.0)], rep_accepted=[True] * 4 + [False], pain_during=3, quality_score=4)
    b = _trial("B", good[4:] + [_rep("right", 9.0, 9.0, flags=("saturated",))], pain_during=5, quality_score=2)
    rejected = _trial("C", [_rep("left", 7.0, 7.0), _rep("right", 7.0, 7.0)], accepted=False, reject_reason="lost balance")
    return ExportVisit("v1", [a, b, rejected], date=dt.date(2026, 3, 2), day_offset=0, body_mass_kg=71.0,
                       pain_before=2, pain_after=4, pain_next_morning=3)


def visit2() -> ExportVisit:
    reps = [_rep("left", p, 0.9) for p in V2_LEFT_PEAK] + [_rep("right", p, 0.8) for p in V2_RIGHT_PEAK]
    return ExportVisit("v2", [_trial("D", reps, pain_during=1)], date=dt.date(2026, 4, 13), day_offset=42,
                       pain_before=1, pain_after=None, pain_next_morning=0)


def _stats(values):
    v = np.asarray(values, dtype=float)
    sd = float(np.std(v, ddof=1))
    return float(v.mean()), sd, sd / abs(v.mean()) * 100.0, 1.96 * math.sqrt(2.0) * sd / math.sqrt(v.size)


def test_visit_summary_per_limb_statistics_and_indices():
    s = visit_summary(visit1(), "left")
    json.dumps(s, allow_nan=False)
    sd = s["protocols"]["step-down"]
    assert sd["trials"] == 2 and sd["trials_rejected"] == 1
    assert sd["reps"] == 8 and sd["reps_rejected"] == 1 + 2   # the clinician's reject + the rejected trial's two
    assert sd["quality_score_mean"] == pytest.approx(3.0)
    peak = sd["metrics"]["landing_peak_force_bw"]
    lm, lsd, lcv, lmdc = _stats(V1_LEFT_PEAK)
    rm, rsd, rcv, rmdc = _stats(V1_RIGHT_PEAK)  # the saturated rep is left out
    assert peak["left"]["n"] == 4 and peak["right"]["n"] == 3
    assert peak["left"]["mean"] == pytest.approx(lm) and peak["right"]["mean"] == pytest.approx(rm)
    assert peak["left"]["sd"] == pytest.approx(lsd) and peak["right"]["sd"] == pytest.approx(rsd)
    assert peak["left"]["cv_pct"] == pytest.approx(lcv) and peak["right"]["cv_pct"] == pytest.approx(rcv)
    assert peak["left"]["mdc95"] == pytest.approx(lmdc) and peak["right"]["mdc95"] == pytest.approx(rmdc)
    assert peak["lsi_pct"] == pytest.approx(lm / rm * 100.0)                       # involved (left) / uninvolved
    assert peak["symmetry_index_pct"] == pytest.approx((rm - lm) / (0.5 * (rm + lm)) * 100.0)
    assert peak["symmetry_angle_pct"] == pytest.approx((45.0 - math.degrees(math.atan(lm / rm))) / 90.0 * 100.0)
    assert peak["worse_limb"] == "left" and peak["better"] == "lower"             # the higher landing peak is worse
    assert "lsi_above_band" in peak["flags"] and peak["unit"] == "×BW"
    # lowering metrics belong to the trail limb: a left-lead rep's lowering is the right limb's
    low = sd["metrics"]["lowering_duration_s"]
    assert low["left"]["mean"] == pytest.approx(np.mean(V1_RIGHT_LEAD_LOWERING))
    assert low["right"]["mean"] == pytest.approx(np.mean(V1_LEFT_LEAD_LOWERING))
    assert low["worse_limb"] == "left" and "lsi_below_band" in low["flags"]      # shorter (faster) lowering is worse
    assert "integration_drift_m_s" not in sd["metrics"]                           # not a limb property
    assert s["pain"] == {"before": 2, "after": 4, "next_morning": 3, "during": [3.0, 5.0], "during_max": 5.0,
                         "during_mean": 4.0}


def test_without_an_involved_limb_lsi_is_left_over_right():
    s = visit_summary(visit1(), None)
    peak = s["protocols"]["step-down"]["metrics"]["landing_peak_force_bw"]
    assert peak["lsi_pct"] == pytest.approx(np.mean(V1_LEFT_PEAK) / np.mean(V1_RIGHT_PEAK) * 100.0)
    s_right = visit_summary(visit1(), "right")
    assert s_right["protocols"]["step-down"]["metrics"]["landing_peak_force_bw"]["lsi_pct"] == pytest.approx(
        np.mean(V1_RIGHT_PEAK) / np.mean(V1_LEFT_PEAK) * 100.0)


def test_progress_judges_changes_against_the_mdc():
    h = ExportPatientHistory(ExportSubject.pseudonymised("PT-1", involved="left"), [visit1(), visit2()])
    p = progress(h)
    json.dumps(p, allow_nan=False)
    assert [v["day"] for v in p["visits"]] == [0.0, 42.0]
    assert [v["label"] for v in p["visits"]] == ["day 0", "day 42"]  # pseudonymised: no dates
    peak = p["protocols"]["step-down"]["landing_peak_force_bw"]
    assert [pt["visit_id"] for pt in peak["series"]] == ["v1", "v2"]
    for limb, (b, a) in {"left": (V1_LEFT_PEAK, V2_LEFT_PEAK), "right": (V1_RIGHT_PEAK, V2_RIGHT_PEAK)}.items():
        b_arr, a_arr = np.asarray(b), np.asarray(a)
        ss = ((b_arr - b_arr.mean()) ** 2).sum() + ((a_arr - a_arr.mean()) ** 2).sum()
        te = math.sqrt(ss / (b_arr.size - 1 + a_arr.size - 1))
        mdc = 1.96 * te * math.sqrt(1 / b_arr.size + 1 / a_arr.size)
        ch = peak["changes"][0][limb]
        assert ch["change"] == pytest.approx(a_arr.mean() - b_arr.mean())
        assert ch["typical_error"] == pytest.approx(te) and ch["mdc95"] == pytest.approx(mdc)
        assert ch["exceeds_mdc"] == (abs(a_arr.mean() - b_arr.mean()) > mdc)
        # each visit's band is its mean ± its own MDC95
        m, _, _, own_mdc = _stats(a)
        pt = peak["series"][1][limb]
        assert pt["band_low"] == pytest.approx(m - own_mdc) and pt["band_high"] == pytest.approx(m + own_mdc)
    assert peak["changes"][0]["left"]["verdict"] == "improved"       # landing peak fell by far more than the MDC
    assert peak["changes"][0]["right"]["verdict"] == "within_noise"
    assert peak["from_baseline"] == peak["changes"]                   # two visits: the baseline is the previous one
    lsi = [pt["lsi_pct"] for pt in peak["series"]]
    assert lsi[0] == pytest.approx(np.mean(V1_LEFT_PEAK) / np.mean(V1_RIGHT_PEAK) * 100)
    assert lsi[1] == pytest.approx(np.mean(V2_LEFT_PEAK) / np.mean(V2_RIGHT_PEAK) * 100)
    assert p["pain"] == [
        {"visit_id": "v1", "day": 0.0, "before": 2, "after": 4, "next_morning": 3, "during_max": 5.0, "during_mean": 4.0},
        {"visit_id": "v2", "day": 42.0, "before": 1, "after": None, "next_morning": 0, "during_max": 1.0,
         "during_mean": 1.0}]
    # up to the first visit only: one point, no change
    first = progress(h, until_visit_id="v1")["protocols"]["step-down"]["landing_peak_force_bw"]
    assert len(first["series"]) == 1 and first["changes"] == []


def test_a_visit_without_accepted_reps_has_no_metrics():
    v = ExportVisit("v0", [_trial("X", [_rep("left", 1.0, 1.0)], accepted=False)])
    s = visit_summary(v, "left")
    assert s["protocols"]["step-down"]["metrics"] == {} and s["protocols"]["step-down"]["reps"] == 0
    json.dumps(s, allow_nan=False)


def test_squat_weight_bearing_share_is_reported_per_visit():
    reps = [{"lead": None, "t_onset_s": 1.0, "t_contact_s": None, "flags": [], "metrics": {"left_share_pct": v}}
            for v in (48.0, 51.0, 50.5)]
    t = ExportTrial(trial_id="S", protocol="squat", trial=_tiny_trial(), analysis={"protocol": "squat", "reps": reps})
    s = visit_summary(ExportVisit("v", [t]), None)["protocols"]["squat"]
    assert s["metrics"] == {}
    wb = s["whole_body"]["left_share_pct"]
    assert wb["n"] == 3 and wb["mean"] == pytest.approx(np.mean([48.0, 51.0, 50.5]))
    assert wb["sd"] == pytest.approx(np.std([48.0, 51.0, 50.5], ddof=1))
