"""Analysis inputs: protocols, plate roles, per-plate force signals and parameters.

Every default below is the one defined in ``shared spec metrics.md``; the whole
parameter set is stored with every result (``AnalysisParams.to_dict``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from steplab.calibration.forces import PlateForces

PROTOCOLS: tuple[str, ...] = ("step-down", "forward-step-down", "drop-landing", "squat", "balance")
ROLES: tuple[str, ...] = ("box", "floor_left", "floor_right")

#: Version of each protocol's analysis definition (bumped when a metric's meaning changes).
PROTOCOL_VERSIONS: dict[str, str] = {p: "1.0" for p in PROTOCOLS}

STABILIZATION_METHODS: tuple[str, ...] = ("threshold",)

__all__ = ["PROTOCOLS", "ROLES", "PROTOCOL_VERSIONS", "STABILIZATION_METHODS", "PlateForces", "AnalysisParams"]


@dataclass(frozen=True)
class AnalysisParams:
    """Every threshold and default of metrics.md; stored with every result.

    Units are in the names (Hz, N, s, m/s, fraction of body weight ``_bw``...).
    ``filter_order`` is the zero-lag order: a ``filter_order/2``-order
    Butterworth design run forward and backward.
    """

    force_cutoff_hz: float = 100.0
    cop_cutoff_hz: float = 10.0
    filter_order: int = 4
    cop_min_force_n: float = 20.0
    contact_threshold_n: float = 20.0
    contact_min_s: float = 0.020
    quiet_window_s: float = 1.0
    quiet_search_s: float = 3.0
    onset_speed_m_s: float = 0.01
    onset_sd_factor: float = 5.0
    onset_bw_fraction: float = 0.025
    unsteady_sd_n: float = 10.0
    unsteady_bw_fraction: float = 0.02
    arrest_timeout_s: float = 1.0
    stabilization_band_bw: float = 0.05
    stabilization_hold_s: float = 1.0
    stabilization_method: str = "threshold"
    drift_flag_m_s: float = 0.05
    lsi_low_pct: float = 90.0
    lsi_high_pct: float = 110.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "stabilization_method":
                if v not in STABILIZATION_METHODS:
                    raise ValueError(f"stabilization_method {v!r} is not one of {STABILIZATION_METHODS}")
                continue
            if f.name == "filter_order":
                if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2 or v % 2:
                    raise ValueError(f"filter_order must be a positive even integer (zero-lag order), got {v!r}")
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
                raise ValueError(f"parameter {f.name} must be a finite number, got {v!r}")
            if f.name in ("onset_sd_factor", "onset_bw_fraction", "unsteady_sd_n", "unsteady_bw_fraction",
                          "cop_min_force_n", "contact_threshold_n", "contact_min_s", "stabilization_hold_s",
                          "onset_speed_m_s", "drift_flag_m_s"):
                if v < 0:
                    raise ValueError(f"parameter {f.name} must be >= 0, got {v!r}")
            elif f.name not in ("lsi_low_pct", "lsi_high_pct") and not v > 0:
                raise ValueError(f"parameter {f.name} must be > 0, got {v!r}")
        if self.quiet_search_s < self.quiet_window_s:
            raise ValueError("quiet_search_s must be at least quiet_window_s")

    def to_dict(self) -> dict:
        """All parameters as a plain JSON-able dict (name → value)."""
        d = asdict(self)
        d["filter_order"] = int(d["filter_order"])
        return d
