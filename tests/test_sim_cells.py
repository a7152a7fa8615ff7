"""Simulated load cells: load sharing, hidden imperfections, inversion, clipping, ringing."""

from __future__ import annotations

import numpy as np
import pytest

from steplab.acquisition.rig import Cell, Plate, default_rig, split_box_rig
from steplab.acquisition.sim_cells import (
    CellArray,
    HiddenCellModel,
    cell_loads_from_cop,
    cop_from_cell_loads,
)
from steplab.constants import ADC_FULL_SCALE_COUNTS


@pytest.mark.parametrize("plate_name", ["box", "floor_left"])
def test_bilinear_split_reproduces_force_and_cop_exactly(plate_name):
    plate = default_rig().plate(plate_name)
    rng = np.random.default_rng(1)
    n = 500
    fz = rng.uniform(1.0, 2000.0, n)
    x = rng.uniform(-plate.width_mm / 2, plate.width_mm / 2, n)
    y = rng.uniform(-plate.length_mm / 2, plate.length_mm / 2, n)
    loads = cell_loads_from_cop(plate, fz, x, y)
    f2, x2, y2 = cop_from_cell_loads(plate, loads, min_force_n=0.5)
    np.testing.assert_allclose(f2, fz, rtol=1e-12)
    np.testing.assert_allclose(x2, x, atol=1e-9)
    np.testing.assert_allclose(y2, y, atol=1e-9)


def test_centred_load_is_shared_equally_and_corner_load_goes_to_its_cell():
    plate = default_rig().plate("floor_right")
    loads = cell_loads_from_cop(plate, np.array([400.0, 400.0]), np.array([0.0, 100.0]), np.array([0.0, 225.0]))
    np.testing.assert_allclose(loads[0], 100.0)
    # (100, 225) is exactly the front-right cell: it takes everything (bilinear, not planar)
    front_right = [c.name for c in plate.cells].index("fr_front_right")
    expected = np.zeros(4)
    expected[front_right] = 400.0
    np.testing.assert_allclose(loads[1], expected, atol=1e-9)


def test_non_rectangular_layout_uses_minimum_norm_and_still_reproduces_cop():
    cells = (Cell("a", 0, -150.0, -100.0), Cell("b", 1, 150.0, -100.0), Cell("c", 2, 0.0, 160.0))
    plate = Plate("tri", "floor_left", 400.0, 400.0, (0.0, 0.0, 0.0), cells)
    fz = np.array([500.0, 800.0])
    x = np.array([10.0, -40.0])
    y = np.array([-20.0, 55.0])
    loads = cell_loads_from_cop(plate, fz, x, y)
    f2, x2, y2 = cop_from_cell_loads(plate, loads)
    np.testing.assert_allclose(f2, fz)
    np.testing.assert_allclose(x2, x, atol=1e-9)
    np.testing.assert_allclose(y2, y, atol=1e-9)


def test_cop_is_nan_below_the_minimum_force():
    plate = default_rig().plate("box")
    loads = cell_loads_from_cop(plate, np.array([5.0, 50.0]), np.array([10.0, 10.0]), np.zeros(2))
    _, x, _ = cop_from_cell_loads(plate, loads, min_force_n=20.0)
    assert np.isnan(x[0]) and x[1] == pytest.approx(10.0)


@pytest.mark.parametrize("plate_name", ["box", "floor_left"])
def test_calibrated_cop_agrees_with_the_simulation_truth(plate_name):
    """The simulator's truth COP (from cell loads) and the calibration's COP (counts → nominal
    calibration → moments → calibration.cop.cop_mm) are separate code and must agree."""
    from steplab.calibration.apply import calibrated_forces
    from steplab.calibration.arrays import nominal_calibration
    from steplab.calibration.cop import cop_mm

    rig = default_rig()
    plate = rig.plate(plate_name)
    rng = np.random.default_rng(4)
    fz = np.r_[rng.uniform(30.0, 1500.0, 200), 10.0, 19.0]  # the last two below 20 N
    x = rng.uniform(-0.9, 0.9, fz.size) * max(abs(c.x_mm) for c in plate.cells)
    y = rng.uniform(-0.9, 0.9, fz.size) * max(abs(c.y_mm) for c in plate.cells)
    loads = cell_loads_from_cop(plate, fz, x, y)
    counts = np.zeros((fz.size, rig.channels), dtype=np.int64)
    for j, c in enumerate(plate.cells):
        counts[:, c.channel] = np.round(loads[:, j] * c.nominal_counts_per_n)
    pf = calibrated_forces(counts, nominal_calibration(rig))[plate.role]
    cx, cy = cop_mm(pf.fz_n, pf.mx_nm, pf.my_nm, min_force_n=20.0)
    _, tx, ty = cop_from_cell_loads(plate, loads, min_force_n=20.0)
    assert np.array_equal(np.isnan(cx), np.isnan(tx)) and np.isnan(tx[-2:]).all()
    ok = ~np.isnan(tx)
    np.testing.assert_allclose(cx[ok], tx[ok], atol=0.01)  # counts are rounded: ≤ 1/4000 N per cell
    np.testing.assert_allclose(cy[ok], ty[ok], atol=0.01)


