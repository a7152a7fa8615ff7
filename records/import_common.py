"""What every importer shares: the result type, the error type, plate roles, rates and plausibility checks.

The plausibility limits (decision 0012) are the same for C3D and CSV/TSV files:

* a force component beyond ``MAX_PLAUSIBLE_FORCE_N`` (30 kN; the largest plates for
  human movement are rated 20 kN vertical) is not a measurement but a corrupt file:
  refused;
* a plate whose vertical force sits at its maximum for ``FLAT_TOP_MIN_S`` or longer
  (a flat top), reached or left by a step larger than ``FLAT_TOP_STEP_QUANTA`` times
  the file's resolution (a smooth peak stored in whole newtons is not a flat top), is
  saturated: counted in ``saturated_samples`` and flagged ``saturated``;
* a COP outside the plate (by more than ``COP_OUTSIDE_MARGIN_MM``) under a load of
  at least ``cop_check_force_n`` (50 N, or 10 % of the plate's peak when larger: a
  small offset moment moves the COP of a light load) is flagged ``cop_outside_plate``;
* a body weight outside ``HUMAN_BODY_WEIGHT_N`` is flagged ``body_weight_implausible``
  (:func:`body_weight_flags`, applied to the analysis result).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from steplab.calibration.arrays import CalibrationArrays
from steplab.calibration.cop import cop_mm
from steplab.constants import G_M_S2
from steplab.dsp.params import PlateForces

#: Default plate roles by number of plates, in file order.
DEFAULT_ROLES: dict[int, tuple[str, ...]] = {
    1: ("floor_left",),
    2: ("floor_left", "floor_right"),
    3: ("box", "floor_left", "floor_right"),
}
KNOWN_ROLES: tuple[str, ...] = ("box", "floor_left", "floor_right", "box_left", "box_right")
#: In ``--plates``, a plate left out of the analysis (a walkway's other plates).
IGNORE_ROLE = "-"
MIN_RATE_HZ, MAX_RATE_HZ = 1.0, 100_000.0
RATE_TOLERANCE = 0.01  # a --rate differing from the file's own rate by more than 1 % is an error

MAX_PLAUSIBLE_FORCE_N = 30_000.0
FLAT_TOP_MIN_S = 0.010
FLAT_TOP_MIN_SAMPLES = 5
FLAT_TOP_MIN_FORCE_N = 50.0
FLAT_TOP_STEP_QUANTA = 4.0
COP_OUTSIDE_MARGIN_MM = 25.0
COP_CHECK_MIN_FORCE_N = 50.0
COP_CHECK_PEAK_FRACTION = 0.10
HUMAN_BODY_WEIGHT_N = (10.0 * G_M_S2, 300.0 * G_M_S2)  # 10..300 kg


class ForceImportError(ValueError):
    """A recording that cannot be read (the message names the file and the problem)."""


@dataclass
class LoadedTrial:
    """A recording as per-plate forces, ready for ``steplab.dsp.analyze_forces``.

    Attributes
    ----------
    plates : dict
        role → PlateForces (Fz [N], moments [N·m] or None), all of the same length.
    rate_hz : float
        Sample rate [Hz].
    source_format : str
        ``"steplab-trial"``, ``"c3d"`` or ``"csv"``.
    provenance_extra : dict
        Facts for the result's provenance (source file, rig hash, calibration id
        and hash, data quality, the lab's vertical axis, flags...).
    counts : numpy.ndarray or None
        int32 (n, channels) raw counts (trial files only; gaps filled).
    calibration : CalibrationArrays or None
        The calibration applied to ``counts`` (trial files only).
    """

    plates: dict[str, PlateForces]
    rate_hz: float
    source_format: str
    provenance_extra: dict = field(default_factory=dict)
    counts: np.ndarray | None = None
    calibration: CalibrationArrays | None = None
    trial: object | None = None  # the steplab Trial (trial files only): rig, meta

    @property
    def n_samples(self) -> int:
        return int(next(iter(self.plates.values())).fz_n.shape[0]) if self.plates else 0

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.rate_hz


def plate_cop_mm(plate: PlateForces, cop_min_force_n: float = 20.0) -> np.ndarray:
    """Centre of pressure of one plate, float64 (n, 2) [mm], about the plate's surface centre.

    The axes are those of the plate's moments: for a C3D file the lab's horizontal
    axes (the lab frame with z along the lab's vertical, named in the provenance as
    ``lab_vertical_axis``), for a steplab trial the plate's own x (right) and y
    (forward), for a CSV the axes of its moment columns.
    ``x = −1000·My/Fz``, ``y = 1000·Mx/Fz``; NaN wherever ``Fz < cop_min_force_n``
    or the plate has no moments.
    """
    fz = np.asarray(plate.fz_n, dtype=np.float64)
    if plate.mx_nm is None or plate.my_nm is None:
        return np.full((fz.shape[0], 2), np.nan)
    return np.column_stack(cop_mm(fz, plate.mx_nm, plate.my_nm, min_force_n=cop_min_force_n))


# -- rates and roles -------------------------------------------------------------------

def check_rate(rate_hz: float | None, path: Path) -> float | None:
    if rate_hz is None:
        return None
    try:
        r = float(rate_hz)
    except (TypeError, ValueError):
        raise ForceImportError(f"{path.name}: --rate must be a number, got {rate_hz!r}") from None
    if not math.isfinite(r) or not (MIN_RATE_HZ <= r <= MAX_RATE_HZ):
        raise ForceImportError(f"{path.name}: --rate {rate_hz!r} Hz is outside {MIN_RATE_HZ:g}..{MAX_RATE_HZ:g} Hz")
    return r


def reconcile_rate(file_rate: float, given: float | None, path: Path, what: str) -> float:
    if given is not None and abs(given - file_rate) > RATE_TOLERANCE * file_rate:
        raise ForceImportError(f"{path.name}: --rate {given:g} Hz contradicts the {what} ({file_rate:g} Hz)")
    return float(file_rate)


def parse_plates(plates: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"box,floor_left"`` (or a sequence) → validated tuple of roles; ``-`` leaves a plate out."""
    items = [p.strip() for p in plates.split(",")] if isinstance(plates, str) else [str(p).strip() for p in plates]
    if not items or any(not p for p in items):
        raise ForceImportError(f"--plates must be a comma-separated list of roles, got {plates!r}")
    for p in items:
        if p not in KNOWN_ROLES and p != IGNORE_ROLE:
            raise ForceImportError(f"--plates: unknown role {p!r} (known: {', '.join(KNOWN_ROLES)}; "
                                   f"{IGNORE_ROLE} leaves a plate out)")
    used = [p for p in items if p != IGNORE_ROLE]
    if len(set(used)) != len(used):
        raise ForceImportError(f"--plates names a role twice: {plates!r}")
    if not used:
        raise ForceImportError(f"--plates leaves every plate out: {plates!r}")
    return tuple(items)


