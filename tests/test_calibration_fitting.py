"""Fitting: recovery of known matrices, refusals, geometry, and the C3D TYPE-4 matrix."""

from pathlib import Path

import numpy as np
import pytest

from steplab.acquisition.rig import default_rig
from steplab.calibration.fitting import FitError, apply_calibration_matrix, apply_plate_matrix, fit_plate_matrix
from steplab.calibration.geometry import (
    cop_mm,
    grid_positions_mm,
    nominal_matrix,
    plate_frame_from_corners,
    plate_geometry,
    rigid_plate_cell_loads_n,
    verification_positions_mm,
    wrench_from_point_load,
)

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
G = 9.80665


def bilinear_loads(geom, fz, x, y):
    """Independent bilinear split of a point load over four corner cells."""
    xy = geom.cell_xy_mm
    a = np.abs(xy[:, 0]).max()
    b = np.abs(xy[:, 1]).max()
    return 0.25 * fz * (1 + np.sign(xy[:, 0]) * x / a) * (1 + np.sign(xy[:, 1]) * y / b)


def design(geom, masses, positions, forward):
    rows_d, rows_w, pos = [], [], []
    for (x, y) in positions:
        for m in masses:
            f = bilinear_loads(geom, m * G, x, y)
            rows_d.append(forward @ f)
            rows_w.append(wrench_from_point_load(m * G, x, y))
            pos.append((x, y))
    return np.array(rows_d), np.array(rows_w), np.array(pos)


@pytest.fixture
def box():
    return plate_geometry(default_rig(), "box")


def true_forward(geom, seed=1):
    rng = np.random.default_rng(seed)
    sens = geom.nominal_counts_per_n * (1 + rng.uniform(-0.05, 0.05, 4))
    cross = np.eye(4) + rng.uniform(-0.01, 0.01, (4, 4)) * (1 - np.eye(4))
    return np.diag(sens) @ cross  # counts = forward @ cell loads


def test_linear_fit_recovers_the_analytic_inverse(box):
    fwd = true_forward(box)
    d, w, pos = design(box, [10, 20, 40, 60, 80], grid_positions_mm(box), fwd)
    fit = fit_plate_matrix(d, w, positions_mm=pos)
    # analytic: w = A f, d = fwd f  =>  L = A fwd^-1 (bilinear loads span all 4 cell patterns)
    xy_m = box.cell_xy_mm / 1000
    a = np.vstack([np.ones(4), xy_m[:, 1], -xy_m[:, 0]])
    expected = a @ np.linalg.inv(fwd)
    np.testing.assert_allclose(fit.linear, expected, rtol=1e-9, atol=1e-15)
    assert fit.rank == 4 and fit.n_positions == 9 and fit.n_loads == 5
    assert np.max(np.abs(fit.residuals)) < 1e-9
    # prediction at an unseen load and position
    f = bilinear_loads(box, 333.0, -71.0, 55.0)
    np.testing.assert_allclose(fit.apply(fwd @ f), wrench_from_point_load(333.0, -71.0, 55.0), rtol=1e-9, atol=1e-9)


