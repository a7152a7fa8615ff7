"""The last seconds of a session's timeline, for the live view: a ring of counts by position.

``CountsRing`` is an ``AcquisitionSession`` sink: the session's consumer
thread writes every block laid on the timeline (``on_samples``), another
thread reads (``read``) at its own pace.  Each slot remembers the timeline
position it holds, so a reader can tell a lost sample (never written) and an
overwritten one (the reader fell more than ``capacity`` behind) from a
received one, and nothing is ever shown at a wrong place.
"""

from __future__ import annotations

import threading

import numpy as np


class CountsRing:
    """``window_s`` seconds of counts by timeline position (allocated when the session arms)."""

    def __init__(self, window_s: float = 30.0) -> None:
        if not (window_s > 0):
            raise ValueError(f"window_s {window_s!r} must be positive")
        self.window_s = float(window_s)
        self._lock = threading.Lock()
        self.rate_hz = 0.0
        self.channels = 0
        self.capacity = 0
        self.head = 0  # one past the last timeline position written
        self.generation = 0  # +1 at every arming: positions restart from 0
        self._counts = np.zeros((0, 0), np.int32)
        self._pos = np.zeros(0, np.int64)

    # -- the session's side -----------------------------------------------------------
    def on_armed(self, session) -> None:
        tl = session.timeline
        self.arm(tl.rate_hz, tl.rig.channels)

    def arm(self, rate_hz: float, channels: int) -> None:
        cap = max(1, int(round(self.window_s * rate_hz)))
        with self._lock:
            self.rate_hz = float(rate_hz)
            self.channels = int(channels)
            self.capacity = cap
            self._counts = np.zeros((cap, channels), np.int32)
            self._pos = np.full(cap, -1, np.int64)
            self.head = 0
            self.generation += 1

    def on_samples(self, positions: np.ndarray, counts: np.ndarray) -> None:
        if positions.size == 0:
            return
        with self._lock:
            cap = self.capacity
            if positions.size > cap:
                positions, counts = positions[-cap:], counts[-cap:]
            slots = positions % cap
            self._counts[slots] = counts
            self._pos[slots] = positions
            self.head = max(self.head, int(positions[-1]) + 1)

    # -- the reader's side ------------------------------------------------------------
    def read(self, start: int, stop: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Positions ``start`` .. ``stop`` (default: the head).

        Returns (positions int64 (n,), counts int32 (n, C), received bool (n,),
        generation): ``received`` is False where a sample was lost or has been
        overwritten (too far behind); those rows of ``counts`` are zeros.
        """
        with self._lock:
            stop = self.head if stop is None else min(int(stop), self.head)
            start = max(int(start), 0)
            if stop <= start or self.capacity == 0:
                return (np.zeros(0, np.int64), np.zeros((0, self.channels), np.int32), np.zeros(0, bool),
                        self.generation)
            positions = np.arange(start, stop, dtype=np.int64)
            slots = positions % self.capacity
            received = self._pos[slots] == positions
            counts = np.where(received[:, None], self._counts[slots], 0).astype(np.int32)
            return positions, counts, received, self.generation
