"""Sample continuity of a device stream: gaps, device resets, duplicates.

The device numbers its samples from boot (``first_sample`` in every data frame,
see ``rig_docs/protocol.md``).  Within one boot the sample index of the next
frame must be where the previous one ended, so:

* a larger index is a gap: exactly the samples of the frames that were lost
  (``Gap.at_sample`` is the first missing sample index, ``Gap.length`` the number
  of missing samples);
* a smaller index is a duplicate only when the frame is a replay of one already
  taken: the same first sample, sample count, device time and counts as one of
  the last ``REPLAY_WINDOW_FRAMES`` frames kept in this segment, and either that
  frame's ``seq`` or a newer one (a retransmission numbered anew).  It is
  dropped (never mixed in) and its samples are counted in ``duplicate_samples``;
* a different ``boot_id`` is a device reset: a new segment starts at that frame
  (``Reset``); frames that later still carry an earlier boot_id are stale and
  dropped like duplicates;
* a sample index that runs backwards without being a replay, or a device time
  that runs backwards, is a device reset too, whatever the boot id says (a
  device that restarted with the boot id of its previous power-up): a new
  segment starts, ``Reset.old_boot_id == Reset.new_boot_id``.  Taking it for a
  duplicate would silently drop the restarted device's samples and splice the
  rest in place of the pause.

The frame ``seq`` (u32) may wrap while ``boot_id`` stays the same: that is
normal and is counted in ``seq_wraps``, never taken for a reset.  Missing frames
at the very start (before the first frame seen) or after the last one are not
losses the tracker can know of.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .frame_decoder import FRAME_DTYPE, DecodedChunk
from .protocol import FLAG_OVERRUN

_HALF_U32 = 2**31
REPLAY_WINDOW_FRAMES = 256  # a replay repeats one of the last 256 frames kept (2.56 s at 10 ms per frame)
# per-channel multipliers of the counts checksum that tells a replay from new samples (large odd constants)
_MIX = (np.arange(1, 129, dtype=np.int64) * np.int64(0x9E3779B1) * 2 + 1)


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
    segment: int = field(default=0, compare=False)  # the tracker's segment number (1, 2, ...)


RESET_REASONS = ("boot_id", "sample_index_backwards", "device_time_backwards")


@dataclass(frozen=True)
class Reset:
    """The device rebooted: a new segment starts with ``new_boot_id`` at ``first_sample``.

    ``reason`` is what showed it (``RESET_REASONS``): a new ``boot_id``, or, with
    the boot id unchanged, a sample index or a device time that ran backwards.
    """

    old_boot_id: int
    new_boot_id: int
    first_sample: int
    reason: str = field(default="boot_id", compare=False)


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
    segment_runs : list[numpy.ndarray]
        int64, parallel to ``keep_runs``: the tracker's segment number (1, 2, ...)
        of every frame.  A new number starts at every reset, also one that kept
        its boot id: split a timeline on this, not on ``boot_id``.
    """

    gaps: list[Gap] = field(default_factory=list)
    resets: list[Reset] = field(default_factory=list)
    duplicate_samples: int = 0
    lost_samples: int = 0
    seq_wraps: int = 0
    keep: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    keep_runs: list[np.ndarray] = field(default_factory=list)
    segment_runs: list[np.ndarray] = field(default_factory=list)


def frame_checksums(frames: np.ndarray, counts: np.ndarray | None) -> np.ndarray:
    """A checksum of each frame's counts (int64 per frame; zeros without counts).

    Not cryptographic: it tells a replay of a frame (the same counts again) from
    a restarted device's new samples that happen to carry the same index.
    """
    n = frames.shape[0]
    if counts is None or n == 0 or counts.shape[0] == 0:
        return np.zeros(n, dtype=np.int64)
    rows = counts.astype(np.int64) @ _MIX[: counts.shape[1]]
    csum = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    np.cumsum(rows, out=csum[1:])
    start = frames["offset"].astype(np.int64)
    return csum[start + frames["samples"].astype(np.int64)] - csum[start]


def _seq_newer(seq: int, than: int) -> bool:
    """``seq`` comes after ``than`` in the 32-bit sequence (wrap-aware)."""
    return 0 < (seq - than) % 2**32 < _HALF_U32


