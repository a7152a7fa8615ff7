"""Counts → newtons (calibration.apply and its kernels) against hand sums and plain NumPy."""

import math

import numpy as np
import pytest

from steplab.acquisition.rig import default_rig, split_box_rig
from steplab.calibration import _apply_kernels as K
from steplab.calibration.apply import (
    CalibratedMoments,
    apply_plate_matrix,
    calibrated_forces,
    calibrated_fz,
    checked_counts,
    saturated_samples,
)
from steplab.calibration.arrays import CalibrationArrays, nominal_calibration


def test_nominal_calibration_reproduces_force_and_cop():
    rig = default_rig()
    cal = nominal_calibration(rig)
    assert cal.calibration_id == "nominal" and len(cal.calibration_hash) == 64
    plate = rig.plate("floor_left")
    # 600 N at COP (30 mm, −80 mm): cell loads by bilinear weights, computed here by hand
    fz, x, y = 600.0, 0.030, -0.080
    counts = np.zeros((1, 12), dtype=np.int32)
    for c in plate.cells:
        w = 0.25 * (1 + math.copysign(1, c.x_mm) * x / 0.100) * (1 + math.copysign(1, c.y_mm) * y / 0.225)
        counts[0, c.channel] = round(fz * w * 4000.0)
    out = np.empty((3, 3, 1))
    total = np.empty(1)
    K.calibrate_counts(counts, cal.channel_index, cal.offsets_counts, cal.linear, cal.quadratic,
                       np.ones(3, dtype=np.bool_), out, total)
    p = cal.plate_index("floor_left")
    assert out[p, 0, 0] == pytest.approx(fz, abs=1e-3)
    assert -1000 * out[p, 2, 0] / out[p, 0, 0] == pytest.approx(30.0, abs=1e-3)   # COP_x = −My/Fz
    assert 1000 * out[p, 1, 0] / out[p, 0, 0] == pytest.approx(-80.0, abs=1e-3)   # COP_y = Mx/Fz
    assert total[0] == pytest.approx(fz, abs=1e-3)


def test_quadratic_term_and_offsets():
    ci = np.array([[0, 2, -1]])
    off = np.array([[100.0, -50.0, 0.0]])
    lin = np.zeros((1, 3, 3))
    lin[0, 0] = [0.5, 0.25, 9.0]
    quad = np.zeros((1, 3, 3))
    quad[0, 0] = [1e-3, 0.0, 9.0]
    cal = CalibrationArrays(("box",), ci, off, lin, quad, calibration_id="t")
    counts = np.array([[300, 7, -50]], dtype=np.int32)
    out = np.empty((1, 3, 1))
    total = np.empty(1)
    K.calibrate_counts(counts, cal.channel_index, cal.offsets_counts, cal.linear, cal.quadratic,
                       np.ones(1, dtype=np.bool_), out, total)
    # slot 0: c = 200 → 0.5·200 + 1e-3·200² = 140; slot 1 (channel 2): c = 0 → 0; slot 2 unused
    assert out[0, 0, 0] == pytest.approx(140.0)
    with pytest.raises(ValueError, match="linear"):
        CalibrationArrays(("box",), ci, off, lin[:, :2], quad)
    with pytest.raises(ValueError, match="NaN"):
        CalibrationArrays(("box",), ci, off * np.nan, lin, quad)


def _random_calibration(rng, rig, quadratic=True):
    nominal = nominal_calibration(rig)
    lin = nominal.linear * rng.uniform(0.9, 1.1, nominal.linear.shape)
    quad = rng.normal(0, 1e-9, nominal.quadratic.shape) if quadratic else np.zeros(nominal.quadratic.shape)
    off = rng.normal(0, 3000, nominal.offsets_counts.shape)
    return CalibrationArrays(nominal.plate_roles, nominal.channel_index, off, lin, quad, calibration_id="random")


def _numpy_wrench(counts, cal, p):
    """Plain NumPy: w = L·d + Q·d² for plate p (the independent truth)."""
    used = cal.channel_index[p] >= 0
    d = counts[:, cal.channel_index[p][used]].astype(np.float64) - cal.offsets_counts[p][used]
    return d @ cal.linear[p][:, used].T + (d * d) @ cal.quadratic[p][:, used].T


