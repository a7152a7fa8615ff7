"""Lays decoded frames on a trial timeline with every lost sample accounted for.

The live recorder and ``steplab recover`` feed the same assembler (the one from
the reader queue, the other from the journal), so a recovered trial is the
trial the recorder would have written.

Timeline: position 0 is the first sample of the first data frame accepted after
the assembler is armed; position = segment base + (device sample index − the
segment's first device index).  Gaps inside a device boot are exact (from the
device's sample index).  After a device reset the device index restarts, so the
length of the pause is estimated from the host clock and marked ``estimated``.

This is the one timeline implementation: the acquisition session feeds it
live (``on_samples`` hands every placed block to the session's sinks: the live
ring buffer, the calibration procedure) and ``steplab recover`` feeds it from
the journal.  ``keep_samples=False`` (an endless live session) places and hands
on samples without keeping them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import protocol
from .frame_decoder import DecodedChunk
from .stream_tracker import StreamTracker, kept_samples


@dataclass
class TimelineGap:
    at_sample: int  # first missing position on the trial timeline
    length: int  # samples
    kind: str  # "link" (lost on the wire), "device_overrun", "reset" (device rebooted), "disconnected" (never came back)
    estimated: bool = False

    def to_dict(self) -> dict:
        d = {"at_sample": int(self.at_sample), "length": int(self.length), "kind": self.kind}
        if self.estimated:
            d["estimated"] = True
        return d


@dataclass
class _Segment:
    number: int  # the stream tracker's segment number (a device restart that kept its boot id is a new one)
    boot_id: int
    first_device_sample: int
    base: int  # timeline position of first_device_sample


@dataclass
class TrialAssembler:
    """Collects kept samples up to ``max_samples`` timeline positions (None = no limit).

    ``on_samples(positions, counts)`` (optional) is called with every block laid
    on the timeline: int64 (n,) positions, int32 (n, channels) counts, in order.
    """

    channels: int
    rate_hz: float
    max_samples: int | None = None
    tracker: StreamTracker = field(default_factory=StreamTracker)
    gaps: list[TimelineGap] = field(default_factory=list)
    frames: int = 0
    clipped_frames: int = 0
    overrun_frames: int = 0
    foreign_samples: int = 0  # samples of frames with another channel count (not this rig)
    duplicate_samples: int = 0
    resets: int = 0
    first_host_time_ns: int | None = None
    first_device_time_us: int | None = None
    keep_samples: bool = True
    on_samples: Callable[[np.ndarray, np.ndarray], None] | None = None

    def __post_init__(self) -> None:
        self._counts: list[np.ndarray] = []
        self._index: list[np.ndarray] = []
        self._segment: _Segment | None = None
        self.segments: list[dict] = []  # device boots on the timeline: boot_id, first_device_sample, at_sample
        self.next_position = 0  # one past the last timeline position filled
        self._last_data_host_ns: int | None = None  # arrival of the last data kept (times a reset's pause)
        self.after_reconnect = False  # set by the session when the link came back: the next gap is the unplug
        self._n_samples = 0

    @property
    def done(self) -> bool:
        return self.max_samples is not None and self.next_position >= self.max_samples

    @property
    def samples(self) -> int:
        return self._n_samples

    @property
    def lost_samples(self) -> int:
        return int(sum(g.length for g in self.gaps))

    def _add_gap(self, at: int, length: int, kind: str, estimated: bool = False) -> None:
        if self.max_samples is not None:
            length = min(length, self.max_samples - at)
        if length > 0:
            if self.after_reconnect:
                kind = "disconnected"  # the samples went missing while the rig was unplugged
                self.after_reconnect = False
            self.gaps.append(TimelineGap(int(at), int(length), kind, estimated))

    def add(self, chunk: DecodedChunk, host_time_ns: int) -> None:
        """Account for one decoded chunk that arrived at ``host_time_ns``."""
        ev = self.tracker.update(chunk)
        self.duplicate_samples += ev.duplicate_samples
        gaps = {(g.segment, g.at_sample): g for g in ev.gaps}
        for run, keep, seg_numbers in zip(chunk.data_runs(), ev.keep_runs, ev.segment_runs):
            frames, counts = kept_samples(run.frames, run.counts, keep)
            if frames.size == 0:
                continue
            if counts.shape[1] != self.channels:
                self.foreign_samples += int(counts.shape[0])
                continue
            self._add_run(frames, counts, gaps, host_time_ns, seg_numbers[keep])

    def _add_run(self, frames: np.ndarray, counts: np.ndarray, gaps: dict, host_time_ns: int,
                 seg_numbers: np.ndarray) -> None:
        # split on the tracker's segment numbers, not on boot ids: a device that restarted with its old
        # boot id (sample index or device time ran backwards) is a new segment too
        starts = np.flatnonzero(np.r_[True, seg_numbers[1:] != seg_numbers[:-1]])
        ends = np.r_[starts[1:], frames.size]
        for a, b in zip(starts, ends):
            fr = frames[a:b]
            boot = int(fr["boot_id"][0])
            number = int(seg_numbers[a])
            seg = self._segment
            if seg is None or seg.number != number:
                if seg is None and self.first_host_time_ns is None:
                    self.first_host_time_ns = host_time_ns
                    self.first_device_time_us = int(fr["device_time_us"][0])
                    base = 0
                else:
                    # Device reset: the pause is measured by the host clock.
                    self.resets += 1
                    pause_s = max(0.0, (host_time_ns - (self._last_data_host_ns or host_time_ns)) / 1e9)
                    in_chunk = int(fr["samples"].astype(np.int64).sum())
                    missing = max(0, int(round(pause_s * self.rate_hz)) - in_chunk)
                    base = self.next_position + missing
                    self._add_gap(self.next_position, missing, "reset", estimated=True)
                seg = self._segment = _Segment(number, boot, int(fr["first_sample"][0]), base)
                self.segments.append({"boot_id": boot, "first_device_sample": seg.first_device_sample, "at_sample": base})
            for g_key in [k for k in gaps if k[0] == number]:
                g = gaps.pop(g_key)
                at = seg.base + g.at_sample - seg.first_device_sample
                if self.max_samples is None or at < self.max_samples:
                    self._add_gap(at, g.length, "device_overrun" if g.device_overrun else "link")
            pos0 = seg.base + fr["first_sample"].astype(np.int64) - seg.first_device_sample
            n_per = fr["samples"].astype(np.int64)
            rows0 = fr["offset"].astype(np.int64) - int(frames["offset"][a])
            block = counts[int(frames["offset"][a]): int(frames["offset"][a]) + int(n_per.sum())]
            index = np.repeat(pos0 - rows0, n_per) + np.arange(int(n_per.sum()))
            if self.max_samples is not None:
                inside = index < self.max_samples
                if not inside.all():
                    # data beyond the end: the timeline is complete (a lost frame before it is a gap)
                    block, index = block[inside], index[inside]
                    fr = fr[pos0 < self.max_samples]
                    self.next_position = self.max_samples
            if index.size == 0:
                continue
            self._last_data_host_ns = host_time_ns
            self.after_reconnect = False  # data arrived after the reconnect: any unplug gap was listed above
            block = np.ascontiguousarray(block, dtype=np.int32)
            if self.keep_samples:
                self._counts.append(block)
                self._index.append(index)
            self._n_samples += int(index.size)
            if self.on_samples is not None:
                self.on_samples(index, block)
            self.frames += int(fr.size)
            self.clipped_frames += int(np.count_nonzero(fr["flags"] & protocol.FLAG_CLIPPING))
            self.overrun_frames += int(np.count_nonzero(fr["flags"] & protocol.FLAG_OVERRUN))
            self.next_position = max(self.next_position, int(index[-1]) + 1)

    def finish(self, reason: str | None = None) -> None:
        """Close the timeline; with a limit, a missing tail (device gone) is a gap."""
        if self.max_samples is not None and self.next_position < self.max_samples and self.first_host_time_ns is not None:
            self._add_gap(self.next_position, self.max_samples - self.next_position, reason or "disconnected")
            self.next_position = self.max_samples

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(counts int32 (n, C), sample_index int64 (n,))."""
        if not self._counts:
            return np.zeros((0, self.channels), np.int32), np.zeros(0, np.int64)
        return np.concatenate(self._counts), np.concatenate(self._index).astype(np.int64)
