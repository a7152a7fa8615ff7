"""The simulated step box's firmware: the wire protocol served from the physics model.

``SimDeviceEngine`` is what a microcontroller would run: it samples the
(simulated) cells at the configured rate, packs ``samples_per_frame`` samples
into a data frame, sends a status frame every second, and answers commands.
``run_pty_server`` puts it on a pseudo-terminal, so a host reads it through
pyserial exactly as it reads a USB rig (same bytes, same unplug errors).
"""

from __future__ import annotations

import os
import secrets
import select
import sys
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from . import protocol
from .fault_injection import FaultInjector
from .frame_decoder import FrameDecoder
from .rig import Rig
from .sim_rig import SimulatedRigModel

FIRMWARE_VERSION = "steplab-sim 0.1.0"
MAX_PENDING_BYTES = 1 << 20  # the device's transmit buffer; beyond it, frames are dropped (overrun)


def warm_up(rig: Rig) -> None:
    """Compile (or load from cache) the simulator's and the codec's kernels before serving.

    A device that answers nothing for seconds after power-up would look broken:
    a throwaway model and engine run once, so the first real frames are on time.
    """
    from .frame_decoder import warm_up as warm_codec

    warm_codec()
    model = SimulatedRigModel(rig, scenario="quiet", seed=0, keep_truth_s=1.0)
    engine = SimDeviceEngine(model, rig, rate_hz=rig.sample_rate_hz)
    engine.pending_output(0.0)
    engine.pending_output(0.05)


def default_samples_per_frame(rate_hz: float) -> int:
    """10 ms of samples per frame (at least 1): latency stays at 10 ms at any rate."""
    return max(1, int(round(rate_hz / 100.0)))


BOOT_ID_MIN, BOOT_ID_MAX = 1, 2**32 - 1  # boot id 0 is the host's (protocol.md § 3)


def new_boot_id() -> int:
    """A fresh random boot id, as a device draws one at every power-up (never from the seed).

    A boot id derived from the seed would repeat when the simulator is started
    again with the same seed, and the host would splice the new process into
    the old one's recording (issue 11.1).
    """
    return BOOT_ID_MIN + secrets.randbelow(BOOT_ID_MAX - BOOT_ID_MIN + 1)


def check_boot_id(boot_id: int) -> int:
    """A fixed boot id given by a test or ``--boot-id``: an integer in 1..2**32-1 (ValueError otherwise)."""
    if isinstance(boot_id, bool) or not isinstance(boot_id, int) or not (BOOT_ID_MIN <= boot_id <= BOOT_ID_MAX):
        raise ValueError(f"boot id {boot_id!r} must be an integer in {BOOT_ID_MIN}..{BOOT_ID_MAX}")
    return boot_id