def plate_roles(plates: str | list[str] | tuple[str, ...] | None, n: int, path: Path) -> tuple[str, ...]:
    """One role (or ``-``) per plate of a file holding ``n`` plates."""
    if plates is None:
        if n not in DEFAULT_ROLES:
            raise ForceImportError(f"{path.name}: {n} plates found; name their roles with --plates ROLE,ROLE,... "
                                   f"(one per plate in file order, {IGNORE_ROLE} for a plate to leave out)")
        return DEFAULT_ROLES[n]
    roles = parse_plates(plates)
    if len(roles) != n:
        raise ForceImportError(f"{path.name}: --plates names {len(roles)} plates but the file has {n} "
                               f"({IGNORE_ROLE} leaves a plate out)")
    return roles


# -- plausibility ------------------------------------------------------------------------

def refuse_impossible_force(values: np.ndarray, where: str, what: str = "force") -> None:
    """Refuse a force (N) beyond any plate's range: the file is corrupt, not the subject strong."""
    a = np.asarray(values, dtype=np.float64)
    big = ~(np.abs(a) <= MAX_PLAUSIBLE_FORCE_N)  # NaN counts as impossible too
    if big.any():
        i = int(np.argmax(big.reshape(-1)))
        v = float(a.reshape(-1)[i])
        raise ForceImportError(f"{where}: {what} of {v:.4g} N is beyond any force plate's range "
                               f"(±{MAX_PLAUSIBLE_FORCE_N:g} N); the file is corrupt")


def flat_top_samples(fz_n: np.ndarray, rate_hz: float) -> int:
    """Samples at the plate's maximum when it is clipped there (a flat top), else 0.

    A loaded plate's signal always carries noise; one held at exactly its maximum for
    10 ms (5 samples at least), run into (or left) by a step of more than
    ``FLAT_TOP_STEP_QUANTA`` times the smallest step of the signal, is clipped by its
    amplifier or converter.  A whole recording at one value is clipped too.
    """
    f = np.asarray(fz_n, dtype=np.float64)
    if f.size < FLAT_TOP_MIN_SAMPLES:
        return 0
    top = float(np.max(f))
    if not top >= FLAT_TOP_MIN_FORCE_N:
        return 0
    at_top = np.abs(f - top) <= 1e-9 * abs(top)
    edges = np.diff(np.concatenate(([0], at_top.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    need = max(FLAT_TOP_MIN_SAMPLES, int(math.ceil(FLAT_TOP_MIN_S * rate_hz)))
    # the file's resolution: a smooth peak stored in steps of q reaches its top by a step of q; a clipped
    # signal runs into its limit by a larger step (or the whole file sits at it)
    d = np.abs(np.diff(f))
    nonzero = d[d > 1e-9 * abs(top)]
    q = float(np.min(nonzero)) if nonzero.size else 0.0
    clipped = 0
    for s, e in zip(starts, ends):
        if e - s < need:
            continue
        step_in = top - f[s - 1] if s > 0 else math.inf
        step_out = top - f[e] if e < f.size else math.inf
        if max(step_in, step_out) > FLAT_TOP_STEP_QUANTA * q:
            clipped += int(e - s)
    if not clipped:
        return 0
    return int(np.sum(at_top))


def cop_check_force_n(fz_n: np.ndarray) -> float:
    """The least vertical force [N] at which a COP is checked against its plate."""
    peak = float(np.max(fz_n)) if np.size(fz_n) else 0.0
    return max(COP_CHECK_MIN_FORCE_N, COP_CHECK_PEAK_FRACTION * peak)


def body_weight_flags(body_weight_n: float | None) -> list[str]:
    """``["body_weight_implausible"]`` for a body weight outside a human range (10..300 kg), else []."""
    if body_weight_n is None or not math.isfinite(float(body_weight_n)):
        return []
    lo, hi = HUMAN_BODY_WEIGHT_N
    return [] if lo <= float(body_weight_n) <= hi else ["body_weight_implausible"]


def add_flag(extra: dict, flag: str) -> None:
    flags = extra.setdefault("flags", [])
    if flag not in flags:
        flags.append(flag)
