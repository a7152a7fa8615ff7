"""Plate geometry for calibration: cell positions, load positions, wrenches and COP.

Conventions (shared with ``calibration.arrays``): each plate has its own frame,
x to the subject's right, y forward, z up, origin at the plate centre on the top
surface; positions in millimetres. A vertical load of ``Fz`` newtons at ``(x, y)``
has moments about the plate origin ``Mx = y·Fz`` and ``My = −x·Fz`` (N·m, with x, y
in metres), so the centre of pressure is ``x = −My/Fz``, ``y = Mx/Fz``
(``calibration.cop.cop_mm``, the one COP function).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from steplab.acquisition.rig import Plate, Rig

from . import cop
from .arrays import CalibrationArrays, nominal_plate_matrix

__all__ = ["PlateGeometry", "plate_geometry", "grid_positions_mm", "verification_positions_mm",
           "wrench_from_point_load", "cop_mm", "nominal_matrix", "rigid_plate_cell_loads_n", "plate_frame_from_corners",
           "merge_plates"]


@dataclass(frozen=True)
class PlateGeometry:
    """What calibration needs to know about one plate.

    Attributes
    ----------
    name, role : str
        Plate name and role from the rig description.
    width_mm, length_mm : float
        Plate top size along x and y [mm].
    channels : tuple of int
        Wire channel of each cell, in the plate's cell order.
    cell_names : tuple of str
        Name of each cell.
    cell_xy_mm : numpy.ndarray
        float64 (K, 2): cell positions in the plate frame [mm].
    capacity_n : float
        Rated capacity of the plate (sum of its cells) [N]; the "full scale".
    nominal_counts_per_n : numpy.ndarray
        float64 (K,): nominal sensitivity of each cell [counts/N].
    """

    name: str
    role: str
    width_mm: float
    length_mm: float
    channels: tuple[int, ...]
    cell_names: tuple[str, ...]
    cell_xy_mm: np.ndarray
    capacity_n: float
    nominal_counts_per_n: np.ndarray

    @property
    def n_cells(self) -> int:
        return len(self.channels)

    def to_dict(self) -> dict:
        """JSON-ready description (stored in calibration records)."""
        return {
            "name": self.name,
            "role": self.role,
            "width_mm": float(self.width_mm),
            "length_mm": float(self.length_mm),
            "channels": [int(c) for c in self.channels],
            "cell_names": list(self.cell_names),
            "cell_xy_mm": [[float(v) for v in row] for row in self.cell_xy_mm],
            "capacity_n": float(self.capacity_n),
            "nominal_counts_per_n": [float(v) for v in self.nominal_counts_per_n],
        }


def plate_geometry(rig: Rig, plate: str | Plate) -> PlateGeometry:
    """Geometry of one plate of ``rig`` (by name, role or the Plate itself).

    Raises
    ------
    ValueError
        If the rig has no such plate (``RigError`` is a ValueError).
    """
    p = plate if isinstance(plate, Plate) else rig.plate(plate)
    xy = np.array([[c.x_mm, c.y_mm] for c in p.cells], dtype=np.float64)
    xy.setflags(write=False)
    sens = np.array([c.nominal_counts_per_n for c in p.cells], dtype=np.float64)
    sens.setflags(write=False)
    return PlateGeometry(
        name=p.name,
        role=p.role,
        width_mm=float(p.width_mm),
        length_mm=float(p.length_mm),
        channels=tuple(int(c.channel) for c in p.cells),
        cell_names=tuple(c.name for c in p.cells),
        cell_xy_mm=xy,
        capacity_n=float(p.capacity_n),
        nominal_counts_per_n=sens,
    )


def _cell_box(geom: PlateGeometry) -> tuple[float, float, float, float]:
    x = geom.cell_xy_mm[:, 0]
    y = geom.cell_xy_mm[:, 1]
    return float(x.min()), float(x.max()), float(y.min()), float(y.max())


def grid_positions_mm(geom: PlateGeometry, n_per_axis: int = 3, reach: float = 0.85) -> np.ndarray:
    """Load positions on an ``n × n`` grid spanning the cells (fit positions).

    Parameters
    ----------
    geom : PlateGeometry
        The plate.
    n_per_axis : int
        Grid points per axis (≥ 2; 3 gives the 3×3 grid of the procedure).
    reach : float
        Fraction (0, 1] of the way from the plate centre to the cell lines at which
        the outer grid points sit; 0.85 puts them near the cells.

    Returns
    -------
    numpy.ndarray
        float64 (n², 2) positions [mm], row-major from back-left.
    """
    if int(n_per_axis) < 2:
        raise ValueError(f"n_per_axis must be at least 2, got {n_per_axis}")
    if not (0.0 < reach <= 1.0):
        raise ValueError(f"reach must be in (0, 1], got {reach}")
    x0, x1, y0, y1 = _cell_box(geom)
    cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 * reach, (y1 - y0) / 2 * reach
    xs = np.linspace(cx - hx, cx + hx, int(n_per_axis))
    ys = np.linspace(cy - hy, cy + hy, int(n_per_axis))
    gx, gy = np.meshgrid(xs, ys)
    return np.column_stack([gx.ravel(), gy.ravel()])


def verification_positions_mm(geom: PlateGeometry) -> np.ndarray:
    """Independent verification positions: off the fit grid, inside the cell rectangle.

    Returns
    -------
    numpy.ndarray
        float64 (5, 2) [mm]: four points between grid lines (at ±40 % / ±60 % of the
        way to the cells, one per quadrant) and one off-centre point.
    """
    x0, x1, y0, y1 = _cell_box(geom)
    cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    frac = np.array([[-0.6, -0.4], [0.4, -0.6], [0.6, 0.4], [-0.4, 0.6], [0.2, 0.15]])
    return np.column_stack([cx + frac[:, 0] * hx, cy + frac[:, 1] * hy])


def wrench_from_point_load(fz_n, x_mm, y_mm) -> np.ndarray:
    """(Fz [N], Mx [N·m], My [N·m]) of vertical point loads at (x, y) [mm].

    Arrays broadcast; the result has a trailing axis of 3.
    """
    fz = np.asarray(fz_n, dtype=np.float64)
    x_m = np.asarray(x_mm, dtype=np.float64) / 1000.0
    y_m = np.asarray(y_mm, dtype=np.float64) / 1000.0
    fz, x_m, y_m = np.broadcast_arrays(fz, x_m, y_m)
    return np.stack([fz, y_m * fz, -x_m * fz], axis=-1)


def cop_mm(wrench: np.ndarray, min_force_n: float = 20.0) -> np.ndarray:
    """Centre of pressure [mm] from (..., 3) wrenches (Fz, Mx, My), as (..., 2) (x, y).

    ``calibration.cop.cop_mm`` on the wrench's columns: NaN where Fz < ``min_force_n``.
    """
    w = np.asarray(wrench, dtype=np.float64)
    if w.shape[-1] != 3:
        raise ValueError(f"wrench must have a trailing axis of 3 (Fz, Mx, My), got shape {w.shape}")
    return np.stack(cop.cop_mm(w[..., 0], w[..., 1], w[..., 2], min_force_n=min_force_n), axis=-1)


def nominal_matrix(geom: PlateGeometry) -> np.ndarray:
    """The nominal (3, K) matrix: each cell's nominal gain, moments from cell positions.

    ``Fz = Σ c_k / s_k``, ``Mx = Σ c_k y_k / s_k``, ``My = −Σ c_k x_k / s_k`` with ``s``
    the nominal sensitivity [counts/N] and positions in metres: what a plate
    "calibrated" with one centred mass and a quarter per cell assumes
    (``calibration.arrays.nominal_plate_matrix``, as the nominal calibration of a rig).
    """
    return nominal_plate_matrix(geom.nominal_counts_per_n, geom.cell_xy_mm)


def rigid_plate_cell_loads_n(geom: PlateGeometry, fz_n: float, x_mm: float, y_mm: float) -> np.ndarray:
    """Cell loads [N] of a rigid plate under a point load (minimum-norm statics).

    Exact statics for three cells; for four or more the minimum-norm solution that
    balances force and both moments (the symmetric answer for a rectangle). Used to
    predict which cells should respond to a load (polarity checks).
    """
    xy = geom.cell_xy_mm
    a = np.vstack([np.ones(len(xy)), xy[:, 1], xy[:, 0]])
    b = np.array([fz_n, fz_n * y_mm, fz_n * x_mm])
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    return sol


def plate_frame_from_corners(corners_mm: np.ndarray) -> np.ndarray:
    """Rotation (3, 3) from a C3D plate frame to the lab frame, columns = plate axes.

    ``corners_mm`` is (3, 4) as in FORCE_PLATFORM:CORNERS (lab frame [mm], corner 1
    in the plate's +x+y quadrant). The plate x axis is corner1 − corner2, y is
    corner1 − corner4, z = x × y; y is re-orthogonalised as z × x.
    """
    c = np.asarray(corners_mm, dtype=np.float64)
    if c.shape != (3, 4):
        raise ValueError(f"corners must be (3, 4), got shape {c.shape}")
    ax = c[:, 0] - c[:, 1]
    ay = c[:, 0] - c[:, 3]
    az = np.cross(ax, ay)
    ay = np.cross(az, ax)
    norms = np.array([np.linalg.norm(ax), np.linalg.norm(ay), np.linalg.norm(az)])
    if np.any(norms == 0):
        raise ValueError("plate corners are degenerate (zero-length axis)")
    return np.column_stack([ax / norms[0], ay / norms[1], az / norms[2]])


def merge_plates(arrays, rig: Rig, parts: tuple[str, ...] = ("box_left", "box_right"), into: str = "box"):
    """One plate ``into`` from plates ``parts`` (a split box top), in calibration space.

    The merged plate's slots are the parts' slots; its Fz row is theirs, and its
    moments are taken about the parts' common centre: Mx' = Mx + dy·Fz,
    My' = My − dx·Fz, with (dx, dy) the part's centre relative to the merged
    centre [m].  Exact for the linear and the quadratic terms.  Returns the
    arrays unchanged when a part is missing.
    """
    roles = list(arrays.plate_roles)
    if not all(p in roles for p in parts) or into in roles:
        return arrays
    idx = [roles.index(p) for p in parts]
    centres = np.array([rig.plate(p).centre_mm[:2] for p in parts], dtype=np.float64) / 1000.0
    centre = centres.mean(axis=0)
    slots_ci, slots_off, slots_lin, slots_quad = [], [], [], []
    for i, (dx, dy) in zip(idx, centres - centre):
        used = arrays.channel_index[i] >= 0
        lin = arrays.linear[i][:, used].copy()
        quad = arrays.quadratic[i][:, used].copy()
        for m in (lin, quad):
            m[1] += dy * m[0]
            m[2] -= dx * m[0]
        slots_ci.append(arrays.channel_index[i][used])
        slots_off.append(arrays.offsets_counts[i][used])
        slots_lin.append(lin)
        slots_quad.append(quad)
    ci = np.concatenate(slots_ci)
    keep = [k for k in range(len(roles)) if k not in idx]
    k_max = max(ci.size, arrays.channel_index.shape[1])
    n_p = len(keep) + 1

    def pad(a, width, fill):
        out = np.full(a.shape[:-1] + (width,), fill, dtype=a.dtype)
        out[..., : a.shape[-1]] = a
        return out

    new_ci = np.full((n_p, k_max), -1, dtype=np.int64)
    new_off = np.zeros((n_p, k_max))
    new_lin = np.zeros((n_p, 3, k_max))
    new_quad = np.zeros((n_p, 3, k_max))
    new_ci[0] = pad(ci, k_max, -1)
    new_off[0] = pad(np.concatenate(slots_off), k_max, 0.0)
    new_lin[0] = pad(np.concatenate(slots_lin, axis=1), k_max, 0.0)
    new_quad[0] = pad(np.concatenate(slots_quad, axis=1), k_max, 0.0)
    for row, k in enumerate(keep, start=1):
        width = arrays.channel_index.shape[1]
        new_ci[row, :width] = arrays.channel_index[k]
        new_off[row, :width] = arrays.offsets_counts[k]
        new_lin[row, :, :width] = arrays.linear[k]
        new_quad[row, :, :width] = arrays.quadratic[k]
    # the same calibration, laid out differently: it keeps its id and hash
    return CalibrationArrays((into, *[roles[k] for k in keep]), new_ci, new_off, new_lin, new_quad,
                             calibration_id=arrays.calibration_id, calibration_hash=arrays.calibration_hash)
