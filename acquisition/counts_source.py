"""Raw counts from a rig in blocks, for the calibration procedure: an acquisition-session sink.

``SessionCountsSource(address, rig)`` opens the device through an
``AcquisitionSession`` (the same reader, handshake, identity check and
timeline as ``steplab record``) and is a counts source for
``calibration.robot.drive``: ``source(n)`` blocks until ``n`` samples have
arrived (at most ``idle_timeout_s`` without a new sample) and returns them as
(n, channels) int32.  Samples lost on the way are counted in
``lost_samples`` (the timeline knows them exactly); the procedure sees the
received ones in order.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from .device import DeviceError, open_device
from .rig import Rig
from .session import AcquisitionSession, SessionStateError


class SourceError(DeviceError):
    """The counts source cannot deliver (one-line message)."""


class SessionCountsSource:
    """A counts source over an acquisition session (see the module docstring)."""

    def __init__(self, address: str, rig: Rig, *, idle_timeout_s: float = 5.0, info_timeout_s: float = 1.0,
                 reconnect_timeout_s: float = 10.0) -> None:
        if not (idle_timeout_s > 0):
            raise ValueError(f"idle_timeout_s {idle_timeout_s!r} must be positive")
        self.rig = rig
        self.channels = rig.channels
        self.idle_timeout_s = float(idle_timeout_s)
        self._cond = threading.Condition()
        self._pending: list[np.ndarray] = []
        self._n_pending = 0
        self._next_position = 0
        self.lost_samples = 0
        self.received_samples = 0
        device = open_device(address)
        self.session = AcquisitionSession(device, rig=rig, info_timeout_s=info_timeout_s, keep_samples=False,
                                          fatal_problems=True, reconnect_timeout_s=reconnect_timeout_s)
        self.session.add_sink(self)
        self.session.start()
        self.command("start")

    # -- the session's side ----------------------------------------------------------
    def on_armed(self, session) -> None:
        with self._cond:
            self._next_position = 0

    def on_samples(self, positions: np.ndarray, counts: np.ndarray) -> None:
        with self._cond:
            # every position from the last block's end to this block's end that holds no sample is lost:
            # before the block and inside it (a link gap within one placed block)
            self.lost_samples += max(0, int(positions[-1]) + 1 - self._next_position - int(positions.shape[0]))
            self._next_position = int(positions[-1]) + 1
            self._pending.append(counts)
            self._n_pending += int(counts.shape[0])
            self.received_samples += int(counts.shape[0])
            self._cond.notify_all()

    # -- the procedure's side --------------------------------------------------------
    def command(self, cmd: str, **args) -> int:
        """Send a command frame to the device (its reply arrives with later data); returns its id."""
        try:
            return self.session.send_command(cmd, **args)
        except SessionStateError:
            raise SourceError(f"device lost: {self._why()}") from None

    @property
    def replies(self) -> list[dict]:
        """The device's last replies to commands (``{"id", "ok", …}``), oldest first (at most 64)."""
        with self.session.lock:
            return list(self.session.timeline.replies)

    def reply_to(self, command_id: int, timeout_s: float = 2.0) -> dict | None:
        """The device's reply to the command with ``command_id`` (None if none came within ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for r in self.replies:
                if r.get("id") == command_id:
                    return r
            if self.session.finished:
                break
            time.sleep(0.02)
        return None

    def info(self, timeout_s: float = 10.0) -> dict | None:
        """The device's answer to ``info`` (None if it does not answer within ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            info = self.session.timeline.device_info
            if info is not None:
                return info
            if self.session.finished:
                break
            time.sleep(0.02)
        return None

    def _why(self) -> str:
        s = self.session
        if s.error:
            return s.error
        return f"{s.device.address} {s.ended_reason or 'stopped'}"

    def __call__(self, n: int) -> np.ndarray:
        """The next ``n`` samples (n, channels) int32; SourceError when the device stops delivering."""
        n = int(n)
        with self._cond:
            last_change = time.monotonic()
            have = self._n_pending
            while self._n_pending < n:
                if self.session.finished:
                    raise SourceError(f"device lost: {self._why()}")
                if self._n_pending != have:
                    have, last_change = self._n_pending, time.monotonic()
                elif time.monotonic() - last_change > self.idle_timeout_s:
                    raise SourceError(f"the device sends no data (nothing for {self.idle_timeout_s:g} s)")
                self._cond.wait(0.05)
            block = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
            out, rest = block[:n], block[n:]
            self._pending = [rest] if rest.shape[0] else []
            self._n_pending = int(rest.shape[0])
        return np.ascontiguousarray(out)

    def skip_pending(self) -> None:
        """Drop samples buffered before the operator acted."""
        with self._cond:
            self._pending = []
            self._n_pending = 0

    def close(self) -> None:
        if self.session.state == "running":
            self.session.stop("stopped")
        self.session.close()
