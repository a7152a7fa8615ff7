"""Versioned, content-hashed calibration records (one JSON file per calibration).

A record holds, per plate: the matrix (linear and quadratic), the offsets, the
plate geometry and the calibration statistics; and for the whole record: operator,
date, rig name, serial and description hash, software version. Its
``content_hash`` is the SHA-256 of the canonical JSON of everything else, and its
``calibration_id`` is ``<rig serial>[-<plate>]-<UTC date>-<first 8 hex of the
hash>``. Files live in ``$STEPLAB_DATA_DIR/calibrations/`` (default data dir:
``platformdirs.user_data_dir("steplab")``).

Loading verifies the format name and version, the hash and (given the rig) the
rig serial: a corrupt file, an unknown version or another rig's file raises
``CalibrationRecordError`` and nothing is applied.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from steplab import __version__ as SOFTWARE_VERSION
from steplab.acquisition.rig import Rig

from .arrays import CalibrationArrays

RECORD_FORMAT = "steplab-calibration"
RECORD_FORMAT_VERSION = 1
DEFAULT_MAX_AGE_DAYS = 180.0


class CalibrationRecordError(ValueError):
    """A calibration file that must not be applied; the message says why."""


def data_dir() -> Path:
    """``$STEPLAB_DATA_DIR`` or the user's data directory for steplab."""
    env = os.environ.get("STEPLAB_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("steplab"))


def calibrations_dir(base: str | Path | None = None) -> Path:
    """Directory of calibration records (``<data dir>/calibrations``)."""
    return (Path(base) if base is not None else data_dir()) / "calibrations"


def _utc_iso(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware (UTC)")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    """Parse the records' ``YYYY-MM-DDTHH:MM:SSZ`` timestamps (or any ISO 8601 with offset)."""
    t = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t


def _clean(v):
    """JSON-safe copy: numpy → Python, NaN/inf → None."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.ndarray):
        return _clean(v.tolist())
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    return v


def content_hash(content: dict) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces) of ``content``."""
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class PlateCalibration:
    """The calibration of one plate inside a record (JSON-ready values)."""

    plate: str
    role: str
    channels: tuple[int, ...]
    offsets_counts: tuple[float, ...]
    linear: tuple[tuple[float, ...], ...]
    quadratic: tuple[tuple[float, ...], ...]
    geometry: dict
    statistics: dict

    def to_dict(self) -> dict:
        return {
            "plate": self.plate, "role": self.role, "channels": list(self.channels),
            "offsets_counts": list(self.offsets_counts), "linear": [list(r) for r in self.linear],
            "quadratic": [list(r) for r in self.quadratic], "geometry": self.geometry, "statistics": self.statistics,
        }

    @classmethod
    def from_dict(cls, d: dict) -> PlateCalibration:
        k = len(d["channels"])
        lin = tuple(tuple(float(v) for v in r) for r in d["linear"])
        quad = tuple(tuple(float(v) for v in r) for r in d["quadratic"])
        off = tuple(float(v) for v in d["offsets_counts"])
        if len(off) != k or len(lin) != 3 or len(quad) != 3 or any(len(r) != k for r in lin + quad):
            raise CalibrationRecordError(f"plate {d.get('plate')!r}: matrix or offsets do not match its {k} channels")
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in d["channels"]):
            raise CalibrationRecordError(f"plate {d.get('plate')!r}: channels must be non-negative integers")
        return cls(str(d["plate"]), str(d["role"]), tuple(d["channels"]), off, lin, quad,
                   dict(d.get("geometry", {})), dict(d.get("statistics", {})))

    @classmethod
    def from_result(cls, result) -> PlateCalibration:
        """From a ``procedure.PlateCalibrationResult``."""
        g = result.geometry
        stats = result.report.to_dict()
        stats["rank"] = int(result.fit.rank)
        stats["n_fit_readings"] = int(result.fit.n_points)
        stats["tare_noise_n"] = float(result.tare.noise_n)
        return cls(g.name, g.role, tuple(int(c) for c in g.channels), tuple(float(v) for v in result.offsets_counts),
                   tuple(tuple(float(v) for v in r) for r in result.fit.linear),
                   tuple(tuple(float(v) for v in r) for r in result.fit.quadratic), _clean(g.to_dict()), _clean(stats))


@dataclass(frozen=True)
class CalibrationRecord:
    """One calibration: one or more plates of one rig."""

    calibration_id: str
    content_hash: str
    created_utc: str
    operator: str
    rig_name: str
    rig_serial: str
    rig_hash: str
    software_version: str
    plates: tuple[PlateCalibration, ...]
    format_version: int = RECORD_FORMAT_VERSION

    @property
    def created(self) -> datetime:
        return parse_utc(self.created_utc)

    @property
    def plate_names(self) -> tuple[str, ...]:
        return tuple(p.plate for p in self.plates)

    def plate(self, name_or_role: str) -> PlateCalibration:
        for p in self.plates:
            if name_or_role in (p.plate, p.role):
                return p
        raise KeyError(f"calibration {self.calibration_id} has no plate {name_or_role!r}")

    def content(self) -> dict:
        """Everything the hash covers (all but the id and the hash)."""
        return {
            "format": RECORD_FORMAT, "format_version": int(self.format_version), "created_utc": self.created_utc,
            "operator": self.operator, "rig_name": self.rig_name, "rig_serial": self.rig_serial,
            "rig_hash": self.rig_hash, "software_version": self.software_version,
            "plates": [p.to_dict() for p in self.plates],
        }

    def to_dict(self) -> dict:
        d = self.content()
        d["calibration_id"] = self.calibration_id
        d["content_hash"] = self.content_hash
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, allow_nan=False)

    def to_arrays(self):
        """The record as ``calibration.arrays.CalibrationArrays`` (its plates, in record order)."""
        k = max(len(p.channels) for p in self.plates)
        n = len(self.plates)
        ci = np.full((n, k), -1, dtype=np.int64)
        off = np.zeros((n, k))
        lin = np.zeros((n, 3, k))
        quad = np.zeros((n, 3, k))
        for i, p in enumerate(self.plates):
            m = len(p.channels)
            ci[i, :m] = p.channels
            off[i, :m] = p.offsets_counts
            lin[i, :, :m] = np.asarray(p.linear)
            quad[i, :, :m] = np.asarray(p.quadratic)
        return CalibrationArrays(tuple(p.role for p in self.plates), ci, off, lin, quad,
                                 calibration_id=self.calibration_id, calibration_hash=self.content_hash)


