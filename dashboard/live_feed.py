"""The live feed behind the dashboard: acquisition session → ring buffer → forces → streaming analysis.

``LiveFeed`` owns an ``acquisition.session.AcquisitionSession`` (the same one
``steplab record`` uses: the device's ``info`` handshake, arming, the identity
check after a re-plug, the timeline with every gap) and a
``acquisition.ring_buffer.CountsRing`` sink.  Its own analysis thread (never a
web-server thread) takes what the ring holds, converts counts to plate forces
with the calibration in force (re-tared by ``calibration.tare.LiveTare`` while a
plate is unloaded and steady), filters each plate causally for display and
feeds ``dsp.streaming.StreamingAnalyzer``, which weighs the subject, gives the
left/right share of the floor load and detects reps live with the batch
analysis's own metrics.

``snapshot()`` (thread-safe, cheap) is the clean API the pages read: the
decimated filtered forces of the last ``window_s`` (NaN where a sample of the
point was lost: a visible gap, never a splice), each plate's current load, the
left/right share, the live reps with their headline metrics, the connection
state and the data-quality counters.

Recording from the live view: ``start_recording(seconds, trials_dir)`` stops
the live session and starts it again as a recording session (journal first,
the same timeline as ``steplab record``); the view goes on from the new
timeline.  When the recording is complete, or ``stop()`` is called (SIGTERM,
SIGINT of ``steplab run``), the trial is written (a partial one when stopped
early) into ``trials_dir`` and ``on_trial_saved(path, trial, summary)`` is
called: the hook for the records database.  Then the live session resumes.

Clinic controls (web threads call them; the analysis thread applies them):
``tare_now()`` re-zeroes every plate at once after checking that each is
unloaded and steady (``calibration.tare.compute_tare`` against the zero in
force); ``weigh_in()`` weighs the subject from the last seconds of the total
calibrated load, refusing while they move or nobody stands on the plates;
``set_analysis(protocol, body_mass_kg)`` changes what the live reps are.

The fast live view: ``frame(after_block, generation)`` returns only the display
blocks newer than the client's last one, with the readouts (JSON-safe), so a
browser polling at 30 Hz costs the server a few hundred numbers per request.
Every frame and snapshot carry ``arrival_ms``: the host wall-clock time (ms
since the epoch) at which the newest sample shown arrived, stamped by the
session's consumer thread when it laid the sample on the timeline.

Gaps and the analysis: a lost stretch up to ``max_bridge_s`` is bridged for
the analyzer by holding the last received counts (counted in
``bridged_samples``); a longer one restarts the analyzer (a rep in progress is
dropped, counted in ``analysis_restarts``), so a rep is never measured across
missing data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal

from steplab.acquisition.device import DeviceError, StepBox
from steplab.acquisition.recorder import (
    MAX_RECORDING_S,
    RecordingError,
    RecordingInterrupted,
    finish_recording,
    journal_header,
    journal_path_for,
)
from steplab.acquisition.rig import Rig
from steplab.acquisition.ring_buffer import CountsRing
from steplab.acquisition.session import AcquisitionSession
from steplab.calibration.apply import calibrated_forces
from steplab.calibration.arrays import CalibrationArrays, nominal_calibration
from steplab.calibration.tare import AutoTarePolicy, LiveTare, TareError, compute_tare, plate_force_n
from steplab.dsp.params import ROLES, AnalysisParams, PlateForces
from steplab.dsp.results import RepResult
from steplab.dsp.streaming import StreamingAnalyzer

ANALYSIS_PERIOD_S = 0.02  # the analysis thread takes what the ring holds this often
STANDARD_GRAVITY_M_S2 = 9.80665
TARE_S = 2.0  # a tare averages the last 2 s of each plate (the procedure's minimum)
WEIGH_QUIET_S = 2.5  # the weigh-in: the subject stands still this long
WEIGH_MIN_LOAD_N = 150.0  # less than this on all plates together: nobody is standing on them
WEIGH_MAX_SD_FRACTION = 0.015  # quiet standing: the total load's SD within 1.5 % of its mean
ARRIVAL_LOG_N = 1024  # chunks whose host arrival time is kept (several seconds at 100 chunks/s)
HEADLINE_METRICS = {
    "step-down": ("landing_peak_force_bw", "loading_rate_bw_s", "time_to_stabilization_s", "peak_descent_speed_m_s"),
    "forward-step-down": ("lowering_duration_s", "raising_duration_s"),
    "drop-landing": ("landing_peak_force_bw", "loading_rate_bw_s", "time_to_stabilization_s"),
    "squat": ("left_share_pct",),
    "balance": ("cop_path_mm", "cop_mean_velocity_mm_s"),
}


class LiveRefused(ValueError):
    """A clinic control that cannot be done now (loaded plate, subject moving, …): one line for people."""


@dataclass(frozen=True)
class WeighIn:
    """A quiet-phase weigh-in: ``mass_kg`` from ``mean_n`` [N] over ``seconds`` [s], sway SD ``sd_n`` [N]."""

    mass_kg: float
    mean_n: float
    sd_n: float
    seconds: float


class _ArrivalLog:
    """Session sink: when (host wall clock, ns) each block of positions was laid on the timeline.

    Added before the ring, so a position the analysis thread reads from the ring
    always has its arrival time here already.
    """

    def __init__(self, n: int = ARRIVAL_LOG_N) -> None:
        self._lock = threading.Lock()
        self._head = np.zeros(n, np.int64)  # one past the newest position of each chunk (running maximum)
        self._time_ns = np.zeros(n, np.int64)
        self._n = 0
        self._size = n

    def on_armed(self, session) -> None:
        with self._lock:
            self._n = 0

    def on_samples(self, positions: np.ndarray, counts: np.ndarray) -> None:
        if positions.size == 0:
            return
        now = time.time_ns()
        with self._lock:
            i = self._n % self._size
            last = self._head[(self._n - 1) % self._size] if self._n else 0
            self._head[i] = max(int(positions[-1]) + 1, int(last))
            self._time_ns[i] = now
            self._n += 1

    def arrival_ns(self, position: int) -> int | None:
        """Host time the chunk holding ``position`` arrived (None: not known, e.g. too old)."""
        with self._lock:
            n = min(self._n, self._size)
            if n == 0:
                return None
            order = (np.arange(self._n - n, self._n)) % self._size
            heads = self._head[order]
            k = int(np.searchsorted(heads, position, side="right"))
            if k >= n:
                return None
            return int(self._time_ns[order[k]])


@dataclass
class LiveRep:
    """A rep the streaming analysis reported, on the session's timeline.

    ``t_onset_s``/``t_contact_s`` are seconds on the live timeline;
    ``metrics`` every metric of the rep (batch definitions), ``headline`` the
    few the page shows.
    """

    number: int
    lead: str | None
    t_onset_s: float | None
    t_contact_s: float | None
    metrics: dict
    flags: list
    headline: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"number": self.number, "lead": self.lead, "t_onset_s": self.t_onset_s,
                "t_contact_s": self.t_contact_s, "metrics": dict(self.metrics), "flags": list(self.flags),
                "headline": dict(self.headline)}


@dataclass
class LiveSnapshot:
    """What the pages show (see ``LiveFeed.snapshot``).

    Attributes
    ----------
    time_s : numpy.ndarray
        (n,) seconds on the live timeline, one point per display block.
    fz_n : dict[str, numpy.ndarray]
        Plate → (n,) causally filtered vertical force [N]; NaN where a sample of the block was lost.
    load_n : dict[str, float | None]
        Plate → its current filtered load [N] (None when the last block was lost or nothing arrived).
    left_share_pct : float or None
        Share of the floor load on the left floor plate [%]; None while the floor is unloaded.
    reps : list[LiveRep]
        Reps detected live, oldest first.
    body_weight_n : float or None
        The analyzer's weighing (None before).
    phase : str
        ``weighing``, ``waiting``, ``ready``, ``moving`` (StreamingAnalyzer.phase), or ``""`` before data.
    samples, lost_samples, duplicate_samples, crc_errors, device_resets, queue_dropped_samples : int
        Data quality: received samples, samples lost on the timeline (exact positions), replays dropped,
        frames failing CRC, device reboots, chunks the reader's queue had to drop.
    state : str
        The reader's state: idle, streaming, stalled, disconnected, stopped.
    rate_hz : float
        The rate the device reports (0 before it is known).
    status : str
        One line for people ("streaming", "disconnected (reconnecting)", a problem, …).
    saturated_frames : int
        Frames the device flagged as clipping (a cell at the end of its range).
    arrival_ms : float or None
        Host wall-clock time [ms since the epoch] when the newest sample shown arrived (None before data).
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
    queue_dropped_samples: int = 0
    load_n: dict[str, float | None] = field(default_factory=dict)
    left_share_pct: float | None = None
    reps: list[LiveRep] = field(default_factory=list)
    body_weight_n: float | None = None
    phase: str = ""
    retares: int = 0
    calibrated: bool = False
    bridged_samples: int = 0
    analysis_restarts: int = 0
    connected: bool = False
    saturated_frames: int = 0
    arrival_ms: float | None = None


