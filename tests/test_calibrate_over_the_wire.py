"""`steplab calibrate` through a real port: the simulated rig on a pty, its robot commanded over the wire."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import steplab_cmd

from steplab.acquisition.rig import default_rig
from steplab.calibration.records import load_record

pytestmark = pytest.mark.slow


def test_the_guided_procedure_over_the_wire_meets_the_targets(sim_process, data_dir):
    sim = sim_process("--scenario", "empty", "--time-scale", "10", "--seconds", "300")
    r = subprocess.run(steplab_cmd("calibrate", "--device", sim.port, "--auto", "--plate", "floor_left", "--json"),
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    plate = d["plates"]["floor_left"]
    assert plate["fz_error_pct_fs"] <= 0.5 and plate["cop_rms_mm"] <= 2.0
    saved = list((data_dir / "calibrations").glob("*.json"))
    assert len(saved) == 1
    rec = load_record(saved[0], default_rig())
    assert rec.calibration_id == d["calibration_id"] and [p.plate for p in rec.plates] == ["floor_left"]


def test_an_operator_who_places_no_mass_is_told_what_happened(sim_process, data_dir):
    """The interactive path: every prompt answered with Enter, but no mass is ever placed."""
    sim = sim_process("--scenario", "empty", "--time-scale", "10", "--seconds", "300")
    answers = "\n" * 6 + "q\n"
    r = subprocess.run(steplab_cmd("calibrate", "--device", sim.port, "--plate", "box", "--warmup-s", "1",
                                   "--settle-timeout", "5"), input=answers,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode != 0
    assert "[1/" in r.stdout and "press Enter" in r.stdout
    assert "stopped:" in r.stdout and "expected" in r.stdout  # which load it expected and what it read
    assert r.stderr.strip().splitlines()[-1].startswith("steplab calibrate: error: calibration stopped")
    assert not (data_dir / "calibrations").exists() or not list((data_dir / "calibrations").glob("*.json"))


def test_auto_refuses_a_device_that_is_not_simulated(tmp_path):
    import os
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        r = subprocess.run(steplab_cmd("calibrate", "--device", os.ttyname(slave), "--auto"), capture_output=True,
                           text=True, timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert r.returncode != 0 and "needs a simulated rig" in r.stderr and "Traceback" not in r.stderr
