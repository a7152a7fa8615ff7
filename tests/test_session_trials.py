"""records.session_trials on SQLite and PostgreSQL: a live recording saved into its visit with its audit entry
(all or nothing), the weigh-in stored in the visit, the trial scores, the visit's trial list."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from steplab.benchmarks.bench_records import synthetic_trial
from steplab.records.audit import entries
from steplab.records.db import open_database
from steplab.records.models import Rep, Result, Trial
from steplab.records.patients import RecordsError, add_patient, add_visit
from steplab.records.session_trials import (
    patient_codes,
    save_live_trial,
    set_visit_body_mass,
    visit_brief,
    visit_trials,
)
from steplab.records.trials import set_accepted, set_scores


@pytest.fixture
def db(db_url):
    d = open_database(db_url, auto_upgrade=True)
    yield d
    d.dispose()


@pytest.fixture
def trial_file(tmp_path) -> Path:
    return synthetic_trial(tmp_path / "sd.steplab", leads=("left", "right"), seed=3)


def test_a_live_trial_is_saved_into_its_visit_with_the_weighed_mass_and_an_audit_entry(db, trial_file):
    add_patient(db, "B-2")
    add_patient(db, "A-1")
    assert patient_codes(db) == ["A-1", "B-2"]
    vid = add_visit(db, "A-1", battery=["step-down", "squat"])
    assert visit_brief(db, vid) == {"id": vid, "patient": "A-1", "date": visit_brief(db, vid)["date"],
                                    "body_mass_kg": None, "battery": ["step-down", "squat"]}
    set_visit_body_mass(db, vid, 71.234, actor="clin")
    assert visit_brief(db, vid)["body_mass_kg"] == 71.23
    saved = save_live_trial(db, vid, trial_file, "step-down", lead="left", actor="clin")
    assert saved.visit_id == vid and saved.reps >= 1
    with db.read() as s:
        res = s.scalars(select(Result).where(Result.trial_id == saved.trial_id)).one()
        assert res.body_mass_kg == 71.23  # the visit's weigh-in, not a re-weighing
        n_reps = s.scalar(select(func.count(Rep.id)).where(Rep.result_id == res.id))
        audit = [(e.action, e.actor, e.subject, e.detail) for e in entries(s)]
    assert ("visit-body-mass", "clin", f"visit {vid}", {"body_mass_kg": 71.23, "previous_kg": None}) in audit
    recorded = [a for a in audit if a[0] == "trial-recorded"]
    assert len(recorded) == 1 and recorded[0][1] == "clin" and recorded[0][3]["file"] == "sd.steplab"
    rows = visit_trials(db, vid)
    assert [(r["id"], r["protocol"], r["lead"], r["reps"]) for r in rows] == [(saved.trial_id, "step-down", "left",
                                                                             n_reps)]
    assert rows[0]["accepted"] and rows[0]["pain_during"] is None and rows[0]["lost_samples"] == 0
    set_accepted(db, saved.trial_id, False, "subject lost balance", actor="clin")
    assert visit_trials(db, vid)[0]["accepted"] is False


def test_a_failed_save_leaves_nothing_behind(db, tmp_path):
    add_patient(db, "A-1")
    vid = add_visit(db, "A-1")
    bad = tmp_path / "broken.steplab"
    bad.write_bytes(b"not a trial")
    with pytest.raises(ValueError):
        save_live_trial(db, vid, bad, "step-down", lead="left", actor="clin")
    with pytest.raises(RecordsError, match="there is no visit 999"):
        save_live_trial(db, 999, tmp_path / "x.steplab", "step-down", lead=None, actor="clin")
    with pytest.raises(RecordsError, match="unknown protocol"):
        save_live_trial(db, vid, bad, "hop", lead=None, actor="clin")
    with pytest.raises(RecordsError, match="lead"):
        save_live_trial(db, vid, bad, "step-down", lead="both", actor="clin")
    with db.read() as s:
        assert s.scalar(select(func.count(Trial.id))) == 0
        assert [e.action for e in entries(s)] == []  # no audit entry for a trial that was not saved
    assert visit_trials(db, vid) == []


def test_scores_and_body_mass_are_checked_and_audited(db, trial_file):
    add_patient(db, "A-1")
    vid = add_visit(db, "A-1")
    saved = save_live_trial(db, vid, trial_file, "step-down", lead="right", actor="clin")
    set_scores(db, saved.trial_id, pain_during=3.5, actor="clin")  # the scores' checks: tests/test_records_reps.py
    set_scores(db, saved.trial_id, quality_score=4, actor="boss")
    row = visit_trials(db, vid)[0]
    assert row["pain_during"] == 3.5 and row["quality_score"] == 4
    for mass in (4.0, 501.0, float("inf")):
        with pytest.raises(RecordsError, match="between 5 and 500 kg"):
            set_visit_body_mass(db, vid, mass, actor="clin")
    with pytest.raises(RecordsError, match="no visit 999"):
        set_visit_body_mass(db, 999, 70.0, actor="clin")
    row = visit_trials(db, vid)[0]
    assert row["pain_during"] == 3.5 and row["quality_score"] == 4  # refused input changed nothing
    assert visit_brief(db, vid)["body_mass_kg"] is None
    with db.read() as s:
        scores = [(e.actor, e.detail) for e in entries(s, "scores")]
    assert scores == [("clin", {"pain_during": [None, 3.5]}), ("boss", {"quality_score": [None, 4]})]
