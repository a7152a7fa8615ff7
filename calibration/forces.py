"""Calibrated plate signals: what counts → newtons hands to the analysis (``PlateForces``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PlateForces:
    """One plate's calibrated signals, sampled at the analysis rate.

    Defined here, where counts become newtons (decision 0009); ``steplab.dsp`` takes
    these as its input and re-exports the name unchanged.

    Attributes
    ----------
    fz_n : numpy.ndarray
        float64 (n,), vertical force in N, positive under load.
    mx_nm, my_nm : numpy.ndarray or None
        Moments about the plate's surface centre in N·m (plate frame: x right,
        y forward, z up).  ``COP_x_mm = -1000*My/Fz``, ``COP_y_mm = 1000*Mx/Fz``,
        NaN where ``Fz < cop_min_force_n`` (``steplab.calibration.cop.cop_mm``).
    """

    fz_n: np.ndarray
    mx_nm: np.ndarray | None = None
    my_nm: np.ndarray | None = None
