"""Export model: identifying data only when identified; meta stripped of serials; atomic no-replace saves."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from steplab.acquisition.rig import default_rig
from steplab.acquisition.trial_file import Trial
from steplab.records._export_io import ExportError, gaps, save_atomically
from steplab.records.export_model import (
    ExportModelError,
    ExportPatientHistory,
    ExportSubject,
    ExportTrial,
    ExportVisit,
    export_analysis,
    export_meta,
    export_rig_dict,
)


def _trial(index=None) -> Trial:
    rig = default_rig(serial="RIG-SECRET-1")
    idx = np.arange(5, dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
    meta = {"started_at": "2026-03-04T10:11:12", "device": {"info": {"serial": "DEV-SECRET-2"}},
            "quality": {"lost_samples": 0, "gaps": [], "nested": {"serial_number": "X-SECRET-3"}},
            "calibration": {"calibration_id": "cal-7", "records": [{"rig_serial": "RIG-SECRET-1", "calibration_id": "cal-7"}]},
            "rig_hash": "abc", "journal": "j.bin"}
    return Trial(np.zeros((idx.size, rig.channels), dtype=np.int32), idx, 1000.0, rig, meta)


def test_a_pseudonymised_subject_cannot_carry_a_name_or_birth_date():
    with pytest.raises(ExportModelError):
        ExportSubject("PT-1", name="Ann Example")
    with pytest.raises(ExportModelError):
        ExportSubject("PT-1", birth_date=dt.date(1970, 1, 1))
    with pytest.raises(ExportModelError):
        ExportSubject("", identified=True)
    s = ExportSubject.identified_as("PT-1", "Ann Example", dt.date(1970, 5, 6), involved="right")
    assert s.birth_year == 1970 and s.label == "Ann Example (PT-1)"
    assert ExportSubject.pseudonymised("PT-1").label == "PT-1"


def test_meta_analysis_and_rig_lose_serials_device_and_times_unless_identified():
    t = _trial()
    pseudo, ident = ExportSubject.pseudonymised("PT-1"), ExportSubject.identified_as("PT-1", "Ann", None)
    text = repr(export_meta(t, pseudo)) + repr(export_rig_dict(t, pseudo))
    for secret in ("RIG-SECRET-1", "DEV-SECRET-2", "X-SECRET-3", "2026-03-04", "j.bin"):
        assert secret not in text, secret
    m = export_meta(t, pseudo)
    assert m["calibration"]["calibration_id"] == "cal-7" and m["quality"]["lost_samples"] == 0
    assert export_meta(t, ident) == t.meta and export_meta(t, ident) is not t.meta
    assert export_rig_dict(t, ident)["serial"] == "RIG-SECRET-1"
    analysis = {"reps": [], "provenance": {"source_file": "clinic-share/Ann_Example.npz", "rig_hash": "abc",
                                           "calibration_id": "cal-7"}}
    a = export_analysis(analysis, pseudo)
    assert a["provenance"] == {"calibration_id": "cal-7"} and analysis["provenance"]["source_file"]
    assert export_analysis(analysis, ident)["provenance"]["source_file"].endswith("Ann_Example.npz")


def test_accepted_reps_and_visit_lookups():
    reps = [{"lead": "left", "metrics": {}}, {"lead": "right", "metrics": {}}]
    et = ExportTrial("T", "step-down", _trial(), {"reps": reps}, rep_accepted=[False, True])
    assert et.accepted_reps() == [reps[1]]
    et.accepted = False
    assert et.accepted_reps() == []
    with pytest.raises(ExportModelError, match="1 rep decisions for 2 reps"):
        ExportTrial("T", "step-down", _trial(), {"reps": reps}, rep_accepted=[True])
    with pytest.raises(ExportModelError, match="movement quality"):
        ExportTrial("T", "step-down", _trial(), {"reps": reps}, quality_score=7)
    subj = ExportSubject.pseudonymised("PT-1")
    v1, v2 = ExportVisit("a", date=dt.date(2026, 1, 5), day_offset=0), ExportVisit("b", date=dt.date(2026, 2, 5))
    h = ExportPatientHistory(subj, [v1, v2])
    assert h.visits_until("a") == [v1] and h.visit("b") is v2
    assert v1.date_label(subj) == "day 0" and v2.date_label(subj) == "2026"  # no offset: the year only
    assert v2.date_label(ExportSubject.identified_as("PT-1", "Ann")) == "2026-02-05"
    with pytest.raises(ExportModelError):
        h.visit("zzz")


def test_gaps_come_from_the_sample_positions():
    assert gaps(_trial([0, 1, 2, 7, 8, 10])) == [{"at_sample": 3, "length": 4}, {"at_sample": 9, "length": 1}]
    assert gaps(_trial()) == []


def test_a_file_that_appears_while_the_export_is_written_is_not_replaced(tmp_path):
    target = tmp_path / "out" / "x.csv"
    target.parent.mkdir()

    def write(tmp):
        target.write_text("someone else's file")  # the race: the name is taken after the first check
        tmp.write_text("ours")

    with pytest.raises(ExportError, match="already exists"):
        save_atomically(target, write)
    assert target.read_text() == "someone else's file"
    assert [p.name for p in target.parent.iterdir()] == ["x.csv"]


def test_a_failing_writer_leaves_nothing_behind(tmp_path):
    out = tmp_path / "out"
    out.mkdir()

    def write(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(ExportError, match="No space left on device"):
        save_atomically(out / "x.pdf", write)
    assert list(out.iterdir()) == []
