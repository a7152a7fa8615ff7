"""End to end on the simulated rig: `steplab calibrate --device sim --auto --json`, the saved
record, and an independent check of the record's arrays against fresh simulated loads."""

import json

import numpy as np
import pytest

from steplab.acquisition.rig import default_rig
from steplab.acquisition.sim_rig import SimulatedRigModel
from steplab.calibration.apply import apply_plate_matrix
from steplab.calibration.arrays import nominal_calibration
from steplab.calibration.geometry import cop_mm
from steplab.calibration.records import load_record
from steplab.cli import main

G = 9.80665  # standard gravity [m/s²] (metrics.md): the tests' own truth, not the code's constant

KEYS = {"fz_error_pct_fs", "cop_rms_mm", "nonlinearity_pct_fs", "hysteresis_pct_fs", "repeatability_n"}


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cal") / "cal.json"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["calibrate", "--device", "sim", "--auto", "--json", "--out", str(out)])
    return code, buf.getvalue(), out


def test_auto_json_contract_and_targets(auto_run):
    code, stdout, out = auto_run
    assert code == 0
    lines = stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert set(summary) == {"calibration_id", "plates"}
    assert set(summary["plates"]) == {"box", "floor_left", "floor_right"}
    for name, figs in summary["plates"].items():
        assert set(figs) == KEYS
        assert all(isinstance(v, float) and np.isfinite(v) for v in figs.values())
        assert figs["fz_error_pct_fs"] <= 0.5, name
        assert figs["cop_rms_mm"] <= 2.0, name
    rec = load_record(out, default_rig())
    assert rec.calibration_id == summary["calibration_id"]
    for pc in rec.plates:
        v, nominal = pc.statistics["verification"], pc.statistics["verification_nominal"]
        assert v["fz_error_pct_fs"] == pytest.approx(summary["plates"][pc.plate]["fz_error_pct_fs"])
        # the same verification set without calibration (nominal gains): clearly worse
        assert nominal["cop_rms_mm"] > 5 * v["cop_rms_mm"]
        assert nominal["fz_error_max_n"] > 5 * v["fz_error_max_n"]


def test_record_arrays_measure_fresh_loads_on_the_simulated_rig(auto_run):
    """Independent of the procedure: tare a fresh simulator (same hidden cells), put masses where
    the calibration never had any, and convert with the record's arrays and with nominal gains."""
    rig = default_rig()
    arrays = load_record(auto_run[2], rig).to_arrays()
    nominal = nominal_calibration(rig)
    sim = SimulatedRigModel(rig, scenario="empty", seed=0)
    sim.read_counts(500)
    zero = sim.read_counts(2000).mean(axis=0)
    cases = [("box", 37.0, -140.0, 95.0), ("floor_left", 23.0, 70.0, -160.0), ("floor_right", 64.0, -35.0, 120.0)]
    for plate, mass, x, y in cases:
        sim.place_mass(plate, x, y, mass)
    sim.read_counts(1500)  # settle
    loaded = sim.read_counts(1000).mean(axis=0)
    worse = 0
    for plate, mass, x, y in cases:
        p = arrays.plate_index(plate)
        ch = arrays.channel_index[p]
        w = apply_plate_matrix(loaded[ch] - zero[ch], arrays.linear[p], arrays.quadratic[p])
        fs = rig.plate(plate).capacity_n
        assert abs(w[0] - mass * G) / fs * 100 < 0.5
        assert np.hypot(*(cop_mm(w) - [x, y])) < 2.0
        q = nominal.plate_index(plate)
        wn = apply_plate_matrix(loaded[ch] - zero[ch], nominal.linear[q], None)
        worse += np.hypot(*(cop_mm(wn) - [x, y])) > 3 * np.hypot(*(cop_mm(w) - [x, y]))
    assert worse >= 2


@pytest.mark.parametrize("argv,words", [
    (["calibrate", "--device", "/dev/nonexistent-port", "--auto"], "no such port"),
    (["calibrate", "--device", "sim"], "--plate NAME is required"),
    (["calibrate", "--device", "sim", "--plate", "box"], "calibrated with --auto"),
    (["calibrate", "--device", "sim", "--auto", "--plate", "roof"], "no plate named 'roof'"),
    (["calibrate", "--device", "/dev/nonexistent-port", "--plate", "box"], "no such port"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("STEPLAB_DATA_DIR", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and err.startswith("steplab calibrate: error:")
    assert not any(tmp_path.rglob("*.json"))


def test_cli_bad_rig_file(capsys, tmp_path):
    bad = tmp_path / "rig.json"
    bad.write_text("{not json")
    assert main(["calibrate", "--device", "sim", "--auto", "--rig", str(bad)]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def test_a_calibration_that_misses_the_verification_targets_is_not_saved(tmp_path, monkeypatch):
    """Verification masses land 25 mm off (a shifted plate): the record must not become the active calibration."""
    import steplab.calibration.robot as robot_mod
    from steplab.calibration.report import verification_failures

    model = robot_mod.make_sim_model(seed=0)
    real_place = model.place_mass
    verification_masses = None

    def shifted(plate, x_mm, y_mm, mass_kg):
        # masses that the fit never sees (the verification set) are put 25 mm to the right
        if mass_kg in verification_masses:
            x_mm += 25.0
        return real_place(plate, x_mm, y_mm, mass_kg)

    from steplab.acquisition.rig import default_rig
    from steplab.calibration.geometry import plate_geometry
    from steplab.calibration.procedure import CalibrationPlan

    plan = CalibrationPlan.default(plate_geometry(default_rig(), "box"))
    verification_masses = set(plan.verify_masses_kg) - set(plan.fit_masses_kg)
    assert verification_masses
    model.place_mass = shifted
    auto = robot_mod.run_auto_calibration(model=model, plates=("box",))
    failures = verification_failures(auto.results["box"].report)
    assert any("COP RMS" in f for f in failures)
    # and the command refuses to save such a record, with the reason
    import steplab.cmd_calibrate as cmd

    monkeypatch.setenv("STEPLAB_DATA_DIR", str(tmp_path))
    with pytest.raises(cmd.UserError, match="verification failed, calibration not saved"):
        cmd._check_verification(auto.results)
    assert not (tmp_path / "calibrations").exists()
