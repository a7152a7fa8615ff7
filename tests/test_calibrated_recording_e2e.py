"""Issue flow end to end: calibrate the simulated rig, record a trial, analyse it with that calibration."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from helpers import steplab_cmd

from steplab.acquisition.trial_file import read_trial

pytestmark = pytest.mark.slow


def _run(*args, timeout=180):
    r = subprocess.run(steplab_cmd(*args), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r


def test_a_trial_names_and_uses_the_rigs_calibration(sim_process, tmp_path, data_dir):
    cal = json.loads(_run("calibrate", "--device", "sim", "--auto", "--json").stdout)
    cal_id = cal["calibration_id"]
    for plate in ("box", "floor_left", "floor_right"):
        assert cal["plates"][plate]["fz_error_pct_fs"] <= 0.5 and cal["plates"][plate]["cop_rms_mm"] <= 2.0
    sim = sim_process("--seconds", "60", "--scenario", "quiet", "--seed", "21")
    out = tmp_path / "quiet.npz"
    summary = json.loads(_run("record", "--device", sim.port, "--seconds", "4", "--out", str(out), "--json").stdout)
    assert summary["lost_samples"] == 0
    trial = read_trial(out)
    ref = trial.meta["calibration"]
    assert ref["calibration_id"] == cal_id and ref["records"][0]["calibration_id"] == cal_id
    assert ref["calibration_hash"] and ref["time_since_tare_s"] >= 0
    # the calibrated box force of a 70 kg subject standing still is body weight (nominal gains are not)
    from steplab.calibration.arrays import nominal_calibration
    from steplab.records.importers import calibration_from_dict, forces_from_counts

    bw = 70.0 * 9.80665
    calibrated = forces_from_counts(trial.counts, calibration_from_dict(ref))
    total = sum(calibrated[p].fz_n for p in ("box", "floor_left", "floor_right"))
    assert abs(np.mean(total) - bw) < 0.005 * bw
    nominal = forces_from_counts(trial.counts, nominal_calibration(trial.rig))
    total_nominal = sum(nominal[p].fz_n for p in ("box", "floor_left", "floor_right"))
    assert abs(np.mean(total_nominal) - bw) > 3 * abs(np.mean(total) - bw)
    # analysis reports the calibration it used
    result = json.loads(_run("analyze", str(out), "--protocol", "balance", "--json").stdout)
    assert result["provenance"]["calibration_id"] == cal_id
    assert result["provenance"]["calibration_hash"] == ref["calibration_hash"]
    assert "uncalibrated" not in result["flags"] and trial.quality["saturated_samples"] == 0
    # the plates are recalibrated after the trial: analysis says so and offers re-analysis, never silently
    newer = json.loads(_run("calibrate", "--device", "sim", "--auto", "--json", "--seed", "5").stdout)["calibration_id"]
    assert newer != cal_id
    r = _run("analyze", str(out), "--protocol", "balance", "--json")
    assert "recalibrated" in r.stderr and "--calibration latest" in r.stderr
    again = json.loads(r.stdout)
    assert again["provenance"]["calibration_id"] == cal_id
    assert any("recalibrated" in n for n in again["provenance"]["calibration_notes"])
    latest = json.loads(_run("analyze", str(out), "--protocol", "balance", "--json", "--calibration", "latest").stdout)
    assert latest["provenance"]["calibration_id"] == newer
    assert latest["provenance"]["calibration_hash"] != ref["calibration_hash"]


def test_an_uncalibrated_trial_is_flagged(sim_process, tmp_path):
    sim = sim_process("--seconds", "60", "--scenario", "quiet", "--seed", "1")
    out = tmp_path / "raw.npz"
    r = _run("record", "--device", sim.port, "--seconds", "3", "--out", str(out), "--json")
    assert "no calibration" in r.stderr
    assert read_trial(out).meta["calibration"] is None
    result = json.loads(_run("analyze", str(out), "--protocol", "balance", "--json").stdout)
    assert "uncalibrated" in result["flags"] and result["provenance"]["calibration_id"] == "nominal"


def test_recording_with_a_broken_calibration_file_is_refused_before_anything_is_written(sim_process, tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"format": "steplab-calibration", "format_version": 1, "content_hash": "00"}')
    sim = sim_process("--seconds", "30")
    out = tmp_path / "t.npz"
    r = subprocess.run(steplab_cmd("record", "--device", sim.port, "--seconds", "1", "--out", str(out),
                                   "--calibration", str(bad)), capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists() and not (tmp_path / "t.npz.journal").exists()
