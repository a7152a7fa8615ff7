"""Reading force recordings into per-plate forces: steplab trial files, C3D, CSV/TSV.

``load_forces(path)`` recognises the file by its content and extension:

* a **steplab trial file** (a ZIP archive, see ``steplab.acquisition.trial_file``):
  raw counts are calibrated with the calibration stored in the trial (when it
  holds the full arrays) or else the rig's nominal calibration; the counts and
  calibration are kept so the caller can run ``steplab.analysis_pipeline.analyze_counts``.
  Lost samples (gaps) are filled by linear interpolation of the counts and
  counted in the provenance (``interpolated_samples``);
* a **C3D** file (``.c3d``) with FORCE_PLATFORM entries of TYPE 1–4: ezc3d reads
  the analog channels and parameters; the conversion of each plate type to forces
  and moments is the project's own, from the C3D user guide (ezc3d 1.7 mirrors
  TYPE 1 moments and TYPE 3 plates with a positive az0).  Fz and the moments about
  each plate's surface centre are taken in the lab axes (z up); the sign is chosen so that Fz is
  positive under load.  The COP follows as ``x = −My/Fz``, ``y = Mx/Fz`` and is
  NaN below ``cop_min_force_n`` (:func:`plate_cop_mm`), never ezc3d's ±1e17 mm;
* a **CSV/TSV** of forces (``.csv``, ``.tsv``, ``.txt``): delimiter (tab, comma,
  semicolon or blanks) and an optional header row are detected.  A column named
  like time (``time``, ``t``, ``time_s``, ``seconds``; ``time_ms`` in ms) gives the
  sample rate, otherwise ``rate_hz`` is required; columns named ``frame``,
  ``sample`` or ``index`` are ignored.  The remaining columns are forces in N, one
  per plate, or several cells per plate in file order (their sum is the plate's
  Fz; ``plates`` must then be given).  A column whose name contains ``mx`` or
  ``my`` is a moment [N·m; N·mm when the name says ``nmm``] of the plate of the
  force column before it.

Plate roles come from ``plates`` (one role per plate, in file order); the
defaults by plate count are: 1 → ``floor_left``, 2 → ``floor_left, floor_right``,
3 → ``box, floor_left, floor_right``.  Trial files take their roles from the rig.

Every failure raises :class:`ForceImportError` (a ValueError) with a one-line
message naming the file and what is wrong.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from steplab.calibration.arrays import CalibrationArrays, nominal_calibration
from steplab.dsp.params import PlateForces

#: Default plate roles by number of plates, in file order.
DEFAULT_ROLES: dict[int, tuple[str, ...]] = {
    1: ("floor_left",),
    2: ("floor_left", "floor_right"),
    3: ("box", "floor_left", "floor_right"),
}
KNOWN_ROLES: tuple[str, ...] = ("box", "floor_left", "floor_right", "box_left", "box_right")
C3D_SUFFIXES = (".c3d",)
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
TRIAL_SUFFIXES = (".steplab", ".trial", ".npz", ".zip", ".stp")
MIN_RATE_HZ, MAX_RATE_HZ = 1.0, 100_000.0
RATE_TOLERANCE = 0.01  # a --rate differing from the file's own rate by more than 1 % is an error

_TIME_RE = re.compile(r"^(t|time|timestamp|seconds|secs?|s)([ _\-\[(].*)?$")
_INDEX_RE = re.compile(r"^(frame|frames|sample|samples|index|idx|n)([ _\-\[(].*)?$")
_MOMENT_RE = re.compile(r"(^|[^a-z])(mx|my)([^a-z]|$)")


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
        and hash, data quality...).
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
    """Centre of pressure of one plate, float64 (n, 2) [mm] in the plate frame.

    ``x = −1000·My/Fz``, ``y = 1000·Mx/Fz``; NaN wherever ``Fz < cop_min_force_n``
    or the plate has no moments.
    """
    fz = np.asarray(plate.fz_n, dtype=np.float64)
    out = np.full((fz.shape[0], 2), np.nan)
    if plate.mx_nm is None or plate.my_nm is None:
        return out
    ok = fz >= cop_min_force_n
    out[ok, 0] = -1000.0 * np.asarray(plate.my_nm)[ok] / fz[ok]
    out[ok, 1] = 1000.0 * np.asarray(plate.mx_nm)[ok] / fz[ok]
    return out


def forces_from_counts(counts: np.ndarray, calibration: CalibrationArrays) -> dict[str, PlateForces]:
    """Apply a calibration to raw counts: role → PlateForces (Fz [N], Mx, My [N·m]).

    ``counts`` is (n, channels); every channel the calibration uses must exist.
    """
    from steplab.calibration.apply import calibrated_forces

    try:
        return calibrated_forces(counts, calibration)
    except ValueError as exc:
        raise ForceImportError(str(exc)) from None


# -- helpers -----------------------------------------------------------------------

def _check_rate(rate_hz: float | None, path: Path) -> float | None:
    if rate_hz is None:
        return None
    try:
        r = float(rate_hz)
    except (TypeError, ValueError):
        raise ForceImportError(f"{path.name}: --rate must be a number, got {rate_hz!r}") from None
    if not math.isfinite(r) or not (MIN_RATE_HZ <= r <= MAX_RATE_HZ):
        raise ForceImportError(f"{path.name}: --rate {rate_hz!r} Hz is outside {MIN_RATE_HZ:g}..{MAX_RATE_HZ:g} Hz")
    return r


def _reconcile_rate(file_rate: float, given: float | None, path: Path, what: str) -> float:
    if given is not None and abs(given - file_rate) > RATE_TOLERANCE * file_rate:
        raise ForceImportError(f"{path.name}: --rate {given:g} Hz contradicts the {what} ({file_rate:g} Hz)")
    return float(file_rate)


def _roles(plates: str | list[str] | tuple[str, ...] | None, n: int, path: Path) -> tuple[str, ...]:
    if plates is None:
        if n not in DEFAULT_ROLES:
            raise ForceImportError(f"{path.name}: {n} plates found; name their roles with --plates ROLE,ROLE,...")
        return DEFAULT_ROLES[n]
    roles = parse_plates(plates)
    if len(roles) != n:
        raise ForceImportError(f"{path.name}: --plates names {len(roles)} plates but the file has {n}")
    return roles


def parse_plates(plates: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"box,floor_left"`` (or a sequence) → validated tuple of roles."""
    items = [p.strip() for p in plates.split(",")] if isinstance(plates, str) else [str(p).strip() for p in plates]
    if not items or any(not p for p in items):
        raise ForceImportError(f"--plates must be a comma-separated list of roles, got {plates!r}")
    for p in items:
        if p not in KNOWN_ROLES:
            raise ForceImportError(f"--plates: unknown role {p!r} (known: {', '.join(KNOWN_ROLES)})")
    if len(set(items)) != len(items):
        raise ForceImportError(f"--plates names a role twice: {plates!r}")
    return tuple(items)


