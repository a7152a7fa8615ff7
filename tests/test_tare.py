"""calibration.tare: the live path's auto-tare policy (AutoTarePolicy, LiveTare) on the simulated rig's
layout with synthetic counts: re-tare only while a plate is unloaded and steady."""

import dataclasses

import numpy as np
import pytest

from steplab.acquisition.rig import default_rig, split_box_rig
from steplab.calibration.apply import calibrated_forces
from steplab.calibration.arrays import CalibrationArrays, nominal_calibration
from steplab.calibration.geometry import merge_plates
from steplab.calibration.tare import AutoTare, AutoTarePolicy, LiveTare, plate_force_n

RATE = 1000.0


def _counts(rig, n, *, zero_counts=None, loads_n=None, sd_counts=40.0, seed=0):
    """(n, channels) int32 counts: per-channel zero + per-plate load split evenly over its cells + noise."""
    rng = np.random.default_rng(seed)
    zero = np.zeros(rig.channels) if zero_counts is None else np.asarray(zero_counts, float)
    c = zero + rng.normal(0.0, sd_counts, (n, rig.channels))
    for plate in rig.plates:
        load = (loads_n or {}).get(plate.role, 0.0)
        for cell in plate.cells:
            c[:, cell.channel] += np.asarray(load) / len(plate.cells) * cell.nominal_counts_per_n
    return np.round(c).astype(np.int32)


def _sway(n, mean_n, amplitude_n, hz=0.7):
    """A person standing still: the force sways slowly by a few newtons."""
    return mean_n + amplitude_n * np.sin(2 * np.pi * hz * np.arange(n) / RATE)


def test_policy_thresholds_are_named_and_checked():
    p = AutoTarePolicy()
    assert (p.steady_window_s, p.calibrated_unloaded_max_n, p.uncalibrated_unloaded_fraction, p.max_noise_n,
            p.max_drift_n, p.min_interval_s) == (2.0, 10.0, 0.03, 1.0, 0.5, 10.0)
    assert p.unloaded_max_n(4 * 1961.33, calibrated=True) == 10.0
    assert p.unloaded_max_n(4 * 1961.33, calibrated=False) == pytest.approx(0.03 * 4 * 1961.33)  # ≈ 235 N
    for bad in ({"max_noise_n": 0.0}, {"steady_window_s": -1.0}, {"min_interval_s": -0.1},
                {"calibrated_unloaded_max_n": float("nan")}, {"max_drift_n": True}):
        with pytest.raises(ValueError, match="auto-tare"):
            AutoTarePolicy(**bad)
    assert AutoTarePolicy(min_interval_s=0.0).min_interval_s == 0.0
    # the single-plate AutoTare's defaults are the policy's
    at = AutoTare.from_policy(p, np.zeros(4), 4000.0, RATE, capacity_n=7845.32, calibrated=True)
    plain = AutoTare(np.zeros(4), 4000.0, RATE)
    for name in ("unloaded_max_n", "max_noise_n", "max_drift_n", "_window", "_min_interval"):
        assert getattr(at, name) == getattr(plain, name)


def test_an_empty_steady_plate_is_retared_and_only_its_offsets_change():
    rig = default_rig()
    cal = nominal_calibration(rig)
    drift = np.zeros(rig.channels)
    box = rig.plate("box")
    drift[list(box.channels)] = [900.0, -700.0, 1200.0, 400.0]  # the box's zero drifted by ≈ 0.45 N
    live = LiveTare(rig, cal, RATE, calibrated=True, policy=AutoTarePolicy(min_interval_s=0.0))
    assert live.update(_counts(rig, 1000, zero_counts=drift)) is None  # the window is not full yet
    new = live.update(_counts(rig, 1500, zero_counts=drift, seed=1))
    assert new is not None and live.calibration is new and live.retares == 1
    p = cal.plate_index("box")
    np.testing.assert_allclose(new.offsets_counts[p], drift[list(box.channels)], atol=10.0)
    assert new.calibration_hash != cal.calibration_hash and new.calibration_id == cal.calibration_id
    np.testing.assert_array_equal(new.linear, cal.linear)
    # the floor plates were re-tared too (they were empty), to their own (zero) offsets
    for role in ("floor_left", "floor_right"):
        assert np.all(np.abs(new.offsets_counts[cal.plate_index(role)]) < 10.0)
    # forces with the new offsets read zero on the drifted box
    f = calibrated_forces(_counts(rig, 200, zero_counts=drift, seed=2), new)["box"].fz_n
    assert abs(f.mean()) < 0.05
    assert live.seconds_since_tare("box") == pytest.approx(0.0)
    live.update(_counts(rig, 250, zero_counts=drift, seed=3))
    assert live.seconds_since_tare("box") == pytest.approx(0.25)


def test_a_person_standing_still_is_never_tared_away():
    rig = default_rig()
    cal = nominal_calibration(rig)
    live = LiveTare(rig, cal, RATE, calibrated=True, policy=AutoTarePolicy(min_interval_s=0.0))
    n = 6000
    # 5 N on the box (below 10 N but swaying by ±3 N: a foot resting on it) and 700 N standing on the floor
    counts = _counts(rig, n, loads_n={"box": _sway(n, 5.0, 3.0), "floor_left": _sway(n, 700.0, 4.0)})
    for i in range(0, n, 10):
        new = live.update(counts[i:i + 10])
        if new is not None:
            # only the empty floor_right may be re-tared
            assert np.array_equal(new.offsets_counts[cal.plate_index("box")], cal.offsets_counts[cal.plate_index("box")])
            assert np.array_equal(new.offsets_counts[cal.plate_index("floor_left")],
                                  cal.offsets_counts[cal.plate_index("floor_left")])
    assert live.retares >= 1  # floor_right, empty and still, was re-tared


