"""records.reps on SQLite and PostgreSQL: rep decisions (audited, never deleted), their effect on
summaries and exports, their carry-over into a re-analysis, trial scores and the review's traces."""

from __future__ import annotations

import os

import numpy as np
import pytest
from sqlalchemy import func, select

from steplab.benchmarks.bench_records import synthetic_trial
from steplab.dsp import AnalysisParams
from steplab.records.audit import entries
from steplab.records.db import open_database
from steplab.records.history import history_from_db, visit_summary_json
from steplab.records.importers import load_forces
from steplab.records.models import Rep, Trial
from steplab.records.patients import add_patient, add_visit
from steplab.records.reps import changed_parameters, rep_events, set_rep_accepted, trial_review
from steplab.records.trials import (
    TrialError,
    min_max_downsample,
    reanalyze,
    save_file,
    set_scores,
    trial_traces,
)

LEADS = ("left", "right", "left", "right")


@pytest.fixture
def db(db_url):
    d = open_database(db_url, auto_upgrade=True)
    yield d
    d.dispose()


@pytest.fixture
def saved(db, tmp_path):
    add_patient(db, "P1", involved="left")
    vid = add_visit(db, "P1", body_mass_kg=70.0)
    f = synthetic_trial(tmp_path / "sd.steplab", leads=LEADS, seed=3)
    return save_file(db, vid, f, "step-down", allow_new_rig=True), f


def _reps(db, trial_id):
    with db.read() as s:
        return trial_review(s, trial_id)["versions"][-1]["reps"]


def _n_reps(db) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Rep)))


def test_reject_a_rep_with_a_reason_is_audited_and_kept(db, saved):
    st, _ = saved
    assert st.reps == 4
    assert set_rep_accepted(db, st.trial_id, 2, False, "hand on the rail", actor="clin") == 1
    reps = _reps(db, st.trial_id)
    assert [r["accepted"] for r in reps] == [True, False, True, True]
    assert reps[1]["reject_reason"] == "hand on the rail" and reps[1]["number"] == 2
    assert _n_reps(db) == 4  # never deleted
    set_rep_accepted(db, st.trial_id, 2, True, actor="boss")
    reps = _reps(db, st.trial_id)
    assert all(r["accepted"] for r in reps) and reps[1]["reject_reason"] is None
    with db.read() as s:
        log = [(e.actor, e.action, e.subject, e.detail) for e in entries(s) if e.action.endswith("-rep")]
    assert log == [("clin", "reject-rep", f"trial {st.trial_id}", {"rep": 2, "version": 1, "reason": "hand on the rail"}),
                   ("boss", "accept-rep", f"trial {st.trial_id}", {"rep": 2, "version": 1, "reason": None})]


@pytest.mark.parametrize("rep, reason, words", [(0, "x", "reps 1-4, not 0"), (5, "x", "reps 1-4, not 5"),
                                                (2, "  ", "needs a reason"), (2, None, "needs a reason"),
                                                ("2", "x", "whole number")])
def test_bad_rep_decisions_are_refused_in_one_line_and_change_nothing(db, saved, rep, reason, words):
    st, _ = saved
    with pytest.raises(TrialError) as exc:
        set_rep_accepted(db, st.trial_id, rep, False, reason, actor="clin")
    assert words in str(exc.value) and "\n" not in str(exc.value)
    assert all(r["accepted"] for r in _reps(db, st.trial_id))
    with db.read() as s:
        assert not [e for e in entries(s) if e.action.endswith("-rep")]


def test_unknown_trial_is_refused(db, saved):
    with pytest.raises(TrialError, match="no trial 999"):
        set_rep_accepted(db, 999, 1, False, "x")


def test_a_rejected_rep_leaves_the_summary_and_the_export(db, saved):
    st, _ = saved
    with db.read() as s:
        before = visit_summary_json(s, st.visit_id)["protocols"]["step-down"]
    peak0 = before["metrics"]["landing_peak_force_bw"]
    assert peak0["left"]["n"] == 2 and peak0["right"]["n"] == 2
    set_rep_accepted(db, st.trial_id, 3, False, "stumbled", actor="clin")  # a left-lead rep
    reps = _reps(db, st.trial_id)
    with db.read() as s:
        after = visit_summary_json(s, st.visit_id)["protocols"]["step-down"]
        hist = history_from_db(s, "P1", with_raw=True)
    peak = after["metrics"]["landing_peak_force_bw"]
    assert after["reps"] == 3 and after["reps_rejected"] == 1
    assert peak["left"]["n"] == 1 and peak["right"]["n"] == 2
    kept = [r["metrics"]["landing_peak_force_bw"] for r in reps if r["lead"] == "left" and r["accepted"]]
    assert peak["left"]["mean"] == pytest.approx(np.mean(kept), rel=1e-12)
    et = hist.visits[0].trials[0]
    assert et.rep_accepted == [True, True, False, True]
    assert len(et.accepted_reps()) == 3


