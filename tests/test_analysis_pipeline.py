"""steplab.analysis_pipeline: counts → calibration → dsp, the same as calibrating first and analysing forces."""

import math

import numpy as np
import pytest

from steplab.acquisition.rig import default_rig
from steplab.analysis_pipeline import analyze_counts
from steplab.calibration.apply import calibrated_forces
from steplab.calibration.arrays import CalibrationArrays, nominal_calibration
from steplab.calibration.warmup import forces_to_counts
from steplab.dsp import PlateForces, analyze_forces, analyze_plate_signals
from steplab.dsp.warmup import synthetic_step_down

RATE = 500.0


def _same(a, b):
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9))


def _trial(protocol):
    rig = default_rig(sample_rate_hz=RATE)
    plates = synthetic_step_down(rate_hz=RATE, noise_n=0.5, seed=3)
    if protocol == "balance":
        n = plates["box"].fz_n.size
        t = np.arange(n) / RATE
        fz = np.full(n, 650.0) + 3.0 * np.sin(2 * np.pi * 0.3 * t)
        x = 12.0 * np.sin(2 * np.pi * 0.4 * t)
        y = 20.0 * np.cos(2 * np.pi * 0.25 * t)
        zero = np.zeros(n)
        plates = {"box": PlateForces(zero, zero, zero), "floor_left": PlateForces(fz, fz * y / 1000.0, -fz * x / 1000.0),
                  "floor_right": PlateForces(zero, zero, zero)}
    nominal = nominal_calibration(rig)
    zero_counts = np.random.default_rng(0).integers(-5000, 5000, rig.channels)  # each cell's zero
    offsets = np.where(nominal.channel_index >= 0, zero_counts[np.maximum(nominal.channel_index, 0)], 0)
    cal = CalibrationArrays(nominal.plate_roles, nominal.channel_index, offsets, nominal.linear, nominal.quadratic,
                            calibration_id="test")
    return forces_to_counts(plates, rig) + zero_counts.astype(np.int32), cal


@pytest.mark.parametrize("protocol, lead", [("step-down", None), ("balance", "left")])
def test_analyze_counts_equals_analysing_the_calibrated_forces(protocol, lead):
    counts, cal = _trial(protocol)
    via_counts = analyze_counts(counts, RATE, cal, protocol, lead=lead)
    forces = calibrated_forces(counts, cal)
    via_forces = analyze_forces(forces, RATE, protocol, lead=lead)
    assert via_counts.reps and len(via_counts.reps) == len(via_forces.reps)
    for a, b in zip(via_counts.reps, via_forces.reps):
        assert a.metrics.keys() == b.metrics.keys()
        for k in a.metrics:
            assert _same(a.metrics[k], b.metrics[k]), (k, a.metrics[k], b.metrics[k])
        assert a.flags == b.flags
    assert via_counts.provenance["calibration_id"] == "test"
    assert via_counts.provenance["calibration_hash"] == cal.calibration_hash
    assert via_counts.provenance["saturated_samples"] == 0
    assert via_forces.provenance["calibration_id"] is None
    if protocol == "balance":  # COP metrics come from the moments computed on demand
        assert via_counts.reps[0].metrics["cop_path_mm"] is not None


def test_saturation_is_counted_unless_the_caller_says_so_and_bad_input_is_refused():
    counts, cal = _trial("step-down")
    hit = counts.copy()
    hit[100:103, 0] = 2**23 - 1
    res = analyze_counts(hit, RATE, cal, "step-down")
    assert res.provenance["saturated_samples"] == 3 and "saturated" in res.flags
    given = analyze_counts(hit, RATE, cal, "step-down", provenance={"saturated_samples": 0})
    assert given.provenance["saturated_samples"] == 0 and "saturated" not in given.flags
    with pytest.raises(ValueError, match="unknown protocol"):
        analyze_counts(counts, RATE, cal, "hopping")
    with pytest.raises(ValueError, match="at least 2"):
        analyze_counts(counts[:1], RATE, cal, "step-down")
    with pytest.raises(ValueError, match="integers"):
        analyze_counts(counts.astype(float), RATE, cal, "step-down")
    odd = CalibrationArrays(("box", "wall", "floor_left"), cal.channel_index, cal.offsets_counts, cal.linear, cal.quadratic)
    with pytest.raises(ValueError, match="'wall' is not one of"):
        analyze_counts(counts, RATE, odd, "step-down")


def test_analyze_plate_signals_validates_what_it_is_given():
    n = 1000
    fz = {"floor_left": np.full(n, 700.0), "floor_right": np.zeros(n)}
    total = fz["floor_left"] + fz["floor_right"]
    res = analyze_plate_signals(fz, total, RATE, "drop-landing")
    assert res.flags  # a trial with no landing says so (no_reps), it does not fail
    bad = dict(fz, floor_right=np.full(n, np.nan))
    with pytest.raises(ValueError, match="NaN or inf"):
        analyze_plate_signals(bad, total + bad["floor_right"], RATE, "drop-landing")
    with pytest.raises(ValueError, match="samples"):
        analyze_plate_signals({"floor_left": np.zeros(n - 1)}, total, RATE, "drop-landing")
    with pytest.raises(ValueError, match="float64"):
        analyze_plate_signals(fz, total.astype(np.float32), RATE, "drop-landing")
    with pytest.raises(ValueError, match="MomentSource"):
        analyze_plate_signals(fz, total, RATE, "drop-landing", moments=object())
    with pytest.raises(ValueError, match="needs the box"):
        analyze_plate_signals(fz, total, RATE, "step-down")
