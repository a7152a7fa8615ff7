"""`steplab calibrate` over a port: options refused up front, and a robot command the rig refuses stops it in one line."""

from __future__ import annotations

import os
import select
import subprocess
import threading
import time
import tty

import numpy as np
from conftest import steplab_cmd

from steplab.acquisition import protocol
from steplab.acquisition.frame_decoder import FrameDecoder
from steplab.acquisition.rig import default_rig


class NoRobotRig:
    """A pty device that says it is simulated but has no robot: ``place_mass`` gets ``ok: false``.

    Like the reference firmware's host build: it streams noisy counts at 1 kHz in frames of 10
    samples, answers ``info`` and ``clear_masses``, and refuses ``place_mass``.
    """

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.name = os.ttyname(self.slave)
        self.rig = default_rig()
        self.stop = threading.Event()
        self.seq = 0
        self.refused = 0
        self.rng = np.random.default_rng(0)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _reply(self, payload: dict) -> bytes:
        return protocol.encode_message_frame(protocol.FRAME_TYPE_REPLY, boot_id=9, seq=self._next_seq(),
                                             device_time_us=0, payload=payload)

    def _serve(self) -> None:
        dec = FrameDecoder()
        t0 = time.monotonic()
        sent = 0
        out = bytearray()
        while not self.stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.005)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    data = b""
                for m in dec.feed(data).messages:
                    cmd, cid = m.payload.get("cmd"), m.payload.get("id")
                    if cmd == "info":
                        out += self._reply({"id": cid, "ok": True, "rig": self.rig.to_dict(), "rate_hz": 1000.0,
                                            "channels": 12, "serial": self.rig.serial, "firmware": "no-robot 1",
                                            "samples_per_frame": 10, "simulated": True})
                    elif cmd == "place_mass":
                        self.refused += 1
                        out += self._reply({"id": cid, "ok": False, "error": "unknown command 'place_mass'"})
                    elif cid is not None:
                        out += self._reply({"id": cid, "ok": True})
            due = int((time.monotonic() - t0) * 100)  # frames of 10 samples at 1 kHz
            while sent < due:
                counts = self.rng.normal(0, 30, (10, 12)).astype(np.int32) + 1000
                out += protocol.encode_data_frame(boot_id=9, seq=self._next_seq(), first_sample=10 * sent,
                                                  device_time_us=10_000 * sent, counts=counts)
                sent += 1
            if out:
                try:
                    n = os.write(self.master, out)
                    del out[:n]
                except BlockingIOError:
                    pass
                except OSError:
                    return

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for fd in (self.master, self.slave):
            os.close(fd)


def test_a_rig_that_refuses_the_robot_stops_auto_calibration_in_one_line(tmp_path):
    """Lead's finding: against firmware that is 'simulated' but has no robot, --auto retried steps for ever."""
    dev = NoRobotRig()
    out = tmp_path / "cal.json"
    try:
        r = subprocess.run(steplab_cmd("calibrate", "--device", dev.name, "--auto", "--plate", "box",
                                       "--warmup-s", "1", "--out", str(out)),
                           capture_output=True, text=True, timeout=300)
    finally:
        dev.close()
    assert r.returncode == 2, r.stderr
    errors = [ln for ln in r.stderr.strip().splitlines() if ": error: " in ln]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "refused 'place_mass'" in errors[0] and "unknown command" in errors[0]
    assert dev.refused == 1  # stopped at the first refusal, no retries
    assert not out.exists()