class SimDeviceEngine:
    """Device-side protocol state: boot id, frame sequence, sample index, commands.

    The caller supplies time (``now_s``, monotonic seconds); the engine never sleeps.
    Every power-up (the constructor) and every ``reset`` draws a fresh random
    boot id, as real firmware does; ``boot_id`` fixes the power-up's id (tests,
    ``steplab simulate --boot-id``), ``reset(now_s, boot_id=N)`` a reboot's.
    The device clock (``device_time_us`` of every frame) counts microseconds
    since boot, ``time_scale`` times faster than the caller's clock.
    """

    def __init__(self, model: SimulatedRigModel, rig: Rig, *, rate_hz: float | None = None,
                 samples_per_frame: int | None = None, seed: int = 0, fault_rate: float = 0.0,
                 calibration_hash: str | None = None, time_scale: float = 1.0, boot_id: int | None = None):
        self.model = model
        self.rig = rig
        self.rate_hz = float(rate_hz or rig.sample_rate_hz)
        self._spf_fixed = samples_per_frame
        self.samples_per_frame = samples_per_frame or default_samples_per_frame(self.rate_hz)
        self.faults = FaultInjector(fault_rate, seed)
        self.calibration_hash = calibration_hash
        if not (0.1 <= time_scale <= 100.0):
            raise ValueError(f"time scale {time_scale:g} must be in 0.1..100")
        self.time_scale = float(time_scale)  # > 1 fast-forwards the device (demos, unattended calibration)
        self._replies: list[bytes] = []
        self.streaming = True
        self._boot(None, None if boot_id is None else check_boot_id(boot_id))

    # -- state ---------------------------------------------------------------
    def _boot(self, now_s: float | None, boot_id: int | None = None) -> None:
        self.boot_id = new_boot_id() if boot_id is None else boot_id
        self.seq = 0
        self.sample = 0  # next sample index since boot
        self.overruns = 0  # samples the device could not send (since boot)
        self._overrun_pending = False  # flag the next data frame (FLAG_OVERRUN)
        self._cmd_decoder = FrameDecoder()  # a half-received command does not survive a reboot
        self._replies.clear()
        self._t0: float | None = now_s
        self._next_status_s: float | None = None
        self._announce = True  # protocol.md § 9: an info frame after power-up
        if now_s is not None:
            # The sample clock restarts at the reboot: sample 0 is taken at now_s,
            # nothing acquired before the reset is sent (or counted) again.
            self._t0_stream(now_s)

    def reset(self, now_s: float, boot_id: int | None = None) -> None:
        """A device reboot at ``now_s`` (s): a new boot id (random unless given), counters and clocks restart at zero."""
        self._boot(now_s, None if boot_id is None else check_boot_id(boot_id))

    def _next_seq(self) -> int:
        s = self.seq
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        return s

    def _message(self, frame_type: int, payload: dict, now_s: float) -> bytes:
        return protocol.encode_message_frame(
            frame_type, boot_id=self.boot_id, seq=self._next_seq(), payload=payload,
            device_time_us=self._device_us(now_s), flags=protocol.FLAG_SIMULATED)

    def _device_us(self, now_s: float) -> int:
        """The device clock at ``now_s``: microseconds since boot (``time_scale`` times the caller's clock)."""
        return int(round((now_s - (self._t0 if self._t0 is not None else now_s)) * 1e6 * self.time_scale))

    # -- host commands ----------------------------------------------------------
    def info(self) -> dict:
        return {"firmware": FIRMWARE_VERSION, "serial": self.rig.serial, "channels": self.rig.channels,
                "rate_hz": self.rate_hz, "samples_per_frame": self.samples_per_frame,
                "rig": self.rig.to_dict(), "calibration_hash": self.calibration_hash,
                "boot_id": self.boot_id, "simulated": True, "time_scale": self.time_scale}

    def handle_input(self, data: bytes, now_s: float) -> None:
        """Bytes from the host: command frames are answered with reply frames."""
        for msg in self._cmd_decoder.feed(data).messages:
            if msg.frame_type != protocol.FRAME_TYPE_COMMAND:
                continue
            self._replies.append(self._message(protocol.FRAME_TYPE_REPLY, self._execute(msg.payload, now_s), now_s))

    def _execute(self, cmd: dict, now_s: float) -> dict:
        name, cid = cmd.get("cmd"), cmd.get("id")
        try:
            if name == "info":
                return {"id": cid, "ok": True, **self.info()}
            if name == "start":
                if not self.streaming:
                    self.streaming = True
                    self._t0_stream(now_s)
                return {"id": cid, "ok": True}
            if name == "stop":
                self.streaming = False
                return {"id": cid, "ok": True}
            if name == "set_rate":
                rate = float(cmd["rate_hz"])
                if not (10.0 <= rate <= 8000.0):
                    return {"id": cid, "ok": False, "error": f"rate {rate} Hz is outside 10..8000"}
                self.rate_hz = rate
                self.samples_per_frame = self._spf_fixed or default_samples_per_frame(rate)
                self.model.set_rate(rate)
                self._t0_stream(now_s)
                return {"id": cid, "ok": True, "rate_hz": rate}
            if name == "tare_hint":
                return {"id": cid, "ok": True}
            if name == "place_mass":
                self.model.place_mass(str(cmd["plate"]), float(cmd["x_mm"]), float(cmd["y_mm"]), float(cmd["mass_kg"]))
                return {"id": cid, "ok": True}
            if name == "clear_masses":
                self.model.clear_masses()
                return {"id": cid, "ok": True}
            return {"id": cid, "ok": False, "error": f"unknown command {name!r}"}
        except (KeyError, TypeError, ValueError) as exc:
            return {"id": cid, "ok": False, "error": f"bad arguments for {name!r}: {exc}"}

    def _t0_stream(self, now_s: float) -> None:
        self._stream_origin_s = now_s
        self._stream_origin_sample = self.sample
        self._stream_origin_us = self._device_us(now_s)

    def _sample_time_us(self, index: int) -> int:
        """Device time (µs since boot) at which sample ``index`` was taken: rises across rate changes."""
        return self._stream_origin_us + int(round((index - self._stream_origin_sample) * 1e6 / self.rate_hz))

    # -- output -----------------------------------------------------------------
    def pending_output(self, now_s: float, max_bytes: int | None = None) -> bytes:
        """Everything the device sends up to ``now_s`` (s): replies, data frames due, status.

        ``max_bytes`` is the room left in the device's transmit buffer (None: no
        limit).  A frame that does not fit is lost on the device: a data frame's
        samples still advance the sample index, are counted in ``overruns`` and
        the next data frame that is sent carries FLAG_OVERRUN (protocol.md § 7);
        a lost reply or status frame shows as a jump in ``seq``.
        """
        if self._t0 is None:
            self._t0 = now_s
            self._t0_stream(now_s)
        if max_bytes is not None and max_bytes < 0:
            max_bytes = 0
        out = bytearray()

        def fits(n_bytes: int) -> bool:
            return max_bytes is None or len(out) + n_bytes <= max_bytes

        if self._announce:  # protocol.md § 9: the device describes itself after power-up
            self._announce = False
            frame = self._message(protocol.FRAME_TYPE_INFO, self.info(), now_s)
            if fits(len(frame)):
                out += frame
        for r in self._replies:
            if fits(len(r)):
                out += r  # (a lost reply leaves a jump in seq: it was numbered when queued)
        self._replies.clear()
        if self.streaming:
            due = self._stream_origin_sample + int((now_s - self._stream_origin_s) * self.rate_hz * self.time_scale)
            spf = self.samples_per_frame
            n_frames = (due - self.sample) // spf
            if n_frames > 0:
                counts = self.model.read_counts(n_frames * spf)
                for k in range(n_frames):
                    first = self.sample
                    self.sample += spf
                    if max_bytes is not None and len(out) >= max_bytes:
                        self._lose_samples(spf)
                        continue
                    flags = protocol.FLAG_SIMULATED
                    if self._overrun_pending:
                        flags |= protocol.FLAG_OVERRUN
                    frame = protocol.encode_data_frame(
                        boot_id=self.boot_id, seq=self.seq, first_sample=first,
                        device_time_us=self._sample_time_us(first),
                        counts=counts[k * spf:(k + 1) * spf], flags=flags)
                    if not fits(len(frame)):
                        self._lose_samples(spf)
                        continue
                    out += frame
                    self._next_seq()
                    self._overrun_pending = False
        if self._next_status_s is None or now_s >= self._next_status_s:
            self._next_status_s = now_s + 1.0
            status = protocol.encode_message_frame(
                protocol.FRAME_TYPE_STATUS, boot_id=self.boot_id, seq=self.seq, device_time_us=self._device_us(now_s),
                flags=protocol.FLAG_SIMULATED, payload={
                    "uptime_s": round(now_s - self._t0, 3), "overruns": self.overruns,
                    "streaming": self.streaming, "rate_hz": self.rate_hz})
            if fits(len(status)):
                out += status
                self._next_seq()
        return self.faults.apply(bytes(out))

    def _lose_samples(self, n: int) -> None:
        """``n`` samples were acquired but could not be sent (transmit buffer full)."""
        self.overruns += n
        self._overrun_pending = True

    def drop_samples_until(self, now_s: float) -> None:
        """The link is down (unplugged): samples taken until ``now_s`` (s) are lost on the device."""
        self._replies.clear()
        self.pending_output(now_s, max_bytes=0)  # acquired, counted as overruns, nothing sent


