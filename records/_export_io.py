"""Shared by the exporters: atomic no-replace saves, the trial's forces, the header facts.

A save writes a temporary file in the target folder and then links it to the
target name (``os.link`` fails if the name exists, so an existing file is never
replaced, not even by a race), then removes the temporary name.  Any failure
leaves nothing behind and raises :class:`ExportError` with one line.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from steplab.acquisition.trial_file import Trial
from steplab.calibration.arrays import CalibrationArrays, nominal_calibration
from steplab.dsp.params import PlateForces
from steplab.records.export_model import ExportSubject, ExportTrial, export_meta

_CAL_FIELDS = ("plate_roles", "channel_index", "offsets_counts", "linear", "quadratic")


class ExportError(ValueError):
    """An export that cannot be written (one line naming the file and the reason)."""


def save_atomically(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` on a temporary file next to ``path``, then move it to ``path`` without replacing.

    Raises ExportError when ``path`` exists, its folder does not, or writing fails.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise ExportError(f"{path} already exists; choose another name (exports never replace a file)")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ExportError(f"cannot write {path}: folder {folder} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=folder)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise ExportError(f"{path} already exists; choose another name (exports never replace a file)") from None
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def trial_calibration(trial: Trial) -> tuple[CalibrationArrays, bool]:
    """The calibration the trial's analysis used: its embedded arrays, else the rig's nominal one.

    Returns (calibration, calibrated); ``calibrated`` is False for the nominal fallback
    (the same choice as ``records.importers``: a trial naming a calibration without its
    arrays is analysed with the nominal data-sheet gains and flagged ``uncalibrated``).
    """
    from steplab.records.importers import calibration_from_dict

    cal_meta = (trial.meta or {}).get("calibration")
    if isinstance(cal_meta, dict) and all(k in cal_meta for k in _CAL_FIELDS):
        try:
            return calibration_from_dict(cal_meta), True
        except ValueError as exc:
            raise ExportError(f"trial calibration is unusable: {exc}") from None
    return nominal_calibration(trial.rig), False


def plate_forces(counts: np.ndarray, calibration: CalibrationArrays) -> dict[str, PlateForces]:
    """Calibrated per-plate forces (Fz [N], Mx, My [N·m] about the plate centre) of raw counts."""
    from steplab.records.importers import forces_from_counts

    try:
        return forces_from_counts(counts, calibration)
    except ValueError as exc:
        raise ExportError(f"cannot calibrate the trial's counts: {exc}") from None


def plate_cop(plate: PlateForces) -> np.ndarray:
    """COP (n, 2) [mm] in the plate frame, NaN below 20 N (``records.importers.plate_cop_mm``)."""
    from steplab.records.importers import plate_cop_mm

    return plate_cop_mm(plate)


def dense_counts(trial: Trial) -> tuple[np.ndarray, np.ndarray]:
    """Counts on the dense timeline from the first received sample, lost rows interpolated.

    Returns (int32 (N, C) counts, bool (N,) received mask).  The interpolation is the
    one the analysis of a trial file applies (``records.importers``: linear in counts,
    rounded to whole counts), so an export analyses like its trial.
    """
    idx = trial.sample_index.astype(np.int64) - int(trial.sample_index[0])
    n_total = int(idx[-1]) + 1
    received = np.zeros(n_total, dtype=bool)
    received[idx] = True
    if n_total == trial.counts.shape[0]:
        return trial.counts, received
    t = np.arange(n_total, dtype=np.float64)
    out = np.empty((n_total, trial.counts.shape[1]), dtype=np.int32)
    for ch in range(trial.counts.shape[1]):
        out[:, ch] = np.rint(np.interp(t, idx.astype(np.float64), trial.counts[:, ch].astype(np.float64))).astype(np.int32)
    return out, received


def gaps(trial: Trial) -> list[dict[str, int]]:
    """Lost stretches on the trial timeline: [{"at_sample", "length"}], from the sample positions."""
    idx = trial.sample_index.astype(np.int64)
    if idx.size < 2:
        return []
    d = np.diff(idx)
    where = np.flatnonzero(d > 1)
    return [{"at_sample": int(idx[i] + 1), "length": int(d[i] - 1)} for i in where]


def raw_trial(et: ExportTrial, path: str | Path) -> Trial:
    """The trial's raw recording, or ExportError when it was imported without one."""
    if et.trial is None:
        raise ExportError(f"cannot write {path}: trial {et.trial_id} has no steplab raw recording (imported from "
                          "another format)")
    return et.trial


def header_facts(et: ExportTrial, subject: ExportSubject) -> list[tuple[str, Any]]:
    """(key, value) facts every per-trial export carries, pseudonymised unless identified."""
    t = raw_trial(et, "the export")
    meta = export_meta(t, subject)
    cal, calibrated = trial_calibration(t)
    quality = meta.get("quality") or {}
    facts: list[tuple[str, Any]] = [
        ("patient", subject.code),
    ]
    if subject.identified:
        facts.append(("patient_name", subject.name or ""))
        if subject.birth_date is not None:
            facts.append(("birth_date", subject.birth_date.isoformat()))
        if t.meta.get("started_at"):
            facts.append(("started_at", t.meta["started_at"]))
        facts.append(("rig_serial", t.rig.serial))
        dev = t.meta.get("device") or {}
        info = dev.get("info") if isinstance(dev, dict) else None
        if isinstance(info, dict) and info.get("serial") is not None:
            facts.append(("device_serial", info.get("serial")))
    if subject.birth_year is not None:
        facts.append(("birth_year", subject.birth_year))
    if subject.involved:
        facts.append(("involved_limb", subject.involved))
    facts += [
        ("identified", "yes" if subject.identified else "no (pseudonymised)"),
        ("trial_id", et.trial_id),
        ("protocol", et.protocol),
        ("protocol_version", et.protocol_version if et.protocol_version is not None else ""),
        ("lead", et.lead or ""),
        ("accepted", "yes" if et.accepted else f"no ({et.reject_reason or 'rejected'})"),
        ("result_version", et.result_version),
        ("sample_rate_hz", f"{t.sample_rate_hz:g}"),
        ("rig", t.rig.name),
        ("channels", t.rig.channels),
        ("calibration_id", cal.calibration_id if calibrated else "nominal (uncalibrated)"),
        ("calibration_hash", cal.calibration_hash),
        ("samples_received", t.n_samples),
        ("lost_samples", int(quality.get("lost_samples", sum(g["length"] for g in gaps(t))))),
        ("crc_errors", int(quality.get("crc_errors", 0))),
        ("software", meta.get("software_version", "")),
    ]
    return facts