def make_record(plates, rig: Rig, *, operator: str, created: datetime | None = None) -> CalibrationRecord:
    """Build a record from ``PlateCalibration`` s or procedure results, hashing its content.

    Parameters
    ----------
    plates : sequence
        ``PlateCalibration`` or ``procedure.PlateCalibrationResult`` items (≥ 1).
    rig : Rig
        The rig calibrated (name, serial and description hash are stored).
    operator : str
        Who calibrated.
    created : datetime or None
        Timezone-aware time of the calibration; now (UTC) when None.
    """
    pcs = tuple(p if isinstance(p, PlateCalibration) else PlateCalibration.from_result(p) for p in plates)
    pcs = tuple(replace(p, geometry=_clean(p.geometry), statistics=_clean(p.statistics)) for p in pcs)
    if not pcs:
        raise ValueError("a calibration record needs at least one plate")
    if not str(operator).strip():
        raise ValueError("operator must not be empty")
    when = _utc_iso(created or datetime.now(UTC))
    rec = CalibrationRecord("", "", when, str(operator), rig.name, rig.serial, rig.hash(), SOFTWARE_VERSION, pcs)
    h = content_hash(rec.content())
    part = f"{rig.serial}-{pcs[0].plate}" if len(pcs) == 1 else rig.serial
    cid = f"{part}-{when.replace('-', '').replace(':', '')}-{h[:8]}"
    return CalibrationRecord(cid, h, when, rec.operator, rec.rig_name, rec.rig_serial, rec.rig_hash, rec.software_version, pcs)


