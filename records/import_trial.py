"""steplab trial files (a ZIP archive, see ``steplab.acquisition.trial_file``) → counts and per-plate forces.

Raw counts are calibrated with the calibration stored in the trial (when it holds
the full arrays) or else the rig's nominal calibration (flagged ``uncalibrated``);
the counts and calibration are kept so the caller can run
``steplab.dsp.analyze_counts``.  Lost samples (gaps) are filled by linear
interpolation of the counts and counted in the provenance (``interpolated_samples``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steplab.calibration.arrays import CalibrationArrays, nominal_calibration
from steplab.dsp.params import PlateForces
from steplab.records.import_common import IGNORE_ROLE, ForceImportError, LoadedTrial, plate_roles, reconcile_rate


def forces_from_counts(counts: np.ndarray, calibration: CalibrationArrays) -> dict[str, PlateForces]:
    """Apply a calibration to raw counts: role → PlateForces (Fz [N], Mx, My [N·m]).

    ``counts`` is (n, channels); every channel the calibration uses must exist.
    """
    from steplab.calibration.apply import calibrated_forces

    try:
        return calibrated_forces(counts, calibration)
    except ValueError as exc:
        raise ForceImportError(str(exc)) from None


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


def load_trial(p: Path, given_rate: float | None, plates) -> LoadedTrial:
    from steplab.acquisition.trial_file import read_trial

    try:
        trial = read_trial(p)
    except ValueError as exc:
        raise ForceImportError(str(exc)) from None
    if trial.counts.shape[0] < 2:
        raise ForceImportError(f"{p.name}: needs at least 2 samples, has {trial.counts.shape[0]}")
    rate = reconcile_rate(trial.sample_rate_hz, given_rate, p, "trial file's sample rate")
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
        roles = plate_roles(plates, calibration.n_plates, p)
        keep = [i for i, r in enumerate(roles) if r != IGNORE_ROLE]  # "-": a plate left out
        if len(keep) < len(roles):
            extra["ignored_plates"] = [i + 1 for i, r in enumerate(roles) if r == IGNORE_ROLE]
        calibration = CalibrationArrays(tuple(roles[i] for i in keep), calibration.channel_index[keep],
                                        calibration.offsets_counts[keep], calibration.linear[keep],
                                        calibration.quadratic[keep], calibration.calibration_id,
                                        calibration.calibration_hash)
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
