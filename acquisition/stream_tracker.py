"""Sample continuity of a device stream: gaps, device resets, duplicates.

The device numbers its samples from boot (``first_sample`` in every data frame,
see ``rig_docs/protocol.md``).  Within one boot the sample index of the next
frame must be where the previous one ended, so:

* a larger index is a gap: exactly the samples of the frames that were lost
  (``Gap.at_sample`` is the first missing sample index, ``Gap.length`` the number
  of missing samples);
* a smaller index is a duplicate or a replay: the frame is dropped (never mixed
  in) and its already-seen samples are counted in ``duplicate_samples``;
* a different ``boot_id`` is a device reset: a new segment starts at that frame
  (``Reset``); frames that later still carry an earlier boot_id are stale and
  dropped like duplicates.

The frame ``seq`` (u32) may wrap while ``boot_id`` stays the same: that is
normal and is counted in ``seq_wraps``, never taken for a reset.  Missing frames
at the very start (before the first frame seen) or after the last one are not
losses the tracker can know of.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .frame_decoder import FRAME_DTYPE, DecodedChunk
from .protocol import FLAG_OVERRUN

_HALF_U32 = 2**31


@dataclass(frozen=True)
class Gap:
    """Missing samples inside one boot: ``length`` samples from device index ``at_sample``.

    ``device_overrun`` is True when the frame after the gap carries FLAG_OVERRUN
    (the device itself dropped them), False for samples lost on the link.
    """

    boot_id: int
    at_sample: int
    length: int
    device_overrun: bool = False


@dataclass(frozen=True)
class Reset:
    """The device rebooted: a new segment starts with ``new_boot_id`` at ``first_sample``."""

    old_boot_id: int
    new_boot_id: int
    first_sample: int


@dataclass
class TrackerEvents:
    """What one ``StreamTracker.update`` found.

    Attributes
    ----------
    gaps : list[Gap]
    resets : list[Reset]
    duplicate_samples : int
        Samples dropped as duplicates, replays or stale boots in this update.
    lost_samples : int
        Sum of the gap lengths in this update.
    seq_wraps : int
        32-bit ``seq`` wraps seen in this update (not resets).
    keep : numpy.ndarray
        bool, one per row of ``chunk.frames``: False for frames to drop.
    keep_runs : list[numpy.ndarray]
        Same, one array per ``chunk.data_runs()`` entry (``keep`` is the first).
    """

    gaps: list[Gap] = field(default_factory=list)
    resets: list[Reset] = field(default_factory=list)
    duplicate_samples: int = 0
    lost_samples: int = 0
    seq_wraps: int = 0
    keep: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    keep_runs: list[np.ndarray] = field(default_factory=list)


def kept_samples(frames: np.ndarray, counts: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Select the kept frames and their rows of ``counts``.

    Parameters
    ----------
    frames : numpy.ndarray
        FRAME_DTYPE rows (one data run).
    counts : numpy.ndarray
        int32 (samples, channels) of that run.
    keep : numpy.ndarray
        bool per frame, from ``TrackerEvents.keep``/``keep_runs``.

    Returns
    -------
    (frames, counts)
        The kept rows; ``offset`` of the returned frames is renumbered into the
        returned counts.
    """
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != frames.shape:
        raise ValueError(f"keep has shape {keep.shape}, frames {frames.shape}")
    if keep.all():
        return frames, counts
    rows = np.repeat(keep, frames["samples"].astype(np.int64))
    out = frames[keep].copy()
    sizes = out["samples"].astype(np.int64)
    out["offset"] = np.cumsum(sizes) - sizes
    return out, counts[rows]


