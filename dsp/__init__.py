"""dsp stage: the numba analysis core (plate forces and COP in, result records out; no I/O).

Counts → newtons is the calibration stage's (``steplab.calibration``, decision 0009);
the composition of the two, ``analyze_counts``, is ``steplab.analysis_pipeline``'s.

Public API (a contract shared with the reference implementation and the CLI)::

    PROTOCOLS, ROLES, PlateForces, AnalysisParams, RepResult, AnalysisResult,
    analyze_forces, analyze_plate_signals
"""

from steplab.dsp.analysis import analyze_forces, analyze_plate_signals
from steplab.dsp.params import PROTOCOLS, ROLES, AnalysisParams, PlateForces
from steplab.dsp.results import AnalysisResult, RepResult

__all__ = [
    "PROTOCOLS", "ROLES", "PlateForces", "AnalysisParams", "RepResult", "AnalysisResult",
    "analyze_forces", "analyze_plate_signals",
]
