"""The steplab trial file: raw counts, their sample positions, the rig and data quality.

Format (documented in ``rig_docs/trial_file.md``): a ZIP archive (the NumPy
``.npz`` layout, so ``numpy.load`` opens it) holding

- ``counts.npy``: int32 (n_samples, n_channels) raw 24-bit ADC counts as received;
- ``sample_index.npy``: int64 (n_samples,) each row's position on the trial
  timeline (0 = first sample; time = index / sample_rate_hz).  Lost samples are
  the positions that are missing; every one of them is listed in ``meta.json``
  under ``quality.gaps``;
- ``meta.json``: UTF-8 JSON with format name and version, rig description,
  sample rate, device info, calibration reference, timing and data-quality
  counters.

The file is written to a temporary name and linked into place
(``atomic_create.create_new_file``), so a crash never leaves a half-written
trial behind and an existing file is never replaced, not even one that
appeared while the trial was being recorded.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic_create import create_new_file
from .rig import Rig, RigError

TRIAL_FORMAT = "steplab-trial"
TRIAL_FORMAT_VERSION = 1
MAX_TRIAL_S = 3600.0  # the longest timeline a trial file may span (received + lost), as `steplab record` allows


class TrialFileError(ValueError):
    """A trial file that cannot be read or written (message names what is wrong)."""


@dataclass
class Trial:
    """One recording in memory.

    counts: int32 (n, channels) raw counts; sample_index: int64 (n,) positions on the
    trial timeline; sample_rate_hz: samples per second; rig: the rig description;
    meta: everything else (quality, device, calibration, times).
    """

    counts: np.ndarray
    sample_index: np.ndarray
    sample_rate_hz: float
    rig: Rig
    meta: dict = field(default_factory=dict)

    @property
    def quality(self) -> dict:
        return self.meta.setdefault("quality", {})

    @property
    def n_samples(self) -> int:
        return int(self.counts.shape[0])

    @property
    def duration_s(self) -> float:
        """Length of the timeline (received plus lost samples) in seconds."""
        if self.sample_index.size == 0:
            return 0.0
        return float(self.sample_index[-1] + 1) / self.sample_rate_hz

    def time_s(self) -> np.ndarray:
        """Time of each received sample from the trial start, in seconds."""
        return self.sample_index / self.sample_rate_hz

    def dense_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Counts on the full timeline: (float64 (N, C) with NaN rows where lost, bool mask of received)."""
        n_total = int(self.sample_index[-1] + 1) if self.sample_index.size else 0
        out = np.full((n_total, self.counts.shape[1]), np.nan)
        present = np.zeros(n_total, dtype=bool)
        out[self.sample_index] = self.counts
        present[self.sample_index] = True
        return out, present


def _validate(trial: Trial) -> None:
    c, idx = trial.counts, trial.sample_index
    if c.ndim != 2 or c.dtype != np.int32:
        raise TrialFileError(f"counts must be a 2-D int32 array, got {c.dtype} with shape {c.shape}")
    if idx.ndim != 1 or idx.shape[0] != c.shape[0]:
        raise TrialFileError(f"sample_index has {idx.shape[0] if idx.ndim == 1 else idx.shape} entries for {c.shape[0]} samples")
    if c.shape[1] != trial.rig.channels:
        raise TrialFileError(f"counts have {c.shape[1]} channels but the rig has {trial.rig.channels}")
    if idx.size and (idx[0] < 0 or np.any(np.diff(idx) <= 0)):
        raise TrialFileError("sample_index must be non-negative and strictly increasing")
    if not (np.isfinite(trial.sample_rate_hz) and trial.sample_rate_hz > 0):
        raise TrialFileError(f"sample rate {trial.sample_rate_hz} is not a positive number")


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def write_trial(path: str | Path, trial: Trial) -> Path:
    """Write ``trial`` atomically to the new file ``path`` (temporary file, fsync, link).

    Raises TrialFileError when ``path`` exists (also one created meanwhile: it
    is never replaced) or cannot be written; then nothing is left behind.
    """
    _validate(trial)
    path = Path(path)
    meta = dict(trial.meta)
    meta.update(
        format=TRIAL_FORMAT,
        format_version=TRIAL_FORMAT_VERSION,
        sample_rate_hz=float(trial.sample_rate_hz),
        channels=int(trial.rig.channels),
        n_samples=int(trial.counts.shape[0]),
        rig=trial.rig.to_dict(),
        rig_hash=trial.rig.hash(),
    )
    try:
        blob = json.dumps(meta, indent=1, sort_keys=True, allow_nan=False)
    except ValueError:
        raise TrialFileError("the trial's meta data holds a number that is not finite (NaN or infinity)") from None

    def write_zip(fh) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr("meta.json", blob)
            zf.writestr("counts.npy", _npy_bytes(trial.counts))
            zf.writestr("sample_index.npy", _npy_bytes(trial.sample_index.astype(np.int64)))

    try:
        create_new_file(path, write_zip)
    except FileExistsError:
        raise TrialFileError(f"{path} already exists (made while this trial was recorded?); it was not replaced") from None
    except OSError as exc:
        raise TrialFileError(f"cannot write trial file {path}: {exc.strerror or exc}") from None
    trial.meta = meta
    return path


