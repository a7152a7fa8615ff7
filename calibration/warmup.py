"""Compile the counts → newtons kernels at application start; synthetic counts to do so.

``warm_up()`` runs every kernel of ``calibration.apply`` once (``cache=True``: later
starts load them from the cache) so that neither the live view nor the first
analysis waits on numba.  ``forces_to_counts`` inverts the nominal calibration:
plate forces and COP → the counts a rig with nominal cells would send.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .forces import PlateForces


def forces_to_counts(plates: dict[str, PlateForces], rig) -> np.ndarray:
    """Invert the nominal calibration: plate Fz and COP → corner-cell loads → int32 counts.

    Cell loads use bilinear weights over the plate's four corner cells, which reproduce
    Fz, Mx and My exactly; counts = load·nominal_counts_per_n, rounded.
    """
    n = len(next(iter(plates.values())).fz_n)
    counts = np.zeros((n, rig.channels), dtype=np.int32)
    for p in rig.plates:
        if p.role not in plates:
            continue
        pf = plates[p.role]
        fz = np.asarray(pf.fz_n, dtype=float)
        safe = np.where(np.abs(fz) > 1e-9, fz, 1.0)
        x_m = np.where(np.abs(fz) > 1e-9, -np.asarray(pf.my_nm) / safe, 0.0) if pf.my_nm is not None else np.zeros(n)
        y_m = np.where(np.abs(fz) > 1e-9, np.asarray(pf.mx_nm) / safe, 0.0) if pf.mx_nm is not None else np.zeros(n)
        hw = max(abs(c.x_mm) for c in p.cells) / 1000.0
        hl = max(abs(c.y_mm) for c in p.cells) / 1000.0
        for c in p.cells:
            sx = math.copysign(1.0, c.x_mm)
            sy = math.copysign(1.0, c.y_mm)
            load = 0.25 * fz * (1.0 + sx * x_m / hw) * (1.0 + sy * y_m / hl)
            counts[:, c.channel] = np.round(load * c.nominal_counts_per_n).astype(np.int32)
    return counts


def warm_up() -> float:
    """Compile (or load from cache) every calibration kernel; returns the seconds it took."""
    from steplab.acquisition.rig import default_rig

    from .apply import CalibratedMoments, apply_plate_matrix, calibrated_forces, calibrated_fz, saturated_samples
    from .arrays import nominal_calibration
    from .tare import plate_force_n

    t0 = time.perf_counter()
    rig = default_rig(sample_rate_hz=500.0)
    n = 200
    fz = np.linspace(0.0, 700.0, n)
    plates = {p.role: PlateForces(fz, 0.02 * fz, -0.01 * fz) for p in rig.plates}
    counts = forces_to_counts(plates, rig)
    cal = nominal_calibration(rig)
    calibrated_forces(counts, cal)  # the live view's and the importers' path
    calibrated_fz(counts, cal)  # the analysis: Fz everywhere, moments only where needed
    CalibratedMoments(counts, cal)(cal.plate_roles[0], 10, 50)
    saturated_samples(counts, cal)
    k = cal.channel_index.shape[1]
    apply_plate_matrix(np.ones((3, k)), cal.linear[0], cal.quadratic[0])  # fit, report and tare: float counts
    plate_force_n(np.ones((3, k)), np.zeros(k), 4000.0)
    return time.perf_counter() - t0
