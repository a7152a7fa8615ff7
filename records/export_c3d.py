"""One trial as a C3D file (ezc3d): the plates as FORCE_PLATFORM TYPE 2, the events, the body mass.

Frame of reference: the rig's room frame, z up (rig_docs/rig_file.md): x to the
subject's right, y forward, origin on the floor; lengths in mm (POINT:UNITS = mm).

* ANALOG: per plate ``i`` (1-based, rig order) six channels ``Fx<i> Fy<i> Fz<i> Mx<i> My<i>
  Mz<i>`` in N and N·mm (SCALE 1, OFFSET 0, GEN_SCALE 1, stored as floats): the load the
  subject applies to the plate (Fz negative under load, the C3D convention) and its
  moment about the centre of the plate's top surface.  The rig measures vertical
  load only, so Fx, Fy and Mz are 0.  A last channel ``Received`` is 1 for a received
  sample and 0 for a lost one.
* FORCE_PLATFORM: TYPE 2 per plate; CORNERS = the top surface's corners in the room
  frame (corner k in quadrant k of the plate: +x+y, −x+y, −x−y, +x−y, so the plate
  axes are the room axes); ORIGIN = (0, 0, 0) (the moments are about the surface
  centre); CHANNEL = the six analog channels; ZERO = (0, 0) (already tared).
* EVENT: onset, contact (``Foot Strike``), peak, arrest and stabilisation of every
  accepted rep, CONTEXTS Left/Right by the rep's lead limb (per plate for drop
  landings), TIMES as (minutes 0, seconds from the first frame).
* PROCESSING:Bodymass [kg].  SUBJECTS:NAMES = the patient code.  STEPLAB: trial id,
  protocol, plate roles, gaps, calibration id (and, identified only, name, birth date,
  start time and rig serial).

Lost samples: the C3D timeline is uniform, so a lost stretch is filled by linear
interpolation of the raw counts (exactly what the analysis of the trial does) and
marked 0 in ``Received`` and in ``STEPLAB:GAP_AT`` / ``GAP_LENGTH`` (timeline samples).
The first frame is the trial's first received sample: event times are those of the
trial's analysis.  The C3D header counts frames in 16 bits: a trial whose samples do
not divide into at most 65535 frames is padded at the end with its last sample (fewer
than one frame, marked 0 in ``Received``, counted in ``STEPLAB:END_PADDING``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from steplab.records._export_events import rep_events
from steplab.records._export_io import (
    ExportError,
    dense_counts,
    gaps,
    plate_forces,
    raw_trial,
    save_atomically,
    trial_calibration,
)
from steplab.records.export_model import ExportSubject, ExportTrial

__all__ = ["ExportError", "write_trial_c3d", "plate_corners_mm", "point_frame_ratio", "c3d_framing", "MAX_C3D_FRAMES"]

_CH_NAMES = ("Fx", "Fy", "Fz", "Mx", "My", "Mz")
_CH_UNITS = ("N", "N", "N", "Nmm", "Nmm", "Nmm")


def plate_corners_mm(centre_mm: tuple[float, float, float], width_mm: float, length_mm: float) -> np.ndarray:
    """(3, 4) corners of a plate's top surface in the room frame, corner k in plate quadrant k."""
    cx, cy, cz = (float(v) for v in centre_mm)
    hw, hl = width_mm / 2.0, length_mm / 2.0
    quads = ((1, 1), (-1, 1), (-1, -1), (1, -1))
    return np.array([[cx + sx * hw, cy + sy * hl, cz] for sx, sy in quads]).T


MAX_C3D_FRAMES = 65535  # the C3D header counts frames in 16 bits (ezc3d reads no further)


def point_frame_ratio(n_samples: int, rate_hz: float) -> int:
    """Analog samples per C3D frame: about 100 frames/s when that divides the samples evenly, else 1."""
    for frames_hz in (100.0, 200.0, 50.0, 250.0, 125.0):
        r = rate_hz / frames_hz
        if abs(r - round(r)) < 1e-9 and round(r) >= 1 and n_samples % int(round(r)) == 0:
            return int(round(r))
    return 1


