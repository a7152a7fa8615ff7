"""One acquisition session: device → reader (journal first) → the trial timeline → sinks.

``steplab record``, the live dashboard and ``steplab calibrate --device PORT``
all acquire through ``AcquisitionSession``; ``steplab recover`` replays a
journal through the same ``SessionTimeline``.  The session owns, through its
reader, the device, the ``info`` handshake, the identity check after a
re-plug, arming, the rate and the sample timeline with every gap
(``trial_assembler.TrialAssembler``, the one timeline implementation), and
hands every block laid on the timeline to its sinks: the trial (record,
recover), a ring buffer for the live view (``ring_buffer.CountsRing``), the
blocks the calibration procedure needs.

Lifecycle, enforced (``SessionStateError`` otherwise)::

    configure (constructor, configure()) → start() → stop() → close()
                                  ↑__________________|   (a stopped session starts again)

``request_stop(reason)`` only sets a flag: it is safe from a signal handler or
any thread, never raises and may be called any number of times; the session's
own consumer thread then shuts the reader down, drains what was queued, and
closes the journal.  A session also ends by itself: the recording is complete,
the rig stayed away longer than ``reconnect_timeout_s``, another device
appeared on the port, or a one-line error (``error``).

Arming: the recording is armed when the device has described itself (the
``info`` reply: rate, channel map, rig) or, for a device that does not answer,
after ``info_timeout_s`` of data with the rig given by the caller; its first
sample is timeline position 0.  After a re-plug, data is held until the device
has answered ``info`` again: only the same rig (serial number and channel
count) continues; another device ends the session (``foreign_device``).
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import protocol
from .device import DeviceError, StepBox
from .frame_decoder import DecodedChunk
from .journal import JournalWriter
from .reader import AcquisitionReader, ReaderStats
from .rig import Rig, RigError
from .trial_assembler import TrialAssembler

INFO_RETRY_S = 0.5  # resend ``info`` until the device answers
IDENTITY_TIMEOUT_S = 3.0  # how long a re-plugged device has to say who it is
FOREIGN_STATUS_S = 2.0  # how long frames of another channel count keep the status line
JOURNAL_FLUSH_S = 0.0  # every read goes to the operating system at once: a SIGKILL loses no journaled read

STATES = ("configured", "running", "stopped", "closed")


class SessionStateError(RuntimeError):
    """An illegal lifecycle transition (e.g. ``start`` while running, ``close`` before ``stop``)."""


class SessionError(DeviceError):
    """The session cannot go on (one-line message for people)."""


class Sink(Protocol):
    """What a session feeds.  Both methods run on the session's consumer thread: keep them short."""

    def on_armed(self, session: AcquisitionSession) -> None: ...

    def on_samples(self, positions: np.ndarray, counts: np.ndarray) -> None: ...