def record_from_dict(d: dict, *, source: str = "calibration") -> CalibrationRecord:
    """Validate and build a record from its JSON object (format, version, hash)."""
    if not isinstance(d, dict) or d.get("format") != RECORD_FORMAT:
        raise CalibrationRecordError(f"{source} is not a steplab calibration record")
    version = d.get("format_version")
    if version != RECORD_FORMAT_VERSION:
        raise CalibrationRecordError(f"{source} has calibration format version {version!r}; "
                                     f"this steplab reads version {RECORD_FORMAT_VERSION}")
    try:
        rec = CalibrationRecord(
            calibration_id=str(d["calibration_id"]), content_hash=str(d["content_hash"]), created_utc=str(d["created_utc"]),
            operator=str(d["operator"]), rig_name=str(d["rig_name"]), rig_serial=str(d["rig_serial"]),
            rig_hash=str(d["rig_hash"]), software_version=str(d["software_version"]),
            plates=tuple(PlateCalibration.from_dict(p) for p in d["plates"]), format_version=int(version),
        )
        parse_utc(rec.created_utc)
    except CalibrationRecordError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationRecordError(f"{source} is incomplete or malformed ({type(exc).__name__}: {exc})") from None
    if not rec.plates:
        raise CalibrationRecordError(f"{source} holds no plates")
    try:
        h = content_hash(rec.content())
    except ValueError:
        h = ""
    if h != rec.content_hash:
        raise CalibrationRecordError(f"{source} is corrupt: its content does not match its hash")
    if not rec.calibration_id.endswith(h[:8]):
        raise CalibrationRecordError(f"{source} is corrupt: calibration id {rec.calibration_id!r} does not name its hash")
    return rec


