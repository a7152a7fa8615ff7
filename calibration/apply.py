"""Counts → newtons: the one implementation of applying a calibration (decision 0009).

Everything that turns cell counts into plate force and moments goes through the
numba kernels behind these functions: the analysis pipeline (``calibrated_fz`` +
``CalibratedMoments``), the live view and the importers (``calibrated_forces``),
the fit, the accuracy report and the tare (``apply_plate_matrix`` on one plate).

Model, per plate ``p`` and slot ``k`` with ``d = counts[:, channel] − offset``
[counts]: ``w = Σ_k L[:, k]·d_k + Q[:, k]·d_k²`` with ``w = (Fz [N], Mx [N·m], My [N·m])``
about the plate's surface centre (plate frame: x right, y forward, z up).
"""

from __future__ import annotations

import numpy as np

from steplab.constants import ADC_MAX_COUNTS, ADC_MIN_COUNTS

from . import _apply_kernels as K
from .arrays import CalibrationArrays
from .forces import PlateForces


def checked_counts(counts, calibration: CalibrationArrays, *, min_samples: int = 1) -> np.ndarray:
    """Validate raw counts for ``calibration``; C-contiguous int32/int64 (n, channels) out.

    Raises ValueError (one line) for a calibration of the wrong type, counts that are
    not a 2-D integer array of at least ``min_samples`` rows, or too few channels.
    """
    if not isinstance(calibration, CalibrationArrays):
        raise ValueError(f"calibration must be a CalibrationArrays, got {type(calibration).__name__}")
    c = np.asarray(counts)
    if c.ndim != 2:
        raise ValueError(f"counts must be a 2-D array (samples, channels), got shape {c.shape}")
    if c.dtype.kind not in "iu":
        if c.dtype.kind == "f" and not np.all(np.isfinite(c)):
            raise ValueError("counts hold NaN or inf values")
        raise ValueError(f"counts must be integers (int32 ADC counts), got dtype {c.dtype}")
    if c.shape[0] < min_samples:
        raise ValueError(f"counts hold {c.shape[0]} sample(s); at least {min_samples} are needed")
    if calibration.max_channel >= c.shape[1]:
        raise ValueError(f"calibration uses channel {calibration.max_channel} but counts have {c.shape[1]} channels")
    if c.dtype != np.int32 and c.dtype != np.int64:
        c = c.astype(np.int64)
    return np.ascontiguousarray(c)


def calibrated_forces(counts: np.ndarray, calibration: CalibrationArrays) -> dict[str, PlateForces]:
    """Apply a calibration to raw counts: role → PlateForces (Fz [N], Mx, My [N·m]).

    One fused pass over the frames (each frame read once).

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
    c = checked_counts(counts, calibration, min_samples=0)
    n_p = calibration.n_plates
    out = np.empty((n_p, 3, c.shape[0]))
    total = np.empty(c.shape[0])
    K.calibrate_counts(c, calibration.channel_index, calibration.offsets_counts, calibration.linear,
                       calibration.quadratic, np.ones(n_p, dtype=np.bool_), out, total)
    return {r: PlateForces(fz_n=out[i, 0], mx_nm=out[i, 1], my_nm=out[i, 2]) for i, r in enumerate(calibration.plate_roles)}


def calibrated_fz(counts: np.ndarray, calibration: CalibrationArrays) -> tuple[np.ndarray, np.ndarray]:
    """Vertical force only: (Fz (P, n) [N] in plate order, their sum (n,) [N]).

    The fast path of the analysis: only the Fz row is applied (one pass per plate);
    moments follow on demand from :class:`CalibratedMoments`.  ``counts`` as
    ``calibrated_forces`` (validated by :func:`checked_counts`).
    """
    c = checked_counts(counts, calibration, min_samples=0)
    n = c.shape[0]
    n_p = calibration.n_plates
    fz = np.empty((n_p, n))
    total = np.empty(n)
    quad = calibration.quadratic[:, 0, :]
    K.calibrate_fz(c, calibration.channel_index, calibration.offsets_counts, calibration.linear[:, 0, :],
                   quad, bool(np.any(quad != 0.0)), np.ones(n_p, dtype=np.bool_), fz, total)
    return fz, total


class CalibratedMoments:
    """Plate moments (Mx, My) [N·m] from the counts, computed only over the frames asked for.

    The analysis reads moments (for COP) only inside a few windows of a trial; this
    applies the Mx and My rows of the calibration there and nowhere else.

    Parameters
    ----------
    counts : numpy.ndarray
        Raw counts (n, channels), as returned by :func:`checked_counts` (not copied).
    calibration : CalibrationArrays
    """

    def __init__(self, counts: np.ndarray, calibration: CalibrationArrays) -> None:
        self.counts = checked_counts(counts, calibration, min_samples=0)
        self.calibration = calibration

    @property
    def roles(self) -> tuple[str, ...]:
        """Plates this source has moments for."""
        return self.calibration.plate_roles

    def __call__(self, role: str, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(Mx, My) [N·m] of plate ``role`` over frames [lo, hi), float64 (hi − lo,) each."""
        cal = self.calibration
        p = cal.plate_index(role)
        lo = max(0, int(lo))
        hi = max(lo, min(int(hi), self.counts.shape[0]))
        mx = np.empty(hi - lo)
        my = np.empty(hi - lo)
        K.calibrate_moments(self.counts, lo, hi, cal.channel_index[p], cal.offsets_counts[p], cal.linear[p],
                            cal.quadratic[p], mx, my)
        return mx, my


