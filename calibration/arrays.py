"""Calibration as flat arrays the numba kernels consume: counts → (Fz, Mx, My) per plate.

The one home of a rig's calibration in memory (decision 0009): records, the live
path, importers and the analysis pipeline all hand these arrays to
``steplab.calibration.apply``, the one implementation of counts → newtons.

For plate ``p`` and slot ``k`` (one load cell), with ``c = counts[:, channel_index[p, k]]
- offsets_counts[p, k]``::

    Fz_p = Σ_k linear[p, 0, k]·c + quadratic[p, 0, k]·c²     [N]
    Mx_p = Σ_k linear[p, 1, k]·c + quadratic[p, 1, k]·c²     [N·m]
    My_p = Σ_k linear[p, 2, k]·c + quadratic[p, 2, k]·c²     [N·m]

Slots with ``channel_index == -1`` are unused (plates with fewer cells than ``K``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


def _hash_arrays(plate_roles, channel_index, offsets, linear, quadratic) -> str:
    h = hashlib.sha256()
    h.update(repr(tuple(plate_roles)).encode())
    for a, dt in ((channel_index, "<i8"), (offsets, "<f8"), (linear, "<f8"), (quadratic, "<f8")):
        arr = np.ascontiguousarray(a, dtype=dt)
        h.update(repr(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class CalibrationArrays:
    """Per-plate linear (+ optional quadratic) map from cell counts to Fz [N], Mx, My [N·m].

    Attributes
    ----------
    plate_roles : tuple of str
        Role of each plate ``p`` (``"box"``, ``"floor_left"``, ``"floor_right"``, ...).
    channel_index : numpy.ndarray
        int64 (P, K): wire channel of slot ``k`` of plate ``p``; -1 = unused slot.
    offsets_counts : numpy.ndarray
        float64 (P, K): tare offset subtracted from each slot's counts.
    linear : numpy.ndarray
        float64 (P, 3, K): rows (Fz [N], Mx [N·m], My [N·m]) per count.
    quadratic : numpy.ndarray
        float64 (P, 3, K): applied to (count − offset)²; zeros when none.
    calibration_id : str
        Name of the calibration record (``"nominal"`` for the nominal one).
    calibration_hash : str
        SHA-256 naming the arrays; computed from them when given as ``""``.
    """

    plate_roles: tuple[str, ...]
    channel_index: np.ndarray
    offsets_counts: np.ndarray
    linear: np.ndarray
    quadratic: np.ndarray
    calibration_id: str = "unnamed"
    calibration_hash: str = ""

    def __post_init__(self) -> None:
        roles = tuple(str(r) for r in self.plate_roles)
        ci = np.ascontiguousarray(self.channel_index, dtype=np.int64)
        if ci.ndim != 2 or ci.shape[0] != len(roles) or ci.shape[1] < 1:
            raise ValueError(f"channel_index must be (P, K) with P = {len(roles)} plates, got shape {ci.shape}")
        p, k = ci.shape
        off = np.ascontiguousarray(self.offsets_counts, dtype=np.float64)
        lin = np.ascontiguousarray(self.linear, dtype=np.float64)
        quad = np.ascontiguousarray(self.quadratic, dtype=np.float64)
        if off.shape != (p, k):
            raise ValueError(f"offsets_counts must have shape {(p, k)}, got {off.shape}")
        if lin.shape != (p, 3, k):
            raise ValueError(f"linear must have shape {(p, 3, k)}, got {lin.shape}")
        if quad.shape != (p, 3, k):
            raise ValueError(f"quadratic must have shape {(p, 3, k)}, got {quad.shape}")
        if np.any(ci < -1):
            raise ValueError("channel_index entries must be >= 0 or -1 (unused slot)")
        for name, a in (("offsets_counts", off), ("linear", lin), ("quadratic", quad)):
            if not np.all(np.isfinite(a)):
                raise ValueError(f"calibration {name} holds NaN or inf")
        if len(set(roles)) != len(roles):
            raise ValueError(f"plate roles must be unique, got {roles}")
        for frozen in (ci, off, lin, quad):
            frozen.setflags(write=False)
        object.__setattr__(self, "plate_roles", roles)
        object.__setattr__(self, "channel_index", ci)
        object.__setattr__(self, "offsets_counts", off)
        object.__setattr__(self, "linear", lin)
        object.__setattr__(self, "quadratic", quad)
        if not self.calibration_hash:
            object.__setattr__(self, "calibration_hash", _hash_arrays(roles, ci, off, lin, quad))

    @property
    def n_plates(self) -> int:
        return len(self.plate_roles)

    @property
    def max_channel(self) -> int:
        """Highest wire channel used (-1 if none)."""
        return int(self.channel_index.max()) if self.channel_index.size else -1

    def plate_index(self, role: str) -> int:
        try:
            return self.plate_roles.index(role)
        except ValueError:
            raise ValueError(f"calibration has no plate with role {role!r} (has {self.plate_roles})") from None


def nominal_calibration(rig) -> CalibrationArrays:
    """The nominal calibration of a rig: each cell's ``nominal_counts_per_n``, zero offsets.

    ``Fz = Σ g·c``, ``Mx = Σ g·c·y_m``, ``My = −Σ g·c·x_m`` with ``g = 1/nominal_counts_per_n``
    [N/count] and ``x_m, y_m`` the cell position in metres (plate frame).

    Parameters
    ----------
    rig : steplab.acquisition.rig.Rig
        The rig description (plates, cells, channel map).

    Returns
    -------
    CalibrationArrays
        With ``calibration_id == "nominal"``.
    """
    plates = tuple(rig.plates)
    if not plates:
        raise ValueError("rig has no plates")
    k = max(len(p.cells) for p in plates)
    n_p = len(plates)
    ci = np.full((n_p, k), -1, dtype=np.int64)
    off = np.zeros((n_p, k))
    lin = np.zeros((n_p, 3, k))
    quad = np.zeros((n_p, 3, k))
    for i, p in enumerate(plates):
        m = len(p.cells)
        ci[i, :m] = [int(c.channel) for c in p.cells]
        lin[i, :, :m] = nominal_plate_matrix([c.nominal_counts_per_n for c in p.cells],
                                             [(c.x_mm, c.y_mm) for c in p.cells])
    return CalibrationArrays(tuple(p.role for p in plates), ci, off, lin, quad, calibration_id="nominal")


def nominal_plate_matrix(counts_per_n, cell_xy_mm) -> np.ndarray:
    """The nominal (3, K) matrix of one plate from its cells' sensitivities and positions.

    ``Fz = Σ g_k·c_k``, ``Mx = Σ g_k·c_k·y_k``, ``My = −Σ g_k·c_k·x_k`` with
    ``g_k = 1/counts_per_n[k]`` [N/count] and ``(x_k, y_k)`` the cell position in metres
    (plate frame: x right, y forward, z up, origin at the top-surface centre): what a
    plate "calibrated" with one centred mass and a quarter per cell assumes.

    Parameters
    ----------
    counts_per_n : array_like
        (K,) nominal sensitivity of each cell [counts/N], positive.
    cell_xy_mm : array_like
        (K, 2) cell positions [mm].

    Returns
    -------
    numpy.ndarray
        float64 (3, K): rows Fz [N/count], Mx [N·m/count], My [N·m/count].
    """
    s = np.asarray(counts_per_n, dtype=np.float64)
    xy = np.asarray(cell_xy_mm, dtype=np.float64)
    if s.ndim != 1 or xy.shape != (s.size, 2):
        raise ValueError(f"counts_per_n must be (K,) and cell_xy_mm (K, 2), got {s.shape} and {xy.shape}")
    if not np.all(s > 0):
        raise ValueError("nominal counts_per_n must be positive for every cell")
    g = 1.0 / s
    # (g·y)/1000, the arithmetic of every nominal calibration so far: its hash is unchanged
    return np.vstack([g, g * xy[:, 1] / 1000.0, -g * xy[:, 0] / 1000.0])
