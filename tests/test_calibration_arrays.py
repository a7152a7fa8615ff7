"""calibration.arrays: the calibration arrays' validation, identity, and the nominal calibration."""

import numpy as np
import pytest

from steplab.acquisition.rig import default_rig, split_box_rig
from steplab.calibration.arrays import CalibrationArrays, nominal_calibration, nominal_plate_matrix
from steplab.calibration.geometry import nominal_matrix, plate_geometry


def _hand_nominal(rig):
    """The nominal arrays built here, cell by cell: g = 1/s, Mx = g·y, My = −g·x (metres)."""
    k = max(len(p.cells) for p in rig.plates)
    ci = np.full((len(rig.plates), k), -1)
    lin = np.zeros((len(rig.plates), 3, k))
    for i, p in enumerate(rig.plates):
        for j, c in enumerate(p.cells):
            g = 1.0 / c.nominal_counts_per_n
            ci[i, j] = c.channel
            lin[i, :, j] = (g, g * c.y_mm / 1000.0, -g * c.x_mm / 1000.0)
    return ci, lin


@pytest.mark.parametrize("rig_fn", [default_rig, split_box_rig])
def test_nominal_calibration_is_each_cell_gain_at_its_position(rig_fn):
    rig = rig_fn()
    cal = nominal_calibration(rig)
    ci, lin = _hand_nominal(rig)
    assert cal.plate_roles == tuple(p.role for p in rig.plates)
    np.testing.assert_array_equal(cal.channel_index, ci)
    np.testing.assert_array_equal(cal.linear, lin)  # bit for bit: the nominal calibration's hash is stable
    assert not cal.offsets_counts.any() and not cal.quadratic.any()
    same = CalibrationArrays(cal.plate_roles, ci, np.zeros(ci.shape), lin, np.zeros(lin.shape), calibration_id="x")
    assert same.calibration_hash == cal.calibration_hash and cal.calibration_id == "nominal"
    for i, p in enumerate(rig.plates):
        geom = plate_geometry(rig, p.name)
        np.testing.assert_array_equal(nominal_matrix(geom), cal.linear[i][:, : len(p.cells)])


def test_nominal_plate_matrix_reproduces_force_and_moments_of_a_point_load():
    xy = np.array([[-100.0, -225.0], [100.0, -225.0], [100.0, 225.0], [-100.0, 225.0]])
    s = np.array([4000.0, 4100.0, 3900.0, 4050.0])
    m = nominal_plate_matrix(s, xy)
    # 500 N at (40, −90) mm on a rigid plate: bilinear cell loads, counts = load·s
    x, y = 40.0, -90.0
    loads = 500.0 * 0.25 * (1 + np.sign(xy[:, 0]) * x / 100.0) * (1 + np.sign(xy[:, 1]) * y / 225.0)
    fz, mx, my = m @ (loads * s)
    assert fz == pytest.approx(500.0)
    assert mx == pytest.approx(500.0 * y / 1000.0) and my == pytest.approx(-500.0 * x / 1000.0)
    with pytest.raises(ValueError, match="positive"):
        nominal_plate_matrix([4000.0, 0.0, 1.0, 1.0], xy)
    with pytest.raises(ValueError, match="cell_xy_mm"):
        nominal_plate_matrix(s, xy[:3])


def test_arrays_are_validated_frozen_and_named_by_their_content():
    ci = np.array([[0, 1, -1]])
    lin = np.ones((1, 3, 3))
    cal = CalibrationArrays(("box",), ci, np.zeros((1, 3)), lin, np.zeros((1, 3, 3)), calibration_id="t")
    assert cal.n_plates == 1 and cal.max_channel == 1 and cal.plate_index("box") == 0
    with pytest.raises(ValueError, match="read-only"):
        cal.linear[0, 0, 0] = 2.0
    other = CalibrationArrays(("box",), ci, np.ones((1, 3)), lin, np.zeros((1, 3, 3)), calibration_id="t")
    assert other.calibration_hash != cal.calibration_hash  # a re-tare is another calibration
    with pytest.raises(ValueError, match="no plate with role 'floor_left'"):
        cal.plate_index("floor_left")
    with pytest.raises(ValueError, match="unique"):
        CalibrationArrays(("box", "box"), np.zeros((2, 1)), np.zeros((2, 1)), np.ones((2, 3, 1)), np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match=">= 0 or -1"):
        CalibrationArrays(("box",), np.array([[-2]]), np.zeros((1, 1)), np.ones((1, 3, 1)), np.zeros((1, 3, 1)))
    with pytest.raises(ValueError, match="offsets_counts must have shape"):
        CalibrationArrays(("box",), ci, np.zeros((1, 2)), lin, np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="quadratic"):
        CalibrationArrays(("box",), ci, np.zeros((1, 3)), lin, np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match="inf"):
        CalibrationArrays(("box",), ci, np.zeros((1, 3)), lin * np.inf, np.zeros((1, 3, 3)))
