"""Zero-lag filter against scipy's sosfiltfilt and analytic gains; COM velocity of a known acceleration; warm-up.

(Counts → forces moved with the calibration kernels: tests/test_calibration_apply.py.)
"""

import numpy as np
import pytest
from scipy import signal

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


def test_pipeline_warm_up_compiles_calibration_and_dsp_kernels():
    from steplab.analysis_pipeline import warm_up
    from steplab.calibration import _apply_kernels as CK
    from steplab.dsp import _kernels as K

    assert warm_up() >= 0.0
    for kernel in (CK.calibrate_counts, CK.calibrate_fz, CK.calibrate_moments, CK.count_saturated_rows,
                   K.filtfilt_rows, K.min_sd_window, K.contact_events, K.integrate_velocity):
        assert kernel.signatures, f"{kernel.__name__} was not compiled by the warm-up"
    # int32 counts (the decoder's and the trial files') and float counts (fit, report, tare)
    kinds = {str(sig[0].dtype) for sig in CK.calibrate_counts.signatures}
    assert {"int32", "float64"} <= kinds
