"""The simulated device: reboots, transmit-buffer overruns and the --link symlink."""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time

import numpy as np
import pytest
from conftest import steplab_cmd, wait_for

from steplab.acquisition import protocol
from steplab.acquisition.device import SerialStepBox
from steplab.acquisition.frame_decoder import FrameDecoder
from steplab.acquisition.rig import default_rig
from steplab.acquisition.sim_device import LinkError, SimDeviceEngine, check_link_path, run_pty_server
from steplab.acquisition.sim_rig import SimulatedRigModel
from steplab.acquisition.sim_subject import Subject
from steplab.acquisition.stream_tracker import StreamTracker


def _engine(rate_hz=1000.0, **kw) -> SimDeviceEngine:
    rig = default_rig()
    model = SimulatedRigModel(rig, Subject(), scenario="quiet", seed=3, rate_hz=rate_hz)
    return SimDeviceEngine(model, rig, rate_hz=rate_hz, seed=3, **kw)


def _data_frames(data: bytes, decoder: FrameDecoder | None = None):
    chunk = (decoder or FrameDecoder()).feed(data)
    assert chunk.crc_errors == 0 and chunk.malformed == 0
    return chunk


# -- finding 2: a reboot restarts the sample clock -----------------------------------------------

def test_after_a_reset_the_device_sends_rate_times_elapsed_samples_not_a_burst():
    eng = _engine()
    dec = FrameDecoder()
    eng.pending_output(10.0)  # power-up at t = 10 s (fake clock)
    first = _data_frames(eng.pending_output(13.0), dec)
    assert first.n_samples == 3000  # 3 s at 1 kHz
    old_boot = eng.boot_id
    eng.reset(13.0)
    assert eng.boot_id != old_boot and eng.sample == 0 and eng.seq == 0
    after = _data_frames(eng.pending_output(13.5), dec)
    frames = after.frames
    assert set(frames["boot_id"].tolist()) == {eng.boot_id}
    assert after.n_samples == 500  # 0.5 s × 1000 Hz, not the 3500 samples since streaming started
    assert frames["first_sample"][0] == 0
    np.testing.assert_array_equal(np.diff(frames["first_sample"]), 10)
    later = _data_frames(eng.pending_output(14.0), dec)
    assert later.frames["first_sample"][0] == 500 and later.n_samples == 500
    # the new boot's device clock starts at the reset, too
    assert later.frames["device_time_us"][0] == 500_000


def test_reset_at_2khz_with_time_scale():
    eng = _engine(rate_hz=2000.0, time_scale=2.0)
    eng.pending_output(0.0)
    eng.pending_output(1.0)
    eng.reset(1.0)
    out = _data_frames(eng.pending_output(1.25))
    assert out.n_samples == int(0.25 * 2000 * 2.0)


# -- issue 11.1: a fresh boot id at every power-up; a device clock that never runs back ---------------

def test_every_power_up_draws_a_fresh_boot_id_whatever_the_seed():
    ids = {_engine().boot_id for _ in range(5)}  # the same seed (3) five times
    assert len(ids) == 5 and all(1 <= b < 2**32 for b in ids)


def test_a_fixed_boot_id_is_kept_for_the_power_up_and_a_reset_draws_a_new_one():
    eng = _engine(boot_id=0xC0FFEE)
    chunk = _data_frames(eng.pending_output(0.0) + eng.pending_output(0.5))
    assert set(chunk.frames["boot_id"].tolist()) == {0xC0FFEE}
    assert any(m.payload.get("boot_id") == 0xC0FFEE for m in chunk.messages)  # the info frame after power-up
    eng.reset(0.5)
    assert eng.boot_id != 0xC0FFEE
    eng.reset(0.6, boot_id=0xC0FFEE)  # a test may ask for a firmware that repeats its boot id
    assert eng.boot_id == 0xC0FFEE
    for bad in (0, 2**32, -1, 1.5, True):
        with pytest.raises(ValueError):
            _engine(boot_id=bad)


def test_the_device_clock_keeps_rising_when_the_rate_changes():
    eng = _engine(rate_hz=1000.0)
    dec = FrameDecoder()
    eng.pending_output(0.0)
    before = _data_frames(eng.pending_output(1.0), dec).frames
    eng.handle_input(protocol.encode_command("set_rate", 7, rate_hz=4000.0), 1.0)
    after = _data_frames(eng.pending_output(1.5), dec).frames
    times = np.concatenate([before["device_time_us"], after["device_time_us"]])
    assert np.all(np.diff(times) > 0)  # the old clock (index / rate) jumped back from 990 ms to 250 ms
    assert after["device_time_us"][0] >= 1_000_000 - 1
    assert after["device_time_us"][-1] <= 1_500_000