def c3d_framing(n_samples: int, rate_hz: float) -> tuple[int, int]:
    """(analog samples per frame, samples padded at the end) so that the frames fit the C3D header.

    Even division is preferred (no padding); otherwise the trial is padded with its
    last sample up to a whole number of ~100 frames/s frames (marked not received).
    Raises ExportError for a trial too long for a C3D file.
    """
    ratio = point_frame_ratio(n_samples, rate_hz)
    pad = 0
    if n_samples // ratio > MAX_C3D_FRAMES:
        ratio = max(1, int(round(rate_hz / 100.0)))
        pad = (-n_samples) % ratio
    if (n_samples + pad) // ratio > MAX_C3D_FRAMES:
        raise ExportError(f"the trial has {n_samples} samples: too long for a C3D file "
                          f"(at most {MAX_C3D_FRAMES} frames of {ratio} samples)")
    return ratio, pad


def _add(c: Any, group: str, name: str, value: Any, kind: str = "float") -> None:
    """Add a C3D parameter: kind 'char' (list of str), 'int' or 'float' (any shape)."""
    from ezc3d import ezc3d as _swig

    if kind == "char":
        c.add_parameter(group, name, [str(v) for v in value])
        return
    arr = np.asarray(value, dtype=np.float64)
    c.add_parameter(group, name, arr)
    if kind == "int":
        c["parameters"][group][name]["type"] = _swig.INT
        c["parameters"][group][name]["value"] = np.rint(arr).astype(np.int64)