@dataclass
class SessionTimeline:
    """The bookkeeping of a session, shared with ``steplab recover`` (no I/O, no threads).

    ``seconds`` None: an endless timeline (live view); ``keep_samples`` False:
    samples are handed to ``on_samples`` but not kept.  With
    ``fatal_problems`` a device that does not fit the rig raises
    ``SessionError``; without, the problem is kept in ``problem`` and the
    timeline waits unarmed (the live view shows the problem).
    """

    seconds: float | None = None
    rig_override: Rig | None = None
    info_timeout_s: float = 1.0
    on_armed: Callable[[SessionTimeline], None] | None = None
    keep_samples: bool = True
    on_samples: Callable[[np.ndarray, np.ndarray], None] | None = None
    fatal_problems: bool = True

    def __post_init__(self) -> None:
        self.device_info: dict | None = None
        self.rig: Rig | None = None
        self.rate_hz = 0.0
        self.assembler: TrialAssembler | None = None
        self.last_status: dict | None = None
        self._first_data_ns: int | None = None
        self.crc_errors = self.malformed = self.oversize = self.bytes_discarded = 0
        self.awaiting_identity_since_ns: int | None = None
        self._held: list[tuple[DecodedChunk, int]] = []
        self.identity_unverified = 0
        self.foreign_device: dict | None = None
        self.foreign_channels: tuple[int, float] | None = None  # (channels, monotonic s) of the last foreign frames
        self.foreign_samples_unarmed = 0
        self.problem: str | None = None
        self.replies: collections.deque[dict] = collections.deque(maxlen=64)  # the device's last command replies

    @property
    def armed(self) -> bool:
        return self.assembler is not None

    @property
    def asm(self) -> TrialAssembler:
        """The armed timeline's assembler (raises before arming)."""
        if self.assembler is None:
            raise SessionStateError("the timeline is not armed yet")
        return self.assembler

    @property
    def armed_rig(self) -> Rig:
        """The armed timeline's rig (raises before arming)."""
        if self.rig is None:
            raise SessionStateError("the timeline is not armed yet")
        return self.rig

    @property
    def done(self) -> bool:
        return self.assembler is not None and self.assembler.done

    @property
    def foreign_samples(self) -> int:
        return self.foreign_samples_unarmed + (self.assembler.foreign_samples if self.assembler is not None else 0)

    def _fail(self, message: str) -> None:
        if self.fatal_problems:
            raise SessionError(message)
        self.problem = message

    def _arm(self, rate_hz: float, rig: Rig) -> None:
        max_samples = None
        if self.seconds is not None:
            max_samples = int(round(self.seconds * rate_hz))
            if max_samples < 1:
                raise SessionError(f"--seconds {self.seconds:g} is shorter than one sample at {rate_hz:g} Hz")
        self.rig = rig
        self.rate_hz = float(rate_hz)
        self.problem = None
        self.assembler = TrialAssembler(channels=rig.channels, rate_hz=rate_hz, max_samples=max_samples,
                                        keep_samples=self.keep_samples, on_samples=self.on_samples)
        if self.on_armed is not None:
            self.on_armed(self)

    def expect_identity(self, host_time_ns: int) -> None:
        """The link came back: hold data until the device says who it is."""
        if self.armed and not self.done:
            self.awaiting_identity_since_ns = host_time_ns
            self.asm.after_reconnect = True

    def release_unverified(self) -> None:
        """A re-plugged device that never answers ``info``: keep its data, say so."""
        if self.awaiting_identity_since_ns is not None:
            self.identity_unverified += 1
            self.awaiting_identity_since_ns = None
            held, self._held = self._held, []
            for chunk, t in held:
                self._add_data(chunk, t)

    def _check_identity(self, info: dict) -> None:
        same = (str(info.get("serial")) == str((self.device_info or {}).get("serial"))
                and int(info.get("channels", -1)) == self.armed_rig.channels)
        self.awaiting_identity_since_ns = None
        held, self._held = self._held, []
        if not same:
            self.foreign_device = {"serial": info.get("serial"), "channels": info.get("channels")}
            return
        for chunk, t in held:
            self._add_data(chunk, t)

    def _note_foreign(self, channels: int, host_time_ns: int) -> None:
        self.foreign_channels = (int(channels), time.monotonic())  # when it was seen here (for the status line)

    def add(self, chunk: DecodedChunk, host_time_ns: int) -> None:
        """Account for one decoded chunk that arrived at ``host_time_ns`` (host clock, ns)."""
        if not isinstance(chunk, DecodedChunk):
            raise ValueError(f"add needs a DecodedChunk, not {type(chunk).__name__}")
        if self.armed:
            self.crc_errors += chunk.crc_errors
            self.malformed += chunk.malformed
            self.oversize += chunk.oversize
            self.bytes_discarded += chunk.bytes_discarded
        for msg in chunk.messages:
            if msg.frame_type == protocol.FRAME_TYPE_REPLY:
                self.replies.append(dict(msg.payload))
            if ((msg.frame_type == protocol.FRAME_TYPE_INFO
                 or (msg.frame_type == protocol.FRAME_TYPE_REPLY and msg.payload.get("ok", True)))
                    and "rig" in msg.payload):
                info = {k: v for k, v in msg.payload.items() if k not in ("id", "ok")}
                if self.device_info is None or not self.armed:
                    self.device_info = info
                elif self.awaiting_identity_since_ns is not None:
                    self._check_identity(info)
            elif msg.frame_type == protocol.FRAME_TYPE_STATUS:
                self.last_status = msg.payload
        if self.foreign_device is not None:
            return
        runs = chunk.data_runs()
        if self.armed:
            for run in runs:
                if run.counts.shape[1] != self.armed_rig.channels:
                    self._note_foreign(run.counts.shape[1], host_time_ns)
        else:
            if self.rig_override is not None:
                for run in runs:
                    if run.counts.shape[1] != self.rig_override.channels:
                        self._note_foreign(run.counts.shape[1], host_time_ns)
                        self.foreign_samples_unarmed += int(run.counts.shape[0])
            if self.device_info is not None:
                self._arm_from_info()
            elif chunk.n_samples:
                if self._first_data_ns is None:
                    self._first_data_ns = host_time_ns
                if self.rig_override is not None and host_time_ns - self._first_data_ns >= self.info_timeout_s * 1e9:
                    self._arm(self.rig_override.sample_rate_hz, self.rig_override)  # the device does not answer info
            if not self.armed:
                return
            # the data frames of the chunk that armed the session start the recording
        if self.awaiting_identity_since_ns is not None:
            if chunk.n_samples:
                self._held.append((chunk, host_time_ns))
            return
        self._add_data(chunk, host_time_ns)

    def _arm_from_info(self) -> None:
        info = self.device_info or {}
        rig = self.rig_override
        if rig is None:
            try:
                rig = Rig.from_dict(info["rig"])
            except (RigError, KeyError, TypeError, ValueError) as exc:
                self._fail(f"the device describes its rig badly ({exc}); give --rig FILE")
                return
        try:
            channels = int(info.get("channels", rig.channels))
            rate = float(info.get("rate_hz") or 0.0)
        except (TypeError, ValueError):
            self._fail("the device's info answer has a bad channel count or rate")
            return
        if channels != rig.channels:
            self._fail(f"device streams {channels} channels, the rig has {rig.channels}")
            return
        self._arm(rate if rate > 0 else rig.sample_rate_hz, rig)

    def _add_data(self, chunk: DecodedChunk, host_time_ns: int) -> None:
        if not self.asm.done:
            self.asm.add(chunk, host_time_ns)

    def truncate(self) -> None:
        """End the timeline where it is now (an interrupted recording): no tail gap."""
        if self.armed:
            self.asm.max_samples = max(self.asm.next_position, 1)