def test_bad_shapes_raise_value_error():
    plate = default_rig().plate("box")
    with pytest.raises(ValueError, match="same length"):
        cell_loads_from_cop(plate, np.zeros(3), np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        cop_from_cell_loads(plate, np.zeros((3, 5)))


@pytest.mark.parametrize("rig", [default_rig(), split_box_rig()], ids=["12ch", "16ch"])
def test_hidden_parameters_stay_within_the_specified_ranges(rig):
    h = HiddenCellModel.draw(rig, seed=3)
    fs = ADC_FULL_SCALE_COUNTS
    assert np.all(np.abs(h.offset_counts) <= 0.02 * fs)
    assert np.all(np.abs(h.gain - 1.0) <= 0.03)
    off = h.crosstalk - np.eye(rig.channels)
    assert np.all(np.abs(off) <= 0.01)
    for i in range(rig.channels):  # cross-talk only between cells of one plate
        for j in range(rig.channels):
            if h.plate_of_channel[i] != h.plate_of_channel[j]:
                assert off[i, j] == 0.0
    dev_at_capacity_counts = np.abs(h.nonlinearity) * h.capacity_n * h.nominal_counts_per_n
    assert np.all(dev_at_capacity_counts <= 0.002 * fs)
    assert np.all(h.noise_sd_counts / h.nominal_counts_per_n <= 0.2)
    slope_n_per_min = np.abs(h.drift_final_n) / h.drift_tau_s * 60.0
    assert np.all((slope_n_per_min > 0.02) & (slope_n_per_min < 0.08))
    assert np.all((h.resonance_hz >= 150.0) & (h.resonance_hz <= 250.0))
    # deterministic for a seed, different for another
    assert np.array_equal(HiddenCellModel.draw(rig, seed=3).gain, h.gain)
    assert not np.array_equal(HiddenCellModel.draw(rig, seed=4).gain, h.gain)


def test_inverting_the_hidden_model_recovers_loads_exactly_without_noise():
    rig = default_rig()
    h = HiddenCellModel.draw(rig, seed=5)
    rng = np.random.default_rng(0)
    loads = rng.uniform(-200.0, 1900.0, (300, rig.channels))
    t = np.linspace(0.0, 3600.0, 300)
    counts = h.signal_counts(loads, t)
    np.testing.assert_allclose(h.loads_from_counts(counts, t), loads, atol=1e-7)
    # and the imperfections are real: a naive nominal conversion is wrong by newtons
    naive = counts / h.nominal_counts_per_n[None, :]
    assert np.max(np.abs(naive - loads)) > 10.0


def test_static_load_through_the_noisy_converter_is_recovered_within_noise():
    rig = default_rig()
    h = HiddenCellModel.draw(rig, seed=2)
    arr = CellArray(rig, h, 1000.0, seed=2)
    n = 2000
    loads = np.tile(np.linspace(50.0, 600.0, rig.channels), (n, 1))
    t = np.arange(n) / 1000.0
    counts = arr.process(loads, t)
    back = h.loads_from_counts(counts, t)
    sd_n = h.noise_sd_counts / h.counts_per_n
    err = back.mean(axis=0) - loads[0]
    assert np.all(np.abs(err) < 5 * sd_n / np.sqrt(n) + 1e-3)
    np.testing.assert_allclose(back.std(axis=0), sd_n, rtol=0.1)


def test_counts_clip_at_the_24_bit_limit():
    rig = default_rig()
    h = HiddenCellModel.draw(rig, seed=0)
    arr = CellArray(rig, h, 1000.0, seed=0)
    loads = np.zeros((50, rig.channels))
    loads[:, 0] = 5000.0  # far beyond a 200 kg cell
    loads[:, 1] = -5000.0
    counts = arr.process(loads, np.arange(50) / 1000.0)
    assert counts.dtype == np.int32
    assert np.all(counts[10:, 0] == ADC_FULL_SCALE_COUNTS)
    assert np.all(counts[10:, 1] == -ADC_FULL_SCALE_COUNTS)
    assert np.all(np.abs(counts[:, 2:]) < ADC_FULL_SCALE_COUNTS)


def test_a_load_step_rings_at_the_plate_resonance_and_settles():
    rig = default_rig()
    h = HiddenCellModel.draw(rig, seed=8)
    rate = 4000.0
    arr = CellArray(rig, h, rate, seed=8)
    n = 4000
    loads = np.zeros((n, rig.channels))
    loads[200:, :4] = 300.0  # a sudden 1200 N on the box
    t = np.arange(n) / rate
    back = h.loads_from_counts(arr.process(loads, t), t)
    box = back[:, :4].sum(axis=1)
    assert box[200:400].max() > 1200.0 * 1.3  # overshoot of a lightly damped plate
    np.testing.assert_allclose(box[3000:].mean(), 1200.0, atol=1.0)
    ring = box[200:1200] - 1200.0
    spec = np.abs(np.fft.rfft(ring * np.hanning(ring.size), 8 * ring.size))
    freqs = np.fft.rfftfreq(8 * ring.size, 1.0 / rate)
    f_peak = freqs[np.argmax(spec[1:]) + 1]
    assert f_peak == pytest.approx(h.resonance_hz[0], abs=2.0)