def load_record(path: str | Path, rig: Rig | None = None) -> CalibrationRecord:
    """Read and verify a calibration file; with ``rig``, also check it belongs to that rig.

    Raises
    ------
    CalibrationRecordError
        Unreadable, not JSON, not a record, unknown version, hash mismatch, or another rig's.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CalibrationRecordError(f"cannot read calibration file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CalibrationRecordError(f"calibration file {p} is corrupt (not UTF-8 text)") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CalibrationRecordError(f"calibration file {p} is corrupt (not valid JSON, line {exc.lineno})") from None
    rec = record_from_dict(d, source=f"calibration file {p.name}")
    if rig is not None:
        check_rig(rec, rig)
    return rec


def check_rig(rec: CalibrationRecord, rig: Rig) -> None:
    """Raise CalibrationRecordError unless ``rec`` was made on ``rig`` with matching channels."""
    if rec.rig_serial != rig.serial:
        raise CalibrationRecordError(f"calibration {rec.calibration_id} belongs to rig {rec.rig_serial!r}, not to this rig {rig.serial!r}")
    for pc in rec.plates:
        try:
            plate = rig.plate(pc.plate)
        except ValueError:
            raise CalibrationRecordError(f"calibration {rec.calibration_id} names plate {pc.plate!r}, "
                                         "which this rig does not have") from None
        if tuple(plate.channels) != tuple(pc.channels):
            raise CalibrationRecordError(f"calibration {rec.calibration_id}: plate {pc.plate!r} channels {list(pc.channels)} "
                                         f"differ from the rig's {list(plate.channels)}")


def save_record(rec: CalibrationRecord, directory: str | Path | None = None, *, path: str | Path | None = None) -> Path:
    """Write ``rec`` atomically to the new file ``path`` or ``<directory>/<calibration_id>.json``.

    ``directory`` defaults to ``calibrations_dir()``. Returns the file written.
    An existing file is never replaced (also one that appeared meanwhile):
    raises CalibrationRecordError, and nothing is changed.
    """
    from steplab.acquisition.atomic_create import create_new_file

    target = Path(path) if path is not None else Path(directory or calibrations_dir()) / f"{rec.calibration_id}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        return create_new_file(target, rec.to_json().encode("utf-8"))
    except FileExistsError:
        raise CalibrationRecordError(f"{target} already exists; a calibration record is never replaced") from None


def list_records(directory: str | Path | None = None, rig: Rig | None = None) -> tuple[list[CalibrationRecord], list[str]]:
    """All valid records in ``directory`` (oldest first) and one error line per unusable file."""
    d = Path(directory) if directory is not None else calibrations_dir()
    good: list[CalibrationRecord] = []
    bad: list[str] = []
    for p in sorted(d.glob("*.json")) if d.is_dir() else []:
        try:
            good.append(load_record(p, rig))
        except CalibrationRecordError as exc:
            bad.append(str(exc))
    good.sort(key=lambda r: (r.created, r.calibration_id))
    return good, bad


def latest_for_plate(records, plate: str) -> CalibrationRecord | None:
    """The newest record covering ``plate`` (name or role), or None."""
    best = None
    for r in records:
        if any(plate in (p.plate, p.role) for p in r.plates) and (best is None or r.created > best.created):
            best = r
    return best


def calibration_warnings(rec: CalibrationRecord, *, now: datetime | None = None, max_age_days: float = DEFAULT_MAX_AGE_DAYS,
                         device_calibration_hash: str | None = None, rig: Rig | None = None) -> list[str]:
    """Reasons to distrust an applicable record (empty when none).

    Parameters
    ----------
    now : datetime or None
        Timezone-aware current time (UTC now when None).
    max_age_days : float
        Warn when the calibration is older than this [days] (default 180).
    device_calibration_hash : str or None
        The calibration hash the rig reports; warn when it differs.
    rig : Rig or None
        Warn when the rig description (plate geometry, channel map) changed since.
    """
    if not max_age_days > 0:
        raise ValueError(f"max_age_days must be positive, got {max_age_days}")
    now = now or datetime.now(UTC)
    out = []
    age = now - rec.created
    if age > timedelta(days=max_age_days):
        out.append(f"calibration {rec.calibration_id} is {age.days} days old (limit {max_age_days:g}): recalibrate")
    if device_calibration_hash is not None and device_calibration_hash != rec.content_hash:
        out.append(f"the rig reports calibration hash {device_calibration_hash[:12]}, not {rec.content_hash[:12]} of {rec.calibration_id}")
    if rig is not None and rig.hash() != rec.rig_hash:
        out.append(f"the rig description changed since calibration {rec.calibration_id} (plates moved or re-wired?): recalibrate")
    return out


def recalibrated_since(trial_calibration_id: str, trial_time: datetime, records, plates=None) -> list[str]:
    """Plates recalibrated after a trial: one line per newer record (offer re-analysis).

    Parameters
    ----------
    trial_calibration_id : str
        The calibration the trial was analysed with.
    trial_time : datetime
        Timezone-aware time of the trial.
    records : iterable of CalibrationRecord
        The current records.
    plates : iterable of str or None
        Only these plates (names or roles); all when None.
    """
    want = None if plates is None else set(plates)
    out = []
    for r in sorted(records, key=lambda r: r.created):
        if r.calibration_id == trial_calibration_id or r.created <= trial_time:
            continue
        names = [p.plate for p in r.plates if want is None or p.plate in want or p.role in want]
        if names:
            out.append(f"plate(s) {', '.join(names)} recalibrated on {r.created_utc} ({r.calibration_id}) after this trial "
                       f"(analysed with {trial_calibration_id}): re-analyse with the new calibration?")
    return out


def arrays_for_rig(rig: Rig, records):
    """CalibrationArrays for every plate of ``rig`` from the newest record of each plate.

    Plates in rig order. The ``calibration_id`` names the records used (joined by
    ``+``); the hash is computed from the arrays.

    Raises
    ------
    CalibrationRecordError
        When a plate has no calibration, or a record belongs to another rig.
    """
    chosen = []
    for plate in rig.plates:
        rec = latest_for_plate(records, plate.name)
        if rec is None:
            raise CalibrationRecordError(f"plate {plate.name!r} has no calibration: run steplab calibrate --plate {plate.name}")
        check_rig(rec, rig)
        chosen.append((rec, rec.plate(plate.name)))
    k = max(len(pc.channels) for _, pc in chosen)
    n = len(chosen)
    ci = np.full((n, k), -1, dtype=np.int64)
    off = np.zeros((n, k))
    lin = np.zeros((n, 3, k))
    quad = np.zeros((n, 3, k))
    for i, (_, pc) in enumerate(chosen):
        m = len(pc.channels)
        ci[i, :m] = pc.channels
        off[i, :m] = pc.offsets_counts
        lin[i, :, :m] = np.asarray(pc.linear)
        quad[i, :, :m] = np.asarray(pc.quadratic)
    ids = "+".join(dict.fromkeys(r.calibration_id for r, _ in chosen))
    return CalibrationArrays(tuple(p.role for p in rig.plates), ci, off, lin, quad, calibration_id=ids)