_META_TYPES: dict[str, type | tuple[type, ...]] = {
    "rig": dict, "quality": dict, "device": dict, "started_at": str, "calibration": (dict, type(None)),
               "sample_rate_hz": (int, float), "journal": str}
_QUALITY_COUNTERS = ("frames", "samples", "lost_samples", "crc_errors", "malformed", "oversize", "bytes_discarded",
                     "duplicate_samples", "device_resets", "clipped_frames", "overrun_frames", "saturated_samples",
                     "reconnects", "disconnects", "queue_dropped_samples", "stalls", "timeline_samples")


def _validate_meta(meta: dict, path: Path) -> None:
    """Types of the documented meta.json fields (rig_docs/trial_file.md); a wrong one is corruption."""
    for key, kind in _META_TYPES.items():
        if key in meta and not isinstance(meta[key], kind):
            raise TrialFileError(f"trial file {path} is corrupt: meta.json field {key!r} has the wrong type")
    if isinstance(meta.get("sample_rate_hz"), bool):
        raise TrialFileError(f"trial file {path} is corrupt: meta.json field 'sample_rate_hz' has the wrong type")
    quality = meta.get("quality") or {}
    for key in _QUALITY_COUNTERS:
        v = quality.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise TrialFileError(f"trial file {path} is corrupt: quality.{key} is not a non-negative integer")
    gaps = quality.get("gaps", [])
    if not isinstance(gaps, list) or not all(isinstance(g, dict) and isinstance(g.get("at_sample"), int)
                                             and isinstance(g.get("length"), int) for g in gaps):
        raise TrialFileError(f"trial file {path} is corrupt: quality.gaps is malformed")
    if "started_at" in meta:
        import datetime as _dt

        try:
            _dt.datetime.fromisoformat(meta["started_at"])
        except ValueError:
            raise TrialFileError(f"trial file {path} is corrupt: started_at is not an ISO 8601 time") from None


def read_trial(path: str | Path) -> Trial:
    """Read a trial file; raises TrialFileError with a one-line reason when it cannot."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise TrialFileError(f"trial file {path} does not exist") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise TrialFileError(f"{path} is not a steplab trial file ({exc})") from None
    with zf:
        names = set(zf.namelist())
        missing = {"meta.json", "counts.npy", "sample_index.npy"} - names
        if missing:
            raise TrialFileError(f"{path} is not a steplab trial file (missing {', '.join(sorted(missing))})")
        try:
            meta = json.loads(zf.read("meta.json").decode("utf-8"))
            counts = np.lib.format.read_array(io.BytesIO(zf.read("counts.npy")), allow_pickle=False)
            index = np.lib.format.read_array(io.BytesIO(zf.read("sample_index.npy")), allow_pickle=False)
        except (ValueError, UnicodeDecodeError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise TrialFileError(f"trial file {path} is corrupt ({exc})") from None
    if not isinstance(meta, dict):
        raise TrialFileError(f"{path} is not a steplab trial file (meta.json is not a JSON object)")
    _validate_meta(meta, path)
    if meta.get("format") != TRIAL_FORMAT:
        raise TrialFileError(f"{path} is not a steplab trial file (format {meta.get('format')!r})")
    if meta.get("format_version") != TRIAL_FORMAT_VERSION:
        raise TrialFileError(f"trial file {path} has format version {meta.get('format_version')}, "
                             f"this steplab reads {TRIAL_FORMAT_VERSION}")
    try:
        rig = Rig.from_dict(meta["rig"])
    except (KeyError, RigError) as exc:
        raise TrialFileError(f"trial file {path} has no usable rig description ({exc})") from None
    trial = Trial(counts=counts, sample_index=index, sample_rate_hz=float(meta.get("sample_rate_hz", 0)), rig=rig, meta=meta)
    try:
        _validate(trial)
        _validate_timeline(trial)
    except TrialFileError as exc:
        raise TrialFileError(f"trial file {path} is inconsistent: {exc}") from None
    return trial


def _validate_timeline(trial: Trial) -> None:
    """The timeline a reader will allocate must be the recording's: received plus listed lost samples.

    Checked before anything dense is built: a corrupt ``sample_index`` (a jump of
    1e10 positions) would otherwise cost tens of gigabytes in ``dense_counts``.
    """
    idx = trial.sample_index
    if idx.size == 0:
        return
    span = int(idx[-1]) + 1
    limit = int(MAX_TRIAL_S * trial.sample_rate_hz) + 1
    if span > limit:
        raise TrialFileError(f"sample_index spans {span} samples, more than {MAX_TRIAL_S:g} s at "
                             f"{trial.sample_rate_hz:g} Hz")
    quality = trial.meta.get("quality") or {}
    listed = sum(int(g["length"]) for g in quality.get("gaps", []) if int(g["length"]) > 0)
    timeline = max(trial.n_samples + listed, int(quality.get("timeline_samples", 0)))
    if span > timeline:
        raise TrialFileError(f"sample_index spans {span} samples but the file holds {trial.n_samples} and lists "
                             f"{listed} lost (quality.gaps)")
