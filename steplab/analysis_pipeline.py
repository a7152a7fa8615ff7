"""Where calibration meets the analysis: raw counts → calibrated plate signals → metrics.

The composition root of the two stages (decision 0009): ``steplab.calibration``
owns counts → newtons, ``steplab.dsp`` takes plate forces and COP only; this
module joins them for the commands (``steplab analyze``, import, record) and the
benchmark.  Its ``warm_up`` compiles the kernels of both.
"""

from __future__ import annotations

import time

import numpy as np

from steplab.calibration.apply import CalibratedMoments, calibrated_fz, checked_counts, saturated_samples
from steplab.calibration.arrays import CalibrationArrays
from steplab.dsp.analysis import analyze_plate_signals, check_rate, check_request, check_roles
from steplab.dsp.params import ROLES, AnalysisParams
from steplab.dsp.results import AnalysisResult

__all__ = ["analyze_counts", "warm_up"]


def analyze_counts(counts: np.ndarray, rate_hz: float, calibration: CalibrationArrays, protocol: str, *,
                   lead: str | None = None, body_mass_kg: float | None = None,
                   params: AnalysisParams | None = None, provenance: dict | None = None) -> AnalysisResult:
    """The full pipeline from raw counts: calibration → forces → metrics.

    Every plate's Fz (and their sum) is computed in one pass; the moments only over
    the windows whose COP the metrics read.  The calibration's id and hash go into
    the provenance, and the samples at the converter's limits are counted
    (``saturated_samples``, flag ``saturated``) unless the caller's provenance has them.

    Parameters
    ----------
    counts : numpy.ndarray, integer (n, channels)
        Raw ADC counts, one column per wire channel, n ≥ 2.
    rate_hz : float
        Sample rate, Hz.
    calibration : CalibrationArrays
        Maps channels to plate Fz [N], Mx, My [N·m].
    protocol, lead, body_mass_kg, params, provenance
        As ``steplab.dsp.analyze_forces``.

    Returns
    -------
    AnalysisResult

    Raises
    ------
    ValueError
        One line naming the bad argument (nothing is computed).
    """
    rate = check_rate(rate_hz)
    body_mass_kg, params = check_request(protocol, lead, body_mass_kg, params, rate)
    c = checked_counts(counts, calibration, min_samples=2)
    roles = calibration.plate_roles
    for r in roles:
        if r not in ROLES:
            raise ValueError(f"calibration plate role {r!r} is not one of {', '.join(ROLES)}")
    check_roles(protocol, roles)
    fz_all, total = calibrated_fz(c, calibration)
    prov: dict = {"calibration_id": calibration.calibration_id, "calibration_hash": calibration.calibration_hash}
    prov.update(provenance or {})
    if "saturated_samples" not in prov:
        # metrics.md § Provenance: saturated samples (a cell at the 24-bit converter's limit) are counted and flagged
        prov["saturated_samples"] = saturated_samples(c, calibration)
    return analyze_plate_signals({r: fz_all[i] for i, r in enumerate(roles)}, total, rate, protocol,
                                 moments=CalibratedMoments(c, calibration), lead=lead, body_mass_kg=body_mass_kg,
                                 params=params, provenance=prov)


def warm_up() -> float:
    """Compile (or load from the cache) every kernel of the analysis path; returns the seconds it took.

    The calibration kernels (``calibration.warmup``), the dsp kernels
    (``dsp.warmup``), and one counts → metrics run of the joined pipeline.
    """
    from steplab.acquisition.rig import default_rig
    from steplab.calibration.arrays import nominal_calibration
    from steplab.calibration.warmup import forces_to_counts
    from steplab.calibration.warmup import warm_up as warm_calibration
    from steplab.dsp.warmup import synthetic_step_down
    from steplab.dsp.warmup import warm_up as warm_dsp

    t0 = time.perf_counter()
    warm_calibration()
    warm_dsp()
    rig = default_rig(sample_rate_hz=500.0)
    counts = forces_to_counts(synthetic_step_down(rate_hz=500.0, quiet_s=1.5, end_quiet_s=1.2), rig)
    analyze_counts(counts, 500.0, nominal_calibration(rig), "step-down")
    return time.perf_counter() - t0
