"""The reader thread: port → journal → decoder → a bounded queue.

Lifecycle (as pyacq's nodes): configure (constructor) → start → stop.  One
thread owns the port.  It reads in bulk, appends every byte to the journal
*before* decoding, decodes with the numba frame decoder, and hands decoded
chunks on through a bounded queue that counts what it has to drop (a consumer
that falls behind loses chunks, never silently: the samples show as gaps at
their exact positions downstream, and the journal still holds them).  After an
unplug it reconnects with back-off; a watchdog notices a silent stall.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

from . import protocol
from .device import DeviceDisconnected, StepBox
from .frame_decoder import FrameDecoder
from .journal import JournalWriter

RECONNECT_BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


@dataclass
class ReadItem:
    """One decoded chunk and when its last byte arrived (host wall clock, ns).

    A link event travels in the same queue, in order with the data around it
    (``chunk`` None, ``event`` e.g. "reconnected"): a consumer knows exactly
    which chunks came from the re-plugged device.
    """

    host_time_ns: int
    chunk: object  # frame_decoder.DecodedChunk, or None for an event
    event: str | None = None


@dataclass
class ReaderStats:
    bytes_read: int = 0
    disconnects: int = 0
    reconnects: int = 0
    queue_dropped_chunks: int = 0
    queue_dropped_samples: int = 0
    stalls: int = 0
    last_valid_frame_monotonic: float | None = None
    first_byte_monotonic: float | None = None
    disconnected_since: float | None = None  # monotonic time of the unplug, None while connected
    stalled_since: float | None = None  # monotonic time of the last valid frame while stalled, else None
    error: str | None = None  # why the reader stopped by itself (e.g. the journal's disk is full)
    state: str = "idle"  # idle, streaming, stalled, disconnected, stopped
    events: list = field(default_factory=list)


class AcquisitionReader:
    """Owns the device and the journal while running."""

    def __init__(self, device: StepBox, journal: JournalWriter | None = None, *, queue_size: int = 512,
                 stall_timeout_s: float = 2.0, reconnect_backoff_s: tuple[float, ...] = RECONNECT_BACKOFF_S):
        self.device = device
        self.journal = journal
        self.queue: queue.Queue[ReadItem] = queue.Queue(maxsize=queue_size)
        self.stall_timeout_s = stall_timeout_s
        self.reconnect_backoff_s = reconnect_backoff_s
        self.decoder = FrameDecoder()
        self.stats = ReaderStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self._cmd_id = 0

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        self.stats.state = "streaming"
        self._thread = threading.Thread(target=self._run, name="steplab-reader", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.stats.state = "stopped"
        if self.journal is not None and not self.journal.closed:
            try:
                self.journal.flush()
            except OSError:
                pass  # already reported by the thread (stats.error)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- commands --------------------------------------------------------------
    def send_command(self, cmd: str, **args) -> int:
        """Send a command frame; the reply arrives as a message in a later chunk.  Returns its id."""
        with self._write_lock:
            self._cmd_id += 1
            cid = self._cmd_id
            try:
                self.device.write(protocol.encode_command(cmd, cid, **args))
            except DeviceDisconnected:
                pass  # the reader thread notices and reconnects; the caller sees no reply
        return cid

    # -- the thread ------------------------------------------------------------
    def _event(self, name: str, **fields) -> None:
        self.stats.events.append({"event": name, "host_time_ns": time.time_ns(), **fields})
        if self.journal is not None:
            self.journal.event(name, **fields)

    def _journal_failed(self, exc: OSError) -> None:
        path = self.journal.path if self.journal is not None else "?"
        self.stats.error = f"cannot write the journal {path}: {exc.strerror or exc}"
        self.stats.state = "stopped"

    def _run(self) -> None:
        try:
            self._loop()
        except OSError as exc:  # the journal could not be written (disk full, removed medium)
            self._journal_failed(exc)

    def _loop(self) -> None:
        st = self.stats
        while not self._stop.is_set():
            try:
                data = self.device.read()
            except DeviceDisconnected as exc:
                st.disconnects += 1
                st.state = "disconnected"
                st.disconnected_since = time.monotonic()
                self._event("disconnected", reason=str(exc))
                if not self._reconnect():
                    break
                continue
            now = time.monotonic()
            if data:
                t_ns = time.time_ns()
                st.bytes_read += len(data)
                if st.first_byte_monotonic is None:
                    st.first_byte_monotonic = now
                if self.journal is not None:
                    self.journal.append(data, t_ns)
                chunk = self.decoder.feed(data)
                if chunk.frames_ok:
                    st.last_valid_frame_monotonic = now
                    if st.state == "stalled":
                        st.stalled_since = None
                        self._event("resumed")
                    st.state = "streaming"
                try:
                    self.queue.put_nowait(ReadItem(t_ns, chunk))
                except queue.Full:
                    st.queue_dropped_chunks += 1
                    st.queue_dropped_samples += chunk.n_samples
            if self.journal is not None:
                self.journal.maybe_flush()
            last = st.last_valid_frame_monotonic or st.first_byte_monotonic
            if st.state == "streaming" and last is not None and now - last > self.stall_timeout_s:
                st.stalls += 1
                st.state = "stalled"
                st.stalled_since = last
                self._event("stalled", silent_s=round(now - last, 3))

    def _reconnect(self) -> bool:
        delays = list(self.reconnect_backoff_s)
        i = 0
        while not self._stop.is_set():
            delay = delays[min(i, len(delays) - 1)]
            i += 1
            if self._stop.wait(delay):
                return False
            if self.device.reopen():
                try:  # in order with the data: nothing the re-plugged device sends comes before it
                    self.queue.put(ReadItem(time.time_ns(), None, "reconnected"), timeout=1.0)
                except queue.Full:
                    self.stats.queue_dropped_chunks += 1
                self.stats.reconnects += 1
                self.stats.state = "streaming"
                self.stats.disconnected_since = None
                self.stats.stalled_since = None
                self.stats.last_valid_frame_monotonic = time.monotonic()
                self._event("reconnected", attempts=i)
                return True
        return False