def test_a_restarted_simulator_with_the_same_seed_is_a_new_boot_for_the_host():
    """Two power-ups with the same seed: the host must see a reset, never duplicates."""
    dec, tracker = FrameDecoder(), StreamTracker()
    first = _engine()
    first.pending_output(0.0)
    ev1 = tracker.update(dec.feed(first.pending_output(8.15)))  # killed at 8.15 s
    second = _engine()  # started again: the same seed, the same subject and noise
    second.pending_output(10.0)
    ev2 = tracker.update(dec.feed(second.pending_output(12.0)))
    assert ev1.resets == [] and len(ev2.resets) == 1 and ev2.resets[0].reason == "boot_id"
    assert ev2.duplicate_samples == 0 and tracker.samples_kept == 8150 + 2000


# -- finding 3: transmit-buffer overflow is an overrun, counted and flagged ------------------------

def test_frames_that_do_not_fit_the_transmit_buffer_are_counted_and_flag_the_next_frame():
    eng = _engine()
    dec = FrameDecoder()
    tracker = StreamTracker()
    eng.pending_output(0.0)
    budget = 20_000
    squeezed = eng.pending_output(1.0, max_bytes=budget)
    assert 0 < len(squeezed) <= budget
    c1 = _data_frames(squeezed, dec)
    sent = c1.n_samples
    assert 0 < sent < 1000
    assert eng.overruns == 1000 - sent  # every sample acquired is either sent or counted
    assert not (c1.frames["flags"] & protocol.FLAG_OVERRUN).any()
    tracker.update(c1)
    c2 = _data_frames(eng.pending_output(1.5), dec)
    assert c2.frames["flags"][0] & protocol.FLAG_OVERRUN  # the first frame after the loss says so
    assert not (c2.frames["flags"][1:] & protocol.FLAG_OVERRUN).any()
    ev = tracker.update(c2)
    assert len(ev.gaps) == 1 and ev.gaps[0].device_overrun
    assert ev.gaps[0].length == eng.overruns and ev.gaps[0].at_sample == sent
    # the status frame reports the same count
    c3 = dec.feed(eng.pending_output(2.0))
    status = [m.payload for m in c3.messages if m.frame_type == protocol.FRAME_TYPE_STATUS]
    assert status and status[-1]["overruns"] == eng.overruns


def test_a_full_buffer_sends_nothing_and_loses_everything_acquired():
    eng = _engine()
    eng.pending_output(0.0)
    assert eng.pending_output(0.5, max_bytes=0) == b""
    assert eng.overruns == 500 and eng.sample == 500


def test_the_pty_server_counts_what_its_full_transmit_buffer_drops(tmp_path):
    eng = _engine(time_scale=4.0)  # 160 kB/s: the pty and a small device buffer fill quickly
    lines = _Lines()
    server = threading.Thread(target=run_pty_server, args=(eng,),
                              kwargs={"seconds": 4.0, "out": lines, "max_pending_bytes": 8000}, daemon=True)
    server.start()
    port = lines.port()
    host = SerialStepBox(port)
    host.open()
    try:
        time.sleep(1.5)  # the host does not read: the device's buffer overflows
        dec, tracker = FrameDecoder(), StreamTracker()
        gaps = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            chunk = dec.feed(host.read())
            gaps += tracker.update(chunk).gaps
    finally:
        host.close()
        server.join(10)
    assert dec.crc_errors == 0 and dec.malformed == 0  # whole frames only, never a torn one
    assert gaps, "the overflow lost nothing?"
    assert all(g.device_overrun for g in gaps), gaps
    assert 0 < tracker.lost_samples <= eng.overruns


# -- finding 1: --link never deletes a user's file ---------------------------------------------------

class _Lines:
    """A text stream for run_pty_server's ``out`` that hands over whole lines."""

    def __init__(self):
        self.q: queue.Queue[str] = queue.Queue()
        self._part = ""

    def write(self, s: str) -> int:
        self._part += s
        while "\n" in self._part:
            line, self._part = self._part.split("\n", 1)
            self.q.put(line)
        return len(s)

    def flush(self) -> None:
        pass

    def next(self, timeout_s: float = 10.0) -> str:
        return self.q.get(timeout=timeout_s)

    def port(self) -> str:
        line = self.next()
        assert line.startswith("port: "), line
        return line.split(": ", 1)[1]


