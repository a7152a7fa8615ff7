"""dsp stage: the numba analysis core (arrays in, result records out; no I/O).

Public API (a contract shared with the reference implementation and the CLI)::

    PROTOCOLS, ROLES, PlateForces, AnalysisParams, RepResult, AnalysisResult,
    CalibrationArrays, nominal_calibration, analyze_forces, analyze_counts, calibrated_forces
"""

from steplab.dsp.analysis import analyze_counts, analyze_forces
from steplab.dsp.calibration_arrays import CalibrationArrays, nominal_calibration
from steplab.dsp.forces import calibrated_forces
from steplab.dsp.params import PROTOCOLS, ROLES, AnalysisParams, PlateForces
from steplab.dsp.results import AnalysisResult, RepResult

__all__ = [
    "PROTOCOLS", "ROLES", "PlateForces", "AnalysisParams", "RepResult", "AnalysisResult",
    "CalibrationArrays", "nominal_calibration", "analyze_forces", "analyze_counts", "calibrated_forces",
]
