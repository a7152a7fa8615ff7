"""Analysing a raw recording held as bytes, exactly as ``steplab analyze`` analyses a file.

``load_forces`` reads a path, so the bytes go to a private temporary file with the
recording's own suffix first.  Trial files with a full calibration are analysed
from their counts (``analyze_counts``), everything else from the plate forces
(``analyze_forces``), the same branches as ``steplab analyze``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from steplab.analysis_pipeline import analyze_counts
from steplab.dsp import ROLES, AnalysisParams, AnalysisResult, analyze_forces
from steplab.records.importers import LoadedTrial, load_forces


@dataclass
class Analysed:
    """A recording, read and analysed: the raw bytes, what was loaded and the result."""

    raw: bytes
    sha256: str
    suffix: str
    loaded: LoadedTrial
    result: AnalysisResult


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_bytes(raw: bytes, suffix: str, *, rate_hz: float | None = None, plates: str | None = None,
               label: str = "recording") -> LoadedTrial:
    """``load_forces`` on bytes (written to a temporary file named ``label + suffix``)."""
    safe = "".join(c for c in label if c.isalnum() or c in "-_.")[:60] or "recording"
    with tempfile.TemporaryDirectory(prefix="steplab-raw-") as tmp:
        path = Path(tmp) / f"{safe}{suffix}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        return load_forces(path, rate_hz=rate_hz, plates=plates)


def analyse_loaded(loaded: LoadedTrial, protocol: str, *, lead: str | None = None, body_mass_kg: float | None = None,
                   params: AnalysisParams | None = None, label: str = "recording") -> AnalysisResult:
    prov = dict(loaded.provenance_extra)
    if loaded.counts is not None and loaded.calibration is not None and all(
            r in ROLES for r in loaded.calibration.plate_roles):
        return analyze_counts(loaded.counts, loaded.rate_hz, loaded.calibration, protocol, lead=lead,
                              body_mass_kg=body_mass_kg, params=params, provenance=prov)
    plates_ok = {r: pf for r, pf in loaded.plates.items() if r in ROLES}
    if not plates_ok:
        raise ValueError(f"{label}: no plate has a role steplab analyses ({', '.join(ROLES)})")
    return analyze_forces(plates_ok, loaded.rate_hz, protocol, lead=lead, body_mass_kg=body_mass_kg, params=params,
                          provenance=prov)


def analyse_bytes(raw: bytes, suffix: str, protocol: str, *, lead: str | None = None, rate_hz: float | None = None,
                  plates: str | None = None, body_mass_kg: float | None = None, params: AnalysisParams | None = None,
                  label: str = "recording") -> Analysed:
    """Read and analyse a recording's bytes; raises ValueError (one line) on bad input."""
    loaded = load_bytes(raw, suffix, rate_hz=rate_hz, plates=plates, label=label)
    result = analyse_loaded(loaded, protocol, lead=lead, body_mass_kg=body_mass_kg, params=params, label=label)
    return Analysed(raw, sha256_hex(raw), suffix, loaded, result)


def analyse_file(path: str | Path, protocol: str, **kw) -> Analysed:
    """Read a file's bytes once and analyse those bytes (what is stored is what was analysed)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{p} does not exist") from None
    except OSError as exc:
        raise ValueError(f"cannot read {p}: {exc.strerror or exc}") from None
    suffix = p.suffix.lower()[:16]
    return analyse_bytes(raw, suffix, protocol, label=p.stem, **kw)