def _one_line_error(r) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.mark.parametrize("case", ["regular-file", "missing-folder", "directory"])
def test_simulate_refuses_a_link_path_that_is_not_ours(tmp_path, case):
    if case == "regular-file":
        link = tmp_path / "notes.txt"
        link.write_text("a user's notes")
    elif case == "missing-folder":
        link = tmp_path / "no-such-folder" / "rig"
    else:
        link = tmp_path / "adir"
        link.mkdir()
        (link / "keep.txt").write_text("x")
    before = sorted(p.name for p in tmp_path.iterdir())
    r = subprocess.run(steplab_cmd("simulate", "--pty", "--seconds", "2", "--link", str(link)),
                       capture_output=True, text=True, timeout=60)
    msg = _one_line_error(r)
    assert str(link) in msg
    assert "port:" not in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing left behind (no adir.new)
    if case == "regular-file":
        assert not link.is_symlink() and link.read_text() == "a user's notes"
    if case == "directory":
        assert link.is_dir() and (link / "keep.txt").read_text() == "x"


def test_check_link_path_accepts_absent_paths_and_symlinks_only(tmp_path):
    assert check_link_path(tmp_path / "rig") == tmp_path / "rig"
    (tmp_path / "old").symlink_to("/dev/pts/nonexistent")  # left over from a crashed simulator
    assert check_link_path(tmp_path / "old") == tmp_path / "old"
    (tmp_path / "f").write_text("")
    for bad in (tmp_path / "f", tmp_path, tmp_path / "nope" / "rig", ""):
        with pytest.raises(LinkError):
            check_link_path(bad)


def test_run_pty_server_refuses_a_regular_file_before_serving(tmp_path):
    victim = tmp_path / "data.csv"
    victim.write_text("1,2,3\n")
    lines = _Lines()
    with pytest.raises(LinkError):
        run_pty_server(_engine(), seconds=1.0, link=victim, out=lines)
    assert lines.q.empty()
    assert victim.read_text() == "1,2,3\n" and not victim.is_symlink()


def test_the_link_is_removed_while_unplugged_and_recreated_on_replug(tmp_path):
    folder = tmp_path / "by-id"
    folder.mkdir()
    link = folder / "rig"
    link.symlink_to("/dev/pts/stale")  # a stale link of ours from an earlier run is replaced
    lines = _Lines()
    server = threading.Thread(target=run_pty_server, args=(_engine(),), daemon=True,
                              kwargs={"seconds": 2.5, "link": link, "out": lines,
                                      "unplug_after_s": 0.5, "unplug_for_s": 1.0})
    server.start()
    first = lines.port()
    assert os.readlink(link) == first
    assert lines.next() == "event: unplugged"
    assert not os.path.lexists(link)  # no link to a closed pty while unplugged
    second = lines.port()
    assert os.readlink(link) == second and os.path.exists(link)
    server.join(10)
    assert not server.is_alive()
    assert not os.path.lexists(link)  # ours: removed at exit
    assert list(folder.iterdir()) == []  # no temporary names left behind either


def test_at_exit_a_link_that_is_no_longer_ours_is_left_alone(tmp_path):
    link = tmp_path / "rig"
    lines = _Lines()
    server = threading.Thread(target=run_pty_server, args=(_engine(),), daemon=True,
                              kwargs={"seconds": 1.0, "link": link, "out": lines})
    server.start()
    lines.port()
    assert wait_for(link.is_symlink, 5)
    os.unlink(link)
    link.write_text("someone else's file now")
    server.join(10)
    assert link.read_text() == "someone else's file now"


def test_simulate_cli_serves_on_a_link_and_removes_it_at_exit(tmp_path):
    link = tmp_path / "rig"
    r = subprocess.run(steplab_cmd("simulate", "--pty", "--seconds", "1", "--link", str(link)),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("port: /dev/pts/")
    assert not os.path.lexists(link)


def test_the_simulated_step_box_performs_the_protocol_it_is_asked_for():
    from steplab.acquisition.device import SimulatedStepBox

    box = SimulatedStepBox(scenario="session", seed=3)
    box.perform("step-down", "left")
    box.model.read_counts(60000)  # 60 s of movement
    reps = [ev for ev in box.model.truth.events if ev.protocol == "step-down"]
    assert len(reps) >= 5 and {ev.lead for ev in reps[1:]} == {"left"}  # the first may precede the request
    with pytest.raises(ValueError, match="unknown scenario"):
        box.perform("cartwheel")
