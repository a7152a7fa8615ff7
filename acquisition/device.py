"""The step-box seam: one interface, a serial rig and a simulated rig behind it.

Both speak the wire protocol as raw bytes, so everything above this module
(journal, decoder, recorder, live view) runs the same code with or without
hardware.  Device addresses:

- ``sim`` or ``sim:SCENARIO``: the simulated step box in this process;
- ``/dev/ttyACM0``, ``/dev/pts/3``, a udev ``/dev/serial/by-id/…`` link, or any
  pyserial URL (``socket://host:port``, ``rfc2217://…``, ``loop://``);
- ``usb:VID:PID[:SERIAL]`` (hex ids): found by USB identity, and found again
  under whatever name it gets after it is unplugged and re-plugged.
"""

from __future__ import annotations

import errno
import os
import termios
import threading
import time
from abc import ABC, abstractmethod

from .rig import Rig, default_rig


class DeviceError(Exception):
    """The device cannot be opened or used (one-line message)."""


class DeviceDisconnected(DeviceError):
    """The link went away (unplugged, port closed)."""


class StepBox(ABC):
    """A source of wire bytes and a sink for commands."""

    address: str = ""

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> bytes:
        """Whatever bytes have arrived (waits at most the read timeout, ~50 ms); b"" if none.

        Raises DeviceDisconnected when the link is gone.
        """

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def reopen(self) -> bool:
        """Try once to find and open the device again; True when it is back."""
        self.close()
        try:
            self.open()
            return True
        except DeviceError:
            return False

    def __enter__(self) -> StepBox:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SerialStepBox(StepBox):
    """A rig on a serial port (USB CDC, UART, pty) through pyserial.

    Reads in bulk: ``read(in_waiting or 1)`` with a 50 ms timeout, never
    ``readline`` and never a zero timeout (rig.md § Reading the port).
    """

    def __init__(self, address: str, baudrate: int = 921600, timeout_s: float = 0.05):
        self.address = address
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self._port = None
        self._usb = None
        if address.startswith("usb:"):
            parts = address.split(":")
            if len(parts) not in (3, 4):
                raise DeviceError(f"USB address {address!r} must be usb:VID:PID or usb:VID:PID:SERIAL (hex ids)")
            try:
                self._usb = (int(parts[1], 16), int(parts[2], 16), parts[3] if len(parts) == 4 else None)
            except ValueError:
                raise DeviceError(f"USB address {address!r} has a VID or PID that is not hexadecimal") from None

    def _resolve(self) -> str:
        if self._usb is None:
            return self.address
        from serial.tools import list_ports

        vid, pid, serial_number = self._usb
        for p in list_ports.comports():
            if p.vid == vid and p.pid == pid and (serial_number is None or p.serial_number == serial_number):
                return p.device
        raise DeviceError(f"no USB device {vid:04x}:{pid:04x}{'' if serial_number is None else ' serial ' + serial_number} is connected")

    def open(self) -> None:
        import serial

        path = self._resolve()
        try:
            # exclusive: a POSIX flock on the port, so a second program (another
            # recorder, a dashboard) cannot open it and split the bytes with us.
            self._port = serial.serial_for_url(path, baudrate=self.baudrate, timeout=self.timeout_s, write_timeout=1.0,
                                               exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            code = getattr(exc, "errno", None)
            if code in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise DeviceError(f"{path} is in use by another program") from None
            reason = getattr(exc, "strerror", None) or str(exc)
            if "No such file" in reason or code == errno.ENOENT:
                reason = "no such port"
            raise DeviceError(f"cannot open {path}: {reason}") from None

    def read(self) -> bytes:
        import serial

        port = self._port
        if port is None:
            raise DeviceDisconnected(f"{self.address} is not open")
        try:
            return port.read(port.in_waiting or 1)
        except (serial.SerialException, termios.error, OSError) as exc:
            raise DeviceDisconnected(f"{self.address} disconnected: {exc}") from None

    def write(self, data: bytes) -> None:
        import serial

        if self._port is None:
            raise DeviceDisconnected(f"{self.address} is not open")
        try:
            self._port.write(data)
        except (serial.SerialException, termios.error, OSError) as exc:
            raise DeviceDisconnected(f"{self.address} disconnected: {exc}") from None

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except Exception:  # closing a port whose device vanished may raise anything
                pass
            self._port = None


class SimulatedStepBox(StepBox):
    """The simulated step box in this process, paced by the wall clock like a rig.

    ``read`` (the reader thread) and ``write`` (commands from another thread)
    share the device engine under one lock, as a rig's firmware serialises them.
    """

    def __init__(self, rig: Rig | None = None, scenario: str = "session", seed: int = 0,
                 fault_rate: float = 0.0, rate_hz: float | None = None, subject=None, read_timeout_s: float = 0.05):
        from .sim_device import SimDeviceEngine
        from .sim_rig import SimulatedRigModel
        from .sim_subject import Subject

        self.rig = rig or default_rig()
        self.address = f"sim:{scenario}"
        self.model = SimulatedRigModel(self.rig, subject or Subject(), scenario=scenario, seed=seed, rate_hz=rate_hz)
        self.engine = SimDeviceEngine(self.model, self.rig, rate_hz=rate_hz, seed=seed, fault_rate=fault_rate)
        self.read_timeout_s = read_timeout_s
        self._open = False
        self._engine_lock = threading.Lock()

    def open(self) -> None:
        self._open = True

    def read(self) -> bytes:
        if not self._open:
            raise DeviceDisconnected("simulated rig is closed")
        deadline = time.monotonic() + self.read_timeout_s
        while True:
            with self._engine_lock:
                data = self.engine.pending_output(time.monotonic())
            if data or time.monotonic() >= deadline:
                return data
            time.sleep(0.005)

    def write(self, data: bytes) -> None:
        if not self._open:
            raise DeviceDisconnected("simulated rig is closed")
        with self._engine_lock:
            self.engine.handle_input(data, time.monotonic())

    def close(self) -> None:
        self._open = False

    def perform(self, scenario: str, lead: str | None = None) -> None:
        """Ask the simulated subject to do ``scenario`` (a protocol name), leading with ``lead``, from its next movement."""
        with self._engine_lock:
            self.model.perform(scenario, lead)


def open_device(address: str, **sim_options) -> StepBox:
    """Make (not yet open) the step box for ``address``; see the module docstring."""
    if not address:
        raise DeviceError("no device given")
    if address == "sim" or address.startswith("sim:"):
        from .sim_rig import SCENARIOS

        scenario = address.split(":", 1)[1] if ":" in address else sim_options.pop("scenario", "session")
        sim_options.pop("scenario", None)
        if scenario not in SCENARIOS:
            raise DeviceError(f"unknown simulated scenario {scenario!r} in {address!r}; "
                              f"use sim or sim:SCENARIO with one of {', '.join(SCENARIOS)}")
        return SimulatedStepBox(scenario=scenario, **sim_options)
    if "://" not in address and not address.startswith("usb:") and not os.path.exists(address):
        raise DeviceError(f"cannot open {address}: no such port")
    return SerialStepBox(address)