def write_trial_c3d(path: str | Path, trial: ExportTrial, subject: ExportSubject,
                    body_mass_kg: float | None = None) -> Path:
    """Write ``trial`` as a C3D file to ``path`` (atomic, never replaces a file); returns the path.

    ``body_mass_kg``: the visit's body mass; None takes the analysis's (weighed) mass.
    """
    import ezc3d

    t = raw_trial(trial, path)
    if t.n_samples < 2:
        raise ExportError(f"cannot write {path}: trial {trial.trial_id} has fewer than 2 samples")
    cal, calibrated = trial_calibration(t)
    counts, received = dense_counts(t)
    rate = float(t.sample_rate_hz)
    ratio, pad = c3d_framing(counts.shape[0], rate)
    if pad:
        counts = np.concatenate((counts, np.repeat(counts[-1:], pad, axis=0)))
        received = np.concatenate((received, np.zeros(pad, dtype=bool)))
    n = counts.shape[0]
    forces = plate_forces(counts, cal)
    roles = list(cal.plate_roles)

    analogs = np.zeros((6 * len(roles) + 1, n))
    labels: list[str] = []
    descriptions: list[str] = []
    units: list[str] = []
    corners, channels = [], []
    for i, role in enumerate(roles):
        pf = forces[role]
        plate = t.rig.plate(role)
        # the subject's action on the plate = minus the reaction we compute (Fz up, M = r × R)
        analogs[6 * i + 2] = -np.asarray(pf.fz_n)
        if pf.mx_nm is not None and pf.my_nm is not None:
            analogs[6 * i + 3] = -1000.0 * np.asarray(pf.mx_nm)
            analogs[6 * i + 4] = -1000.0 * np.asarray(pf.my_nm)
        for j, (ch, u) in enumerate(zip(_CH_NAMES, _CH_UNITS, strict=True)):
            labels.append(f"{ch}{i + 1}")
            units.append(u)
            zero = " (always 0: vertical load only)" if j in (0, 1, 5) else ""
            descriptions.append(f"{role} {ch} on the plate{zero}")
        corners.append(plate_corners_mm(plate.centre_mm, plate.width_mm, plate.length_mm))
        channels.append(np.arange(1, 7) + 6 * i)
    analogs[-1] = received.astype(np.float64)
    labels.append("Received")
    units.append("")
    descriptions.append("1 = sample received, 0 = lost and interpolated")

    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = np.array([rate / ratio])
    c["parameters"]["ANALOG"]["RATE"]["value"] = np.array([rate])
    c["parameters"]["ANALOG"]["LABELS"]["value"] = labels
    c["parameters"]["ANALOG"]["SCALE"]["value"] = np.ones(len(labels))
    c["parameters"]["ANALOG"]["OFFSET"]["value"] = np.zeros(len(labels), dtype=int)
    c["parameters"]["ANALOG"]["GEN_SCALE"]["value"] = np.array([1.0])
    _add(c, "ANALOG", "UNITS", units, "char")
    _add(c, "ANALOG", "DESCRIPTIONS", descriptions, "char")
    _add(c, "POINT", "UNITS", ["mm"], "char")
    _add(c, "FORCE_PLATFORM", "USED", [len(roles)], "int")
    _add(c, "FORCE_PLATFORM", "TYPE", [2] * len(roles), "int")
    _add(c, "FORCE_PLATFORM", "ZERO", [0, 0], "int")
    _add(c, "FORCE_PLATFORM", "CHANNEL", np.column_stack(channels), "int")
    _add(c, "FORCE_PLATFORM", "CORNERS", np.stack(corners, axis=2))
    _add(c, "FORCE_PLATFORM", "ORIGIN", np.zeros((3, len(roles))))

    events = rep_events(trial.analysis, trial.rep_accepted) if trial.accepted else []
    _add(c, "EVENT", "USED", [len(events)], "int")
    if events:
        _add(c, "EVENT", "LABELS", [e.label for e in events], "char")
        _add(c, "EVENT", "CONTEXTS", [e.context for e in events], "char")
        _add(c, "EVENT", "DESCRIPTIONS", [e.description for e in events], "char")
        _add(c, "EVENT", "TIMES", np.vstack((np.zeros(len(events)), [e.time_s for e in events])))
        _add(c, "EVENT", "ICON_IDS", [0] * len(events), "int")
        _add(c, "EVENT", "GENERIC_FLAGS", [0] * len(events), "int")

    mass = body_mass_kg if body_mass_kg is not None else trial.analysis.get("body_mass_kg")
    if mass is not None:
        _add(c, "PROCESSING", "Bodymass", [float(mass)])
    _add(c, "SUBJECTS", "USED", [1], "int")
    _add(c, "SUBJECTS", "NAMES", [subject.code], "char")
    _add(c, "MANUFACTURER", "COMPANY", ["steplab"], "char")
    _add(c, "MANUFACTURER", "SOFTWARE", ["steplab export"], "char")

    g = gaps(t)
    _add(c, "STEPLAB", "TRIAL_ID", [trial.trial_id], "char")
    _add(c, "STEPLAB", "PROTOCOL", [trial.protocol], "char")
    _add(c, "STEPLAB", "LEAD", [trial.lead or "none"], "char")
    _add(c, "STEPLAB", "PLATE_ROLES", roles, "char")
    _add(c, "STEPLAB", "FIRST_SAMPLE", [int(t.sample_index[0])], "int")
    _add(c, "STEPLAB", "GAP_COUNT", [len(g)], "int")
    _add(c, "STEPLAB", "END_PADDING", [pad], "int")
    if g:
        _add(c, "STEPLAB", "GAP_AT", [x["at_sample"] for x in g], "int")
        _add(c, "STEPLAB", "GAP_LENGTH", [x["length"] for x in g], "int")
    _add(c, "STEPLAB", "CALIBRATION", [cal.calibration_id if calibrated else "nominal (uncalibrated)"], "char")
    _add(c, "STEPLAB", "RESULT_VERSION", [trial.result_version], "int")
    if subject.identified:
        if subject.name:
            _add(c, "SUBJECTS", "FULL_NAME", [subject.name], "char")
        if subject.birth_date is not None:
            _add(c, "SUBJECTS", "BIRTH_DATE", [subject.birth_date.isoformat()], "char")
        if t.meta.get("started_at"):
            _add(c, "STEPLAB", "STARTED_AT", [t.meta["started_at"]], "char")
        if t.rig.serial:
            _add(c, "STEPLAB", "RIG_SERIAL", [t.rig.serial], "char")

    c["data"]["points"] = np.zeros((4, 0, n // ratio))
    c["data"]["analogs"] = analogs[None, :, :]

    def write(tmp: Path) -> None:
        # ezc3d picks the format by the name's suffix: write to a .c3d name inside the temp file's slot
        tmp_c3d = tmp.with_name(tmp.name + ".c3d")
        try:
            c.write(str(tmp_c3d))
            tmp_c3d.replace(tmp)
        except RuntimeError as exc:
            raise ExportError(f"cannot write C3D {path}: {exc}") from None
        finally:
            tmp_c3d.unlink(missing_ok=True)

    return save_atomically(path, write)
