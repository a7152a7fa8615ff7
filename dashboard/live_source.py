"""The live acquisition behind the dashboard: device → reader → forces in a ring buffer.

Runs the same reader (journal optional) as ``steplab record``; a consumer
thread converts each decoded chunk to plate forces with the active calibration
and keeps the last ``window_s`` seconds for display, plus the data-quality
counters a lab engineer needs to trust what the screen shows.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass

import numpy as np

from steplab.acquisition.device import StepBox
from steplab.acquisition.reader import AcquisitionReader
from steplab.acquisition.rig import Rig
from steplab.acquisition.stream_tracker import StreamTracker
from steplab.calibration.tare import AutoTare
from steplab.dsp import CalibrationArrays, calibrated_forces, nominal_calibration


@dataclass
class LiveSnapshot:
    time_s: np.ndarray  # (n,) seconds on the live timeline
    fz_n: dict[str, np.ndarray]  # plate name → (n,) vertical force in N
    samples: int
    lost_samples: int
    crc_errors: int
    state: str
    rate_hz: float


class LiveAcquisition:
    """Owns a device while the dashboard runs.  ``snapshot()`` is thread-safe."""

    def __init__(self, device: StepBox, rig: Rig, calibration: CalibrationArrays | None = None,
                 window_s: float = 10.0, auto_tare: bool = True):
        self.device = device
        self.rig = rig
        self.rate_hz = float(rig.sample_rate_hz)
        self.calibration = calibration or nominal_calibration(rig)
        self.calibrated = calibration is not None
        # Re-tare each plate automatically, only while it is unloaded and steady (calibration/tare.py).
        self._tares = []
        if auto_tare:
            for p, plate in enumerate(rig.plates):
                k = len(plate.cells)
                # Uncalibrated offsets can be tens of newtons off: accept a larger unloaded reading then.
                unloaded_max_n = 10.0 if self.calibrated else 80.0
                self._tares.append(AutoTare(self.calibration.offsets_counts[p, :k],
                                            [c.nominal_counts_per_n for c in plate.cells], self.rate_hz,
                                            unloaded_max_n=unloaded_max_n))
        self.retares = 0
        self.names = list(self.calibration.plate_roles)
        self.capacity = int(window_s * self.rate_hz)
        self._buf = np.full((len(self.names), self.capacity), np.nan)
        self._t = np.full(self.capacity, np.nan)
        self._head = 0  # samples written in total (timeline position of the next one)
        self._lock = threading.Lock()
        self.tracker = StreamTracker()
        self.reader = AcquisitionReader(device)
        self._stop = threading.Event()
        self._consumer: threading.Thread | None = None
        self.samples = 0

    def start(self) -> None:
        self.device.open()
        self.reader.start()
        self._consumer = threading.Thread(target=self._consume, name="steplab-live", daemon=True)
        self._consumer.start()

    def stop(self) -> None:
        self._stop.set()
        self.reader.stop()
        if self._consumer is not None:
            self._consumer.join(2.0)
        self.device.close()

    def _consume(self) -> None:
        while not self._stop.is_set():
            try:
                item = self.reader.queue.get(timeout=0.1)
            except Exception:  # queue.Empty
                continue
            chunk = item.chunk
            if chunk.counts.shape[0] == 0 or chunk.counts.shape[1] != self.rig.channels:
                self.tracker.update(chunk)
                continue
            self.tracker.update(chunk)
            self._auto_tare(chunk.counts)
            forces = calibrated_forces(chunk.counts, self.calibration)
            n = chunk.counts.shape[0]
            with self._lock:
                idx = (self._head + np.arange(n)) % self.capacity
                for p, name in enumerate(self.names):
                    self._buf[p, idx] = forces[name].fz_n
                self._t[idx] = (self._head + np.arange(n)) / self.rate_hz
                self._head += n
                self.samples += n

    def _auto_tare(self, counts: np.ndarray) -> None:
        cal = self.calibration
        changed = False
        offsets = np.array(cal.offsets_counts)
        for p, tare in enumerate(self._tares):
            k = len(self.rig.plates[p].cells)
            if tare.update(counts[:, cal.channel_index[p, :k]]) is not None:
                offsets[p, :k] = tare.offsets_counts
                changed = True
        if changed:
            self.retares += 1
            self.calibration = dataclasses.replace(cal, offsets_counts=offsets, calibration_hash="")

    def snapshot(self, decimate_to_hz: float = 100.0) -> LiveSnapshot:
        step = max(1, int(round(self.rate_hz / decimate_to_hz)))
        with self._lock:
            n = min(self._head, self.capacity)
            start = (self._head - n) % self.capacity
            order = (start + np.arange(n)) % self.capacity
            order = order[::step]
            t = self._t[order].copy()
            fz = {name: self._buf[p, order].copy() for p, name in enumerate(self.names)}
        return LiveSnapshot(time_s=t, fz_n=fz, samples=self.samples, lost_samples=int(self.tracker.lost_samples),
                            crc_errors=int(self.reader.decoder.crc_errors), state=self.reader.stats.state,
                            rate_hz=self.rate_hz)

    def wait_for_samples(self, n: int, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.samples >= n:
                return True
            time.sleep(0.02)
        return False
