"""Byte-level link faults for the simulated rig: bit flips, dropped and inserted bytes."""

from __future__ import annotations

import numpy as np


class FaultInjector:
    """Corrupts a byte stream with probability ``rate`` per byte.

    Each hit is, with equal odds, a flipped bit, a dropped byte or an inserted
    random byte (``steplab simulate --fault-rate P``).  Counts what it did.
    """

    def __init__(self, rate: float, seed: int = 0):
        if not (0.0 <= rate < 0.5):
            raise ValueError(f"fault rate {rate} must be in [0, 0.5)")
        self.rate = float(rate)
        self._rng = np.random.default_rng(seed ^ 0x5EED)
        self.flips = self.drops = self.inserts = 0

    def apply(self, data: bytes) -> bytes:
        if self.rate == 0.0 or not data:
            return data
        n = len(data)
        hits = np.flatnonzero(self._rng.random(n) < self.rate)
        if hits.size == 0:
            return data
        arr = np.frombuffer(data, dtype=np.uint8).copy()
        kinds = self._rng.integers(0, 3, hits.size)
        flip = hits[kinds == 0]
        arr[flip] ^= (1 << self._rng.integers(0, 8, flip.size)).astype(np.uint8)
        keep = np.ones(n, dtype=bool)
        keep[hits[kinds == 1]] = False
        ins_at = hits[kinds == 2]
        self.flips += int(flip.size)
        self.drops += int((kinds == 1).sum())
        self.inserts += int(ins_at.size)
        if ins_at.size:
            values = self._rng.integers(0, 256, ins_at.size).astype(np.uint8)
            arr = np.insert(arr, ins_at, values)
            keep = np.insert(keep, ins_at, True)
        return arr[keep].tobytes()
