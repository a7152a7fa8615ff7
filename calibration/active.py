"""The calibration in force for a rig, and its reference stored with every trial.

Recording and the live view use the newest calibration record of each plate
(``records.arrays_for_rig``).  A trial carries the full arrays it was recorded
with (so re-analysis never depends on files that may move) plus the ids and
content hashes of the records they came from, and the warnings that applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from steplab.acquisition.rig import Rig

from .arrays import CalibrationArrays
from .records import CalibrationRecord, CalibrationRecordError, arrays_for_rig, calibration_warnings, list_records, load_record


def arrays_to_dict(arrays: CalibrationArrays) -> dict:
    """The JSON form of CalibrationArrays (fields of the dataclass, arrays as nested lists)."""
    return {
        "calibration_id": arrays.calibration_id,
        "calibration_hash": arrays.calibration_hash,
        "plate_roles": list(arrays.plate_roles),
        "channel_index": np.asarray(arrays.channel_index).tolist(),
        "offsets_counts": np.asarray(arrays.offsets_counts).tolist(),
        "linear": np.asarray(arrays.linear).tolist(),
        "quadratic": np.asarray(arrays.quadratic).tolist(),
    }


@dataclass
class ActiveCalibration:
    """Arrays for every plate of a rig and the records they came from."""

    arrays: CalibrationArrays
    records: list[CalibrationRecord]
    warnings: list[str] = field(default_factory=list)

    @property
    def tared_at(self) -> datetime:
        """When the offsets were taken (the newest record's creation time)."""
        return max(r.created for r in self.records)

    def trial_reference(self, now: datetime | None = None) -> dict:
        """What a trial stores: the arrays, the records' ids and hashes, warnings, time since tare."""
        now = now or datetime.now(UTC)
        d = arrays_to_dict(self.arrays)
        d["records"] = [{"calibration_id": r.calibration_id, "content_hash": r.content_hash,
                         "created_utc": r.created_utc, "plates": [p.plate for p in r.plates]} for r in self.records]
        d["warnings"] = list(self.warnings)
        d["time_since_tare_s"] = round((now - self.tared_at).total_seconds(), 1)
        return d


def active_calibration(rig: Rig, *, directory: str | Path | None = None, files: list[str | Path] | None = None,
                       device_calibration_hash: str | None = None) -> ActiveCalibration | None:
    """The calibration in force for ``rig``: from ``files`` when given, else the records directory.

    Returns None when some plate of the rig has no calibration (the caller then
    falls back to nominal gains and says so).  Raises CalibrationRecordError for a
    named file that is unusable (corrupt, unknown version, another rig's).
    """
    if files:
        records = [load_record(f, rig) for f in files]
    else:
        records, _bad = list_records(directory, rig=rig)
        records = [r for r in records if r.rig_serial == rig.serial]
    if not records:
        return None
    try:
        arrays = arrays_for_rig(rig, records)
    except CalibrationRecordError:
        if files:
            raise
        return None
    used_ids = set(arrays.calibration_id.split("+"))
    used = [r for r in records if r.calibration_id in used_ids]
    warnings: list[str] = []
    for r in used:
        warnings += calibration_warnings(r, device_calibration_hash=device_calibration_hash, rig=rig)
    return ActiveCalibration(arrays, used, warnings)
