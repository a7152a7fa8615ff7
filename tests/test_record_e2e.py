"""End to end: `steplab simulate --pty` and `steplab record` as separate processes on a real pty.

Received samples are compared with the simulator's own model regenerated from
the same seed, so "complete" means every sample is the right one, in its place.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from conftest import steplab_cmd, wait_for

from steplab.acquisition.rig import default_rig
from steplab.acquisition.sim_rig import SimulatedRigModel
from steplab.acquisition.sim_subject import Subject
from steplab.acquisition.trial_file import read_trial

pytestmark = pytest.mark.slow


def _record(port, seconds, out, *extra, timeout=120):
    r = subprocess.run(steplab_cmd("record", "--device", port, "--seconds", str(seconds), "--out", str(out), "--json", *extra),
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _expected_counts(trial, seed, scenario="session", rig=None):
    """The simulator's counts for the device sample range of each segment (same seed → same samples)."""
    rig = rig or default_rig()
    seg = trial.quality["segments"]
    assert len(seg) == 1, seg
    first = seg[0]["first_device_sample"]
    n = int(trial.sample_index[-1]) + 1
    model = SimulatedRigModel(rig, Subject(body_mass_kg=70.0, involved_limb="left", asymmetry=0.15),
                              scenario=scenario, seed=seed, rate_hz=trial.sample_rate_hz)
    all_counts = model.read_counts(first + n)
    return all_counts[first + trial.sample_index]


def test_ten_seconds_of_12_channels_at_1khz_arrive_complete(sim_process, tmp_path):
    sim = sim_process("--seconds", "60", "--seed", "7")
    out = tmp_path / "trial.npz"
    summary = _record(sim.port, 10, out)
    assert summary["samples"] == 10_000 and summary["lost_samples"] == 0 and summary["gaps"] == []
    assert summary["channels"] == 12 and summary["sample_rate_hz"] == 1000.0 and summary["crc_errors"] == 0
    assert summary["frames"] == 1000 and summary["out"] == str(out)
    trial = read_trial(out)
    np.testing.assert_array_equal(trial.sample_index, np.arange(10_000))
    np.testing.assert_array_equal(trial.counts, _expected_counts(trial, seed=7))
    assert trial.meta["device"]["info"]["serial"] == default_rig().serial
    assert (tmp_path / "trial.npz.journal").exists()


def test_a_noisy_link_loses_whole_frames_only_and_counts_each_one(sim_process, tmp_path):
    sim = sim_process("--seconds", "60", "--seed", "3", "--fault-rate", "1e-4")
    out = tmp_path / "noisy.npz"
    summary = _record(sim.port, 6, out)
    assert summary["crc_errors"] + summary["malformed"] > 0  # ~24 byte faults expected in 6 s
    assert summary["samples"] + summary["lost_samples"] == 6000
    assert summary["lost_samples"] == sum(g["length"] for g in summary["gaps"]) > 0
    trial = read_trial(out)
    present = np.zeros(6000, bool)
    present[trial.sample_index] = True
    for g in summary["gaps"]:
        assert not present[g["at_sample"]: g["at_sample"] + g["length"]].any()
        assert g["length"] % 10 == 0  # whole frames of 10 samples
    assert present.sum() == summary["samples"]
    # no corrupted sample was accepted: everything received is what the device sent
    np.testing.assert_array_equal(trial.counts, _expected_counts(trial, seed=3))


def test_unplug_and_replug_records_the_gap_and_loses_nothing_else(sim_process, tmp_path):
    link = tmp_path / "rig-by-id"
    sim_process("--seconds", "60", "--seed", "5", "--link", str(link), "--unplug-after", "4", "--unplug-for", "1.5")
    assert wait_for(link.exists, 5)
    out = tmp_path / "unplug.npz"
    summary = _record(str(link), 8, out)
    assert summary["samples"] + summary["lost_samples"] == 8000
    assert len(summary["gaps"]) == 1
    gap = summary["gaps"][0]
    assert 1300 <= gap["length"] <= 2200, gap  # ~1.5 s unplugged, plus the reconnect back-off
    trial = read_trial(out)
    assert trial.quality["reconnects"] == 1 and trial.quality["disconnects"] == 1
    assert trial.quality["gaps"][0]["kind"] == "disconnected"  # lost while the rig was unplugged
    np.testing.assert_array_equal(trial.counts, _expected_counts(trial, seed=5))


