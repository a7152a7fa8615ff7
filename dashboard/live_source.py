"""The live acquisition behind the dashboard: device → reader → forces in a ring buffer.

Runs the same reader (journal optional) as ``steplab record``; a consumer
thread converts each decoded chunk to plate forces with the active calibration
and keeps the last ``window_s`` seconds for display, plus the data-quality
counters a lab engineer needs to trust what the screen shows.

Like the recorder, it asks the device to describe itself (``info``) and uses
the rate the device reports (and the device's rig when none is given).  Every
sample sits at its position on a live timeline: samples lost on the link or on
the device are NaN at their positions (a visible gap in the plot, never a
silent splice), duplicates are dropped, and a device reset continues the
timeline after the host-clock length of the pause.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from steplab.acquisition import protocol
from steplab.acquisition.device import DeviceError, StepBox
from steplab.acquisition.frame_decoder import DecodedChunk
from steplab.acquisition.reader import AcquisitionReader
from steplab.acquisition.rig import Rig, RigError
from steplab.acquisition.stream_tracker import StreamTracker, kept_samples
from steplab.calibration.tare import AutoTare
from steplab.dsp import CalibrationArrays, calibrated_forces, nominal_calibration

INFO_RETRY_S = 0.5  # resend ``info`` until the device answers
FOREIGN_STATUS_S = 2.0  # how long frames of another channel count keep the status line


@dataclass
class LiveSnapshot:
    """What the dashboard shows.

    Attributes
    ----------
    time_s : numpy.ndarray
        (n,) seconds on the live timeline (timeline position / ``rate_hz``).
    fz_n : dict[str, numpy.ndarray]
        Plate name → (n,) vertical force in N; NaN where samples were lost.
    samples, lost_samples, duplicate_samples, crc_errors, device_resets : int
        Samples shown so far, samples lost inside a device boot (exact, from the
        device's sample index), replayed samples dropped, frames failing CRC,
        device reboots seen.
    state : str
        The reader's state: idle, streaming, stalled, disconnected, stopped.
    rate_hz : float
        The rate the device reports (0 before it is known).
    status : str
        One line for people: "streaming", "disconnected (reconnecting)", "device
        streams 16 channels, the rig has 12", "waiting for the device to describe itself", …
    """

    time_s: np.ndarray
    fz_n: dict[str, np.ndarray]
    samples: int
    lost_samples: int
    crc_errors: int
    state: str
    rate_hz: float
    status: str = ""
    duplicate_samples: int = 0
    device_resets: int = 0


@dataclass
class _Segment:
    boot_id: int
    first_device_sample: int
    base: int  # timeline position of first_device_sample


class LiveAcquisition:
    """Owns a device while the dashboard runs.  ``snapshot()`` is thread-safe.

    Parameters
    ----------
    device : StepBox
        The step box (not yet open).
    rig : Rig or None
        The rig description; None: the device's own (from its ``info`` reply).
    calibration : CalibrationArrays or None
        Calibration for ``rig``; None: ``calibration_for(rig)`` if given, else nominal gains.
    window_s : float
        Seconds of history kept for display (> 0).
    auto_tare : bool
        Re-tare each plate automatically while it is unloaded and steady.
    calibration_for : callable or None
        ``calibration_for(rig) -> CalibrationArrays | None`` for a rig learnt from the device.
    info_timeout_s : float
        How long data may flow without an ``info`` answer before the given rig
        (and its rate) is used; without a rig, ``start`` fails after this long.
    """

    def __init__(self, device: StepBox, rig: Rig | None = None, calibration: CalibrationArrays | None = None,
                 window_s: float = 10.0, auto_tare: bool = True,
                 calibration_for: Callable[[Rig], CalibrationArrays | None] | None = None,
                 info_timeout_s: float = 2.0):
        if not (window_s > 0):
            raise ValueError(f"window_s {window_s!r} must be positive")
        if not (info_timeout_s > 0):
            raise ValueError(f"info_timeout_s {info_timeout_s!r} must be positive")
        if rig is None and calibration is not None:
            raise ValueError("a calibration needs the rig it belongs to")
        self.device = device
        self.window_s = float(window_s)
        self.auto_tare = bool(auto_tare)
        self.info_timeout_s = float(info_timeout_s)
        self._rig_given = rig
        self._calibration_given = calibration
        self._calibration_for = calibration_for
        self.rig = rig
        self.rate_hz = 0.0  # unknown until the device answers (or info_timeout_s passes)
        self.calibration = calibration or (nominal_calibration(rig) if rig is not None else None)
        self.calibrated = calibration is not None
        self.names = list(self.calibration.plate_roles) if self.calibration is not None else []
        self.device_info: dict | None = None
        self.last_status: dict | None = None
        self.retares = 0
        self.samples = 0
        self.duplicate_samples = 0
        self.device_resets = 0
        self.foreign_samples = 0
        self.crc_errors = 0
        self._tares: list[AutoTare] = []
        self._problem: str | None = None
        self._foreign: tuple[int, float] | None = None  # (channels, monotonic time last seen)
        self._lock = threading.Lock()
        self._armed = threading.Event()
        self._need_info = True
        self._last_info_request: float | None = None
        self._first_data_ns: int | None = None
        self._last_host_ns: int | None = None
        self._segment: _Segment | None = None
        self.tracker = StreamTracker()
        self.capacity = 0
        self._buf = np.zeros((len(self.names), 0))
        self._head = 0  # one past the last timeline position written
        self.reader = AcquisitionReader(device)
        self._stop = threading.Event()
        self._consumer: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------
    @property
    def armed(self) -> bool:
        """True once the rate and rig are known and samples are placed on the timeline."""
        return self._armed.is_set()

    def start(self) -> None:
        """Open the device, start reading, ask it to describe itself.

        Waits up to ``info_timeout_s`` for the device's answer.  Without a rig,
        raises DeviceError (one line) when the device does not describe its rig;
        with one, the rig's rate is used once data has flowed that long unanswered.
        """
        self.device.open()
        self.reader.start()
        self._request_info(time.monotonic())
        self._consumer = threading.Thread(target=self._consume, name="steplab-live", daemon=True)
        self._consumer.start()
        deadline = time.monotonic() + self.info_timeout_s
        # wait for the timeline to be armed (not merely for the answer: arming follows it)
        while not (self.armed or self._problem) and time.monotonic() < deadline:
            self._armed.wait(0.01)
        if not self.armed and self._rig_given is None:
            problem = self._problem
            self.stop()
            raise DeviceError(problem or f"{self.device.address} does not describe its rig (no answer to 'info' "
                              f"in {self.info_timeout_s:g} s); give --rig FILE")

    def stop(self) -> None:
        self._stop.set()
        self.reader.stop()
        if self._consumer is not None:
            self._consumer.join(2.0)
        self.device.close()

    def _request_info(self, now: float) -> None:
        self._last_info_request = now
        self.reader.send_command("info")

    def _consume(self) -> None:
        reconnects = 0
        while not self._stop.is_set():
            try:
                item = self.reader.queue.get(timeout=0.1)
            except queue.Empty:
                item = None
            if item is not None and item.chunk is None:
                if item.event == "reconnected":
                    self._need_info = True  # after a re-plug it may be another device (or another rate)
                item = None
            if item is not None:
                try:
                    self.ingest(item.chunk, item.host_time_ns)
                except Exception as exc:  # never a frozen screen that still says "streaming"
                    self._problem = f"live view error: {type(exc).__name__}: {exc}"
            if self.reader.stats.reconnects != reconnects:
                reconnects = self.reader.stats.reconnects
                self._need_info = True  # after a re-plug it may be another device (or another rate)
            now = time.monotonic()
            if self._need_info and (self._last_info_request is None or now - self._last_info_request >= INFO_RETRY_S):
                self._request_info(now)

    # -- decoded chunks → timeline ------------------------------------------------
    def ingest(self, chunk: DecodedChunk, host_time_ns: int) -> None:
        """Account for one decoded chunk that arrived at ``host_time_ns`` (host clock, ns).

        The consumer thread calls this for every chunk the reader decodes.
        """
        if not isinstance(chunk, DecodedChunk):
            raise ValueError(f"ingest needs a DecodedChunk, not {type(chunk).__name__}")
        self.crc_errors += int(chunk.crc_errors)
        for msg in chunk.messages:
            if ((msg.frame_type == protocol.FRAME_TYPE_INFO or (msg.frame_type == protocol.FRAME_TYPE_REPLY and msg.payload.get("ok")))
                    and "rig" in msg.payload):
                self._on_info(msg.payload)
            elif msg.frame_type == protocol.FRAME_TYPE_STATUS:
                self.last_status = msg.payload
        runs = chunk.data_runs()
        if not self.armed:
            expected = self._rig_given.channels if self._rig_given is not None else None
            if expected is not None:
                for run in runs:
                    if run.counts.shape[1] != expected:
                        self._note_foreign(run.counts.shape[1], run.counts.shape[0])
            if runs and self._first_data_ns is None:
                self._first_data_ns = host_time_ns
            if (self._rig_given is not None and self._first_data_ns is not None and self._problem is None
                    and host_time_ns - self._first_data_ns >= self.info_timeout_s * 1e9):
                self._arm(self._rig_given.sample_rate_hz, self._rig_given)  # the device does not answer info
                self._need_info = False
            if not self.armed:
                return
        with self._lock:  # counters and buffer change together: a snapshot sees them consistent
            ev = self.tracker.update(chunk)
            self.duplicate_samples += ev.duplicate_samples
            if ev.resets and self.device_info is not None:
                self._need_info = True  # a rebooted device may have another rate: ask again
            for run, keep in zip(runs, ev.keep_runs):
                frames, counts = kept_samples(run.frames, run.counts, keep)
                if frames.size == 0:
                    continue
                if counts.shape[1] != self.rig.channels:
                    self._note_foreign(counts.shape[1], counts.shape[0])
                    continue
                self._add_run(frames, counts, host_time_ns)
            self._last_host_ns = host_time_ns

    def _note_foreign(self, channels: int, n_samples: int) -> None:
        self.foreign_samples += int(n_samples)
        self._foreign = (int(channels), time.monotonic())

    def _on_info(self, payload: dict) -> None:
        info = {k: v for k, v in payload.items() if k not in ("id", "ok")}
        self.device_info = info
        self._need_info = False
        rig = self._rig_given
        if rig is None:
            try:
                rig = Rig.from_dict(info["rig"])
            except (RigError, KeyError, TypeError, ValueError) as exc:
                self._problem = f"the device describes its rig badly ({exc}); give --rig FILE"
                return
        try:
            channels = int(info.get("channels", rig.channels))
            rate = float(info.get("rate_hz") or 0.0)
        except (TypeError, ValueError):
            self._problem = "the device's info answer has a bad channel count or rate"
            return
        if channels != rig.channels:
            self._problem = f"device streams {channels} channels, the rig has {rig.channels}"
            return
        if not (rate > 0):
            rate = rig.sample_rate_hz
        self._problem = None
        if not self.armed or rate != self.rate_hz or rig.to_dict() != self.rig.to_dict():
            self._arm(rate, rig)

    def _arm(self, rate_hz: float, rig: Rig) -> None:
        """(Re)start the timeline for ``rig`` at ``rate_hz``."""
        calibration = self._calibration_given if rig is self._rig_given else None
        if calibration is None and self._calibration_for is not None:
            try:
                calibration = self._calibration_for(rig)
            except Exception as exc:  # a bad calibration record must not kill the live view
                self._problem = f"calibration not used: {exc}"
                calibration = None
        cal = calibration or nominal_calibration(rig)
        tares = []
        if self.auto_tare:
            for p, plate in enumerate(rig.plates):
                k = len(plate.cells)
                # Uncalibrated, the cells' zero balance (±1-2 % of rated output each) can put an empty
                # plate 100 N or more off: accept up to 3 % of the plate's capacity as "unloaded" then
                # (the steadiness test still refuses a foot, which sways by more than 1 N).
                unloaded_max_n = 10.0 if calibration is not None else 0.03 * plate.capacity_n
                tares.append(AutoTare(cal.offsets_counts[p, :k], [c.nominal_counts_per_n for c in plate.cells],
                                      rate_hz, unloaded_max_n=unloaded_max_n))
        names = list(cal.plate_roles)
        capacity = max(1, int(round(self.window_s * rate_hz)))
        with self._lock:
            self.rig = rig
            self.rate_hz = float(rate_hz)
            self.calibration = cal
            self.calibrated = calibration is not None
            self._tares = tares
            self.names = names
            self.capacity = capacity
            self._buf = np.full((len(names), capacity), np.nan)
            self._head = 0
            self._segment = None
            self.tracker = StreamTracker()
        self._armed.set()

    def _add_run(self, frames: np.ndarray, counts: np.ndarray, host_time_ns: int) -> None:
        """Place one run of kept frames (this rig's channel count) on the timeline."""
        boots = frames["boot_id"]
        starts = np.flatnonzero(np.r_[True, boots[1:] != boots[:-1]])
        ends = np.r_[starts[1:], frames.size]
        for a, b in zip(starts, ends):
            fr = frames[a:b]
            n_per = fr["samples"].astype(np.int64)
            row0 = int(fr["offset"][0])
            block = counts[row0: row0 + int(n_per.sum())]
            boot = int(fr["boot_id"][0])
            seg = self._segment
            if seg is None or seg.boot_id != boot:
                if seg is None:
                    base = self._head
                else:
                    # Device reset: the device index restarts; the pause is measured by the host clock.
                    self.device_resets += 1
                    pause_s = max(0.0, (host_time_ns - (self._last_host_ns or host_time_ns)) / 1e9)
                    base = self._head + max(0, int(round(pause_s * self.rate_hz)) - int(n_per.sum()))
                seg = self._segment = _Segment(boot, int(fr["first_sample"][0]), base)
            pos0 = seg.base + fr["first_sample"].astype(np.int64) - seg.first_device_sample
            rows0 = fr["offset"].astype(np.int64) - row0
            positions = np.repeat(pos0 - rows0, n_per) + np.arange(int(n_per.sum()))
            self._place(positions, block)

    def _place(self, positions: np.ndarray, counts: np.ndarray) -> None:
        """Write samples at their timeline positions (caller holds the lock)."""
        self._auto_tare(counts)
        forces = calibrated_forces(counts, self.calibration)
        end = int(positions[-1]) + 1
        cap = self.capacity
        lo = max(self._head, end - cap)
        if end > lo:
            # everything from the previous head on is a gap until a sample lands there
            self._buf[:, np.arange(lo, end) % cap] = np.nan
        sel = positions >= lo
        idx = positions[sel] % cap
        for p, name in enumerate(self.names):
            self._buf[p, idx] = forces[name].fz_n[sel]
        self._head = max(self._head, end)
        self.samples += int(counts.shape[0])

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

    # -- display -----------------------------------------------------------------
    def status(self) -> str:
        """The one-line status for people (see ``LiveSnapshot.status``)."""
        state = self.reader.stats.state
        if state == "disconnected":
            return "disconnected (reconnecting)"
        if self._problem:
            return self._problem
        foreign = self._foreign
        if foreign is not None and time.monotonic() - foreign[1] < FOREIGN_STATUS_S and self.rig is not None:
            return f"device streams {foreign[0]} channels, the rig has {self.rig.channels}"
        if not self.armed:
            return "waiting for the device to describe itself"
        if state == "stalled":
            return "stalled (no data)"
        return state

    def snapshot(self, decimate_to_hz: float = 100.0) -> LiveSnapshot:
        """The last ``window_s`` seconds, one point per ``1/decimate_to_hz`` s.

        A point is NaN when any sample of its block was lost, so even a short
        gap shows.  ``decimate_to_hz`` ≥ the rate gives every sample.
        """
        if not (decimate_to_hz > 0):
            raise ValueError(f"decimate_to_hz {decimate_to_hz!r} must be positive")
        with self._lock:
            rate = self.rate_hz
            names = list(self.names)
            head = self._head
            n = min(head, self.capacity)
            if n == 0 or rate <= 0:
                t = np.zeros(0)
                fz = {name: np.zeros(0) for name in names}
            else:
                step = max(1, int(round(rate / decimate_to_hz)))
                first = head - n
                first += (-first) % step  # blocks aligned to the timeline: points do not jitter
                n_blocks = (head - first) // step
                pos = first + np.arange(n_blocks * step)
                values = self._buf[:, pos % self.capacity].reshape(len(names), n_blocks, step)
                t = pos[::step] / rate
                with np.errstate(invalid="ignore"):
                    lost = np.isnan(values).any(axis=2)
                picked = np.where(lost, np.nan, values[:, :, 0])
                fz = {name: picked[p].copy() for p, name in enumerate(names)}
            samples, lost_samples = self.samples, int(self.tracker.lost_samples)
            duplicates, resets = self.duplicate_samples, self.device_resets
        return LiveSnapshot(time_s=t, fz_n=fz, samples=samples, lost_samples=lost_samples,
                            crc_errors=self.crc_errors, state=self.reader.stats.state, rate_hz=rate,
                            status=self.status(), duplicate_samples=duplicates, device_resets=resets)

    def wait_for_samples(self, n: int, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.samples >= n:
                return True
            time.sleep(0.02)
        return False