def test_the_uncalibrated_three_percent_rule():
    rig = default_rig()
    cal = nominal_calibration(rig)
    plate = rig.plate("floor_right")
    # an empty plate on nominal gains reading 150 N (cell zero balance): < 3 % of its ≈ 7845 N capacity
    zero = np.zeros(rig.channels)
    zero[list(plate.channels)] = 150.0 / 4 * 4000.0
    counts = _counts(rig, 2500, zero_counts=zero)
    k = cal.plate_index("floor_right")
    assert plate_force_n(counts[:, list(plate.channels)], cal.offsets_counts[k], 4000.0).mean() == pytest.approx(150.0, abs=0.5)
    uncal = LiveTare(rig, cal, RATE, calibrated=False).update(counts)
    assert uncal is not None
    np.testing.assert_allclose(uncal.offsets_counts[k], zero[list(plate.channels)], atol=10.0)
    # with a real calibration 150 N is a load: not re-tared
    calibrated = LiveTare(rig, cal, RATE, calibrated=True).update(counts)
    assert calibrated is None or np.array_equal(calibrated.offsets_counts[k], cal.offsets_counts[k])
    # and 300 N (above 3 %) is a load even on nominal gains
    zero[list(plate.channels)] = 300.0 / 4 * 4000.0
    again = LiveTare(rig, cal, RATE, calibrated=False).update(_counts(rig, 2500, zero_counts=zero))
    assert again is None or np.array_equal(again.offsets_counts[k], cal.offsets_counts[k])


def test_min_interval_holds_between_retares_of_a_plate():
    rig = default_rig()
    cal = nominal_calibration(rig)
    live = LiveTare(rig, cal, RATE, calibrated=True, policy=AutoTarePolicy(min_interval_s=5.0))
    first = live.update(_counts(rig, 2000))
    assert first is not None and live.retares == 1
    for i in range(4):  # 4 more seconds, empty and steady: held back
        assert live.update(_counts(rig, 1000, seed=10 + i)) is None
    assert live.update(_counts(rig, 1000, seed=20)) is not None and live.retares == 2


def test_works_on_a_merged_split_box_calibration_and_refuses_foreign_channels():
    rig = split_box_rig()
    merged = merge_plates(nominal_calibration(rig), rig)
    drift = np.zeros(rig.channels)
    halves = [c for role in ("box_left", "box_right") for c in rig.plate(role).channels]
    drift[halves] = np.linspace(-800.0, 800.0, len(halves))
    new = LiveTare(rig, merged, RATE, calibrated=False).update(_counts(rig, 2500, zero_counts=drift))
    assert new is not None and new.plate_roles == merged.plate_roles
    p = merged.plate_index("box")
    used = merged.channel_index[p] >= 0
    np.testing.assert_allclose(new.offsets_counts[p][used], drift[merged.channel_index[p][used]], atol=10.0)
    alien = CalibrationArrays(("box",), np.array([[99, 0, 1, 2]]), np.zeros((1, 4)), np.ones((1, 3, 4)), np.zeros((1, 3, 4)))
    with pytest.raises(ValueError, match="channel\\(s\\) \\[99\\]"):
        LiveTare(rig, alien, RATE, calibrated=True)
    with pytest.raises(ValueError, match="CalibrationArrays"):
        LiveTare(rig, dataclasses.asdict(AutoTarePolicy()), RATE, calibrated=True)


@pytest.mark.parametrize("calibrated", [True, False])
def test_live_tare_does_what_the_live_view_did_plate_by_plate(calibrated):
    """The policy moved out of the screen layer unchanged: one AutoTare per rig plate, built as the
    live view built them (offsets of the plate's slots, nominal sensitivities, 10 N or 3 % of capacity)."""
    rig = default_rig()
    cal = nominal_calibration(rig)
    old = [AutoTare(cal.offsets_counts[p, :len(plate.cells)], [c.nominal_counts_per_n for c in plate.cells], RATE,
                    unloaded_max_n=10.0 if calibrated else 0.03 * plate.capacity_n)
           for p, plate in enumerate(rig.plates)]
    live = LiveTare(rig, cal, RATE, calibrated=calibrated)
    zero = np.zeros(rig.channels)
    zero[list(rig.plate("floor_left").channels)] = 120.0 / 4 * 4000.0  # 120 N of zero balance on one plate
    n = 25_000
    counts = _counts(rig, n, zero_counts=zero, loads_n={"box": np.r_[np.zeros(n // 2), np.full(n - n // 2, 600.0)]})
    offsets = np.array(cal.offsets_counts)
    for i in range(0, n, 50):
        block = counts[i:i + 50]
        for p, (plate, tare) in enumerate(zip(rig.plates, old)):
            if tare.update(block[:, cal.channel_index[p, :len(plate.cells)]]) is not None:
                offsets[p, :len(plate.cells)] = tare.offsets_counts
        live.update(block)
    np.testing.assert_array_equal(live.calibration.offsets_counts, offsets)
    assert live.retares >= 2