def test_a_device_reset_mid_stream_starts_a_new_segment(sim_process, tmp_path):
    sim = sim_process("--seconds", "60", "--seed", "2")
    out = tmp_path / "reset.npz"
    proc = subprocess.Popen(steplab_cmd("record", "--device", sim.port, "--seconds", "6", "--out", str(out), "--json"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the reset button once the recording is under way (not at a fixed time: a busy machine starts late)
        assert wait_for(lambda: _journaled_samples_after_info(tmp_path / "reset.npz.journal") >= 1500, 60, 0.2)
        sim.proc.send_signal(signal.SIGUSR1)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    trial = read_trial(out)
    segs = trial.quality["segments"]
    assert len(segs) == 2 and segs[0]["boot_id"] != segs[1]["boot_id"]
    assert segs[1]["first_device_sample"] == 0
    assert trial.quality["device_resets"] == 1
    assert summary["samples"] + summary["lost_samples"] == 6000
    assert summary["gap_kinds"].count("reset") <= 1


def test_sigkill_mid_recording_then_recover_restores_up_to_the_last_flush(sim_process, tmp_path):
    sim = sim_process("--seconds", "60", "--seed", "11")
    out = tmp_path / "killed.npz"
    proc = subprocess.Popen(steplab_cmd("record", "--device", sim.port, "--seconds", "30", "--out", str(out), "--json"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = tmp_path / "killed.npz.journal"
    assert wait_for(lambda: journal.exists() and journal.stat().st_size > 50_000, 30)
    time.sleep(3.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert not out.exists()
    rec = tmp_path / "recovered.npz"
    r = subprocess.run(steplab_cmd("recover", str(journal), "--out", str(rec), "--json"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["lost_samples"] == 0 and summary["samples"] > 3000
    trial = read_trial(rec)
    np.testing.assert_array_equal(trial.sample_index, np.arange(summary["samples"]))
    np.testing.assert_array_equal(trial.counts, _expected_counts(trial, seed=11))
    # recovering twice gives the same trial
    r2 = subprocess.run(steplab_cmd("recover", str(journal), "--out", str(tmp_path / "again.npz"), "--json"),
                        capture_output=True, text=True, timeout=60)
    assert json.loads(r2.stdout)["samples"] == summary["samples"]


def _one_line_error(r):
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_a_nonexistent_port_is_a_one_line_error(tmp_path):
    r = subprocess.run(steplab_cmd("record", "--device", "/dev/does-not-exist", "--seconds", "1", "--out", str(tmp_path / "x.npz")),
                       capture_output=True, text=True, timeout=60)
    assert "no such port" in _one_line_error(r)
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "x.npz.journal").exists()


def _pty_pair():
    import tty
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, os.ttyname(slave), slave


def test_a_port_that_sends_only_garbage_is_a_one_line_error(tmp_path):
    master, name, slave = _pty_pair()
    import threading
    os.set_blocking(master, False)  # once the recorder has gone nobody reads: a full pty must not block the writer
    stop = threading.Event()

    def spew():
        rng = np.random.default_rng(0)
        while not stop.is_set():
            try:
                os.write(master, rng.integers(1, 256, 512).astype(np.uint8).tobytes())  # like a wrong baud rate
            except OSError:  # EAGAIN (full: nobody reads) or the pty is gone
                pass
            stop.wait(0.01)

    t = threading.Thread(target=spew, daemon=True)
    t.start()
    try:
        r = subprocess.run(steplab_cmd("record", "--device", name, "--seconds", "2", "--out", str(tmp_path / "g.npz")),
                           capture_output=True, text=True, timeout=60)
    finally:
        stop.set()
        t.join(5)
        os.close(master)
        os.close(slave)
    assert not t.is_alive()
    assert "no valid steplab frames" in _one_line_error(r)
    assert not (tmp_path / "g.npz").exists()


def test_a_silent_port_is_a_one_line_error(tmp_path):
    master, name, slave = _pty_pair()
    try:
        r = subprocess.run(steplab_cmd("record", "--device", name, "--seconds", "2", "--out", str(tmp_path / "s.npz")),
                           capture_output=True, text=True, timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert "no data from" in _one_line_error(r)
    assert not (tmp_path / "s.npz").exists()


@pytest.mark.parametrize("args, message", [
    (["--seconds", "0"], "--seconds"),
    (["--seconds", "-3"], "--seconds"),
])
def test_absurd_parameters_are_refused(tmp_path, args, message):
    r = subprocess.run(steplab_cmd("record", "--device", "sim", "--out", str(tmp_path / "a.npz"), *args),
                       capture_output=True, text=True, timeout=60)
    assert message in _one_line_error(r)


def test_ctrl_c_during_the_handshake_exits_130_and_leaves_nothing(tmp_path):
    """The port is open but the rig has not yet said anything: Ctrl-C then is exit 130 with nothing written."""
    master, name, slave = _pty_pair()
    out = tmp_path / "h.npz"
    journal = tmp_path / "h.npz.journal"
    proc = subprocess.Popen(steplab_cmd("record", "--device", name, "--seconds", "5", "--out", str(out)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(journal.exists, 60)  # the session has started: it waits for the rig's first bytes
        proc.send_signal(signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        os.close(master)
        os.close(slave)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert not out.exists() and not journal.exists()


def _journaled_samples_after_info(journal) -> int:
    """Samples journaled after the rig answered the recorder's ``info`` (the recording is under way by then).

    Not after the info frame the device sends at power-up: a port opened late first delivers seconds of
    backlog, from before the recording was armed.
    """
    from steplab.acquisition import protocol
    from steplab.acquisition.frame_decoder import FrameDecoder
    from steplab.acquisition.journal import JournalError, read_journal

    try:
        records = read_journal(journal).records
    except JournalError:
        return 0
    dec, seen, n = FrameDecoder(), False, 0
    for rec in records:
        if rec.kind == b"D":
            chunk = dec.feed(rec.payload)
            n += chunk.n_samples if seen else 0
            seen = seen or any(m.frame_type == protocol.FRAME_TYPE_REPLY and "rig" in m.payload for m in chunk.messages)
    return n


@pytest.mark.parametrize("boot_id", [None, "3735928559"], ids=["fresh-boot-id", "repeated-boot-id"])
def test_a_simulator_killed_and_started_again_is_a_reset_with_its_pause_listed(sim_process, tmp_path, boot_id):
    """Issue 11.1: kill -9 the simulator mid-recording, start it again with the same seed on the same path.

    With a fresh boot id (the fixed simulator) or with the same one (firmware that repeats it): the host
    starts a new segment, drops nothing as a duplicate, and lists the pause as lost; every sample kept is
    the one the device took at that index.
    """
    link = tmp_path / "rig-by-id"
    args = ["--seconds", "100", "--seed", "5", "--link", str(link)] + (["--boot-id", boot_id] if boot_id else [])
    first = sim_process(*args)
    assert wait_for(link.exists, 10)
    out = tmp_path / "u.npz"
    journal = tmp_path / "u.npz.journal"
    proc = subprocess.Popen(steplab_cmd("record", "--device", str(link), "--seconds", "20", "--out", str(out), "--json",
                                        "--reconnect-timeout", "90"),  # a busy machine may take long to restart it
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: _journaled_samples_after_info(journal) >= 8000, 60, 0.2)  # "after 8 s"
        first.proc.kill()  # kill -9: no clean-up, the link is left dangling
        first.proc.wait(10)
        sim_process(*args)  # the same seed, the same subject, the same path
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    trial = read_trial(out)
    q = trial.quality
    segs = q["segments"]
    assert q["device_resets"] == 1 and len(segs) == 2, (trial.meta["ended"], q, stderr)
    assert q["duplicate_samples"] == 0  # the old code dropped ~7,780 new samples as "duplicates"
    assert summary["samples"] + summary["lost_samples"] == 20_000
    assert summary["lost_samples"] > 0 and summary["gaps"]  # the pause is listed, not spliced over
    pause = [g for g in q["gaps"] if g["at_sample"] <= segs[1]["at_sample"] <= g["at_sample"] + g["length"]]
    assert pause and pause[0].get("estimated") and pause[0]["at_sample"] + pause[0]["length"] == segs[1]["at_sample"]
    if boot_id:
        assert segs[0]["boot_id"] == segs[1]["boot_id"] == int(boot_id)
    else:
        assert segs[0]["boot_id"] != segs[1]["boot_id"]
    # every kept sample is the device's sample at its index, in both processes (same seed → same model)
    model = SimulatedRigModel(default_rig(), Subject(body_mass_kg=70.0, involved_limb="left", asymmetry=0.15),
                              scenario="session", seed=5, rate_hz=trial.sample_rate_hz)
    pos = trial.sample_index
    in_second = pos >= segs[1]["at_sample"]
    device_index = np.where(in_second, segs[1]["first_device_sample"] + pos - segs[1]["at_sample"],
                            segs[0]["first_device_sample"] + pos - segs[0]["at_sample"])
    truth = model.read_counts(int(device_index.max()) + 1)
    np.testing.assert_array_equal(trial.counts, truth[device_index])
