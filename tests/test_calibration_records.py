"""Calibration records: hashing, ids, save/load round trip, refusals and warnings."""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from steplab.acquisition.rig import default_rig
from steplab.calibration.geometry import nominal_matrix, plate_geometry
from steplab.calibration.records import (
    RECORD_FORMAT_VERSION,
    CalibrationRecordError,
    PlateCalibration,
    calibration_warnings,
    calibrations_dir,
    content_hash,
    latest_for_plate,
    list_records,
    load_record,
    make_record,
    recalibrated_since,
    save_record,
)

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def plate_cal(rig, name, scale=1.0):
    g = plate_geometry(rig, name)
    lin = nominal_matrix(g) * scale
    return PlateCalibration(g.name, g.role, g.channels, tuple(float(v) for v in np.arange(4) * 10.5),
                            tuple(map(tuple, lin.tolist())), tuple(map(tuple, (lin * 1e-9).tolist())),
                            g.to_dict(), {"verification": {"cop_rms_mm": 0.4}, "creep_pct": float("nan")})


@pytest.fixture
def rig():
    return default_rig()


def test_id_hash_and_roundtrip(rig, tmp_path):
    rec = make_record([plate_cal(rig, "box")], rig, operator="ana", created=T0)
    assert rec.calibration_id == f"SIM-0001-box-20250301T093000Z-{rec.content_hash[:8]}"
    assert rec.content_hash == content_hash(rec.content())
    assert rec.rig_hash == rig.hash() and rec.operator == "ana"
    path = save_record(rec, tmp_path)
    assert path.name == rec.calibration_id + ".json"
    back = load_record(path, rig)
    assert back == rec
    # NaN statistics are stored as null (strict JSON)
    assert json.loads(path.read_text())["plates"][0]["statistics"]["creep_pct"] is None


def test_to_arrays_matches_record(rig):
    rec = make_record([plate_cal(rig, "box"), plate_cal(rig, "floor_left", 1.01)], rig, operator="ana", created=T0)
    arr = rec.to_arrays()
    assert arr.plate_roles == ("box", "floor_left")
    np.testing.assert_array_equal(arr.channel_index, [[0, 1, 2, 3], [4, 5, 6, 7]])
    np.testing.assert_allclose(arr.linear[1], nominal_matrix(plate_geometry(rig, "floor_left")) * 1.01)
    np.testing.assert_allclose(arr.offsets_counts[0], [0, 10.5, 21, 31.5])
    assert arr.calibration_id == rec.calibration_id and arr.calibration_hash == rec.content_hash
    assert rec.calibration_id.startswith("SIM-0001-2025")  # several plates: rig + date + hash


def test_corrupt_unknown_version_and_other_rig(rig, tmp_path):
    rec = make_record([plate_cal(rig, "box")], rig, operator="ana", created=T0)
    path = save_record(rec, tmp_path)
    d = json.loads(path.read_text())
    # one coefficient changed: hash mismatch
    d["plates"][0]["linear"][0][0] *= 1.001
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(CalibrationRecordError, match="corrupt: its content does not match its hash"):
        load_record(bad, rig)
    trunc = tmp_path / "truncated.json"
    trunc.write_text(path.read_text()[:200])
    with pytest.raises(CalibrationRecordError, match="corrupt \\(not valid JSON"):
        load_record(trunc)
    d = json.loads(path.read_text())
    d["format_version"] = RECORD_FORMAT_VERSION + 1
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(d))
    with pytest.raises(CalibrationRecordError, match="format version 2; this steplab reads version 1"):
        load_record(newer)
    other = default_rig(serial="LAB-0042")
    with pytest.raises(CalibrationRecordError, match="belongs to rig 'SIM-0001', not to this rig 'LAB-0042'"):
        load_record(path, other)
    with pytest.raises(CalibrationRecordError, match="cannot read"):
        load_record(tmp_path / "missing.json")
    good, errors = list_records(tmp_path, rig)
    assert [r.calibration_id for r in good] == [rec.calibration_id]
    assert len(errors) == 3