class LinkError(ValueError):
    """A ``--link`` path that cannot (or must not) be made a symlink (one-line message)."""


def check_link_path(link: str | Path) -> Path:
    """Validate a ``--link`` path before serving: its folder exists; it is absent or a symlink.

    An existing regular file, directory or device at ``link`` is never replaced
    (it is not ours).  Raises LinkError (a ValueError) with a one-line reason.
    """
    text = str(link)
    if not text:
        raise LinkError("--link needs a path")
    path = Path(text)
    folder = path.parent
    if not folder.is_dir():
        raise LinkError(f"--link {path}: the folder {folder} does not exist")
    if path.is_symlink():
        return path
    if path.is_dir():
        raise LinkError(f"--link {path} is a directory; give a path for the symlink itself")
    if os.path.lexists(path):
        raise LinkError(f"--link {path} exists and is not a symlink; refusing to replace it")
    return path


def _make_link(link: Path, target: str) -> None:
    """Point the symlink ``link`` at ``target`` (atomically replacing an older symlink of ours)."""
    check_link_path(link)
    try:
        os.symlink(target, link)
        return
    except FileExistsError:
        pass
    except OSError as exc:
        raise LinkError(f"--link {link}: cannot make the symlink ({exc.strerror})") from None
    check_link_path(link)  # something appeared meanwhile: still only a symlink may be replaced
    tmp = link.with_name(f".{link.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise LinkError(f"--link {link}: cannot make the symlink ({exc.strerror})") from None


def _remove_link(link: Path | None, target: str | None) -> None:
    """Remove ``link`` only if it is still our symlink to ``target``."""
    if link is None or target is None:
        return
    try:
        if os.readlink(link) == target:
            os.unlink(link)
    except OSError:
        pass  # gone, not a symlink, or replaced by someone else's: leave it


class _Pty:
    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.name = os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


def run_pty_server(engine: SimDeviceEngine, *, seconds: float | None = None, link: str | Path | None = None,
                   unplug_after_s: float | None = None, unplug_for_s: float = 2.0,
                   reset_after_s: float | None = None, out: TextIO = sys.stdout,
                   clock: Callable[[], float] = time.monotonic,
                   max_pending_bytes: int = MAX_PENDING_BYTES,
                   reset_request: threading.Event | None = None) -> None:
    """Serve ``engine`` on a pseudo-terminal until ``seconds`` pass (or forever).

    Prints ``port: /dev/pts/N`` (and again after each re-plug).  ``link`` keeps a
    stable symlink to the current pty, as udev's /dev/serial/by-id links do for USB
    devices: it exists only while the device is plugged in, and at exit it is
    removed only if it is still ours.  A ``link`` that exists and is not a
    symlink, or whose folder is missing, raises LinkError before anything starts.
    ``unplug_after_s`` closes the pty (the host sees exactly the Linux unplug
    error) for ``unplug_for_s`` seconds; ``reset_after_s`` reboots the device, and so
    does setting ``reset_request`` (the reset button: ``steplab simulate`` sets it on SIGUSR1).
    ``max_pending_bytes`` is the device's transmit buffer: what does not fit
    while the host is not reading is lost on the device (counted as overruns).
    """
    if max_pending_bytes < 1:
        raise ValueError(f"max_pending_bytes {max_pending_bytes} must be positive")
    link_path = check_link_path(link) if link else None
    pty = _Pty()
    linked_to: str | None = None
    try:
        if link_path is not None:
            _make_link(link_path, pty.name)
            linked_to = pty.name
    except LinkError:
        pty.close()
        raise
    print(f"port: {pty.name}", file=out, flush=True)
    start = clock()
    pending = bytearray()
    unplugged_until: float | None = None
    did_unplug = did_reset = False
    period = 1.0 / 200.0  # wake every 5 ms: frames leave within 5 ms of being due
    try:
        while True:
            now = clock()
            elapsed = now - start
            if seconds is not None and elapsed >= seconds:
                break
            if reset_after_s is not None and not did_reset and elapsed >= reset_after_s:
                did_reset = True
                engine.reset(now)
                print("event: reset", file=out, flush=True)
            if reset_request is not None and reset_request.is_set():
                reset_request.clear()
                engine.reset(now)
                print("event: reset", file=out, flush=True)
            if unplug_after_s is not None and not did_unplug and elapsed >= unplug_after_s:
                did_unplug = True
                _remove_link(link_path, linked_to)  # as udev removes the by-id link of an unplugged device
                linked_to = None
                pty.close()
                pending.clear()
                unplugged_until = now + unplug_for_s
                print("event: unplugged", file=out, flush=True)
            if unplugged_until is not None:
                engine.drop_samples_until(now)
                if now < unplugged_until:
                    time.sleep(period)
                    continue
                unplugged_until = None
                pty = _Pty()
                if link_path is not None:
                    try:
                        _make_link(link_path, pty.name)
                        linked_to = pty.name
                    except LinkError as exc:
                        print(f"event: no link: {exc}", file=out, flush=True)
                print(f"port: {pty.name}", file=out, flush=True)
            try:
                readable, _, _ = select.select([pty.master], [], [], period)
            except (OSError, ValueError):
                readable = []
            if readable:
                try:
                    data = os.read(pty.master, 65536)
                except BlockingIOError:
                    data = b""
                except OSError:
                    data = b""  # no host has the port open
                if data:
                    engine.handle_input(data, clock())
            # What does not fit in the transmit buffer is lost on the device and
            # counted there (overruns, FLAG_OVERRUN on the next frame sent).
            pending += engine.pending_output(clock(), max_bytes=max_pending_bytes - len(pending))
            if pending:
                try:
                    n = os.write(pty.master, pending)
                    del pending[:n]
                except BlockingIOError:
                    pass
                except OSError:
                    pass
    finally:
        pty.close()
        _remove_link(link_path, linked_to)