@pytest.mark.parametrize("rig_fn", [default_rig, split_box_rig])
def test_every_path_equals_the_numpy_model(rig_fn):
    rng = np.random.default_rng(11)
    rig = rig_fn()
    cal = _random_calibration(rng, rig)
    counts = rng.integers(-400_000, 400_000, (500, rig.channels)).astype(np.int32)
    forces = calibrated_forces(counts, cal)
    fz, total = calibrated_fz(counts, cal)
    moments = CalibratedMoments(counts, cal)
    assert moments.roles == cal.plate_roles
    for p, role in enumerate(cal.plate_roles):
        w = _numpy_wrench(counts, cal, p)
        scale = np.abs(w).max(axis=0)
        np.testing.assert_allclose(forces[role].fz_n, w[:, 0], rtol=0, atol=1e-9 * scale[0])
        np.testing.assert_allclose(forces[role].mx_nm, w[:, 1], rtol=0, atol=1e-9 * scale[1])
        np.testing.assert_allclose(forces[role].my_nm, w[:, 2], rtol=0, atol=1e-9 * scale[2])
        np.testing.assert_allclose(fz[p], w[:, 0], rtol=0, atol=1e-9 * scale[0])
        mx, my = moments(role, 120, 340)
        np.testing.assert_allclose(mx, w[120:340, 1], rtol=0, atol=1e-9 * scale[1])
        np.testing.assert_allclose(my, w[120:340, 2], rtol=0, atol=1e-9 * scale[2])
    np.testing.assert_allclose(total, sum(_numpy_wrench(counts, cal, p)[:, 0] for p in range(cal.n_plates)),
                               rtol=0, atol=1e-8 * np.abs(total).max())
    # int64 and int16 counts give the same forces as int32
    role = cal.plate_roles[0]
    for dtype in (np.int64, np.int16):
        small = (counts // 100).astype(dtype)
        np.testing.assert_array_equal(calibrated_forces(small, cal)[role].fz_n,
                                      calibrated_forces(small.astype(np.int32), cal)[role].fz_n)


def test_linear_only_fast_path_and_quadratic_path_agree_with_the_fused_kernel():
    rng = np.random.default_rng(5)
    rig = default_rig()
    for quadratic in (False, True):
        cal = _random_calibration(rng, rig, quadratic=quadratic)
        counts = rng.integers(-2_000_000, 2_000_000, (300, rig.channels)).astype(np.int32)
        fz, _ = calibrated_fz(counts, cal)
        forces = calibrated_forces(counts, cal)
        for p, role in enumerate(cal.plate_roles):
            np.testing.assert_allclose(fz[p], forces[role].fz_n, rtol=1e-12, atol=1e-9)


def test_apply_plate_matrix_is_the_matrix_model_for_any_leading_shape():
    rng = np.random.default_rng(2)
    lin = rng.normal(size=(3, 4))
    quad = rng.normal(size=(3, 4)) * 1e-6
    d = rng.normal(size=(7, 4)) * 1000
    ref = d @ lin.T + (d * d) @ quad.T
    np.testing.assert_allclose(apply_plate_matrix(d, lin, quad), ref, rtol=1e-12)
    np.testing.assert_allclose(apply_plate_matrix(d[3], lin, quad), ref[3], rtol=1e-12)  # (K,) → (3,)
    np.testing.assert_allclose(apply_plate_matrix(d.reshape(7, 1, 4), lin, quad), ref.reshape(7, 1, 3), rtol=1e-12)
    np.testing.assert_allclose(apply_plate_matrix(d, lin), d @ lin.T, rtol=1e-12)
    off = rng.normal(size=4) * 100
    np.testing.assert_allclose(apply_plate_matrix(d + off, lin, quad, offsets_counts=off), ref, rtol=1e-9)
    # a strided (non-contiguous) view gives the same answer
    big = rng.normal(size=(7, 8)) * 1000
    np.testing.assert_allclose(apply_plate_matrix(big[:, ::2], lin), big[:, ::2] @ lin.T, rtol=1e-12)
    with pytest.raises(ValueError, match="quadratic must have shape"):
        apply_plate_matrix(d, lin, quad[:, :3])
    with pytest.raises(ValueError, match="linear must be"):
        apply_plate_matrix(d, lin[:2])


def test_saturated_samples_count_frames_at_the_converter_limits_on_used_channels():
    rig = default_rig()
    cal = nominal_calibration(rig)
    counts = np.zeros((100, rig.channels), dtype=np.int32)
    counts[10, 0] = 2**23 - 1          # positive rail
    counts[20, 5] = -(2**23)           # negative rail
    counts[20, 6] = 2**23 - 1          # same frame: counted once
    counts[30, 3] = 2**23 - 2          # one count inside: not saturated
    assert saturated_samples(counts, cal) == 2
    unused = CalibrationArrays(cal.plate_roles, np.where(cal.channel_index == 0, -1, cal.channel_index),
                               cal.offsets_counts, cal.linear, cal.quadratic)
    assert saturated_samples(counts, unused) == 1  # channel 0 is not used by this calibration


def test_checked_counts_refuses_bad_input_in_one_line():
    cal = nominal_calibration(default_rig())
    with pytest.raises(ValueError, match="must be a CalibrationArrays"):
        checked_counts(np.zeros((3, 12), np.int32), object())
    with pytest.raises(ValueError, match="2-D"):
        checked_counts(np.zeros(12, np.int32), cal)
    with pytest.raises(ValueError, match="NaN or inf"):
        checked_counts(np.full((3, 12), np.nan), cal)
    with pytest.raises(ValueError, match="integers"):
        checked_counts(np.zeros((3, 12)), cal)
    with pytest.raises(ValueError, match="channel 11 but counts have 8"):
        checked_counts(np.zeros((3, 8), np.int32), cal)
    with pytest.raises(ValueError, match="at least 2"):
        checked_counts(np.zeros((1, 12), np.int32), cal, min_samples=2)
    with pytest.raises(ValueError, match="must be a CalibrationArrays"):
        calibrated_forces(np.zeros((3, 12), np.int32), None)
    out = checked_counts(np.zeros((3, 12), np.uint8), cal)
    assert out.dtype == np.int64 and out.flags.c_contiguous
    assert calibrated_forces(np.zeros((0, 12), np.int32), cal)["box"].fz_n.shape == (0,)
