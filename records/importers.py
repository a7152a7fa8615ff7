"""Reading force recordings into per-plate forces: steplab trial files, C3D, CSV/TSV.

``load_forces(path)`` recognises the file by its content and extension:

* a **steplab trial file** (a ZIP archive): :mod:`steplab.records.import_trial`;
* a **C3D** file (``.c3d``) with FORCE_PLATFORM entries of TYPE 1–4, read by ezc3d in
  a child process, whatever the lab's vertical axis: :mod:`steplab.records.import_c3d`;
* a **CSV/TSV** of forces (``.csv``, ``.tsv``, ``.txt``), plain columns per plate or
  cell, or named force components (``FP1_Fz``, ``Fz1``...): :mod:`steplab.records.import_text`.

Plate roles come from ``plates`` (one role per plate, in file order, ``-`` for a plate
to leave out); the defaults by plate count are: 1 → ``floor_left``, 2 → ``floor_left,
floor_right``, 3 → ``box, floor_left, floor_right``.  Trial files take their roles from
the rig.

The plausibility checks of decision 0012 (forces beyond any plate's range refused;
saturated plates, a COP outside its plate, an unloaded ZERO range flagged) are made
here; :func:`body_weight_flags` checks the analysis result's body weight.

Every failure raises :class:`ForceImportError` (a ValueError) with a one-line
message naming the file and what is wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steplab.dsp.params import PlateForces
from steplab.records.import_c3d import load_c3d
from steplab.records.import_common import (
    DEFAULT_ROLES,
    HUMAN_BODY_WEIGHT_N,
    IGNORE_ROLE,
    KNOWN_ROLES,
    MAX_PLAUSIBLE_FORCE_N,
    ForceImportError,
    LoadedTrial,
    body_weight_flags,
    check_rate,
    parse_plates,
    plate_cop_mm,
)
from steplab.records.import_text import load_text
from steplab.records.import_trial import calibration_from_dict, forces_from_counts, load_trial

__all__ = [
    "C3D_SUFFIXES", "DEFAULT_ROLES", "HUMAN_BODY_WEIGHT_N", "IGNORE_ROLE", "KNOWN_ROLES", "MAX_PLAUSIBLE_FORCE_N",
    "TEXT_SUFFIXES", "TRIAL_SUFFIXES", "ForceImportError", "LoadedTrial", "body_weight_flags",
    "calibration_from_dict", "forces_from_counts", "load_forces", "parse_plates", "plate_cop_mm",
]

C3D_SUFFIXES = (".c3d",)
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
TRIAL_SUFFIXES = (".steplab", ".trial", ".npz", ".zip", ".stp")


def _check_signals(plates: dict[str, PlateForces], path: Path) -> None:
    if not plates:
        raise ForceImportError(f"{path.name}: --plates leaves every plate out")
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
        Role of each plate in file order (``"box,floor_left,floor_right"``); ``-`` leaves
        a plate out (``"-,floor_left,floor_right,-"`` on a four-plate walkway).

    Returns
    -------
    LoadedTrial

    Raises
    ------
    ForceImportError
        Missing, empty, truncated, corrupt or unsupported file (a crash of the C3D
        reader included); NaN/inf values or forces beyond any plate's range; fewer
        than two samples; a missing or contradicting rate; roles that do not fit;
        degenerate plate geometry; units that are not known.
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
    given_rate = check_rate(rate_hz, p)
    suffix = p.suffix.lower()
    try:
        is_zip = _is_zip(p)
    except OSError as exc:
        raise ForceImportError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if not (is_zip or suffix in TRIAL_SUFFIXES or suffix in C3D_SUFFIXES or suffix in TEXT_SUFFIXES):
        raise ForceImportError(
            f"{p.name}: unknown file type {p.suffix or '(no extension)'!r}; expected a steplab trial file, "
            f".c3d, .csv, .tsv or .txt")
    try:
        if is_zip or suffix in TRIAL_SUFFIXES:
            loaded = load_trial(p, given_rate, plates)
        elif suffix in C3D_SUFFIXES:
            loaded = load_c3d(p, given_rate, plates)
        else:
            loaded = load_text(p, given_rate, plates)
    except OSError as exc:
        raise ForceImportError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except ForceImportError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, ArithmeticError) as exc:
        # a file from outside can hold what no check foresaw (a NaN channel number...): still one error
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise ForceImportError(f"{p.name}: cannot read ({type(exc).__name__}: {msg})") from None
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