class AcquisitionSession:
    """Acquires from one device; see the module docstring.

    Parameters
    ----------
    device : StepBox
        Not yet open; the session opens it on ``start`` and closes it on ``stop``.
    rig : Rig or None
        The rig; None: the device's own (from its ``info`` reply).
    seconds : float or None
        Length of a recording (the timeline ends after ``seconds × rate``
        positions); None: until stopped (live view, calibration).
    journal_path, journal_header : path and dict, optional
        Journal every byte there before decoding (a recording); the header
        describes it for ``steplab recover``.
    info_timeout_s : float
        How long data may flow without an ``info`` answer before the given rig
        (and its rate) is used.
    connect_timeout_s : float or None
        Not armed after this long: a one-line ``error`` (no data, no valid
        frames, no answer without a rig) ends the session.  None: wait.
    reconnect_timeout_s : float or None
        An unplugged or silent rig ends the session after this long.  None: wait.
    keep_samples : bool or None
        Keep every sample for a trial (default: when ``seconds`` is given).
    fatal_problems : bool or None
        A device that does not fit the rig ends the session (default: when
        ``seconds`` is given) instead of waiting with ``problem`` set.
    on_armed : callable or None
        ``on_armed(timeline)`` on the consumer thread when the rig and rate are
        known; an exception it raises ends the session and is re-raised by
        ``raise_failure`` (e.g. a calibration that does not fit the rig).
    """

    def __init__(self, device: StepBox, *, rig: Rig | None = None, seconds: float | None = None,
                 journal_path: str | Path | None = None, journal_header: dict | None = None,
                 info_timeout_s: float = 1.0, connect_timeout_s: float | None = None,
                 reconnect_timeout_s: float | None = None, queue_size: int = 512, stall_timeout_s: float = 2.0,
                 keep_samples: bool | None = None, fatal_problems: bool | None = None,
                 on_armed: Callable[[SessionTimeline], None] | None = None,
                 journal_flush_s: float = JOURNAL_FLUSH_S) -> None:
        self.device = device
        self._state = "configured"
        self._transition = threading.Lock()
        self.lock = threading.RLock()  # held while the consumer changes the timeline: readers take it too
        self.sinks: list[Any] = []
        self._options: dict[str, Any] = {}
        self.configure(rig=rig, seconds=seconds, journal_path=journal_path, journal_header=journal_header,
                       info_timeout_s=info_timeout_s, connect_timeout_s=connect_timeout_s,
                       reconnect_timeout_s=reconnect_timeout_s, queue_size=queue_size,
                       stall_timeout_s=stall_timeout_s, keep_samples=keep_samples, fatal_problems=fatal_problems,
                       on_armed=on_armed, journal_flush_s=journal_flush_s)
        self.timeline = self._new_timeline()
        self.reader: AcquisitionReader | None = None
        self.journal: JournalWriter | None = None
        self._consumer: threading.Thread | None = None
        self._stop_requested = threading.Event()
        self._stop_reason: str | None = None
        self._finished = threading.Event()
        self._armed = threading.Event()
        self.ended_reason: str | None = None
        self.error: str | None = None
        self.failure: BaseException | None = None
        self.starts = 0

    # -- configuration ---------------------------------------------------------------
    def configure(self, **options: Any) -> None:
        """Change options (those of the constructor) while configured or stopped."""
        if self._state not in ("configured", "stopped"):
            raise SessionStateError(f"cannot configure a {self._state} session")
        o = dict(self._options)
        o.update(options)
        if o["seconds"] is not None and not (o["seconds"] > 0):
            raise ValueError(f"seconds {o['seconds']!r} must be positive")
        for name in ("info_timeout_s", "stall_timeout_s"):
            if not (o[name] > 0):
                raise ValueError(f"{name} {o[name]!r} must be positive")
        for name in ("connect_timeout_s", "reconnect_timeout_s"):
            if o[name] is not None and not (o[name] >= 0):
                raise ValueError(f"{name} {o[name]!r} must be zero or positive")
        if o["journal_path"] is not None:
            o["journal_path"] = Path(o["journal_path"])
        self._options = o

    @property
    def options(self) -> dict[str, Any]:
        return dict(self._options)

    @property
    def rig_given(self) -> Rig | None:
        return self._options["rig"]

    def add_sink(self, sink: Any) -> None:
        """Feed ``sink`` (``on_armed(session)``, ``on_samples(positions, counts)``, both optional)."""
        with self.lock:
            self.sinks.append(sink)

    def _new_timeline(self) -> SessionTimeline:
        o = self._options
        recording = o["seconds"] is not None
        keep = recording if o["keep_samples"] is None else bool(o["keep_samples"])
        fatal = recording if o["fatal_problems"] is None else bool(o["fatal_problems"])
        return SessionTimeline(seconds=o["seconds"], rig_override=o["rig"], info_timeout_s=o["info_timeout_s"],
                               on_armed=self._on_armed, keep_samples=keep, on_samples=self._on_samples,
                               fatal_problems=fatal)

    def _on_armed(self, timeline: SessionTimeline) -> None:
        if self._options["on_armed"] is not None:
            self._options["on_armed"](timeline)
        for sink in list(self.sinks):
            fn = getattr(sink, "on_armed", None)
            if fn is not None:
                fn(self)
        self._armed.set()

    def _on_samples(self, positions: np.ndarray, counts: np.ndarray) -> None:
        for sink in self.sinks:
            fn = getattr(sink, "on_samples", None)
            if fn is not None:
                fn(positions, counts)

    # -- lifecycle -------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    def start(self) -> None:
        """Open the device (and the journal), start reading and ask the device to describe itself.

        Returns at once; ``wait_armed`` waits for the handshake.  Raises
        DeviceError (device), JournalError (journal) with nothing left running.
        """
        with self._transition:
            if self._state not in ("configured", "stopped"):
                raise SessionStateError(f"cannot start a {self._state} session")
            o = self._options
            self.timeline = self._new_timeline()
            self._stop_requested.clear()
            self._stop_reason = None
            self._finished.clear()
            self._armed.clear()
            self.ended_reason = self.error = None
            self.failure = None
            self.device.open()
            self.journal = None
            if o["journal_path"] is not None:
                try:
                    self.journal = JournalWriter(o["journal_path"], header=o["journal_header"] or {},
                                                 flush_interval_s=o["journal_flush_s"])
                except Exception:
                    self.device.close()
                    raise
            if self.reader is None or self.reader.journal is not self.journal:
                self.reader = AcquisitionReader(self.device, self.journal, queue_size=o["queue_size"],
                                                stall_timeout_s=o["stall_timeout_s"])
            self.reader.start()
            self.starts += 1
            self._state = "running"
            self._consumer = threading.Thread(target=self._consume, name="steplab-session", daemon=True)
            self._consumer.start()

    def request_stop(self, reason: str = "interrupted") -> None:
        """Ask the session to stop (returns at once, never raises: safe from a signal handler)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop_requested.set()

    def stop(self, reason: str = "stopped", timeout_s: float = 10.0) -> None:
        """Stop acquiring (running → stopped): the reader stops, the device and the journal close.

        A session that ended by itself is stopped without waiting.  Waits at
        most ``timeout_s`` for the consumer thread.
        """
        with self._transition:
            if self._state == "stopped":
                return
            if self._state != "running":
                raise SessionStateError(f"cannot stop a {self._state} session")
            self.request_stop(reason)
            if self._consumer is not None:
                self._consumer.join(timeout_s)
            if self._consumer is not None and self._consumer.is_alive():  # pragma: no cover - a wedged sink
                self._rd.request_stop()
                self.device.close()
            self._state = "stopped"

    def close(self) -> None:
        """Release the session for good (configured or stopped → closed)."""
        with self._transition:
            if self._state == "closed":
                return
            if self._state == "running":
                raise SessionStateError("stop the session before closing it")
            self.device.close()
            self._state = "closed"

    def __enter__(self) -> AcquisitionSession:
        return self

    def __exit__(self, *exc) -> None:
        if self._state == "running":
            self.stop("error" if exc[0] is not None else "stopped")
        self.close()

    # -- waiting ---------------------------------------------------------------------
    @property
    def armed(self) -> bool:
        return self._armed.is_set()

    @property
    def finished(self) -> bool:
        """The consumer has ended (asked to, or by itself); ``ended_reason`` says why."""
        return self._finished.is_set()

    def wait_armed(self, timeout_s: float) -> bool:
        """Wait until armed or finished; True when armed."""
        deadline = time.monotonic() + timeout_s
        while not (self._armed.is_set() or self._finished.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._armed.wait(min(left, 0.05))
        return self._armed.is_set()

    def wait_finished(self, timeout_s: float) -> bool:
        return self._finished.wait(timeout_s)

    def raise_failure(self) -> None:
        """Re-raise, in the caller's thread, what a sink or ``on_armed`` raised on the consumer thread."""
        if self.failure is not None:
            raise self.failure

    @property
    def _rd(self) -> AcquisitionReader:
        if self.reader is None:
            raise SessionStateError("the session has never started")
        return self.reader

    @property
    def stats(self) -> ReaderStats:
        return self.reader.stats if self.reader is not None else ReaderStats()

    def send_command(self, cmd: str, **args) -> int:
        """Send a command to the device (its reply arrives with later data); returns its id."""
        if self._state != "running" or self.reader is None:
            raise SessionStateError(f"cannot send a command to a {self._state} session")
        return self._rd.send_command(cmd, **args)

    # -- the consumer thread ---------------------------------------------------------
    def _consume(self) -> None:
        reason = "error"
        try:
            reason = self._loop()
        except SessionError as exc:
            self.error = str(exc)
        except Exception as exc:  # a sink or on_armed failed: end cleanly, re-raised by raise_failure
            self.failure = exc
        finally:
            try:
                self._shut_down(reason)
            finally:
                self.ended_reason = reason
                self._finished.set()

    def _loop(self) -> str:
        o = self._options
        reader = self._rd
        tl = self.timeline
        t_start = time.monotonic()
        reader.send_command("info")
        last_info = t_start
        last_position, last_progress = -1, t_start  # the timeline must advance while connected
        while True:
            if self._stop_requested.is_set():
                return self._stop_reason or "stopped"
            if tl.done:
                return "complete"
            try:
                item = reader.queue.get(timeout=0.05)
            except queue.Empty:
                item = None
            now = time.monotonic()
            with self.lock:
                if item is not None and item.event == "reconnected":
                    # the link came back: hold the data that follows until the device says who it is
                    tl.expect_identity(item.host_time_ns)
                    reader.send_command("info")
                    last_info = now
                elif item is not None and isinstance(item.chunk, DecodedChunk):
                    tl.add(item.chunk, item.host_time_ns)
            st = reader.stats
            if st.error:
                raise SessionError(st.error)  # the recorder adds "steplab recover JOURNAL" when it keeps the journal
            if tl.awaiting_identity_since_ns is not None:
                if now - last_info > INFO_RETRY_S:
                    reader.send_command("info")
                    last_info = now
                if time.time_ns() - tl.awaiting_identity_since_ns > IDENTITY_TIMEOUT_S * 1e9:
                    with self.lock:
                        tl.release_unverified()
            if tl.foreign_device is not None:
                return "foreign_device"
            if not tl.armed:
                timeout = o["connect_timeout_s"]
                if timeout is not None and now - t_start > timeout:
                    address = self.device.address
                    if st.bytes_read == 0:
                        raise SessionError(f"no data from {address} in {timeout:g} s: is the rig connected, "
                                           "powered and streaming?")
                    if st.last_valid_frame_monotonic is None:
                        raise SessionError(f"{address} sends data but no valid steplab frames in {timeout:g} s "
                                           "(wrong baud rate, or not a steplab rig?)")
                    if tl.device_info is None and o["rig"] is None:
                        raise SessionError(f"{address} streams frames but does not answer 'info'; give --rig FILE")
                if now - last_info > INFO_RETRY_S and (tl.device_info is None or tl.problem):
                    reader.send_command("info")
                    last_info = now
            rc = o["reconnect_timeout_s"]
            if rc is not None and st.disconnected_since is not None and now - st.disconnected_since > rc:
                return "disconnected"
            if rc is not None and st.stalled_since is not None and now - st.stalled_since > rc:
                return "stalled"
            if (tl.assembler is not None and tl.assembler.next_position != last_position) \
                    or st.disconnected_since is not None or tl.awaiting_identity_since_ns is not None:
                last_position = tl.assembler.next_position if tl.assembler is not None else -1
                last_progress = now  # (an unplug and the identity check have their own limits)
            elif rc is not None and tl.armed and now - last_progress > rc + 2 * o["stall_timeout_s"]:
                # (later than the reader's own stall path, which counts the stall and ends first when all is silent)
                return "stalled"  # frames arrive (status, replies) but no samples: the device stopped streaming
            if not reader.running:
                return "disconnected" if st.error is None else "error"

    def _shut_down(self, reason: str) -> None:
        reader = self._rd
        reader.stop()
        self.device.close()
        tl = self.timeline
        with self.lock:
            while True:  # what the reader queued before it stopped
                try:
                    item = reader.queue.get_nowait()
                except queue.Empty:
                    break
                if (not self._stop_requested.is_set() and reason != "error" and tl.armed and not tl.done
                        and tl.foreign_device is None and isinstance(item.chunk, DecodedChunk)
                        and tl.awaiting_identity_since_ns is None):
                    try:
                        tl.add(item.chunk, item.host_time_ns)
                    except SessionError:
                        break
        if self.journal is not None and not self.journal.closed:
            try:
                self.journal.event("stopped", reason=reason)
                self.journal.close()
            except OSError:
                pass

    # -- what people see -------------------------------------------------------------
    def status(self) -> str:
        """One line: "streaming", "disconnected (reconnecting)", a problem, … (for the live view)."""
        state = self.stats.state
        tl = self.timeline
        if self.error:
            return self.error
        if tl.foreign_device is not None:
            return f"another device on the port (serial {tl.foreign_device.get('serial')}): stopped"
        if state == "disconnected":
            return "disconnected (reconnecting)"
        if tl.problem:
            return tl.problem
        foreign = tl.foreign_channels
        rig = tl.rig or self.rig_given
        if foreign is not None and rig is not None and time.monotonic() - foreign[1] < FOREIGN_STATUS_S:
            return f"device streams {foreign[0]} channels, the rig has {rig.channels}"
        if tl.awaiting_identity_since_ns is not None:
            return "reconnected: checking the device's identity"
        if not tl.armed:
            return "waiting for the device to describe itself"
        if state == "stalled":
            return "stalled (no data)"
        return state
