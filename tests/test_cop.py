"""calibration.cop.cop_mm, the one COP function, against analytic truths: point loads, the
cop_min_force_n threshold, and the shear × origin-height terms of a plate whose moments are
taken about a point below its surface."""

import warnings

import numpy as np
import pytest

from steplab.calibration.cop import cop_mm


def _wrench_about(point_mm, force_n, ref_mm, free_tz_nm=0.0):
    """(F, M) about ``ref_mm`` of a force applied at ``point_mm`` plus a free moment about z (plain cross product)."""
    r_m = (np.asarray(point_mm, float) - np.asarray(ref_mm, float)) / 1000.0
    f = np.asarray(force_n, float)
    return f, np.cross(r_m, f) + np.array([0.0, 0.0, free_tz_nm])


def test_vertical_point_loads_give_their_position():
    rng = np.random.default_rng(1)
    x = rng.uniform(-200, 200, 50)
    y = rng.uniform(-250, 250, 50)
    fz = rng.uniform(25, 1500, 50)
    mx = fz * y / 1000.0  # moments about the surface centre: Mx = y·Fz, My = −x·Fz
    my = -fz * x / 1000.0
    cx, cy = cop_mm(fz, mx, my, min_force_n=20.0)
    np.testing.assert_allclose(cx, x, rtol=0, atol=1e-9)
    np.testing.assert_allclose(cy, y, rtol=0, atol=1e-9)


def test_nan_below_the_threshold_and_never_huge():
    fz = np.array([0.0, 1e-9, 5.0, 19.999, 20.0, 700.0, -50.0, np.nan])
    mx = np.full(fz.shape, 0.5)
    my = np.full(fz.shape, -0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division warnings either
        x, y = cop_mm(fz, mx, my, min_force_n=20.0)
    ok = np.array([False, False, False, False, True, True, False, False])
    assert np.array_equal(np.isfinite(x), ok) and np.array_equal(np.isfinite(y), ok)
    assert x[4] == pytest.approx(250.0 / 20.0) and y[5] == pytest.approx(500.0 / 700.0)
    # the threshold is the caller's: 5 N keeps the 5 N sample; -inf keeps every non-zero force
    x5, _ = cop_mm(fz, mx, my, min_force_n=5.0)
    assert np.isfinite(x5[2]) and not np.isfinite(x5[1])
    xa, _ = cop_mm(fz, mx, my, min_force_n=-np.inf)
    assert np.array_equal(np.isfinite(xa), [False, True, True, True, True, True, True, False])


def test_shear_and_origin_height_terms():
    # a C3D-style plate: moments about the origin 40 mm below the surface centre; a foot pushing
    # down and sideways at (55, -120) mm on the surface, with a free moment about z
    point = (55.0, -120.0, 0.0)
    ref = (0.0, 0.0, -40.0)
    for force in ((30.0, -45.0, 650.0), (-80.0, 10.0, 300.0), (0.0, 0.0, 900.0)):
        f, m = _wrench_about(point, force, ref, free_tz_nm=1.7)
        x, y = cop_mm(f[2], m[0], m[1], min_force_n=20.0, fx_n=f[0], fy_n=f[1], z0_mm=40.0)
        assert float(x) == pytest.approx(55.0, abs=1e-9) and float(y) == pytest.approx(-120.0, abs=1e-9)
    # leaving the shear terms out is wrong by h·F_shear/Fz (the test can fail)
    f, m = _wrench_about(point, (30.0, -45.0, 650.0), ref)
    x0, y0 = cop_mm(f[2], m[0], m[1], min_force_n=20.0)
    assert float(x0) - 55.0 == pytest.approx(-40.0 * 30.0 / 650.0) and float(y0) + 120.0 == pytest.approx(-40.0 * -45.0 / 650.0)
    # the same force system with all signs flipped (reaction instead of action) gives the same COP
    xr, yr = cop_mm(-f[2], -m[0], -m[1], min_force_n=-np.inf, fx_n=-f[0], fy_n=-f[1], z0_mm=40.0)
    assert float(xr) == pytest.approx(55.0) and float(yr) == pytest.approx(-120.0)


def test_arrays_broadcast_and_bad_arguments_are_refused():
    fz = np.full((2, 3), 100.0)
    x, y = cop_mm(fz, 1.0, np.zeros((2, 3)), min_force_n=20.0)
    assert x.shape == y.shape == (2, 3) and np.all(y == 10.0) and np.all(x == 0.0)
    with pytest.raises(ValueError, match="NaN"):
        cop_mm(fz, 1.0, 1.0, min_force_n=float("nan"))
    with pytest.raises(ValueError, match="shear"):
        cop_mm(fz, 1.0, 1.0, min_force_n=20.0, z0_mm=40.0)
    with pytest.raises(ValueError, match="numbers"):
        cop_mm(fz, 1.0, 1.0, min_force_n="twenty")
    with pytest.raises(TypeError):
        cop_mm(fz, 1.0, 1.0)  # the threshold is required: every caller states it


def test_the_importers_plate_cop_is_this_cop():
    """records.importers.plate_cop_mm is to call cop_mm (decision 0009): both give the same COP and NaNs."""
    from steplab.dsp import PlateForces
    from steplab.records.importers import plate_cop_mm

    rng = np.random.default_rng(9)
    fz = np.r_[rng.uniform(-10, 1200, 300), 20.0, 19.99]
    mx = rng.normal(0, 50, fz.size)
    my = rng.normal(0, 50, fz.size)
    for thr in (20.0, 5.0):
        ours = np.column_stack(cop_mm(fz, mx, my, min_force_n=thr))
        theirs = plate_cop_mm(PlateForces(fz, mx, my), cop_min_force_n=thr)
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, equal_nan=True)
    assert np.isnan(plate_cop_mm(PlateForces(fz)))[:, :].all()  # no moments: no COP