def saturated_samples(counts: np.ndarray, calibration: CalibrationArrays) -> int:
    """Frames in which any channel the calibration uses sits at the 24-bit converter's limits.

    metrics.md § Provenance: saturated samples are counted (and flagged by the analysis).
    """
    c = checked_counts(counts, calibration, min_samples=0)
    ci = calibration.channel_index
    used = np.unique(ci[ci >= 0]).astype(np.int64)
    return int(K.count_saturated_rows(c, used, ADC_MIN_COUNTS, ADC_MAX_COUNTS))


def apply_plate_matrix(delta_counts, linear, quadratic=None, *, offsets_counts=None) -> np.ndarray:
    """Apply ``w = L·d + Q·d²`` to one plate's counts (``d = counts − offsets``).

    The kernel of :func:`calibrated_forces` on one plate whose slots are the
    columns of ``delta_counts`` (float counts allowed: means of readings).

    Parameters
    ----------
    delta_counts : array_like
        (..., K) counts minus tare offsets [counts] (or raw counts with ``offsets_counts``).
    linear : array_like
        (3, K) [N/count, N·m/count].
    quadratic : array_like or None
        (3, K) [N/count², N·m/count²]; None for a linear calibration.
    offsets_counts : array_like or None
        (K,) offsets subtracted first [counts]; None: the counts are already offset-free.

    Returns
    -------
    numpy.ndarray
        (..., 3) wrench (Fz [N], Mx [N·m], My [N·m]).
    """
    d = np.asarray(delta_counts, dtype=np.float64)
    lin = np.asarray(linear, dtype=np.float64)
    if lin.ndim != 2 or lin.shape[0] != 3:
        raise ValueError(f"linear must be (3, K), got shape {lin.shape}")
    k = lin.shape[1]
    if d.ndim < 1 or d.shape[-1] != k:
        raise ValueError(f"counts have {d.shape[-1] if d.ndim else 0} cells but the matrix has {k}")
    if quadratic is None:
        quad = np.zeros_like(lin)
    else:
        quad = np.asarray(quadratic, dtype=np.float64)
        if quad.shape != lin.shape:
            raise ValueError(f"quadratic must have shape {lin.shape}, got {quad.shape}")
    if offsets_counts is None:
        off = np.zeros((1, k))
    else:
        off = np.asarray(offsets_counts, dtype=np.float64)
        off = np.broadcast_to(off, (k,)).reshape(1, k)
    flat = np.ascontiguousarray(d.reshape(-1, k))
    n = flat.shape[0]
    out = np.empty((1, 3, n))
    total = np.empty(n)
    K.calibrate_counts(flat, np.arange(k, dtype=np.int64).reshape(1, k), np.ascontiguousarray(off),
                       np.ascontiguousarray(lin).reshape(1, 3, k), np.ascontiguousarray(quad).reshape(1, 3, k),
                       np.ones(1, dtype=np.bool_), out, total)
    return np.ascontiguousarray(out[0].T).reshape(d.shape[:-1] + (3,))
