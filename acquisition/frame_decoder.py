"""Bulk decoding of the steplab wire protocol: bytes in, frames and counts out.

``FrameDecoder.feed(data)`` takes whatever the port delivered (any split), keeps
the unfinished frame for the next call, and returns a :class:`DecodedChunk`.  The
hot path (splitting at 0x00, COBS decoding, CRC-32, header checks, 24-bit
unpacking) is one numba kernel call over the whole buffer; Python only touches
the rare message frames (JSON).

Channel counts: ``DecodedChunk.frames``/``counts`` hold the data frames of ONE
channel count.  In the rare case that the channel count changes inside one
``feed`` (a reconfigured or different device), the chunk is split into runs of
consecutive frames with the same channel count, in arrival order:
``chunk.frames``/``chunk.counts`` are the first run and ``chunk.more_runs`` the
rest; ``chunk.data_runs()`` lists all of them.  In the common case
``more_runs`` is empty.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _decoder_kernels as _k
from .protocol import FRAME_TYPE_DATA, MAX_BODY, MAX_ENCODED

#: One row per accepted data frame.  ``offset`` is the row in ``counts`` where
#: the frame's first sample is.
FRAME_DTYPE = np.dtype([
    ("boot_id", "u4"), ("seq", "u4"), ("first_sample", "i8"), ("device_time_us", "i8"),
    ("flags", "u2"), ("channels", "u2"), ("samples", "u2"), ("offset", "i8"),
])

COUNTER_NAMES = ("frames_ok", "crc_errors", "malformed", "oversize", "bytes_discarded")


@dataclass(frozen=True)
class Message:
    """A non-data frame: status (2), info (3), event (4), reply (5), log (6), command (7)."""

    frame_type: int
    boot_id: int
    seq: int
    device_time_us: int
    flags: int
    payload: dict[str, Any]


@dataclass
class DataRun:
    """Consecutive data frames of one channel count: header rows and their samples."""

    frames: np.ndarray  # FRAME_DTYPE, one row per frame
    counts: np.ndarray  # int32 (total samples, channels)


def _empty_frames() -> np.ndarray:
    return np.zeros(0, dtype=FRAME_DTYPE)


def _empty_counts() -> np.ndarray:
    return np.zeros((0, 0), dtype=np.int32)


@dataclass
class DecodedChunk:
    """What one ``feed`` produced.

    Attributes
    ----------
    frames : numpy.ndarray
        FRAME_DTYPE rows of the accepted data frames (first channel-count run).
    counts : numpy.ndarray
        int32 (total samples, channels) ADC counts of those frames, in order;
        shape (0, 0) when there are none.
    messages : list[Message]
        Accepted non-data frames, in arrival order.
    frames_ok, crc_errors, malformed, oversize : int
        Accepted frames (data and messages) and rejected ones by reason.
    bytes_discarded : int
        Wire bytes that were not part of an accepted frame (idle 0x00 included).
    more_runs : list[DataRun]
        Further data runs with other channel counts (normally empty).
    """

    frames: np.ndarray = field(default_factory=_empty_frames)
    counts: np.ndarray = field(default_factory=_empty_counts)
    messages: list[Message] = field(default_factory=list)
    frames_ok: int = 0
    crc_errors: int = 0
    malformed: int = 0
    oversize: int = 0
    bytes_discarded: int = 0
    more_runs: list[DataRun] = field(default_factory=list)

    def data_runs(self) -> list[DataRun]:
        """All data runs in arrival order (the first is ``frames``/``counts``); [] if none."""
        if self.frames.shape[0] == 0:
            return []
        return [DataRun(self.frames, self.counts), *self.more_runs]

    @property
    def n_samples(self) -> int:
        """Samples in all data runs."""
        return int(sum(r.counts.shape[0] for r in self.data_runs()))


class FrameDecoder:
    """Stateful stream decoder: ``feed`` bytes in any split, get frames out.

    Cumulative counters (since construction): ``frames_ok``, ``crc_errors``,
    ``malformed``, ``oversize``, ``bytes_discarded``, ``bytes_fed``; ``pending``
    is the number of bytes held back as an unfinished frame.

    A frame longer than the protocol allows is dropped as soon as that is clear
    (without waiting for its delimiter), counted once as oversize, and the decoder
    skips to the next 0x00.
    """

    def __init__(self) -> None:
        self._tail = bytearray()
        self._skipping = False
        self.frames_ok = 0
        self.crc_errors = 0
        self.malformed = 0
        self.oversize = 0
        self.bytes_discarded = 0
        self.bytes_fed = 0

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame held for the next ``feed``."""
        return len(self._tail)

    def counters(self) -> dict[str, int]:
        """Cumulative counters as a dict (``bytes_fed`` and ``pending`` included)."""
        d = {name: int(getattr(self, name)) for name in COUNTER_NAMES}
        d["bytes_fed"] = self.bytes_fed
        d["pending"] = self.pending
        return d

    def reset(self) -> None:
        """Forget the unfinished frame without counting it (e.g. after reopening the port)."""
        self._tail = bytearray()
        self._skipping = False

    def flush(self) -> DecodedChunk:
        """Give up on the unfinished frame: its bytes are counted as discarded."""
        chunk = DecodedChunk(bytes_discarded=len(self._tail))
        self.bytes_discarded += len(self._tail)
        self._tail = bytearray()
        self._skipping = False
        return chunk

    def feed(self, data: bytes | bytearray | memoryview) -> DecodedChunk:
        """Decode every frame completed by ``data``; keep the rest for later.

        Parameters
        ----------
        data : bytes, bytearray or memoryview
            The next bytes from the link, any length (empty is fine).

        Returns
        -------
        DecodedChunk
            Accepted data frames and their counts, messages, and the counters for
            this call (rejected frames by reason, discarded bytes).
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"feed needs bytes, bytearray or memoryview, not {type(data).__name__}")
        new = np.frombuffer(data, dtype=np.uint8) if len(data) else np.zeros(0, np.uint8)
        self.bytes_fed += new.shape[0]
        chunk = DecodedChunk()
        if self._skipping:
            zeros = np.flatnonzero(new == 0)
            if zeros.shape[0] == 0:
                chunk.bytes_discarded = new.shape[0]
                self.bytes_discarded += new.shape[0]
                return chunk
            cut = int(zeros[0]) + 1
            chunk.bytes_discarded = cut
            new = new[cut:]
            self._skipping = False
        if new.shape[0] < 4096 and not (new == 0).any():
            # small read without a delimiter: nothing can complete, just hold the
            # bytes (keeps trickling input linear; large reads go to the kernel)
            self._tail += new.tobytes()
            if len(self._tail) > MAX_ENCODED:
                chunk.oversize += 1
                chunk.bytes_discarded += len(self._tail)
                self._tail = bytearray()
                self._skipping = True
            self._count(chunk)
            return chunk
        if self._tail:
            self._tail += new.tobytes()
            buf = np.frombuffer(self._tail, dtype=np.uint8)
        else:
            buf = new
        body, hdr, values, counters = _k.scan_frames(buf, MAX_ENCODED, MAX_BODY, _k.CRC_TABLES)
        consumed = int(counters[_k.C_CONSUMED])
        tail = buf[consumed:]
        chunk.frames_ok = int(counters[_k.C_FRAMES_OK])
        chunk.crc_errors = int(counters[_k.C_CRC_ERRORS])
        chunk.malformed = int(counters[_k.C_MALFORMED])
        chunk.oversize = int(counters[_k.C_OVERSIZE])
        chunk.bytes_discarded += int(counters[_k.C_BYTES_DISCARDED])
        if tail.shape[0] > MAX_ENCODED:
            chunk.oversize += 1
            chunk.bytes_discarded += tail.shape[0]
            self._tail = bytearray()
            self._skipping = True
        else:
            self._tail = bytearray(tail.tobytes())
        del buf, tail
        if hdr.shape[0]:
            self._collect(chunk, body, hdr, values)
        self._count(chunk)
        return chunk

    def _count(self, chunk: DecodedChunk) -> None:
        self.frames_ok += chunk.frames_ok
        self.crc_errors += chunk.crc_errors
        self.malformed += chunk.malformed
        self.oversize += chunk.oversize
        self.bytes_discarded += chunk.bytes_discarded

    @staticmethod
    def _collect(chunk: DecodedChunk, body: np.ndarray, hdr: np.ndarray, values: np.ndarray) -> None:
        is_data = hdr[:, 0] == FRAME_TYPE_DATA
        if not is_data.all():
            for row in hdr[~is_data]:
                start = int(row[8]) + 32
                stop = int(row[8]) + int(row[9]) - 4
                try:
                    payload = json.loads(body[start:stop].tobytes().decode("utf-8"))
                except (UnicodeDecodeError, ValueError, RecursionError):
                    payload = None
                if not isinstance(payload, dict):
                    chunk.frames_ok -= 1
                    chunk.malformed += 1
                    chunk.bytes_discarded += int(row[10])
                    continue
                chunk.messages.append(Message(int(row[0]), int(row[2]), int(row[3]), int(row[5]),
                                              int(row[1]), payload))
        dh = hdr[is_data]
        if dh.shape[0] == 0:
            return
        channels = dh[:, 6]
        breaks = np.flatnonzero(channels[1:] != channels[:-1]) + 1
        bounds = [0, *breaks.tolist(), dh.shape[0]]
        runs = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            rows = dh[a:b]
            ch = int(rows[0, 6])
            v0 = int(rows[0, 11])
            v1 = int(rows[-1, 11] + rows[-1, 6] * rows[-1, 7])
            counts = values[v0:v1].reshape(-1, ch)
            frames = np.empty(rows.shape[0], dtype=FRAME_DTYPE)
            frames["boot_id"] = rows[:, 2]
            frames["seq"] = rows[:, 3]
            frames["first_sample"] = rows[:, 4]
            frames["device_time_us"] = rows[:, 5]
            frames["flags"] = rows[:, 1]
            frames["channels"] = rows[:, 6]
            frames["samples"] = rows[:, 7]
            frames["offset"] = (rows[:, 11] - v0) // ch
            runs.append(DataRun(frames, counts))
        chunk.frames = runs[0].frames
        chunk.counts = runs[0].counts
        chunk.more_runs = runs[1:]


def warm_up() -> None:
    """Compile (or load from cache) the decoder and encoder kernels on a tiny input."""
    from .protocol import FRAME_TYPE_STATUS, encode_data_frame, encode_message_frame

    wire = (encode_data_frame(boot_id=1, seq=0, first_sample=0, device_time_us=0,
                              counts=np.arange(6, dtype=np.int32).reshape(2, 3))
            + encode_message_frame(FRAME_TYPE_STATUS, boot_id=1, seq=1, payload={"uptime_s": 0}))
    dec = FrameDecoder()
    dec.feed(wire)
    dec.feed(bytearray(wire))  # the writable-buffer specialisation too
    _k.crc32_array(np.frombuffer(b"123456789", dtype=np.uint8), _k.CRC_TABLES)