def _check_signals(plates: dict[str, PlateForces], path: Path) -> None:
    for role, pf in plates.items():
        for name, a in (("Fz", pf.fz_n), ("Mx", pf.mx_nm), ("My", pf.my_nm)):
            if a is None:
                continue
            bad = ~np.isfinite(a)
            if bad.any():
                i = int(np.argmax(bad))
                raise ForceImportError(f"{path.name}: plate {role} {name} holds NaN or inf (first at sample {i})")
    n = {pf.fz_n.shape[0] for pf in plates.values()}
    if len(n) != 1:
        raise ForceImportError(f"{path.name}: plates have different lengths {sorted(n)}")
    if n.pop() < 2:
        raise ForceImportError(f"{path.name}: needs at least 2 samples")


# -- format detection ---------------------------------------------------------------

def _is_zip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def load_forces(path: str | Path, *, rate_hz: float | None = None,
                plates: str | list[str] | tuple[str, ...] | None = None) -> LoadedTrial:
    """Read a trial file, C3D or CSV/TSV of forces into per-plate forces.

    Parameters
    ----------
    path : str or Path
        The recording.
    rate_hz : float, optional
        Sample rate [Hz]; required for CSV/TSV without a time column, otherwise
        checked against the file's own rate (an error when they differ by > 1 %).
    plates : str or sequence of str, optional
        Role of each plate in file order (``"box,floor_left,floor_right"``).

    Returns
    -------
    LoadedTrial

    Raises
    ------
    ForceImportError
        Missing, empty, corrupt or unsupported file; NaN/inf values; fewer than
        two samples; a missing or contradicting rate; roles that do not fit.
    """
    p = Path(path)
    if not p.exists():
        raise ForceImportError(f"{p}: no such file")
    if not p.is_file():
        raise ForceImportError(f"{p}: not a regular file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ForceImportError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if size == 0:
        raise ForceImportError(f"{p.name}: file is empty")
    given_rate = _check_rate(rate_hz, p)
    suffix = p.suffix.lower()
    try:
        is_zip = _is_zip(p)
    except OSError as exc:
        raise ForceImportError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if is_zip or suffix in TRIAL_SUFFIXES:
        loaded = _load_trial(p, given_rate, plates)
    elif suffix in C3D_SUFFIXES:
        loaded = _load_c3d(p, given_rate, plates)
    elif suffix in TEXT_SUFFIXES:
        loaded = _load_text(p, given_rate, plates)
    else:
        raise ForceImportError(
            f"{p.name}: unknown file type {p.suffix or '(no extension)'!r}; expected a steplab trial file, "
            f".c3d, .csv, .tsv or .txt")
    _check_signals(loaded.plates, p)
    loaded.provenance_extra.setdefault("source_file", p.name)
    loaded.provenance_extra.setdefault("source_format", loaded.source_format)
    halves = {"box_left", "box_right"} & set(loaded.plates)
    if halves and (len(halves) == 1 or "box" in loaded.plates):
        raise ForceImportError(f"{p.name}: a split box needs both box_left and box_right, and no separate box")
    if halves:
        # a split box top is one box for the analysis: F sums every plate the subject may stand on
        # (metrics.md § Signals); without the plates' geometry the merged box has no COP
        left, right = loaded.plates.pop("box_left"), loaded.plates.pop("box_right")
        loaded.plates = {"box": PlateForces(fz_n=left.fz_n + right.fz_n), **loaded.plates}
        loaded.provenance_extra["merged_plates"] = {"box": ["box_left", "box_right"]}
    return loaded


# -- steplab trial files --------------------------------------------------------------

_CAL_FIELDS = ("plate_roles", "channel_index", "offsets_counts", "linear", "quadratic")


def calibration_from_dict(d: dict) -> CalibrationArrays:
    """A CalibrationArrays from its dict form (the fields of the dataclass, arrays as nested lists)."""
    missing = [k for k in _CAL_FIELDS if k not in d]
    if missing:
        raise ForceImportError(f"calibration record lacks {', '.join(missing)}")
    try:
        return CalibrationArrays(
            plate_roles=tuple(d["plate_roles"]),
            channel_index=np.asarray(d["channel_index"], dtype=np.int64),
            offsets_counts=np.asarray(d["offsets_counts"], dtype=np.float64),
            linear=np.asarray(d["linear"], dtype=np.float64),
            quadratic=np.asarray(d["quadratic"], dtype=np.float64),
            calibration_id=str(d.get("calibration_id", "unnamed")),
            calibration_hash=str(d.get("calibration_hash", "")),
        )
    except (TypeError, ValueError) as exc:
        raise ForceImportError(f"calibration record is malformed: {exc}") from None


def _fill_gaps(counts: np.ndarray, sample_index: np.ndarray) -> tuple[np.ndarray, int]:
    """Counts on the dense timeline from the first received sample, lost rows interpolated."""
    idx = sample_index.astype(np.int64) - int(sample_index[0])
    n_total = int(idx[-1]) + 1
    if n_total == counts.shape[0]:
        return counts, 0
    t = np.arange(n_total, dtype=np.float64)
    out = np.empty((n_total, counts.shape[1]), dtype=np.int32)
    for ch in range(counts.shape[1]):
        out[:, ch] = np.rint(np.interp(t, idx.astype(np.float64), counts[:, ch].astype(np.float64))).astype(np.int32)
    return out, n_total - counts.shape[0]


def _load_trial(p: Path, given_rate: float | None, plates) -> LoadedTrial:
    from steplab.acquisition.trial_file import read_trial

    try:
        trial = read_trial(p)
    except ValueError as exc:
        raise ForceImportError(str(exc)) from None
    if trial.counts.shape[0] < 2:
        raise ForceImportError(f"{p.name}: needs at least 2 samples, has {trial.counts.shape[0]}")
    rate = _reconcile_rate(trial.sample_rate_hz, given_rate, p, "trial file's sample rate")
    meta = trial.meta or {}
    quality = dict(meta.get("quality") or {})
    cal_meta = meta.get("calibration")
    extra: dict = {"rig_hash": trial.rig.hash(), "rig_name": trial.rig.name}
    calibration = None
    if isinstance(cal_meta, dict) and all(k in cal_meta for k in _CAL_FIELDS):
        calibration = calibration_from_dict(cal_meta)
        if cal_meta.get("time_since_tare_s") is not None:
            extra["time_since_tare_s"] = cal_meta["time_since_tare_s"]
    else:
        calibration = nominal_calibration(trial.rig)
        extra["flags"] = ["uncalibrated"]  # nominal data-sheet gains and no tare: never silent
        if cal_meta:
            extra["calibration_note"] = "trial names a calibration without its arrays; nominal calibration used"
            if isinstance(cal_meta, dict):
                extra["calibration_reference"] = {k: v for k, v in cal_meta.items() if isinstance(v, (str, int, float))}
    if plates is not None:
        roles = _roles(plates, calibration.n_plates, p)
        calibration = CalibrationArrays(roles, calibration.channel_index, calibration.offsets_counts,
                                        calibration.linear, calibration.quadratic,
                                        calibration.calibration_id, calibration.calibration_hash)
    if {"box_left", "box_right"} <= set(calibration.plate_roles) and "box" not in calibration.plate_roles:
        from steplab.calibration.geometry import merge_plates

        calibration = merge_plates(calibration, trial.rig)  # a split box top is one box for the analysis
        extra["merged_plates"] = {"box": ["box_left", "box_right"]}
    if isinstance(cal_meta, dict) and isinstance(cal_meta.get("records"), list):
        extra["calibration_records"] = [{k: r.get(k) for k in ("calibration_id", "content_hash")}
                                        for r in cal_meta["records"] if isinstance(r, dict)]
    counts, n_filled = _fill_gaps(trial.counts, trial.sample_index)
    extra.update(calibration_id=calibration.calibration_id, calibration_hash=calibration.calibration_hash,
                 lost_samples=int(quality.get("lost_samples", n_filled)),
                 crc_errors=int(quality.get("crc_errors", 0)),
                 interpolated_samples=int(n_filled))
    for key in ("saturated_samples", "time_since_tare_s"):
        if key in quality:
            extra[key] = quality[key]
        elif key in meta:
            extra[key] = meta[key]
    try:
        forces = forces_from_counts(counts, calibration)
    except ForceImportError as exc:
        raise ForceImportError(f"{p.name}: {exc}") from None
    return LoadedTrial(forces, rate, "steplab-trial", extra, counts=counts, calibration=calibration, trial=trial)


# -- C3D ---------------------------------------------------------------------------
#
# The plate conversion follows the C3D user guide (c3d.org, FORCE_PLATFORM group),
# implemented here from the analog channels rather than taken from ezc3d's
# ``extract_forceplat_data``: ezc3d's TYPE-1 moments have the opposite sign of its own
# TYPE-2 moments (F × COP − Tz instead of COP × F + Tz), and for TYPE-3 it negates the
# sensor half-spacings a, b together with a positive az0 (a mirrored COP).
#
# Every type is brought to the same form, in the plate's own axes: the force F the
# subject applies to the plate and the moment M about the centre of the plate's working
# surface, in N and N·m.  The plate axes are turned into the lab axes with the rotation
# the CORNERS define (corner k lies in quadrant k of the plate frame: +x+y, −x+y, −x−y,
# +x−y), and the sign is chosen so that Fz is positive under load.
#
# * TYPE 1: Fx Fy Fz Px Py Tz; (Px, Py) is the COP on the surface about its centre:
#   M = P × F + (0, 0, Tz).
# * TYPE 2: Fx Fy Fz Mx My Mz about the plate origin O; ORIGIN is the vector d from O to
#   the surface centre (z < 0 for an origin below the surface; a positive z is the older
#   AMTI description of the opposite vector and is negated): M_centre = M_O + F × d.
# * TYPE 3 (Kistler): Fx12 Fx34 Fy14 Fy23 Fz1 Fz2 Fz3 Fz4 with sensor k in quadrant k
#   at (±a, ±b) and the surface az0 above the sensor plane (ORIGIN = a, b, az0; az0 < 0,
#   a positive az0 is taken as its magnitude):
#   Mx = b (Fz1 + Fz2 − Fz3 − Fz4), My = a (−Fz1 + Fz2 + Fz3 − Fz4),
#   Mz = b (Fx34 − Fx12) + a (Fy14 − Fy23), then moved to the surface with d = (0, 0, az0).
# * TYPE 4: as TYPE 2 after the 6×6 CAL_MATRIX turns the six channels into F and M_O.

_C3D_CHANNELS = {1: 6, 2: 6, 3: 8, 4: 6}
_LENGTH_SCALE_M = {"mm": 1e-3, "cm": 1e-2, "m": 1.0, "dm": 0.1}
_FORCE_SCALE_N = {"n": 1.0, "kn": 1e3}


def _c3d_param(params: dict, group: str, name: str, path: Path, required: bool = True):
    g = params.get(group) or {}
    item = g.get(name)
    if item is None or "value" not in item:
        if required:
            raise ForceImportError(f"{path.name}: C3D parameter {group}:{name} is missing")
        return None
    return item["value"]


def _unit_key(u: str) -> str:
    return str(u).strip().lower().replace(".", "").replace("·", "").replace("*", "").replace(" ", "")


def _moment_scale_nm(unit: str, length_m: float) -> float | None:
    """N·m per unit of a moment channel: ``Nmm``, ``Nm``, ``N.cm``...; None if not a moment unit."""
    u = _unit_key(unit)
    for fu, fs in _FORCE_SCALE_N.items():
        if u.startswith(fu) and u[len(fu):] in _LENGTH_SCALE_M:
            return fs * _LENGTH_SCALE_M[u[len(fu):]]
    if u in ("nmeter", "newtonmeter", "newtonmetre"):
        return 1.0
    return None


def _c3d_plate_rotation(corners_mm: np.ndarray) -> np.ndarray:
    """3×3 rotation whose columns are the plate's x, y, z axes in the lab frame (from CORNERS)."""
    x = corners_mm[:, 0] - corners_mm[:, 1]
    y = corners_mm[:, 0] - corners_mm[:, 3]
    z = np.cross(x, y)
    y = np.cross(z, x)
    norms = np.array([np.linalg.norm(x), np.linalg.norm(y), np.linalg.norm(z)])
    if not np.all(norms > 0):
        raise ValueError("degenerate CORNERS")
    return np.column_stack((x / norms[0], y / norms[1], z / norms[2]))


def _c3d_plate_forces(kind: int, ch: np.ndarray, units: list[str], origin: np.ndarray, length_m: float,
                      cal: np.ndarray | None, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Force on the plate [N] and moment about the surface centre [N·m], (3, n) each, plate axes."""
    def force_scale(j: int) -> float:
        u = _unit_key(units[j]) if units[j] is not None else "n"
        if u in ("", "n"):
            return 1.0
        if u in _FORCE_SCALE_N:
            return _FORCE_SCALE_N[u]
        raise ForceImportError(f"{where}: force channel unit {units[j]!r} is not supported (N expected)")

    def moment_scale(j: int) -> float:
        u = units[j]
        if u is None or not str(u).strip():
            return 1.0 * length_m  # N·(POINT:UNITS), as the C3D guide assumes
        s = _moment_scale_nm(u, length_m)
        if s is None:
            raise ForceImportError(f"{where}: moment channel unit {u!r} is not supported (N·mm or N·m expected)")
        return s

    o = origin * length_m
    if kind == 1:
        f = ch[0:3] * np.array([force_scale(j) for j in range(3)])[:, None]
        pos_scale = []
        for j in (3, 4):
            u = _unit_key(units[j]) if units[j] is not None else ""
            pos_scale.append(_LENGTH_SCALE_M.get(u, length_m))
        px, py = ch[3] * pos_scale[0], ch[4] * pos_scale[1]
        tz = ch[5] * moment_scale(5)
        m = np.vstack((py * f[2], -px * f[2], px * f[1] - py * f[0] + tz))
        return f, m
    if kind in (2, 4):
        if kind == 4:
            if cal is None:
                raise ForceImportError(f"{where}: TYPE-4 plate without a 6×6 FORCE_PLATFORM:CAL_MATRIX")
            ch = cal @ ch
            # the matrix gives N and N·(POINT:UNITS); the raw channels are volts
            f = ch[0:3].copy()
            m = ch[3:6] * length_m
        else:
            f = ch[0:3] * np.array([force_scale(j) for j in range(3)])[:, None]
            m = ch[3:6] * np.array([moment_scale(j) for j in range(3, 6)])[:, None]
        d = -o if o[2] > 0 else o
        return f, m + np.cross(f, d, axisa=0, axisb=0, axisc=0)
    # TYPE 3 (Kistler)
    s = np.array([force_scale(j) for j in range(8)])[:, None]
    fx12, fx34, fy14, fy23, fz1, fz2, fz3, fz4 = ch * s
    a, b, az0 = float(o[0]), float(o[1]), -abs(float(o[2]))
    f = np.vstack((fx12 + fx34, fy14 + fy23, fz1 + fz2 + fz3 + fz4))
    m = np.vstack((b * (fz1 + fz2 - fz3 - fz4), a * (-fz1 + fz2 + fz3 - fz4), b * (fx34 - fx12) + a * (fy14 - fy23)))
    return f, m + np.cross(f, np.array([0.0, 0.0, az0]), axisa=0, axisb=0, axisc=0)


def _load_c3d(p: Path, given_rate: float | None, plates) -> LoadedTrial:
    import ezc3d

    try:
        c = ezc3d.c3d(str(p))
    except Exception as exc:  # ezc3d raises RuntimeError/IOError/IndexError on bad files
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ForceImportError(f"{p.name}: cannot read C3D file ({msg})") from None
    params = c["parameters"]
    if "FORCE_PLATFORM" not in params:
        raise ForceImportError(f"{p.name}: the C3D file has no force platforms")
    used_v = np.atleast_1d(_c3d_param(params, "FORCE_PLATFORM", "USED", p))
    n_plates = int(used_v[0]) if used_v.size else 0
    if n_plates < 1:
        raise ForceImportError(f"{p.name}: the C3D file has no force platforms")
    rate = float(c["header"]["analogs"]["frame_rate"])
    if not (math.isfinite(rate) and rate > 0):
        raise ForceImportError(f"{p.name}: the C3D file has no valid analog rate")
    rate = _reconcile_rate(rate, given_rate, p, "C3D analog rate")
    roles = _roles(plates, n_plates, p)

    types = [int(t) for t in np.atleast_1d(_c3d_param(params, "FORCE_PLATFORM", "TYPE", p))]
    channel = np.asarray(_c3d_param(params, "FORCE_PLATFORM", "CHANNEL", p))
    corners = np.asarray(_c3d_param(params, "FORCE_PLATFORM", "CORNERS", p), dtype=np.float64)
    origin = np.asarray(_c3d_param(params, "FORCE_PLATFORM", "ORIGIN", p), dtype=np.float64)
    cal_all = _c3d_param(params, "FORCE_PLATFORM", "CAL_MATRIX", p, required=False)
    cal_all = None if cal_all is None else np.asarray(cal_all, dtype=np.float64)
    point_units = _c3d_param(params, "POINT", "UNITS", p, required=False)
    pu = _unit_key(point_units[0]) if point_units is not None and len(point_units) else "mm"
    if pu not in _LENGTH_SCALE_M:
        raise ForceImportError(f"{p.name}: POINT:UNITS {point_units[0]!r} is not a length unit")
    length_m = _LENGTH_SCALE_M[pu]
    analogs = np.asarray(c["data"]["analogs"], dtype=np.float64)
    analogs = analogs.reshape(analogs.shape[-2], analogs.shape[-1]) if analogs.ndim == 3 else analogs
    n_ch = analogs.shape[0]
    units_all = _c3d_param(params, "ANALOG", "UNITS", p, required=False)
    units_all = list(units_all) if units_all is not None else []

    if channel.ndim == 1:
        channel = channel.reshape(-1, 1)
    if len(types) < n_plates or channel.shape[1] < n_plates:
        raise ForceImportError(f"{p.name}: FORCE_PLATFORM:TYPE/CHANNEL describe fewer than USED = {n_plates} plates")
    corners = corners.reshape(3, 4, -1) if corners.size >= 12 * n_plates else None
    origin = origin.reshape(3, -1) if origin.size >= 3 * n_plates else None
    if corners is None or origin is None:
        raise ForceImportError(f"{p.name}: FORCE_PLATFORM:CORNERS/ORIGIN describe fewer than USED = {n_plates} plates")

    out: dict[str, PlateForces] = {}
    for i, role in enumerate(roles):
        where = f"{p.name}: force platform {i + 1}"
        kind = types[i]
        if kind not in _C3D_CHANNELS:
            raise ForceImportError(f"{where} is of TYPE {kind}; only TYPE 1-4 are supported")
        need = _C3D_CHANNELS[kind]
        if channel.shape[0] < need:
            raise ForceImportError(f"{where}: TYPE {kind} needs {need} channels, "
                                   f"FORCE_PLATFORM:CHANNEL has {channel.shape[0]}")
        idx = [int(v) - 1 for v in channel[:need, i]]
        if any(j < 0 or j >= n_ch for j in idx):
            raise ForceImportError(f"{where}: FORCE_PLATFORM:CHANNEL names a channel outside 1..{n_ch}")
        cal = None
        if kind == 4 and cal_all is not None and cal_all.size >= 36 * (i + 1):
            cal = cal_all.reshape(6, 6, -1)[:, :, i]
        units = [units_all[j] if j < len(units_all) else None for j in idx]
        f_p, m_p = _c3d_plate_forces(kind, analogs[idx], units, origin[:, i], length_m, cal, where)
        try:
            rot = _c3d_plate_rotation(corners[:, :, i])
        except ValueError:
            raise ForceImportError(f"{where}: FORCE_PLATFORM:CORNERS do not span a plane") from None
        f_lab, m_lab = rot @ f_p, rot @ m_p
        # the plate measures the subject's push (down in the lab): the reaction is up; a file
        # storing the reaction already (its largest |Fz| pointing up) keeps its sign
        sign = -1.0
        fz = f_lab[2]
        if fz.size and fz[int(np.argmax(np.abs(fz)))] > 0:
            sign = 1.0
        out[role] = PlateForces(fz_n=np.ascontiguousarray(sign * fz), mx_nm=np.ascontiguousarray(sign * m_lab[0]),
                                my_nm=np.ascontiguousarray(sign * m_lab[1]))
    extra = {"c3d_plate_types": types[:n_plates], "c3d_points_rate_hz": float(c["header"]["points"]["frame_rate"])}
    return LoadedTrial(out, rate, "c3d", extra)


# -- CSV / TSV -----------------------------------------------------------------------

def _split(line: str, delim: str | None) -> list[str]:
    return [s.strip().strip('"').strip("'") for s in (line.split(delim) if delim else line.split())]


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _load_text(p: Path, given_rate: float | None, plates) -> LoadedTrial:
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ForceImportError(f"{p.name}: not a text file of forces (not UTF-8 text)") from None
    except OSError as exc:
        raise ForceImportError(f"{p}: cannot read ({exc.strerror or exc})") from None
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ForceImportError(f"{p.name}: file holds no data")
    first = lines[0][1]
    delim = "\t" if "\t" in first else "," if "," in first else ";" if ";" in first else None
    head = _split(first, delim)
    has_header = not all(_is_number(s) for s in head if s != "")
    names = [h.lower() for h in head] if has_header else [f"column {j + 1}" for j in range(len(head))]
    rows = lines[1:] if has_header else lines
    if not rows:
        raise ForceImportError(f"{p.name}: file has a header but no data rows")
    ncol = len(names)
    data = np.empty((len(rows), ncol))
    for r, (lineno, ln) in enumerate(rows):
        fields = _split(ln, delim)
        if len(fields) != ncol:
            raise ForceImportError(f"{p.name}: line {lineno} has {len(fields)} columns, expected {ncol}")
        try:
            data[r] = [float(s) for s in fields]
        except ValueError:
            raise ForceImportError(f"{p.name}: line {lineno} holds a value that is not a number") from None
    bad = ~np.isfinite(data)
    if bad.any():
        r, j = np.argwhere(bad)[0]
        raise ForceImportError(f"{p.name}: line {rows[r][0]} column {names[j]!r} holds NaN or inf")
    if data.shape[0] < 2:
        raise ForceImportError(f"{p.name}: needs at least 2 samples, has {data.shape[0]}")

    time_col = None
    force_cols: list[int] = []
    moment_of: dict[int, dict[str, int]] = {}
    moment_scale: dict[int, float] = {}
    for j, nm in enumerate(names):
        if not has_header:
            force_cols.append(j)
            continue
        if time_col is None and _TIME_RE.match(nm):
            time_col = j
            continue
        if _INDEX_RE.match(nm):
            continue
        mm = _MOMENT_RE.search(nm)
        if mm:
            if not force_cols:
                raise ForceImportError(f"{p.name}: moment column {head[j]!r} comes before any force column")
            moment_of.setdefault(force_cols[-1], {})[mm.group(2)] = j
            moment_scale[j] = 1e-3 if "nmm" in nm.replace(".", "").replace("·", "") else 1.0
            continue
        force_cols.append(j)
    if not force_cols:
        raise ForceImportError(f"{p.name}: no force columns found")

    if time_col is not None:
        t = data[:, time_col] * (1e-3 if "ms" in names[time_col] else 1.0)
        dt = np.diff(t)
        if np.any(dt <= 0):
            raise ForceImportError(f"{p.name}: time column {head[time_col]!r} is not strictly increasing")
        mean_dt = (t[-1] - t[0]) / (t.size - 1)
        if np.max(np.abs(dt - mean_dt)) > 0.01 * mean_dt + 1e-9:
            raise ForceImportError(f"{p.name}: time column {head[time_col]!r} is not uniformly sampled")
        rate = _reconcile_rate(1.0 / mean_dt, given_rate, p, "rate of the time column")
    else:
        if given_rate is None:
            raise ForceImportError(f"{p.name}: the file has no time column; give the sample rate with --rate HZ")
        rate = given_rate

    n_force = len(force_cols)
    if plates is None:
        if moment_of or n_force in DEFAULT_ROLES:
            roles = _roles(None, n_force, p)
        else:
            raise ForceImportError(f"{p.name}: {n_force} force columns; name the plates with --plates ROLE,... "
                                   "(columns are split evenly among them, in file order)")
    else:
        roles = parse_plates(plates)
    n_plates = len(roles)
    if n_force % n_plates:
        raise ForceImportError(f"{p.name}: {n_force} force columns cannot be split evenly among {n_plates} plates")
    per = n_force // n_plates
    if per > 1 and moment_of:
        raise ForceImportError(f"{p.name}: moment columns are only supported with one force column per plate")
    out: dict[str, PlateForces] = {}
    for i, role in enumerate(roles):
        cols = force_cols[i * per:(i + 1) * per]
        fz = data[:, cols].sum(axis=1)
        mom = moment_of.get(cols[0], {}) if per == 1 else {}
        mx = data[:, mom["mx"]] * moment_scale[mom["mx"]] if "mx" in mom and "my" in mom else None
        my = data[:, mom["my"]] * moment_scale[mom["my"]] if mx is not None else None
        out[role] = PlateForces(fz_n=np.ascontiguousarray(fz), mx_nm=mx, my_nm=my)
    extra = {"columns": [head[j] for j in force_cols] if has_header else n_force,
             "cells_per_plate": per, "rate_from": "time column" if time_col is not None else "--rate"}
    return LoadedTrial(out, rate, "csv", extra)
