"""Zero-lag filter against scipy's sosfiltfilt and analytic gains; counts → forces against hand sums."""

import math

import numpy as np
import pytest
from scipy import signal

from steplab.dsp import CalibrationArrays, nominal_calibration
from steplab.dsp import _kernels as K
from steplab.dsp.filters import design_lowpass, lowpass_zero_lag
from steplab.dsp.kinematics import com_velocity


def test_filter_matches_scipy_sosfiltfilt_with_same_padding():
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=3000)) + 50 * np.sin(np.arange(3000) / 40)
    for cutoff in (100.0, 10.0):
        sos, _, padlen = design_lowpass(4, cutoff, 1000.0)
        ref = signal.sosfiltfilt(signal.butter(2, cutoff / 500.0, output="sos"), x, padtype="odd", padlen=padlen)
        np.testing.assert_allclose(lowpass_zero_lag(x, 1000.0, cutoff), ref, rtol=0, atol=1e-9 * np.abs(x).max())


def test_zero_lag_gain_and_phase():
    rate, fc = 1000.0, 100.0
    t = np.arange(8000) / rate
    # at the cut-off each pass is −3 dB: forward + backward gives amplitude 0.5 and no phase shift
    y = lowpass_zero_lag(np.sin(2 * np.pi * fc * t), rate, fc)
    mid = slice(2000, 6000)
    ref = 0.5 * np.sin(2 * np.pi * fc * t)
    np.testing.assert_allclose(y[mid], ref[mid], atol=2e-3)
    # a constant and a line pass unchanged, ends included (odd reflection + steady-state start)
    np.testing.assert_allclose(lowpass_zero_lag(np.full(500, 700.0), rate, 10.0), 700.0, atol=1e-9)
    # a ramp: the one-cut-off-period pad leaves < 0.01 % of the ramp's forward-pass lag
    # (0.25/sample · 1000 Hz · √2/(2π·10 Hz) ≈ 5.6) at the ends; scipy's 9-sample default leaves ≫ that
    line = 3.0 + 0.25 * np.arange(500)
    np.testing.assert_allclose(lowpass_zero_lag(line, rate, 10.0), line, atol=0.02)
    default = signal.sosfiltfilt(signal.butter(2, 10.0 / 500.0, output="sos"), line)
    assert np.abs(default - line).max() > 0.1


def test_filter_edge_validation():
    with pytest.raises(ValueError, match="NaN"):
        lowpass_zero_lag(np.array([1.0, np.nan, 2.0]), 1000.0, 10.0)
    with pytest.raises(ValueError, match="Nyquist"):
        lowpass_zero_lag(np.ones(100), 100.0, 60.0)
    with pytest.raises(ValueError, match="at least 2"):
        lowpass_zero_lag(np.ones(1), 1000.0, 10.0)


def test_nominal_calibration_reproduces_force_and_cop():
    from steplab.acquisition.rig import default_rig

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


def test_com_velocity_of_constant_acceleration():
    rate, bw = 1000.0, 700.0
    m = bw / 9.80665
    f = np.full(2001, bw + m * 2.0)  # a = 2 m/s² exactly
    v = com_velocity(f, rate, bw)
    np.testing.assert_allclose(v, 2.0 * np.arange(2001) / rate, atol=1e-12)
    vb = com_velocity(f, rate, bw, backward=True)
    np.testing.assert_allclose(vb, 2.0 * (np.arange(2001) - 2000) / rate, atol=1e-12)
    with pytest.raises(ValueError, match="body weight"):
        com_velocity(f, rate, 0.0)


def test_warm_up_runs_every_protocol():
    from steplab.dsp.warmup import warm_up

    assert warm_up() < 60.0
