"""The reader thread: port → journal → decoder → a bounded queue.

Lifecycle: configure (constructor) → start → stop, and start again after a
stop (a restart reads again: every start clears the stop request).  One
thread owns the port.  It reads in bulk, appends every byte to the journal
*before* decoding, decodes with the numba frame decoder, and hands decoded
chunks on through a bounded queue that counts what it has to drop (a consumer
that falls behind loses chunks, never silently: the samples show as gaps at
their exact positions downstream, and the journal still holds them).  Link
events ("reconnected") are never dropped: they bypass the bound, in order with
the data around them, so back-pressure cannot let data of a re-plugged device
through before its identity is checked.  After an unplug it reconnects with
back-off; a watchdog notices a silent stall.
"""

from __future__ import annotations

import collections
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


class ReadQueue:
    """The reader's queue: at most ``maxsize`` data items, events always accepted.

    ``put_data`` refuses (returns False) when ``maxsize`` data items wait;
    ``put_event`` always appends (events are rare: one per re-plug), so an event
    is never lost and keeps its place between the data items.  ``get`` and
    ``get_nowait`` raise ``queue.Empty`` like ``queue.Queue``.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"queue size {maxsize!r} must be at least 1")
        self.maxsize = int(maxsize)
        self._items: collections.deque[ReadItem] = collections.deque()
        self._data = 0
        self._cond = threading.Condition()

    def put_data(self, item: ReadItem) -> bool:
        with self._cond:
            if self._data >= self.maxsize:
                return False
            self._items.append(item)
            self._data += 1
            self._cond.notify()
            return True

    def put_event(self, item: ReadItem) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> ReadItem:
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                raise queue.Empty
            return self._pop()

    def get_nowait(self) -> ReadItem:
        with self._cond:
            if not self._items:
                raise queue.Empty
            return self._pop()

    def _pop(self) -> ReadItem:
        item = self._items.popleft()
        if item.chunk is not None:
            self._data -= 1
        return item

    def empty(self) -> bool:
        with self._cond:
            return not self._items

    def qsize(self) -> int:
        with self._cond:
            return len(self._items)

    def full(self) -> bool:
        with self._cond:
            return self._data >= self.maxsize


class AcquisitionReader:
    """Owns the device and the journal while running."""

    def __init__(self, device: StepBox, journal: JournalWriter | None = None, *, queue_size: int = 512,
                 stall_timeout_s: float = 2.0, reconnect_backoff_s: tuple[float, ...] = RECONNECT_BACKOFF_S):
        self.device = device
        self.journal = journal
        self.queue = ReadQueue(queue_size)
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
        """Start (or, after ``stop``, restart) the reader thread on the open device.

        A restart clears the stop request, the statistics and the decoder's
        partial frame (bytes of the earlier run never join the new one).
        """
        if self.running:
            raise RuntimeError("the reader is already running")
        self._stop.clear()
        if self.stats.state != "idle":
            self.stats = ReaderStats()
            self.decoder = FrameDecoder()
        self.stats.state = "streaming"
        self._thread = threading.Thread(target=self._run, name="steplab-reader", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop (returns at once; safe from a signal handler)."""
        self._stop.set()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the thread, waiting at most ``timeout_s`` (a read returns within its ~50 ms timeout)."""
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
                if not self.queue.put_data(ReadItem(t_ns, chunk)):
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
                # in order with the data, never dropped: nothing the re-plugged device sends comes before it
                self.queue.put_event(ReadItem(time.time_ns(), None, "reconnected"))
                self.stats.reconnects += 1
                self.stats.state = "streaming"
                self.stats.disconnected_since = None
                self.stats.stalled_since = None
                self.stats.last_valid_frame_monotonic = time.monotonic()
                self._event("reconnected", attempts=i)
                return True
        return False