def test_data_dir_from_environment(monkeypatch, tmp_path, rig):
    monkeypatch.setenv("STEPLAB_DATA_DIR", str(tmp_path))
    assert calibrations_dir() == tmp_path / "calibrations"
    rec = make_record([plate_cal(rig, "box")], rig, operator="ana", created=T0)
    assert save_record(rec).parent == tmp_path / "calibrations"


def test_warnings_age_hash_and_rig_change(rig):
    rec = make_record([plate_cal(rig, "box")], rig, operator="ana", created=T0)
    assert calibration_warnings(rec, now=T0 + timedelta(days=100), device_calibration_hash=rec.content_hash, rig=rig) == []
    w = calibration_warnings(rec, now=T0 + timedelta(days=200))
    assert len(w) == 1 and "200 days old (limit 180)" in w[0]
    assert calibration_warnings(rec, now=T0 + timedelta(days=200), max_age_days=365) == []
    w = calibration_warnings(rec, now=T0, device_calibration_hash="ab" * 32)
    assert len(w) == 1 and "rig reports calibration hash" in w[0]
    w = calibration_warnings(rec, now=T0, rig=default_rig(sample_rate_hz=2000.0))
    assert len(w) == 1 and "rig description changed" in w[0]


def test_recalibration_after_trial_offers_reanalysis(rig):
    old = make_record([plate_cal(rig, "box")], rig, operator="ana", created=T0)
    new = make_record([plate_cal(rig, "box", 1.002)], rig, operator="ana", created=T0 + timedelta(days=30))
    floor = make_record([plate_cal(rig, "floor_left")], rig, operator="ana", created=T0 + timedelta(days=31))
    trial_time = T0 + timedelta(days=10)
    notes = recalibrated_since(old.calibration_id, trial_time, [old, new, floor], plates=["box"])
    assert len(notes) == 1 and new.calibration_id in notes[0] and "re-analyse" in notes[0]
    assert len(recalibrated_since(old.calibration_id, trial_time, [old, new, floor])) == 2
    assert recalibrated_since(new.calibration_id, T0 + timedelta(days=40), [old, new, floor]) == []
    assert latest_for_plate([old, new, floor], "box") == new
    assert latest_for_plate([old], "floor_right") is None


def test_arrays_for_rig_takes_the_newest_record_per_plate(rig):
    from steplab.calibration.records import arrays_for_rig

    whole = make_record([plate_cal(rig, n) for n in rig.plate_names], rig, operator="ana", created=T0)
    box2 = make_record([plate_cal(rig, "box", 1.003)], rig, operator="ana", created=T0 + timedelta(days=1))
    arr = arrays_for_rig(rig, [whole, box2])
    assert arr.plate_roles == ("box", "floor_left", "floor_right")
    assert arr.calibration_id == f"{box2.calibration_id}+{whole.calibration_id}"
    np.testing.assert_allclose(arr.linear[0], nominal_matrix(plate_geometry(rig, "box")) * 1.003)
    np.testing.assert_allclose(arr.linear[2], nominal_matrix(plate_geometry(rig, "floor_right")))
    with pytest.raises(CalibrationRecordError, match="plate 'floor_left' has no calibration"):
        arrays_for_rig(rig, [box2])


def test_a_record_with_a_fractional_channel_is_refused_even_with_a_matching_hash(rig, tmp_path):
    rec = make_record([plate_cal(rig, "box")], rig, operator="ana", created=T0)
    d = json.loads(save_record(rec, tmp_path).read_text())
    d["plates"][0]["channels"][3] = 3.7
    body = {k: v for k, v in d.items() if k != "content_hash"}
    d["content_hash"] = content_hash(body)  # a consistent hash over the bad content
    bad = tmp_path / "fractional.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(CalibrationRecordError, match="channels must be non-negative integers"):
        load_record(bad, rig)