class _Display:
    """Decimated filtered forces by display block, for the last ``n_points`` blocks."""

    def __init__(self, n_plates: int, n_points: int) -> None:
        self.values = np.full((n_plates, n_points), np.nan)
        self.block = np.full(n_points, -1, np.int64)  # display block number held by each slot
        self.n_points = n_points
        self.head = 0  # one past the last block written

    def put(self, block_numbers: np.ndarray, values: np.ndarray) -> None:
        slots = block_numbers % self.n_points
        self.values[:, slots] = values
        self.block[slots] = block_numbers
        self.head = max(self.head, int(block_numbers[-1]) + 1)

    def series(self, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(blocks, values (plates, n)) of the window from block ``start`` on (NaN: lost or never written)."""
        first = max(0, self.head - self.n_points, int(start))
        blocks = np.arange(first, self.head, dtype=np.int64)
        slots = blocks % self.n_points
        vals = np.where(self.block[slots] == blocks, self.values[:, slots], np.nan)
        return blocks, vals


class LiveFeed:
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
        Seconds of history shown (> 0).
    display_hz : float
        Points per second of the plotted forces.
    auto_tare : bool
        Re-tare each plate automatically while it is unloaded and steady (``calibration.tare.LiveTare``).
    calibration_for : callable or None
        ``calibration_for(rig) -> CalibrationArrays | None`` for a rig learnt from the device.
    info_timeout_s : float
        How long data may flow without an ``info`` answer before the given rig (and its
        rate) is used; without a rig, ``start`` fails after this long.
    protocol : str
        The movement the live analysis looks for (``dsp.PROTOCOLS``).
    body_mass_kg : float or None
        The visit's body mass; None: the analyzer weighs.
    max_bridge_s : float
        Longest lost stretch bridged for the analysis (longer ones restart it).
    """

    def __init__(self, device: StepBox, rig: Rig | None = None, calibration: CalibrationArrays | None = None, *,
                 window_s: float = 10.0, display_hz: float = 100.0, auto_tare: bool = True,
                 calibration_for: Callable[[Rig], CalibrationArrays | None] | None = None,
                 info_timeout_s: float = 2.0, protocol: str = "step-down", body_mass_kg: float | None = None,
                 max_bridge_s: float = 0.1, params: AnalysisParams | None = None,
                 on_trial_saved: Callable[[Path, object, dict], None] | None = None) -> None:
        if not (window_s > 0):
            raise ValueError(f"window_s {window_s!r} must be positive")
        if not (display_hz > 0):
            raise ValueError(f"display_hz {display_hz!r} must be positive")
        if not (info_timeout_s > 0):
            raise ValueError(f"info_timeout_s {info_timeout_s!r} must be positive")
        if not (max_bridge_s >= 0):
            raise ValueError(f"max_bridge_s {max_bridge_s!r} must be zero or positive")
        if rig is None and calibration is not None:
            raise ValueError("a calibration needs the rig it belongs to")
        self.device = device
        self.window_s = float(window_s)
        self.display_hz = float(display_hz)
        self.auto_tare = bool(auto_tare)
        self.info_timeout_s = float(info_timeout_s)
        self.protocol = protocol
        self.body_mass_kg = body_mass_kg
        self.max_bridge_s = float(max_bridge_s)
        self.params = params or AnalysisParams()
        self._rig_given = rig
        self._calibration_given = calibration
        self._calibration_for = calibration_for
        self.ring = CountsRing(window_s=max(30.0, 3 * self.window_s))
        self.session = AcquisitionSession(device, rig=rig, info_timeout_s=info_timeout_s, keep_samples=False,
                                          fatal_problems=False)
        self.arrivals = _ArrivalLog()
        self.session.add_sink(self.arrivals)  # before the ring: a position read from the ring has its time here
        self.session.add_sink(self.ring)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = 0
        self._ready = threading.Event()  # the analysis is set up for the armed timeline
        self.rig: Rig | None = rig
        self.rate_hz = 0.0
        self.calibration = calibration or (nominal_calibration(rig) if rig is not None else None)
        self.calibrated = calibration is not None
        self.names = list(self.calibration.plate_roles) if self.calibration is not None else []
        self.problem: str | None = None
        self.on_trial_saved = on_trial_saved
        self._recording: dict | None = None  # out, journal, seconds of the recording in progress
        self._record_lock = threading.Lock()
        self.saved_trials: list[Path] = []
        self.last_recording_error: str | None = None
        self.tares = 0  # tares asked for (tare_now) and applied
        self._pending_offsets: np.ndarray | None = None  # from tare_now, applied by the analysis thread
        self._pending_analysis = False  # set_analysis: a new analyzer at the next block
        self._keep_reps = False  # the live view resumed after a recording: its reps stay on screen
        self.reps: list[LiveRep] = []
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.samples = 0
        self.retares = 0
        self.bridged_samples = 0
        self.analysis_restarts = 0
        self.behind_samples = 0
        if not self._keep_reps:
            self.reps = []
        self._keep_reps = False
        self._arrival_ns: int | None = None
        self._tare: LiveTare | None = None
        self._analyzer: StreamingAnalyzer | None = None
        self._analyzer_t0_s = 0.0
        self._analysis_roles: tuple[str, ...] = ()
        self._next = 0
        self._last_counts: np.ndarray | None = None
        self._lost_run = 0
        self._display: _Display | None = None
        self._step = 1
        self._zi: np.ndarray | None = None
        self._sos = np.zeros((0, 6))
        self._load: dict[str, float | None] = {}
        self._left_share: float | None = None

    # -- lifecycle -------------------------------------------------------------------
    @property
    def armed(self) -> bool:
        """True once the rate and rig are known and samples are placed on the timeline."""
        return self.session.armed

    def start(self) -> None:
        """Open the device, start the session and the analysis thread.

        Waits up to ``info_timeout_s`` for the device to describe itself.
        Without a rig, raises DeviceError (one line) when it does not.
        """
        self.session.start()
        self._stop.clear()
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="steplab-live-analysis", daemon=True)
        self._thread.start()
        armed = self.session.wait_armed(self.info_timeout_s)
        if armed:
            self._ready.wait(5.0)  # rig, rate, plate names and calibration known before a page is built
        if not armed and self._rig_given is None:
            problem = self.session.timeline.problem or self.session.error
            self.stop()
            raise DeviceError(problem or f"{self.device.address} does not describe its rig (no answer to 'info' "
                              f"in {self.info_timeout_s:g} s); give --rig FILE")

    def stop(self, reason: str = "stopped", timeout_s: float = 10.0) -> None:
        """Stop the analysis thread and the session (the device is closed).

        A recording in progress is finished first: its (partial) trial is
        written, with ``reason`` as how it ended (e.g. "terminated").
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with self._record_lock:
            if self._recording is not None:
                self._finish_recording(reason, resume=False, timeout_s=timeout_s)
        if self.session.state == "running":
            self.session.stop("stopped", timeout_s=timeout_s)

    # -- recording from the live view ------------------------------------------------
    @property
    def recording(self) -> dict | None:
        """The recording in progress: {"out", "seconds", "samples"}, or None."""
        rec = self._recording
        if rec is None:
            return None
        tl = self.session.timeline
        return {"out": str(rec["out"]), "seconds": rec["seconds"],
                "samples": tl.assembler.samples if tl.assembler is not None else 0}

    def reload_calibration(self) -> None:
        """Look the calibration up again (``calibration_for``) at the next start: after a calibration was saved."""
        with self._lock:
            self._calibration_given = None

    def start_recording(self, seconds: float, trials_dir: str | Path, *,
                        on_saved: Callable[[Path, object, dict], None] | None = None) -> Path:
        """Record ``seconds`` into a new trial file in ``trials_dir``; returns its path (see the module docstring).

        ``on_saved(path, trial, summary)`` is called for this recording only, after
        ``on_trial_saved``, on the thread that finished it (never a web thread).
        """
        if not (0 < seconds <= MAX_RECORDING_S):
            raise ValueError(f"seconds {seconds!r} must be in (0, {MAX_RECORDING_S:g}]")
        folder = Path(trials_dir)
        with self._record_lock:
            if self._recording is not None:
                raise RecordingError("a recording is already in progress")
            if self.session.state != "running":
                raise RecordingError("the live view is not running")
            folder.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            out = folder / f"trial-{stamp}.npz"
            k = 1
            while out.exists() or journal_path_for(out).exists():
                out = folder / f"trial-{stamp}-{k}.npz"
                k += 1
            journal = journal_path_for(out)
            rig = self.rig or self._rig_given
            self.session.stop("recording")
            self.session.configure(seconds=float(seconds), journal_path=journal, keep_samples=True,
                                   fatal_problems=True, reconnect_timeout_s=30.0,
                                   journal_header=journal_header(self.device.address, float(seconds), rig))
            self._recording = {"out": out, "journal": journal, "seconds": float(seconds), "on_saved": on_saved}
            try:
                self.session.start()
            except Exception:
                self._recording = None
                self._resume_live()
                raise
            return out

    def _resume_live(self) -> None:
        if self.session.state == "running":
            self.session.stop("stopped")
        self.session.configure(seconds=None, journal_path=None, journal_header=None, keep_samples=False,
                               fatal_problems=False, reconnect_timeout_s=None)
        self.session.start()

    def _finish_recording(self, reason: str, resume: bool, timeout_s: float = 10.0) -> None:
        """Write the recording's trial (caller holds _record_lock); then resume the live session if asked."""
        rec = self._recording
        if rec is None:
            return
        self._recording = None
        interrupted = self.session.state == "running" and not self.session.finished
        if self.session.state == "running":
            self.session.stop(reason, timeout_s=timeout_s)
        path: Path | None = None
        trial: object = None
        summary: dict = {}
        try:
            trial, summary = finish_recording(self.session, rec["out"], rec["journal"], interrupted=interrupted)
            path = rec["out"]
        except RecordingInterrupted as exc:
            trial, summary = exc.trial, exc.summary or {}
            path = rec["out"] if exc.trial is not None else None
        except RecordingError as exc:
            self.last_recording_error = str(exc)
        if path is not None:
            self.saved_trials.append(path)
            for hook in (self.on_trial_saved, rec.get("on_saved")):
                if hook is None:
                    continue
                try:
                    hook(path, trial, summary)
                except Exception as exc:  # the trial file is safe; the hook's failure is shown
                    self.last_recording_error = f"saved {path.name}, but the records hook failed: {exc}"
        if resume:
            self._keep_reps = True  # the reps of the trial just recorded stay on screen
            self._resume_live()

    def _supervise(self) -> None:
        """A recording that ended by itself (complete, rig gone) is written and the live view resumes."""
        if self._recording is None or not self.session.finished:
            return
        with self._record_lock:
            if self._recording is not None and self.session.finished:
                self._finish_recording(self.session.ended_reason or "complete", resume=True)

    def close(self) -> None:
        if self.session.state == "running":
            self.stop()
        self.session.close()

    # -- the analysis thread ---------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(ANALYSIS_PERIOD_S):
            try:
                self._supervise()
                self.process_available()
            except Exception as exc:  # never a frozen screen that still says "streaming"
                self.problem = f"live view error: {type(exc).__name__}: {exc}"

    def process_available(self) -> int:
        """Take what the ring holds (whole display blocks) through the analysis; returns samples taken."""
        ring = self.ring
        if ring.generation != self._generation:
            self._setup(ring.generation)
        if self._display is None:
            return 0
        self._apply_pending()
        step = self._step
        head = ring.head
        stop = head - head % step
        if stop <= self._next:
            return 0
        start = self._next
        if stop - start > ring.capacity:  # fell behind the ring: the overwritten part is lost to the view
            skipped = stop - ring.capacity - start
            skipped += (-skipped) % step
            self.behind_samples += skipped
            start += skipped
        positions, counts, received, generation = ring.read(start, stop)
        if generation != self._generation:
            return 0
        self._next = stop
        self._process(positions, counts, received)
        return int(positions.size)

    def _setup(self, generation: int) -> None:
        tl = self.session.timeline
        rig, rate = tl.rig, tl.rate_hz
        with self._lock:
            self._generation = generation
            self._reset_counters()
            if rig is None or not rate > 0:
                self._display = None
                return
            calibration = self._calibration_given if rig is self._rig_given else None
            if calibration is None and self._calibration_for is not None:
                try:
                    calibration = self._calibration_for(rig)
                except Exception as exc:  # a bad calibration record must not kill the live view
                    self.problem = f"calibration not used: {exc}"
                    calibration = None
            cal = calibration or nominal_calibration(rig)
            self.rig, self.rate_hz, self.calibration = rig, float(rate), cal
            self.calibrated = calibration is not None
            self.names = list(cal.plate_roles)
            self._tare = LiveTare(rig, cal, rate, calibrated=self.calibrated) if self.auto_tare else None
            self._step = max(1, int(round(rate / self.display_hz)))
            n_points = max(1, int(round(self.window_s * rate / self._step)))
            self._display = _Display(len(self.names), n_points)
            p = self.params
            self._sos = signal.butter(p.filter_order // 2, p.force_cutoff_hz / (0.5 * rate), output="sos")
            self._zi = None
            self._analysis_roles = self._roles_for_analysis()
            self._new_analyzer(0)
        self._ready.set()

    def _roles_for_analysis(self) -> tuple[str, ...]:
        names = set(self.names)
        roles = [r for r in ROLES if r in names]
        if "box" not in names and {"box_left", "box_right"} <= names:
            roles.insert(0, "box")  # a split box is one box for the movement analysis
        return tuple(roles)

    def _new_analyzer(self, position: int) -> None:
        self._analyzer = None
        if not self._analysis_roles or not (20.0 <= self.rate_hz <= 100_000.0):
            return
        self._analyzer = StreamingAnalyzer(self.rate_hz, self._analysis_roles, protocol=self.protocol,
                                           params=self.params, body_mass_kg=self.body_mass_kg)
        self._analyzer_t0_s = position / self.rate_hz

    def _process(self, positions: np.ndarray, counts: np.ndarray, received: np.ndarray) -> None:
        n = positions.size
        display, calibration = self._display, self.calibration
        if n == 0 or display is None or calibration is None:
            return
        got = int(np.count_nonzero(received))
        # bridge lost samples for the analysis with the last received counts (display: NaN)
        if not received.all():
            counts = counts.copy()
            idx = np.where(received, np.arange(n), -1)
            np.maximum.accumulate(idx, out=idx)
            first_ok = idx >= 0
            if self._last_counts is not None:
                counts[~first_ok] = self._last_counts
                counts[first_ok] = counts[idx[first_ok]]
            else:
                counts[first_ok] = counts[idx[first_ok]]
        if got and self._tare is not None:
            new = self._tare.update(counts[received])
            if new is not None:
                self.retares = self._tare.retares
                self.calibration = calibration = new
        forces = calibrated_forces(counts, calibration)
        fz = np.vstack([forces[name].fz_n for name in self.names])
        if self._zi is None:
            zi0 = signal.sosfilt_zi(self._sos)
            self._zi = zi0[:, None, :] * fz[None, :, 0, None]  # (sections, plates, 2): start at rest at the first value
        filtered, self._zi = signal.sosfilt(self._sos, fz, axis=1, zi=self._zi)
        step = self._step
        blocks = positions[::step] // step
        lost_block: np.ndarray = np.logical_not(received.reshape(-1, step).all(axis=1))
        shown = np.where(lost_block[None, :], np.nan, filtered[:, step - 1::step])
        self._analyse(positions, forces, received)
        arrival = self.arrivals.arrival_ns(int(positions[-1]))
        with self._lock:
            display.put(blocks, shown)
            if arrival is not None:
                self._arrival_ns = arrival
            self.samples += got
            if got:
                self._last_counts = counts[received][-1].copy()
            last_lost = bool(lost_block[-1])
            self._load = {name: (None if last_lost else float(filtered[p, -1]))
                          for p, name in enumerate(self.names)}
            self._left_share = self._analyzer.left_share_pct if self._analyzer is not None else None

    def _analyse(self, positions: np.ndarray, forces: dict[str, PlateForces], received: np.ndarray) -> None:
        if self._analyzer is None and not self._analysis_roles:
            return
        n = positions.size
        max_bridge = int(round(self.max_bridge_s * self.rate_hz))
        # split at lost runs longer than max_bridge: the analyzer restarts after them
        runs = []
        a = 0
        lost = ~received
        if lost.any():
            edges = np.flatnonzero(np.diff(np.r_[0, lost.astype(np.int8), 0]))
            starts, ends = edges[::2], edges[1::2]
            for s, e in zip(starts, ends):
                run = int(e - s) + (self._lost_run if s == 0 else 0)
                if run > max_bridge:
                    if s > a:
                        runs.append((a, int(s), False))
                    runs.append((int(s), int(e), True))
                    a = int(e)
            self._lost_run = int(ends[-1] - starts[-1]) + (self._lost_run if starts[-1] == 0 else 0) \
                if ends[-1] == n else 0
            self.bridged_samples += int(lost.sum()) - sum(e - s for s, e, skip in runs if skip)
        else:
            self._lost_run = 0
        if a < n:
            runs.append((a, n, False))
        for s, e, skip in runs:
            if skip:
                if self._analyzer is not None and self._analyzer.n_samples:
                    self.analysis_restarts += 1
                    self._new_analyzer(int(positions[e - 1]) + 1)
                continue
            if self._analyzer is None:
                self._new_analyzer(int(positions[s]))
                if self._analyzer is None:
                    return
            block = self._analysis_block(forces, s, e)
            for rep in self._analyzer.push(block):
                self._add_rep(rep)

    def _analysis_block(self, forces: dict[str, PlateForces], s: int, e: int) -> dict:
        block = {}
        for role in self._analysis_roles:
            if role in forces:
                pf = forces[role]
                block[role] = PlateForces(pf.fz_n[s:e], None if pf.mx_nm is None else pf.mx_nm[s:e],
                                          None if pf.my_nm is None else pf.my_nm[s:e])
            else:  # the split box: the two halves' vertical forces add up
                block[role] = forces["box_left"].fz_n[s:e] + forces["box_right"].fz_n[s:e]
        return block

    def _add_rep(self, rep: RepResult) -> None:
        t0 = self._analyzer_t0_s
        names = HEADLINE_METRICS.get(self.protocol, ())
        headline = {k: rep.metrics.get(k) for k in names if k in rep.metrics}
        live = LiveRep(len(self.reps) + 1, rep.lead, None if rep.t_onset_s is None else rep.t_onset_s + t0,
                       None if rep.t_contact_s is None else rep.t_contact_s + t0, dict(rep.metrics),
                       list(rep.flags), headline)
        with self._lock:
            self.reps.append(live)

    def _apply_pending(self) -> None:
        """On the analysis thread: a tare asked for by ``tare_now``, an analysis change by ``set_analysis``."""
        offsets = self._pending_offsets
        if offsets is not None and self.calibration is not None and self.rig is not None:
            self._pending_offsets = None
            import dataclasses

            cal = dataclasses.replace(self.calibration, offsets_counts=offsets, calibration_hash="")
            self.calibration = cal
            if self._tare is not None:
                self._tare = LiveTare(self.rig, cal, self.rate_hz, calibrated=self.calibrated)
            self.tares += 1
        if self._pending_analysis:
            self._pending_analysis = False
            self._new_analyzer(self._next)

    # -- clinic controls (any thread; applied by the analysis thread) ------------------
    def set_analysis(self, protocol: str | None = None, body_mass_kg: float | None = None) -> None:
        """Look for ``protocol``'s reps from now on, with this body mass (None: the analyzer weighs)."""
        from steplab.dsp import PROTOCOLS

        if protocol is not None:
            if protocol not in PROTOCOLS:
                raise ValueError(f"unknown protocol {protocol!r}")
            self.protocol = protocol
        self.body_mass_kg = body_mass_kg
        self._pending_analysis = True

    def _last_counts_window(self, seconds: float) -> tuple[np.ndarray, np.ndarray]:
        """(counts (n, C), received (n,)) of the newest ``seconds`` the analysis has taken."""
        n = int(round(seconds * self.rate_hz))
        stop = self._next
        _positions, counts, received, generation = self.ring.read(max(0, stop - n), stop)
        if generation != self._generation or counts.shape[0] < n:
            raise LiveRefused(f"wait for {seconds:g} s of data from the rig, then try again")
        return counts, received

    def tare_now(self) -> list[str]:
        """Re-zero every plate now from its last ``TARE_S`` of counts; returns the plates tared.

        Refused (``LiveRefused``, nothing changed) during a recording, while a
        sample of the window is missing, or when a plate is loaded (reads more than
        the auto-tare policy's "unloaded" limit above its zero) or not steady.
        """
        if self._recording is not None:
            raise LiveRefused("a recording is in progress: tare before or after it")
        rig, cal, rate = self.rig, self.calibration, self.rate_hz
        if rig is None or cal is None or not rate > 0:
            raise LiveRefused("the rig is not streaming yet: wait for data, then tare")
        counts, received = self._last_counts_window(TARE_S)
        if not received.all():
            raise LiveRefused(f"{int(np.count_nonzero(~received))} samples of the last {TARE_S:g} s were lost: "
                              "tare again")
        policy = AutoTarePolicy()
        cells = {c.channel: c for p in rig.plates for c in p.cells}
        offsets = np.array(cal.offsets_counts, dtype=np.float64)
        for p, role in enumerate(cal.plate_roles):
            slots = np.flatnonzero(cal.channel_index[p] >= 0)
            channels = cal.channel_index[p, slots]
            plate_cells = [cells[int(ch)] for ch in channels]
            limit = policy.unloaded_max_n(sum(c.capacity_n for c in plate_cells), self.calibrated)
            sens = [c.nominal_counts_per_n for c in plate_cells]
            load = float(np.mean(plate_force_n(counts[:, channels], offsets[p, slots], sens)))
            if abs(load) > limit:  # before steadiness: a person on the plate is "loaded", not "unsteady"
                raise LiveRefused(f"{role} is not unloaded (it reads {load:.0f} N): clear the plates and tare again")
            try:
                tare = compute_tare(counts[:, channels], rate, sens,
                                    min_duration_s=TARE_S, reference_offsets_counts=offsets[p, slots],
                                    max_load_n=limit)
            except TareError as exc:
                if exc.reason == "loaded":
                    raise LiveRefused(f"{role} is not unloaded: {exc}") from None
                raise LiveRefused(f"{role}: {exc}") from None
            offsets[p, slots] = tare.offsets_counts
        self._pending_offsets = offsets
        return list(cal.plate_roles)

    def weigh_in(self, quiet_s: float = WEIGH_QUIET_S) -> WeighIn:
        """The subject's mass from the last ``quiet_s`` of the total calibrated load, if they stood still.

        Refused (``LiveRefused``) on nominal gains (the weight would be wrong),
        when samples are missing, nobody stands on the plates (less than
        ``WEIGH_MIN_LOAD_N``) or the subject moves (SD above ``WEIGH_MAX_SD_FRACTION``
        of the load).
        """
        if not self.calibrated:
            raise LiveRefused("the rig is not calibrated, so a weight would be wrong: calibrate it first")
        with self._lock:
            display, rate, step = self._display, self.rate_hz, self._step
            if display is None or not rate > 0:
                raise LiveRefused("the rig is not streaming yet: wait for data, then weigh")
            n = int(round(quiet_s * rate / step))
            blocks, vals = display.series(display.head - n)
        if blocks.size < n or n < 4:
            raise LiveRefused(f"wait for {quiet_s:g} s of data from the rig, then weigh again")
        total = vals.sum(axis=0)
        if not np.isfinite(total).all():
            raise LiveRefused(f"samples of the last {quiet_s:g} s were lost: weigh again")
        mean, sd = float(total.mean()), float(total.std())
        if mean < WEIGH_MIN_LOAD_N:
            raise LiveRefused(f"the plates carry only {mean:.0f} N: the subject stands on the rig, still, "
                              "then weigh again")
        if sd > WEIGH_MAX_SD_FRACTION * mean:
            raise LiveRefused(f"the subject moved (the load varied by {sd:.0f} N SD in {quiet_s:g} s): "
                              "stand still and weigh again")
        return WeighIn(mean / STANDARD_GRAVITY_M_S2, mean, sd, float(quiet_s))

    # -- what the pages read ---------------------------------------------------------
    def status(self) -> str:
        if self.problem and self.session.timeline.problem is None and self.session.stats.state != "disconnected":
            return self.problem
        return self.session.status()

    def snapshot(self) -> LiveSnapshot:
        """The last ``window_s`` seconds and the live readouts (thread-safe)."""
        with self._lock:
            names = list(self.names)
            rate = self.rate_hz
            if self._display is None or rate <= 0:
                t = np.zeros(0)
                fz = {name: np.zeros(0) for name in names}
            else:
                blocks, vals = self._display.series()
                t = (blocks * self._step + self._step - 1) / rate
                fz = {name: vals[p].copy() for p, name in enumerate(names)}
            load = dict(self._load)
            share = self._left_share
            reps = list(self.reps)
            analyzer = self._analyzer
            bw = analyzer.body_weight_n if analyzer is not None else None
            phase = analyzer.phase if analyzer is not None and analyzer.n_samples else ""
            samples, retares = self.samples, self.retares
            bridged, restarts = self.bridged_samples, self.analysis_restarts
            arrival = self._arrival_ns
        q = self._quality()
        return LiveSnapshot(time_s=t, fz_n=fz, samples=samples, lost_samples=q["lost_samples"],
                            crc_errors=q["crc_errors"], state=q["state"], rate_hz=rate, status=self.status(),
                            duplicate_samples=q["duplicate_samples"], device_resets=q["device_resets"],
                            queue_dropped_samples=q["queue_dropped_samples"], load_n=load, left_share_pct=share,
                            reps=reps, body_weight_n=bw, phase=phase, retares=retares, calibrated=self.calibrated,
                            bridged_samples=bridged, analysis_restarts=restarts, connected=q["connected"],
                            saturated_frames=q["saturated_frames"],
                            arrival_ms=None if arrival is None else arrival / 1e6)

    def _quality(self) -> dict[str, Any]:
        with self.session.lock:
            tl = self.session.timeline
            a = tl.assembler
            q: dict[str, Any] = {"lost_samples": a.lost_samples if a is not None else 0,
                 "duplicate_samples": a.duplicate_samples if a is not None else 0,
                 "device_resets": a.resets if a is not None else 0,
                 "saturated_frames": a.clipped_frames if a is not None else 0,
                 "crc_errors": tl.crc_errors}
        st = self.session.stats
        q.update(state=st.state, queue_dropped_samples=st.queue_dropped_samples,
                 connected=st.state in ("streaming", "stalled"))
        return q

    def frame(self, after_block: int = -1, generation: int | None = None, reps_known: int = -1) -> dict:
        """What the live view draws next (JSON-safe): display blocks after ``after_block`` and the readouts.

        A client sends back ``generation`` and ``last_block`` of its previous frame;
        when the timeline restarted (a recording began or ended) or the client is
        further behind than the window, the whole window comes (``reset`` true).
        ``fz`` is one list per plate (``names``), NaN as None; block ``b`` is at
        ``(b * block_samples + block_samples - 1) / rate_hz`` seconds.  ``reps``
        (all, oldest first) only when their number differs from ``reps_known``.
        """
        def num(v, nd=1):
            return None if v is None or not np.isfinite(v) else round(float(v), nd)

        with self._lock:
            gen, names, rate, step, display = self._generation, list(self.names), self.rate_hz, self._step, self._display
            if display is None or rate <= 0:
                first, blocks, vals = 0, np.zeros(0, np.int64), np.zeros((len(names), 0))
            else:
                first = max(0, display.head - display.n_points)
                start = first if generation != gen or after_block + 1 < first else after_block + 1
                blocks, vals = display.series(start)
            reset = generation != gen or after_block + 1 < first
            load = {k: num(v) for k, v in self._load.items()}
            share = self._left_share
            n_reps = len(self.reps)
            reps = list(self.reps) if n_reps != reps_known else None
            analyzer = self._analyzer
            bw = analyzer.body_weight_n if analyzer is not None else None
            phase = analyzer.phase if analyzer is not None and analyzer.n_samples else ""
            samples, arrival = self.samples, self._arrival_ns
            n_points = display.n_points if display is not None else 0
        rounded = np.round(vals, 1)
        fz = [[None if not np.isfinite(v) else float(v) for v in row] for row in rounded.tolist()]
        rec = self.recording
        out = {"generation": gen, "reset": bool(reset), "names": names, "rate_hz": rate, "block_samples": step,
               "window_points": n_points, "first_block": int(blocks[0]) if blocks.size else None,
               "last_block": int(blocks[-1]) if blocks.size else (-1 if reset else int(after_block)),
               "fz": fz, "arrival_ms": None if arrival is None else arrival / 1e6, "load_n": load,
               "left_share_pct": num(share), "body_weight_n": num(bw), "phase": phase, "samples": samples,
               "status": self.status(), "calibrated": self.calibrated, "device": self.device.address,
               "rep_count": n_reps, "recording": rec, **self._quality()}
        if rec is not None:  # the trial file's name only: no server path goes to the browser
            out["recording"] = {**rec, "out": Path(rec["out"]).name,
                                "elapsed_s": round(rec["samples"] / rate, 2) if rate > 0 else 0.0}
        if reps is not None:
            out["reps"] = [{"number": r.number, "lead": r.lead,
                            "headline": {k: num(v, 4) for k, v in r.headline.items()}} for r in reps]
        return out

    def wait_for_samples(self, n: int, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.samples >= n:
                return True
            time.sleep(0.02)
        return False
