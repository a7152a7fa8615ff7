"""Stop signals: SIGINT, SIGTERM and SIGHUP end a recording in order, never by tearing it.

Ctrl-C (SIGINT), ``kill``/systemd/Docker (SIGTERM) and a closed terminal or a
dropped SSH session (SIGHUP) all mean "stop now, keep what you have".
``StopSignals`` turns the first of them into a request: its handler only sets
a flag (it never raises into the code it interrupts, so no half-updated
timeline), and the recording loop, which polls the flag, stops, writes the
partial trial and closes the journal.  A second or third signal while that
happens is held: the orderly stop goes on, and one line on stderr says so and
names the journal (``repeat_message``).

Unix conventions kept:

- a signal the process inherited as ignored (``nohup``, a script that ran
  ``trap '' INT``, a service manager) stays ignored: no handler is installed
  for it;
- the exit status of a stopped program is 128 + the signal number
  (``exit_code``): 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP.

The object quacks like ``threading.Event`` (``is_set``, ``wait``), so code
that takes a stop event (``acquisition.recorder.record(stop_event=...)``)
takes it as is and reads ``reason`` (the trial's ``ended``) and
``signal_name`` when present.  Handlers can only be installed from the main
thread; elsewhere ``install`` raises RuntimeError.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

#: the stop signals and the ``ended`` reason each one gives a trial
STOP_REASONS: dict[int, str] = {
    signal.SIGINT: "interrupted",
    signal.SIGTERM: "terminated",
    signal.SIGHUP: "hangup",
}


class StopSignals:
    """Turns SIGINT/SIGTERM/SIGHUP into an orderly stop request.

    Parameters
    ----------
    signals : tuple of int
        The signals to catch (default: all of ``STOP_REASONS``).
    repeat_message : str or None
        One line written to stderr (fd 2, directly: safe inside a handler) when
        a signal arrives while the stop is already under way.

    Attributes
    ----------
    signum : int or None
        The first signal received (None before).
    count : int
        Stop signals received so far.
    ignored : tuple of int
        Signals left alone because they were inherited as ignored.
    """

    def __init__(self, signals: tuple[int, ...] = tuple(STOP_REASONS), *, repeat_message: str | None = None) -> None:
        unknown = [s for s in signals if s not in STOP_REASONS]
        if unknown:
            raise ValueError(f"not a stop signal: {unknown}")
        self.signals = tuple(signals)
        self.repeat_message = repeat_message
        self.signum: int | None = None
        self.count = 0
        self.ignored: tuple[int, ...] = ()
        self._event = threading.Event()
        self._previous: dict[int, object] = {}
        self._requested_reason: str | None = None

    # -- installing ------------------------------------------------------------------------
    def install(self) -> StopSignals:
        """Install the handlers (main thread only); a signal inherited as ignored stays ignored."""
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("stop-signal handlers can only be installed from the main thread")
        ignored = []
        for sig in self.signals:
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN:
                ignored.append(sig)  # nohup, `trap '' INT`, a service manager: respect it
                continue
            self._previous[sig] = current
            signal.signal(sig, self._handle)
        self.ignored = tuple(ignored)
        return self

    def restore(self) -> None:
        """Put back the handlers that were in place before ``install``."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)  # type: ignore[arg-type]
        self._previous.clear()

    def __enter__(self) -> StopSignals:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()

    # -- the handler -----------------------------------------------------------------------
    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        if self.signum is None and self._requested_reason is None:
            self.signum = signum
            self._event.set()
            return
        message = self.repeat_message
        if message:
            try:
                os.write(2, message.rstrip("\n").encode("utf-8", "replace") + b"\n")
            except OSError:
                pass  # the terminal is gone (SIGHUP): nothing to tell

    # -- the Event-like side ---------------------------------------------------------------
    def request(self, reason: str = "interrupted") -> None:
        """Ask for the stop without a signal (another thread, a test, a button)."""
        if self._requested_reason is None and self.signum is None:
            self._requested_reason = reason
        self._event.set()

    set = request

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    @property
    def reason(self) -> str | None:
        """The trial's ``ended``: "interrupted" (SIGINT), "terminated" (SIGTERM), "hangup" (SIGHUP); None before."""
        if self.signum is not None:
            return STOP_REASONS[self.signum]
        return self._requested_reason

    @property
    def signal_name(self) -> str | None:
        """"SIGINT", "SIGTERM", "SIGHUP" (None before a signal, or for a stop asked without one)."""
        return signal.Signals(self.signum).name if self.signum is not None else None

    @property
    def exit_code(self) -> int:
        """128 + the signal number (130 for SIGINT, also for a stop asked without a signal)."""
        return 128 + (self.signum if self.signum is not None else int(signal.SIGINT))
