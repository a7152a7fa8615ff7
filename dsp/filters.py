"""Zero-lag Butterworth low-pass filtering (design by scipy, run by a numba kernel)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import signal

from steplab.dsp import _kernels as K


@lru_cache(maxsize=64)
def design_lowpass(zero_lag_order: int, cutoff_hz: float, rate_hz: float) -> tuple[np.ndarray, np.ndarray, int]:
    """SOS design, steady-state initial conditions and edge pad length.

    Parameters
    ----------
    zero_lag_order : int
        Even order of the forward-backward filter (a ``zero_lag_order/2`` design run twice).
    cutoff_hz, rate_hz : float
        Design cut-off and sample rate, Hz.

    Returns
    -------
    sos : (S, 6) float64, zi : (S, 2) float64 (per unit input), padlen : int
        ``padlen = max(3·(2·S+1), ceil(rate/cutoff))`` samples of odd reflection.
    """
    if zero_lag_order < 2 or zero_lag_order % 2:
        raise ValueError(f"zero-lag filter order must be a positive even integer, got {zero_lag_order}")
    if not (0.0 < cutoff_hz < 0.5 * rate_hz):
        raise ValueError(f"filter cut-off {cutoff_hz} Hz must lie between 0 and the Nyquist frequency {0.5 * rate_hz} Hz")
    sos = signal.butter(zero_lag_order // 2, cutoff_hz / (0.5 * rate_hz), btype="low", output="sos")
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    zi = np.ascontiguousarray(signal.sosfilt_zi(sos), dtype=np.float64)
    n_sections = sos.shape[0]
    ntaps = 2 * n_sections + 1
    ntaps -= min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    # scipy's default (3·ntaps) is too short for low cut-offs: a ramp entering the
    # forward pass leaves a lag transient of ~1/(2π·fc) s.  Pad by at least one
    # cut-off period (rate/cutoff samples) so edge transients decay inside the pad.
    padlen = max(3 * ntaps, int(math.ceil(rate_hz / cutoff_hz)))
    sos.setflags(write=False)
    zi.setflags(write=False)
    return sos, zi, padlen


def filtfilt_rows_inplace(x: np.ndarray, out: np.ndarray, zero_lag_order: int, cutoff_hz: float, rate_hz: float,
                          total_out: np.ndarray | None = None) -> None:
    """Filter each row of a float64 (m, n) array into ``out`` (no validation).

    With ``total_out`` (n,), the sum of the filtered rows is written there too; the
    rows are filtered together (interleaved, one pass) for speed.
    """
    sos, zi, padlen = design_lowpass(int(zero_lag_order), float(cutoff_hz), float(rate_hz))
    n = x.shape[1]
    if n <= padlen:
        # too short for the edge padding: fall back to a shorter reflection
        padlen = max(0, n - 1)
    if total_out is None:
        K.filtfilt_rows(x, sos, zi, padlen, out)
    else:
        K.filtfilt_rows_sum(x, sos, zi, padlen, out, total_out)


def lowpass_zero_lag(x: np.ndarray, rate_hz: float, cutoff_hz: float, zero_lag_order: int = 4) -> np.ndarray:
    """Zero-lag Butterworth low-pass of a 1-D signal.

    A ``zero_lag_order/2``-order Butterworth (``scipy.signal.butter(..., output="sos")``)
    run forward and backward.  The ends are padded by odd reflection (``2·x[0] − x[k]``)
    over ``max(3·(2·sections+1), ceil(rate/cutoff))`` samples (the first is
    scipy's default, the second one cut-off period so edge transients of a ramp
    decay inside the pad) and each pass starts from the filter's
    steady state for the first padded sample, as ``scipy.signal.sosfiltfilt``.

    Parameters
    ----------
    x : array_like, float (n,)
        Signal (any unit), finite, n ≥ 2.
    rate_hz : float
        Sample rate, Hz.
    cutoff_hz : float
        −3 dB cut-off of each pass, Hz (0 < cutoff < rate/2).
    zero_lag_order : int
        Even overall order (default 4).

    Returns
    -------
    numpy.ndarray, float64 (n,)
    """
    a = np.ascontiguousarray(x, dtype=np.float64)
    if a.ndim != 1 or a.shape[0] < 2:
        raise ValueError(f"signal must be 1-D with at least 2 samples, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("signal holds NaN or inf samples")
    if not (np.isfinite(rate_hz) and rate_hz > 0):
        raise ValueError(f"sample rate must be a positive finite number, got {rate_hz}")
    out = np.empty((1, a.shape[0]))
    filtfilt_rows_inplace(a.reshape(1, -1), out, zero_lag_order, cutoff_hz, rate_hz)
    return out[0]