class _RecentFrames:
    """The last ``size`` (or a few more) frames kept in the current segment, with their counts.

    Kept as the runs they arrived in (no copy, nothing computed per chunk): the
    checksums are only computed when a frame that runs backwards has to be
    compared with them, which is rare.
    """

    def __init__(self, size: int = REPLAY_WINDOW_FRAMES) -> None:
        self.size = size
        self.clear()

    def clear(self) -> None:
        self._runs: deque[tuple[np.ndarray, np.ndarray | None]] = deque()
        self._n = 0

    def add(self, frames: np.ndarray, counts: np.ndarray | None) -> None:
        """Frames kept (FRAME_DTYPE, ``offset`` into ``counts``) and their run's counts (or None)."""
        if frames.size == 0:
            return
        self._runs.append((frames, counts))
        self._n += frames.size
        while self._runs and self._n - self._runs[0][0].size >= self.size:
            self._n -= self._runs.popleft()[0].size

    def is_replay(self, one: np.ndarray, counts: np.ndarray | None, last_seq: int) -> bool:
        """``one`` (a 1-row FRAME_DTYPE slice, offset into ``counts``) repeats a kept frame.

        The same index, size, time and counts, with that frame's seq or a newer
        one.  A restarted device numbers its frames from 0 again, so its seq is
        older than the last one kept; a true replay repeats the frame's own seq,
        and a retransmission numbered anew carries a newer one.
        """
        check = int(frame_checksums(one, counts)[0])
        seq = int(one["seq"][0])
        for frames, run_counts in reversed(self._runs):
            same = ((frames["first_sample"] == one["first_sample"][0]) & (frames["samples"] == one["samples"][0])
                    & (frames["device_time_us"] == one["device_time_us"][0]))
            if not same.any():
                continue
            candidates = frames[same]
            same_counts = frame_checksums(candidates, run_counts) == check
            if not same_counts.any():
                continue
            if bool(np.any(candidates["seq"][same_counts] == seq)) or _seq_newer(seq, last_seq):
                return True
        return False


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
    (device boots seen, counting restarts that kept their boot id), ``seq_wraps``,
    ``gaps`` and ``resets`` (event counts), ``frames_kept``, ``samples_kept``.
    ``boot_id``, ``next_sample`` and ``segment`` (its number) describe the
    current segment (None / 0 before the first frame).
    """

    def __init__(self) -> None:
        self.boot_id: int | None = None
        self.next_sample: int | None = None
        self._last_seq: int | None = None
        self._last_time_us: int | None = None
        self._recent = _RecentFrames()
        self._old_boots: set[int] = set()
        self.lost_samples = 0
        self.duplicate_samples = 0
        self.segments = 0
        self.seq_wraps = 0
        self.gaps = 0
        self.resets = 0
        self.frames_kept = 0
        self.samples_kept = 0

    @property
    def segment(self) -> int:
        """Number of the current segment (1 for the first boot seen; 0 before any frame)."""
        return self.segments

    def update(self, chunk: DecodedChunk) -> TrackerEvents:
        """Account for the data frames of one decoded chunk (all its runs, in order).

        Parameters
        ----------
        chunk : DecodedChunk
            From ``FrameDecoder.feed``.

        Returns
        -------
        TrackerEvents
            Gaps, resets, duplicates, the keep masks and segment numbers for this chunk.
        """
        if not isinstance(chunk, DecodedChunk):
            raise ValueError(f"update needs a DecodedChunk, not {type(chunk).__name__}")
        ev = TrackerEvents()
        for run in chunk.data_runs():
            keep, segs = self._track(run.frames, ev, run.counts)
            ev.keep_runs.append(keep)
            ev.segment_runs.append(segs)
        if ev.keep_runs:
            ev.keep = ev.keep_runs[0]
        return ev

    def update_frames(self, frames: np.ndarray, counts: np.ndarray | None = None) -> TrackerEvents:
        """Like ``update`` for a bare FRAME_DTYPE array (e.g. frames read back from a journal).

        Without ``counts`` a replay is recognised by index, sample count and device time alone.
        """
        if not isinstance(frames, np.ndarray) or frames.dtype != FRAME_DTYPE:
            raise ValueError("update_frames needs a FRAME_DTYPE structured array")
        ev = TrackerEvents()
        ev.keep, segs = self._track(frames, ev, counts)
        ev.keep_runs = [ev.keep] if frames.size else []
        ev.segment_runs = [segs] if frames.size else []
        return ev

    def _new_segment(self, boot: int, first: int, samples: int, seq: int, time_us: int) -> None:
        self.boot_id = boot
        self.segments += 1
        self.next_sample = first + samples
        self._last_seq = seq
        self._last_time_us = time_us
        self._recent.clear()

    def _reset(self, ev: TrackerEvents, boot: int, first: int, reason: str) -> None:
        assert self.boot_id is not None
        ev.resets.append(Reset(self.boot_id, boot, first, reason))
        self.resets += 1

    def _track(self, frames: np.ndarray, ev: TrackerEvents, counts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        n = frames.shape[0]
        first = frames["first_sample"].astype(np.int64)
        samples = frames["samples"].astype(np.int64)
        boots = frames["boot_id"]
        seqs = frames["seq"].astype(np.int64)
        times = frames["device_time_us"].astype(np.int64)
        # Fast path: one boot, every frame where the previous one ended, seq and device time rising.
        if (n and self.boot_id is not None and bool((boots == self.boot_id).all())
                and first[0] == self.next_sample and bool((first[1:] == first[:-1] + samples[:-1]).all())
                and seqs[0] > self._last_seq and bool((seqs[1:] > seqs[:-1]).all())
                and times[0] >= self._last_time_us and bool((times[1:] >= times[:-1]).all())):
            self.next_sample = int(first[-1] + samples[-1])
            self._last_seq = int(seqs[-1])
            self._last_time_us = int(times[-1])
            self._recent.add(frames, counts)
            self.frames_kept += n
            self.samples_kept += int(samples.sum())
            return np.ones(n, dtype=bool), np.full(n, self.segments, dtype=np.int64)
        keep = np.zeros(n, dtype=bool)
        segs = np.zeros(n, dtype=np.int64)
        flags = frames["flags"]
        for i in range(n):
            boot = int(boots[i])
            f = int(first[i])
            s = int(samples[i])
            seq = int(seqs[i])
            t = int(times[i])
            segs[i] = self.segments
            if boot != self.boot_id:
                if boot in self._old_boots:
                    ev.duplicate_samples += s
                    self.duplicate_samples += s
                    continue
                if self.boot_id is not None:
                    self._old_boots.add(self.boot_id)
                    self._reset(ev, boot, f, "boot_id")
                self._new_segment(boot, f, s, seq, t)
            else:
                assert self.next_sample is not None and self._last_seq is not None and self._last_time_us is not None
                if f < self.next_sample:
                    if self._recent.is_replay(frames[i:i + 1], counts, self._last_seq):
                        ev.duplicate_samples += s  # a replay of a frame already taken
                        self.duplicate_samples += s
                        continue
                    # the index ran backwards and this is not a replay: the device restarted
                    self._reset(ev, boot, f, "sample_index_backwards")
                    self._new_segment(boot, f, s, seq, t)
                elif t < self._last_time_us:
                    self._reset(ev, boot, f, "device_time_backwards")
                    self._new_segment(boot, f, s, seq, t)
                else:
                    if f > self.next_sample:
                        gap = Gap(boot, self.next_sample, f - self.next_sample, bool(flags[i] & FLAG_OVERRUN),
                                  self.segments)
                        ev.gaps.append(gap)
                        ev.lost_samples += gap.length
                        self.lost_samples += gap.length
                        self.gaps += 1
                    if seq < self._last_seq and self._last_seq - seq > _HALF_U32:
                        ev.seq_wraps += 1
                        self.seq_wraps += 1
                    self._last_seq = seq
                    self._last_time_us = t
                    self.next_sample = f + s
            segs[i] = self.segments
            keep[i] = True
            self.frames_kept += 1
            self.samples_kept += s
            self._recent.add(frames[i:i + 1], counts)
        return keep, segs
