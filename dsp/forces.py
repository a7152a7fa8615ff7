"""Calibrated plate signals from raw counts (the numba kernel of the analysis path)."""

from __future__ import annotations

import numpy as np

from steplab.dsp import _kernels as K
from steplab.dsp.calibration_arrays import CalibrationArrays
from steplab.dsp.params import PlateForces


def calibrated_forces(counts: np.ndarray, calibration: CalibrationArrays) -> dict[str, PlateForces]:
    """Apply a calibration to raw counts: role → PlateForces (Fz [N], Mx, My [N·m]).

    Parameters
    ----------
    counts : numpy.ndarray
        Integer ADC counts, shape (n samples, channels); every channel the
        calibration uses must exist.
    calibration : CalibrationArrays
        Offsets [counts], linear and quadratic terms per plate.

    Returns
    -------
    dict
        Plate role → PlateForces with float64 (n,) arrays, in the calibration's plate order.
    """
    if not isinstance(calibration, CalibrationArrays):
        raise ValueError(f"calibration must be a CalibrationArrays, got {type(calibration).__name__}")
    c = np.asarray(counts)
    if c.ndim != 2:
        raise ValueError(f"counts must be 2-D (samples, channels), got shape {c.shape}")
    if c.dtype.kind not in "iu":
        raise ValueError(f"counts must be integers (ADC counts), got dtype {c.dtype}")
    if calibration.max_channel >= c.shape[1]:
        raise ValueError(f"calibration uses channel {calibration.max_channel} but the counts have {c.shape[1]} channels")
    if c.dtype != np.int32 and c.dtype != np.int64:
        c = c.astype(np.int64)
    c = np.ascontiguousarray(c)
    n_p = len(calibration.plate_roles)
    out = np.empty((n_p, 3, c.shape[0]))
    total = np.empty(c.shape[0])
    K.calibrate_counts(c, calibration.channel_index, calibration.offsets_counts, calibration.linear,
                       calibration.quadratic, np.ones(n_p, dtype=np.bool_), out, total)
    return {r: PlateForces(fz_n=out[i, 0], mx_nm=out[i, 1], my_nm=out[i, 2]) for i, r in enumerate(calibration.plate_roles)}