def test_quadratic_fit_recovers_known_coefficients():
    rng = np.random.default_rng(7)
    lin = rng.normal(0, 1e-3, (3, 4)) + np.array([[2.5e-4] * 4, [0] * 4, [0] * 4])
    quad = rng.normal(0, 1e-10, (3, 4))
    d = rng.uniform(0, 2e5, (60, 4))
    w = apply_plate_matrix(d, lin, quad)
    pos = np.repeat(np.arange(12)[:, None] * [10.0, 7.0], 5, axis=0)
    loads = np.tile(np.arange(1, 6) * 100.0, 12)
    fit = fit_plate_matrix(d, w, positions_mm=pos, loads_n=loads, quadratic=True, max_condition=1e9)
    np.testing.assert_allclose(fit.linear, lin, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(fit.quadratic, quad, rtol=1e-5, atol=1e-16)


def test_rigid_plate_rank_three_is_fitted_without_noise_amplification(box):
    """Minimum-norm statics (rigid top) give only three load patterns: the fit must still work."""
    fwd = np.diag(box.nominal_counts_per_n * np.array([1.02, 0.98, 1.01, 0.99]))
    rng = np.random.default_rng(3)
    rows_d, rows_w = [], []
    for (x, y) in grid_positions_mm(box):
        for m in [10, 20, 40, 60, 80]:
            f = rigid_plate_cell_loads_n(box, m * G, x, y)
            rows_d.append(fwd @ f + rng.normal(0, 100, 4))
            rows_w.append(wrench_from_point_load(m * G, x, y))
    fit = fit_plate_matrix(np.array(rows_d), np.array(rows_w))
    assert fit.rank == 3
    f = rigid_plate_cell_loads_n(box, 500.0, 60.0, -40.0)
    got = fit.apply(fwd @ f)
    assert abs(got[0] - 500.0) < 0.5
    np.testing.assert_allclose(cop_mm(got), [60.0, -40.0], atol=0.5)


def test_refuses_too_few_positions(box):
    fwd = true_forward(box)
    d, w, pos = design(box, [10, 20, 40, 60, 80], grid_positions_mm(box)[:4], fwd)
    with pytest.raises(FitError, match="only 4 distinct load positions; the fit needs at least 9"):
        fit_plate_matrix(d, w, positions_mm=pos)


def test_refuses_too_few_loads(box):
    fwd = true_forward(box)
    d, w, pos = design(box, [20, 40], grid_positions_mm(box), fwd)
    with pytest.raises(FitError, match="only 2 distinct loads"):
        fit_plate_matrix(d, w, positions_mm=pos)


def test_refuses_positions_on_one_line(box):
    fwd = true_forward(box)
    line = [(x, 0.0) for x in np.linspace(-180, 180, 9)]
    d, w, pos = design(box, [10, 20, 40, 60, 80], line, fwd)
    with pytest.raises(FitError, match="moment about one axis|do not separate"):
        fit_plate_matrix(d, w, positions_mm=pos)
    # nearly on a line: ill-conditioned, refused by the condition number
    near = [(x, 1e-4 * i) for i, x in enumerate(np.linspace(-180, 180, 9))]
    d, w, pos = design(box, [10, 20, 40, 60, 80], near, fwd)
    with pytest.raises(FitError, match="condition number"):
        fit_plate_matrix(d, w, positions_mm=np.round(pos))


def test_refuses_a_dead_cell(box):
    fwd = true_forward(box)
    d, w, pos = design(box, [10, 20, 40, 60, 80], grid_positions_mm(box), fwd)
    d[:, 2] = 0.0
    with pytest.raises(FitError, match=r"cell\(s\) \[2\] never responded"):
        fit_plate_matrix(d, w, positions_mm=pos)


def test_bad_shapes_are_value_errors():
    with pytest.raises(ValueError, match="wrench must be"):
        fit_plate_matrix(np.zeros((10, 4)), np.zeros((9, 3)))
    with pytest.raises(ValueError, match="counts have 3 cells but the matrix has 4"):
        apply_plate_matrix(np.zeros((2, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="signals must be"):
        apply_calibration_matrix(np.eye(6), np.zeros((5, 4)))


def test_nominal_matrix_is_exact_for_nominal_cells(box):
    for (x, y) in [(0, 0), (120, -90), (-200, 150)]:
        f = bilinear_loads(box, 700.0, x, y)
        w = nominal_matrix(box) @ (f * box.nominal_counts_per_n)
        np.testing.assert_allclose(w, wrench_from_point_load(700.0, x, y), atol=1e-9)
        np.testing.assert_allclose(cop_mm(w), [x, y], atol=1e-9)


def test_positions_and_cop_threshold(box):
    grid = grid_positions_mm(box)
    ver = verification_positions_mm(box)
    assert np.unique(grid, axis=0).shape[0] == 9
    assert np.all(np.abs(grid[:, 0]) <= 225) and np.all(np.abs(grid[:, 1]) <= 175)
    assert np.min(np.linalg.norm(ver[:, None, :] - grid[None, :, :], axis=2)) > 10.0
    assert np.all(np.isnan(cop_mm(np.array([[5.0, 1.0, 1.0]]))))
    with pytest.raises(ValueError):
        grid_positions_mm(box, 1)


def test_c3d_type4_cal_matrix_reproduces_ezc3d():
    import ezc3d

    path = REAL / "c3d_sample10" / "TYPE-4.C3D"
    c = ezc3d.c3d(str(path), extract_forceplat_data=True)
    fp = c["parameters"]["FORCE_PLATFORM"]
    assert int(fp["TYPE"]["value"][0]) == 4
    # ezc3d returns the parameter in C3D (Fortran) index order: value[i, j, plate] = CAL(i, j)
    cal = np.asarray(fp["CAL_MATRIX"]["value"], dtype=np.float64)[:, :, 0]
    chans = np.asarray(fp["CHANNEL"]["value"])[:, 0] - 1
    signals = c["data"]["analogs"][0][chans].T  # (n, 6), scaled analog values
    out = apply_calibration_matrix(cal, signals)
    f_local, m_local = out[:, :3], out[:, 3:]
    origin = -np.asarray(fp["ORIGIN"]["value"], dtype=np.float64)[:, 0]  # vector from plate origin to centre
    m_local = m_local + np.cross(f_local, origin)
    rot = plate_frame_from_corners(np.asarray(fp["CORNERS"]["value"], dtype=np.float64)[:, :, 0])
    pf = c["data"]["platform"][0]
    np.testing.assert_allclose((rot @ f_local.T), pf["force"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose((rot @ m_local.T), pf["moment"], rtol=1e-9, atol=1e-6)
    assert np.max(np.abs(pf["force"][2])) > 100.0  # the data really carry load
