"""Calibration statistics: accuracy, non-linearity, hysteresis, repeatability, limits.

Definitions (all on the *calibrated* output, full scale ``FS`` = the plate's rated
capacity, the sum of its cells' capacities):

* Fz error [% FS]: largest |measured − applied| Fz over the set, / FS · 100.
* COP RMS error [mm]: RMS distance between measured and applied load position.
* Non-linearity [% FS]: per position, the readings at each load (mean of up and
  down over repeats) against the applied load; largest deviation from their
  least-squares straight line, / FS · 100.
* Hysteresis [% FS]: largest |down − up| reading at the same position, load and
  repeat, / FS · 100.
* Repeatability [N]: pooled SD of readings at the same position, load and
  direction across repeats.
* LLF [N] = 2.4 × residual SD of the fit (the ASTM E74 lower-limit factor); the
  spec's "lower limit of use". ASTM E74 Class A would put the lower load limit at
  400 × LLF; reported too.
* Creep [% of reading]: change of a held load between the start and end of the hold.
* Zero return [N]: largest change of the unloaded reading between successive zeros.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from steplab.calibration.apply import apply_plate_matrix
from steplab.calibration.geometry import cop_mm

UP, DOWN = 1, -1
LLF_FACTOR = 2.4
CLASS_A_FACTOR = 400.0


@dataclass(frozen=True)
class LoadSet:
    """Steady readings under known loads (one row per reading).

    Attributes
    ----------
    delta_counts : numpy.ndarray
        (n, K) mean counts minus the zero at that time [counts].
    applied : numpy.ndarray
        (n, 3) applied (Fz [N], Mx [N·m], My [N·m]).
    position_mm : numpy.ndarray
        (n, 2) load position [mm].
    position_index, repeat, direction : numpy.ndarray
        (n,) int: which position, which repeat, +1 loading up / −1 unloading down.
    """

    delta_counts: np.ndarray
    applied: np.ndarray
    position_mm: np.ndarray
    position_index: np.ndarray
    repeat: np.ndarray
    direction: np.ndarray

    def __post_init__(self) -> None:
        n = np.asarray(self.applied).shape[0]
        for name in ("delta_counts", "position_mm", "position_index", "repeat", "direction"):
            if np.asarray(getattr(self, name)).shape[0] != n:
                raise ValueError(f"LoadSet field {name} has a different number of rows than applied ({n})")

    def __len__(self) -> int:
        return int(np.asarray(self.applied).shape[0])


@dataclass(frozen=True)
class AccuracyFigures:
    """Figures of one load set under one calibration (see module docstring)."""

    fz_error_pct_fs: float
    fz_error_max_n: float
    fz_rms_error_n: float
    cop_rms_mm: float
    cop_max_mm: float
    nonlinearity_pct_fs: float
    hysteresis_pct_fs: float
    repeatability_n: float
    n_points: int

    def to_dict(self) -> dict:
        return {k: float(v) if k != "n_points" else int(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class PlateReport:
    """Everything the calibration of one plate reports."""

    plate: str
    full_scale_n: float
    condition_number: float
    residual_sd_n: float
    llf_n: float
    lower_limit_class_a_n: float
    creep_pct: float
    zero_return_n: float
    fit: AccuracyFigures
    verification: AccuracyFigures
    verification_nominal: AccuracyFigures

    def to_dict(self) -> dict:
        d = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in asdict(self).items()
             if k not in ("fit", "verification", "verification_nominal")}
        d["fit"] = self.fit.to_dict()
        d["verification"] = self.verification.to_dict()
        d["verification_nominal"] = self.verification_nominal.to_dict()
        return d


def hysteresis_n(fz_n, s: LoadSet) -> float:
    """Largest |down − up| reading [N] at the same position, load and repeat (0 if none)."""
    fz = np.asarray(fz_n, dtype=np.float64)
    load = np.round(s.applied[:, 0], 3)
    worst = 0.0
    ups = np.flatnonzero(s.direction == UP)
    for i in ups:
        m = (s.direction == DOWN) & (s.position_index == s.position_index[i]) & (s.repeat == s.repeat[i]) & (load == load[i])
        if np.any(m):
            worst = max(worst, float(np.max(np.abs(fz[m] - fz[i]))))
    return worst


def repeatability_n(fz_n, s: LoadSet) -> float:
    """Pooled SD [N] of readings at the same position, load and direction across repeats."""
    fz = np.asarray(fz_n, dtype=np.float64)
    load = np.round(s.applied[:, 0], 3)
    keys = np.column_stack([s.position_index, load * 1000.0, s.direction]).astype(np.int64)
    _, inv = np.unique(keys, axis=0, return_inverse=True)
    ss, dof = 0.0, 0
    for g in range(int(inv.max()) + 1 if inv.size else 0):
        v = fz[inv == g]
        if v.size >= 2:
            ss += float(np.sum((v - v.mean()) ** 2))
            dof += v.size - 1
    return float(np.sqrt(ss / dof)) if dof else 0.0


def nonlinearity_n(fz_n, s: LoadSet) -> float:
    """Largest deviation [N] of mean readings from their straight line against load, per position."""
    fz = np.asarray(fz_n, dtype=np.float64)
    load = np.round(s.applied[:, 0], 3)
    worst = 0.0
    for p in np.unique(s.position_index):
        m = s.position_index == p
        loads = np.unique(load[m])
        if loads.size < 3:
            continue
        means = np.array([fz[m & (load == ld)].mean() for ld in loads])
        a = np.column_stack([loads, np.ones_like(loads)])
        coef, *_ = np.linalg.lstsq(a, means, rcond=None)
        worst = max(worst, float(np.max(np.abs(means - a @ coef))))
    return worst


def accuracy(s: LoadSet, linear, quadratic, full_scale_n: float, cop_min_force_n: float = 20.0) -> AccuracyFigures:
    """Accuracy figures of load set ``s`` under calibration ``(linear, quadratic)``.

    Parameters
    ----------
    s : LoadSet
        Readings (zero-corrected counts) and applied wrenches.
    linear, quadratic : array_like
        (3, K) calibration; ``quadratic`` may be None.
    full_scale_n : float
        Full scale for the % FS figures [N].
    cop_min_force_n : float
        Readings with applied Fz below this are left out of the COP error [N].
    """
    if not full_scale_n > 0:
        raise ValueError(f"full_scale_n must be positive, got {full_scale_n}")
    if len(s) == 0:
        raise ValueError("load set is empty")
    w = apply_plate_matrix(s.delta_counts, linear, quadratic)
    err = w[:, 0] - s.applied[:, 0]
    loaded = s.applied[:, 0] >= cop_min_force_n
    if np.any(loaded):
        cop = cop_mm(w[loaded], min_force_n=-np.inf)
        d = np.linalg.norm(cop - s.position_mm[loaded], axis=1)
        cop_rms, cop_max = float(np.sqrt(np.mean(d * d))), float(np.max(d))
    else:
        cop_rms = cop_max = float("nan")
    return AccuracyFigures(
        fz_error_pct_fs=float(np.max(np.abs(err)) / full_scale_n * 100.0),
        fz_error_max_n=float(np.max(np.abs(err))),
        fz_rms_error_n=float(np.sqrt(np.mean(err * err))),
        cop_rms_mm=cop_rms,
        cop_max_mm=cop_max,
        nonlinearity_pct_fs=nonlinearity_n(w[:, 0], s) / full_scale_n * 100.0,
        hysteresis_pct_fs=hysteresis_n(w[:, 0], s) / full_scale_n * 100.0,
        repeatability_n=repeatability_n(w[:, 0], s),
        n_points=len(s),
    )


def build_plate_report(plate: str, full_scale_n: float, fit, fit_set: LoadSet, verify_set: LoadSet,
                       nominal_linear, *, creep_pct: float = float("nan"), zero_return_n: float = float("nan")) -> PlateReport:
    """Assemble the report of one plate from its fit and its fit and verification sets.

    Parameters
    ----------
    plate : str
        Plate name.
    full_scale_n : float
        Plate capacity [N].
    fit : steplab.calibration.fitting.PlateFit
        The fitted calibration.
    fit_set, verify_set : LoadSet
        Readings used in the fit, and independent verification readings.
    nominal_linear : array_like
        (3, K) nominal matrix, for the "no calibration" comparison.
    creep_pct, zero_return_n : float
        Measured creep [% of reading] and zero return [N]; NaN when not measured.
    """
    sd = float(fit.residual_sd[0])
    llf = LLF_FACTOR * sd
    return PlateReport(
        plate=plate,
        full_scale_n=float(full_scale_n),
        condition_number=float(fit.condition_number),
        residual_sd_n=sd,
        llf_n=llf,
        lower_limit_class_a_n=CLASS_A_FACTOR * llf,
        creep_pct=float(creep_pct),
        zero_return_n=float(zero_return_n),
        fit=accuracy(fit_set, fit.linear, fit.quadratic, full_scale_n),
        verification=accuracy(verify_set, fit.linear, fit.quadratic, full_scale_n),
        verification_nominal=accuracy(verify_set, nominal_linear, None, full_scale_n),
    )


#: rig.md § Calibration, step 5: verification targets on masses and positions not used in the fit.
VERIFY_FZ_MAX_PCT_FS = 0.5
VERIFY_COP_RMS_MAX_MM = 2.0


def verification_failures(report: PlateReport) -> list[str]:
    """One line per verification target the plate misses (empty when it passes)."""
    v = report.verification
    out = []
    if not (v.fz_error_pct_fs <= VERIFY_FZ_MAX_PCT_FS):
        out.append(f"plate {report.plate}: Fz error {v.fz_error_pct_fs:.3f} % of full scale on the verification set "
                   f"(target <= {VERIFY_FZ_MAX_PCT_FS} %)")
    if not (v.cop_rms_mm <= VERIFY_COP_RMS_MAX_MM):
        out.append(f"plate {report.plate}: COP RMS error {v.cop_rms_mm:.2f} mm on the verification set "
                   f"(target <= {VERIFY_COP_RMS_MAX_MM} mm)")
    return out


def summary_dict(report: PlateReport) -> dict:
    """The five verification figures of ``steplab calibrate --json``."""
    v = report.verification
    return {
        "fz_error_pct_fs": float(v.fz_error_pct_fs),
        "cop_rms_mm": float(v.cop_rms_mm),
        "nonlinearity_pct_fs": float(v.nonlinearity_pct_fs),
        "hysteresis_pct_fs": float(v.hysteresis_pct_fs),
        "repeatability_n": float(v.repeatability_n),
    }


def format_report(report: PlateReport) -> str:
    """Human-readable multi-line report of one plate."""
    v, n, f = report.verification, report.verification_nominal, report.fit
    lines = [
        f"plate {report.plate}: full scale {report.full_scale_n:.0f} N, design condition number {report.condition_number:.1f}",
        f"  fit: residual SD {report.residual_sd_n:.3f} N, Fz error {f.fz_error_pct_fs:.3f} % FS, COP RMS {f.cop_rms_mm:.2f} mm",
        f"  non-linearity {f.nonlinearity_pct_fs:.4f} % FS, hysteresis {f.hysteresis_pct_fs:.4f} % FS, "
        f"repeatability {f.repeatability_n:.3f} N",
        f"  LLF (2.4 x residual SD) {report.llf_n:.3f} N; ASTM E74 class A lower limit {report.lower_limit_class_a_n:.0f} N",
        f"  creep {report.creep_pct:.4f} % of reading, zero return {report.zero_return_n:.3f} N",
        f"  verification ({v.n_points} readings): Fz error {v.fz_error_pct_fs:.3f} % FS ({v.fz_error_max_n:.2f} N), "
        f"COP RMS {v.cop_rms_mm:.2f} mm",
        f"  without calibration (nominal gains): Fz error {n.fz_error_pct_fs:.3f} % FS ({n.fz_error_max_n:.2f} N), "
        f"COP RMS {n.cop_rms_mm:.2f} mm",
    ]
    return "\n".join(lines)
