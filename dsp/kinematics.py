"""Centre-of-mass kinematics by impulse–momentum (metrics.md § Centre-of-mass kinematics)."""

from __future__ import annotations

import numpy as np

from steplab.constants import G_M_S2  # metrics.md § Conventions
from steplab.dsp import _kernels as K

__all__ = ["G_M_S2", "com_velocity"]


def com_velocity(force_n: np.ndarray, rate_hz: float, body_weight_n: float, start: int = 0,
                 stop: int | None = None, backward: bool = False) -> np.ndarray:
    """COM vertical velocity (m/s, up positive) from the total vertical force.

    ``a = (F − BW)/m``, ``m = BW/g``, integrated by the trapezoid rule with ``v = 0``
    at sample ``start`` (forward) or at sample ``stop − 1`` (``backward=True``).

    Parameters
    ----------
    force_n : array (n,), total vertical force, N (unfiltered).
    rate_hz : sample rate, Hz.
    body_weight_n : body weight, N (> 0).
    start, stop : sample range integrated (default the whole signal).
    backward : integrate backwards from the end of the range.

    Returns
    -------
    numpy.ndarray (stop − start,), m/s.
    """
    f = np.ascontiguousarray(force_n, dtype=np.float64)
    if f.ndim != 1 or f.shape[0] < 2:
        raise ValueError(f"force must be 1-D with at least 2 samples, got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("force holds NaN or inf samples")
    if not (np.isfinite(rate_hz) and rate_hz > 0):
        raise ValueError(f"sample rate must be positive and finite, got {rate_hz}")
    if not (np.isfinite(body_weight_n) and body_weight_n > 0):
        raise ValueError(f"body weight must be positive and finite, got {body_weight_n}")
    stop = f.shape[0] if stop is None else int(stop)
    if not (0 <= start < stop <= f.shape[0]):
        raise ValueError(f"sample range [{start}, {stop}) is not inside the signal of {f.shape[0]} samples")
    v = np.zeros(f.shape[0])
    mass = body_weight_n / G_M_S2
    if backward:
        K.integrate_velocity_backward(f, start, stop, body_weight_n, mass, 1.0 / rate_hz, v)
    else:
        K.integrate_velocity(f, start, stop, body_weight_n, mass, 1.0 / rate_hz, v)
    return v[start:stop]