def test_reanalysis_keeps_the_rejection_on_the_same_movement(db, saved):
    st, _ = saved
    set_rep_accepted(db, st.trial_id, 2, False, "hand on the rail", actor="clin")
    v = reanalyze(db, st.trial_id, params=AnalysisParams(force_cutoff_hz=50.0), reason="noisy", actor="clin")
    assert v == 2
    with db.read() as s:
        review = trial_review(s, st.trial_id)
    v1, v2 = review["versions"]
    assert [r["accepted"] for r in v1["reps"]] == [True, False, True, True]  # the old version is kept as it was
    assert [r["accepted"] for r in v2["reps"]] == [True, False, True, True]
    assert v2["reps"][1]["reject_reason"] == "hand on the rail"
    assert v2["changed"] == {"force_cutoff_hz": [100.0, 50.0]} and v1["changed"] == {}
    assert v2["reason"] == "noisy" and v2["by"] == "clin" and v1["by"] == "recorded"
    with db.read() as s:
        e = [e for e in entries(s, "reanalyze")][-1]
    assert e.detail["rejected_reps_carried"] == [2]


def test_events_follow_the_metrics():
    ev = rep_events(1.0, 2.0, {"time_to_peak_s": 0.05, "landing_phase_duration_s": 0.2,
                               "time_to_stabilization_s": None})
    assert ev == {"onset": 1.0, "contact": 2.0, "peak": pytest.approx(2.05), "arrest": pytest.approx(2.2)}
    assert rep_events(None, None, {"time_to_peak_s": 0.1}) == {}
    assert changed_parameters({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {"b": [2, 3], "c": [None, 4]}


def test_scores_are_checked_and_audited(db, saved):
    st, _ = saved
    set_scores(db, st.trial_id, pain_during=3.5, quality_score=4, actor="clin")
    for bad in (dict(pain_during=11.0), dict(quality_score=7), dict(quality_score=2.5), dict()):
        with pytest.raises(TrialError):
            set_scores(db, st.trial_id, actor="clin", **bad)
    with db.read() as s:
        t = s.get(Trial, st.trial_id)
        assert (t.pain_during, t.quality_score) == (3.5, 4)
        log = [e.detail for e in entries(s, "scores")]
    assert log == [{"pain_during": [None, 3.5], "quality_score": [None, 4]}]


def test_traces_are_the_recording_downsampled_with_its_peaks(db, saved):
    st, f = saved
    tr = trial_traces(db, st.trial_id, max_points=3000)
    loaded = load_forces(f)
    total = sum(np.asarray(loaded.plates[r].fz_n) for r in ("box", "floor_left", "floor_right"))
    assert tr["n_samples"] == total.size and tr["rate_hz"] == 1000.0
    assert set(tr["fz_n"]) == {"box", "floor_left", "floor_right", "total"}
    assert 1000 < len(tr["t_s"]) <= 3002 and all(len(v) == len(tr["t_s"]) for v in tr["fz_n"].values())
    assert max(tr["fz_n"]["total"]) == pytest.approx(total.max(), abs=0.01)
    for role in ("floor_left", "floor_right"):
        assert max(tr["fz_n"][role]) == pytest.approx(np.max(loaded.plates[role].fz_n), abs=0.01)
    idx = np.rint(np.asarray(tr["t_s"]) * 1000.0).astype(int)
    assert np.allclose(tr["fz_n"]["box"], np.asarray(loaded.plates["box"].fz_n)[idx], atol=0.01)
    with pytest.raises(TrialError, match="no trial"):
        trial_traces(db, 999)


def test_min_max_downsample_keeps_every_extreme():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 100_000))
    x[0, 12_345] = 50.0
    x[1, 67_890] = -50.0
    idx = min_max_downsample(x, 2000)
    assert idx.size <= 2002 and np.all(np.diff(idx) > 0)
    assert 12_345 in idx and 67_890 in idx and idx[0] == 0 and idx[-1] == 99_999
    assert np.array_equal(min_max_downsample(x[:, :100], 2000), np.arange(100))


def test_reject_rep_and_accept_rep_commands(tmp_path):
    from helpers import one_line_error, run_steplab

    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    db = open_database(url, auto_upgrade=True)
    try:
        add_patient(db, "P1", involved="left")
        vid = add_visit(db, "P1", body_mass_kg=70.0)
        st = save_file(db, vid, synthetic_trial(tmp_path / "sd.steplab", leads=LEADS, seed=3), "step-down",
                       allow_new_rig=True)
    finally:
        db.dispose()
    tid = str(st.trial_id)
    r = run_steplab("trial", "reject-rep", tid, "2", "--reason", "hand on the rail", "--db", url)
    assert r.returncode == 0 and r.stdout.strip() == f"trial {tid}: rep 2 of result version 1 rejected", r.stderr
    assert "reps 1-4, not 7" in one_line_error(run_steplab("trial", "reject-rep", tid, "7", "--reason", "x", "--db", url))
    assert "whole number" in one_line_error(run_steplab("trial", "accept-rep", tid, "two", "--db", url))
    db = open_database(url)
    try:
        assert [r["accepted"] for r in _reps(db, st.trial_id)] == [True, False, True, True]
        r = run_steplab("trial", "accept-rep", tid, "2", "--db", url, env={**os.environ,
                                                                           "STEPLAB_USER": "reviewer"})
        assert r.returncode == 0, r.stderr
        assert all(x["accepted"] for x in _reps(db, st.trial_id))
        with db.read() as s:
            assert [(e.action, e.actor) for e in entries(s) if e.action.endswith("-rep")][-1] == ("accept-rep", "reviewer")
    finally:
        db.dispose()