class StreamTracker:
    """Turns accepted data frames into segments of continuous samples with exact loss counts.

    Cumulative counters: ``lost_samples``, ``duplicate_samples``, ``segments``
    (boots seen), ``seq_wraps``, ``gaps`` and ``resets`` (event counts),
    ``frames_kept``, ``samples_kept``.  ``boot_id`` and ``next_sample`` describe
    the current segment (None before the first frame).
    """

    def __init__(self) -> None:
        self.boot_id: int | None = None
        self.next_sample: int | None = None
        self._last_seq: int | None = None
        self._old_boots: set[int] = set()
        self.lost_samples = 0
        self.duplicate_samples = 0
        self.segments = 0
        self.seq_wraps = 0
        self.gaps = 0
        self.resets = 0
        self.frames_kept = 0
        self.samples_kept = 0

    def update(self, chunk: DecodedChunk) -> TrackerEvents:
        """Account for the data frames of one decoded chunk (all its runs, in order).

        Parameters
        ----------
        chunk : DecodedChunk
            From ``FrameDecoder.feed``.

        Returns
        -------
        TrackerEvents
            Gaps, resets, duplicates and the keep masks for this chunk.
        """
        if not isinstance(chunk, DecodedChunk):
            raise ValueError(f"update needs a DecodedChunk, not {type(chunk).__name__}")
        ev = TrackerEvents()
        for run in chunk.data_runs():
            ev.keep_runs.append(self._track(run.frames, ev))
        if ev.keep_runs:
            ev.keep = ev.keep_runs[0]
        return ev

    def update_frames(self, frames: np.ndarray) -> TrackerEvents:
        """Like ``update`` for a bare FRAME_DTYPE array (e.g. frames read back from a journal)."""
        if not isinstance(frames, np.ndarray) or frames.dtype != FRAME_DTYPE:
            raise ValueError("update_frames needs a FRAME_DTYPE structured array")
        ev = TrackerEvents()
        ev.keep = self._track(frames, ev)
        ev.keep_runs = [ev.keep] if frames.size else []
        return ev

    def _track(self, frames: np.ndarray, ev: TrackerEvents) -> np.ndarray:
        n = frames.shape[0]
        first = frames["first_sample"].astype(np.int64)
        samples = frames["samples"].astype(np.int64)
        boots = frames["boot_id"]
        seqs = frames["seq"].astype(np.int64)
        # Fast path: one boot, every frame where the previous one ended, seq rising.
        if (n and self.boot_id is not None and bool((boots == self.boot_id).all())
                and first[0] == self.next_sample and bool((first[1:] == first[:-1] + samples[:-1]).all())
                and seqs[0] > self._last_seq and bool((seqs[1:] > seqs[:-1]).all())):
            self.next_sample = int(first[-1] + samples[-1])
            self._last_seq = int(seqs[-1])
            self.frames_kept += n
            self.samples_kept += int(samples.sum())
            return np.ones(n, dtype=bool)
        keep = np.zeros(n, dtype=bool)
        flags = frames["flags"]
        for i in range(n):
            boot = int(boots[i])
            f = int(first[i])
            s = int(samples[i])
            seq = int(seqs[i])
            if boot != self.boot_id:
                if boot in self._old_boots:
                    ev.duplicate_samples += s
                    self.duplicate_samples += s
                    continue
                if self.boot_id is not None:
                    self._old_boots.add(self.boot_id)
                    ev.resets.append(Reset(self.boot_id, boot, f))
                    self.resets += 1
                self.boot_id = boot
                self.segments += 1
                self.next_sample = f + s
                self._last_seq = seq
                keep[i] = True
                self.frames_kept += 1
                self.samples_kept += s
                continue
            if f < self.next_sample:
                overlap = min(s, self.next_sample - f)
                ev.duplicate_samples += overlap
                self.duplicate_samples += overlap
                continue
            if f > self.next_sample:
                gap = Gap(boot, self.next_sample, f - self.next_sample, bool(flags[i] & FLAG_OVERRUN))
                ev.gaps.append(gap)
                ev.lost_samples += gap.length
                self.lost_samples += gap.length
                self.gaps += 1
            if seq < self._last_seq and self._last_seq - seq > _HALF_U32:
                ev.seq_wraps += 1
                self.seq_wraps += 1
            self._last_seq = seq
            self.next_sample = f + s
            keep[i] = True
            self.frames_kept += 1
            self.samples_kept += s
        return keep
