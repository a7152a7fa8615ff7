"""The step-box seam: exclusive serial ports, sim addresses, the simulated rig under two threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import tty

import pytest
from helpers import steplab_cmd

from steplab.acquisition import protocol
from steplab.acquisition.device import DeviceError, SerialStepBox, SimulatedStepBox, open_device
from steplab.acquisition.frame_decoder import FrameDecoder
from steplab.acquisition.rig import default_rig
from steplab.acquisition.sim_device import SimDeviceEngine
from steplab.acquisition.sim_rig import SCENARIOS


@pytest.fixture
def pty_port():
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


# -- finding 5: one port, one program ----------------------------------------------------------------

def test_a_second_open_of_the_same_port_is_refused_in_one_line(pty_port):
    master, name = pty_port
    first = SerialStepBox(name)
    first.open()
    second = SerialStepBox(name)
    try:
        with pytest.raises(DeviceError) as exc:
            second.open()
        assert str(exc.value) == f"{name} is in use by another program"
        # the first owner still gets every byte
        os.write(master, b"abc123")
        got = b""
        deadline = time.monotonic() + 2
        while len(got) < 6 and time.monotonic() < deadline:
            got += first.read()
        assert got == b"abc123"
    finally:
        first.close()
    second.open()  # free again once the first program let go
    second.close()


def test_the_lock_is_per_open_so_a_reopen_after_close_works(pty_port):
    _, name = pty_port
    box = SerialStepBox(name)
    for _ in range(3):
        box.open()
        box.close()
    assert box.reopen() is True
    box.close()


def test_a_second_process_cannot_open_a_port_in_use(pty_port):
    _, name = pty_port
    first = SerialStepBox(name)
    first.open()
    try:
        code = ("import sys\nfrom steplab.acquisition.device import SerialStepBox, DeviceError\n"
                f"try:\n    SerialStepBox({name!r}).open()\nexcept DeviceError as e:\n    print(e); sys.exit(3)\n")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert r.returncode == 3, r.stderr
        assert r.stdout.strip() == f"{name} is in use by another program"
    finally:
        first.close()


# -- finding 6: an unknown simulated scenario is a DeviceError ------------------------------------------

def test_open_device_rejects_an_unknown_scenario_listing_the_known_ones():
    with pytest.raises(DeviceError) as exc:
        open_device("sim:bogus")
    msg = str(exc.value)
    assert "'bogus'" in msg and "\n" not in msg
    assert all(name in msg for name in SCENARIOS)
    with pytest.raises(DeviceError):
        open_device("sim", scenario="nope")
    assert open_device("sim:quiet").address == "sim:quiet"


@pytest.mark.parametrize("command", [["record", "--seconds", "1", "--out", "OUT"], ["run", "--port", "8799"]])
def test_cli_commands_turn_an_unknown_scenario_into_a_one_line_error(tmp_path, command):
    args = [str(tmp_path / "t.npz") if a == "OUT" else a for a in command]
    r = subprocess.run(steplab_cmd(*args[:1], "--device", "sim:bogus", *args[1:]), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "bogus" in lines[0] and "step-down" in lines[0]


# -- finding 4: the simulated rig used from two threads ------------------------------------------------

class _ProbedEngine(SimDeviceEngine):
    """The real engine, with a slow device step that notes any command handled during it.

    Under the GIL the unguarded windows are a few bytecodes wide (wider while the
    numba kernels run without the GIL); the sleep widens them so that a missing
    lock is seen every time, not once in a million.
    """

    inside = 0
    overlaps = 0

    def pending_output(self, *args, **kw):
        self.inside += 1
        try:
            time.sleep(0.002)
            return super().pending_output(*args, **kw)
        finally:
            self.inside -= 1

    def handle_input(self, *args, **kw):
        if self.inside:
            self.overlaps += 1
        return super().handle_input(*args, **kw)


def test_simulated_rig_serialises_reads_and_commands_from_two_threads():
    box = SimulatedStepBox(default_rig(), scenario="quiet", seed=2, read_timeout_s=0.001)
    box.engine = _ProbedEngine(box.model, box.rig, seed=2)
    box.open()
    received = bytearray()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            received.extend(box.read())

    n_commands = 300
    t = threading.Thread(target=reader)
    t.start()
    try:
        for cid in range(1, n_commands + 1):
            box.write(protocol.encode_command("tare_hint", cid))
    finally:
        time.sleep(0.05)
        stop.set()
        t.join(10)
    received.extend(box.read())
    box.close()
    assert box.engine.overlaps == 0, f"{box.engine.overlaps} commands ran while the device was producing output"
    chunk = FrameDecoder().feed(bytes(received))
    assert chunk.crc_errors == 0 and chunk.malformed == 0
    replies = [m.payload["id"] for m in chunk.messages if m.frame_type == protocol.FRAME_TYPE_REPLY]
    assert sorted(replies) == list(range(1, n_commands + 1))  # every command answered exactly once
    seqs = sorted([m.seq for m in chunk.messages] + chunk.frames["seq"].tolist())
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no seq used twice, none skipped
