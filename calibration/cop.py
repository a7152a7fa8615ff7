"""Centre of pressure of a plate: the one COP function of the project (decision 0009).

metrics.md § Signals: ``COP_p = Σ F_i·r_i / Fz_p`` and NaN wherever
``Fz_p < cop_min_force_n``: never a huge or infinite value (ezc3d and BTK return
±1e17 mm on an unloaded plate).  Every stage that needs a COP from a plate's force
and moments calls :func:`cop_mm`: the analysis (``dsp.metrics_balance``), the
calibration's geometry and accuracy report, and the importers.  The simulator's
``acquisition.sim_cells.cop_from_cell_loads`` stays separate on purpose: it is the
simulation's truth, computed from cell loads (not from moments), upstream of here.
"""

from __future__ import annotations

import math

import numpy as np


def cop_mm(fz_n, mx_nm, my_nm, *, min_force_n: float, fx_n=None, fy_n=None,
           z0_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Centre of pressure (x, y) [mm] of one plate in its own frame; NaN where Fz < ``min_force_n``.

    Plate frame: x to the subject's right, y forward, z up, origin at the point the
    moments are taken about.  For the plates of the project (and the importers'
    output) that point is the centre of the top surface, and::

        x = −1000·My / Fz,   y = 1000·Mx / Fz

    When the moments are taken about a point ``z0_mm`` below the surface the COP
    lies on (a C3D plate's origin inside the plate), the shear forces act on that
    lever arm: with ``h = z0_mm / 1000`` [m]::

        x = 1000·(h·Fx − My) / Fz,   y = 1000·(Mx + h·Fy) / Fz

    (from ``M = r × F + Tz·ẑ`` with ``r = (x, y, h)``: ``Mx = y·Fz − h·Fy``,
    ``My = h·Fx − x·Fz``).  The force and the moments must be the same force system
    (both as measured on the plate, or both as applied by the subject): the formulas
    are unchanged when all signs flip.

    Parameters
    ----------
    fz_n : array_like
        Vertical force [N] (positive under load).
    mx_nm, my_nm : array_like
        Moments about the plate's x and y axes [N·m].
    min_force_n : float
        COP threshold [N] (``AnalysisParams.cop_min_force_n``, 20 N by default):
        samples with ``Fz < min_force_n`` (or ``Fz == 0``) get NaN.  Required, so every
        caller states it; ``-inf`` keeps every sample with a non-zero Fz.
    fx_n, fy_n : array_like or None
        Shear forces [N]; needed (both) when ``z0_mm`` is not 0.
    z0_mm : float
        Height of the COP's surface above the moments' reference point [mm]
        (0: moments about the surface, the project's convention).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        x [mm] and y [mm], float64, of the inputs' broadcast shape.
    """
    try:
        thr = float(min_force_n)
        h_m = float(z0_mm) / 1000.0
    except (TypeError, ValueError):
        raise ValueError(f"min_force_n and z0_mm must be numbers, got {min_force_n!r}, {z0_mm!r}") from None
    if math.isnan(thr):
        raise ValueError("min_force_n must not be NaN")
    if not math.isfinite(h_m):
        raise ValueError(f"z0_mm must be finite, got {z0_mm!r}")
    shear = fx_n is not None or fy_n is not None
    if h_m != 0.0 and not (fx_n is not None and fy_n is not None):
        raise ValueError("a COP with z0_mm != 0 needs both shear forces fx_n and fy_n")
    given = [fz_n, mx_nm, my_nm] + ([fx_n, fy_n] if shear and h_m != 0.0 else [])
    arrays = np.broadcast_arrays(*[np.asarray(a, dtype=np.float64) for a in given])
    fz, mx, my = arrays[:3]
    valid = (fz >= thr) & (fz != 0.0)
    x = np.full(fz.shape, np.nan)
    y = np.full(fz.shape, np.nan)
    if len(arrays) == 5:
        fx, fy = arrays[3:]
        np.divide(1000.0 * (h_m * fx - my), fz, out=x, where=valid)
        np.divide(1000.0 * (mx + h_m * fy), fz, out=y, where=valid)
    else:
        np.divide(-1000.0 * my, fz, out=x, where=valid)
        np.divide(1000.0 * mx, fz, out=y, where=valid)
    return x, y
