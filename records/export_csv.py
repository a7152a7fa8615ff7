"""One trial as CSV: a commented metadata header, then raw counts and calibrated forces per sample.

Layout (rig_docs/exports.md)::

    # steplab trial export
    # key: value            (patient code, protocol, lead, rate, calibration, gaps, units ...)
    time_s,sample_index,<cell>_counts...,<plate>_fz_n,<plate>_cop_x_mm,<plate>_cop_y_mm...
    0.000000,0,...

One row per *received* sample: a lost sample has no row (``sample_index`` jumps, and
every gap is listed in the header as ``gap: at_sample=N length=L``); nothing is
invented.  Counts are the raw 24-bit ADC values; Fz [N] and the COP [mm, plate frame:
origin at the plate centre, x to the subject's right, y forward] come from the trial's
own calibration; an empty COP field means Fz < 20 N (no COP).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from steplab.records._export_io import (
    ExportError,
    gaps,
    header_facts,
    plate_cop,
    plate_forces,
    raw_trial,
    save_atomically,
    trial_calibration,
)
from steplab.records.export_model import ExportSubject, ExportTrial

__all__ = ["ExportError", "write_trial_csv", "csv_columns"]


def csv_columns(et: ExportTrial) -> list[str]:
    """The column names of a trial's CSV, in order."""
    rig = raw_trial(et, "the CSV").rig
    cells = sorted((c.channel, c.name) for p in rig.plates for c in p.cells)
    named = {ch: name for ch, name in cells}
    cols = ["time_s", "sample_index"] + [f"{named.get(ch, f'ch{ch}')}_counts" for ch in range(rig.channels)]
    cal, _ = trial_calibration(raw_trial(et, "the CSV"))
    for role in cal.plate_roles:
        cols += [f"{role}_fz_n", f"{role}_cop_x_mm", f"{role}_cop_y_mm"]
    return cols


def _fmt(v: float, digits: int) -> str:
    return "" if not math.isfinite(v) else f"{v:.{digits}f}"


def write_trial_csv(path: str | Path, trial: ExportTrial, subject: ExportSubject) -> Path:
    """Write ``trial`` as CSV to ``path`` (atomic, never replaces a file); returns the path.

    Pseudonymised unless ``subject.identified``: the patient code, no name or birth
    date, no wall-clock time, no device or rig serial.
    """
    t = raw_trial(trial, path)
    if t.n_samples == 0:
        raise ExportError(f"cannot write {path}: trial {trial.trial_id} has no samples")
    cal, _ = trial_calibration(t)
    forces = plate_forces(t.counts, cal)
    cops = {role: plate_cop(pf) for role, pf in forces.items()}
    cols = csv_columns(trial)
    time_s = t.sample_index / t.sample_rate_hz
    lines = ["steplab trial export"] + [f"{k}: {v}" for k, v in header_facts(trial, subject)]
    lines += [f"gap: at_sample={g['at_sample']} length={g['length']}" for g in gaps(t)]
    lines += ["units: time_s [s from the first sample of the trial timeline]; *_counts [raw ADC counts]; "
              "*_fz_n [N, up positive]; *_cop_x_mm, *_cop_y_mm [mm, plate frame: x right, y forward, "
              "origin at the plate centre; empty below 20 N]",
              "rows: one per received sample; lost samples have no row (see gap lines)"]

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            for line in lines:
                fh.write("# " + " ".join(str(line).split()) + "\n")
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(cols)
            counts = t.counts
            roles = list(cal.plate_roles)
            fz = np.column_stack([forces[r].fz_n for r in roles])
            cop = np.concatenate([cops[r] for r in roles], axis=1)
            for i in range(t.n_samples):
                row = [f"{time_s[i]:.6f}", str(int(t.sample_index[i]))]
                row += [str(int(v)) for v in counts[i]]
                for j in range(len(roles)):
                    row += [_fmt(float(fz[i, j]), 4), _fmt(float(cop[i, 2 * j]), 3), _fmt(float(cop[i, 2 * j + 1]), 3)]
                w.writerow(row)

    return save_atomically(path, write)
