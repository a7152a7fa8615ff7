"""Recording when things go wrong: a silent rig, another device on the port, Ctrl-C, a full disk,
a damaged journal, absurd lengths.  Each ends with a clear message and nothing lost or left behind."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time

import numpy as np
import pytest
from conftest import steplab_cmd, wait_for

from steplab.acquisition import protocol
from steplab.acquisition.journal import JournalWriter, read_journal
from steplab.acquisition.recorder import recover
from steplab.acquisition.rig import default_rig
from steplab.acquisition.trial_file import read_trial

pytestmark = pytest.mark.slow


def _one_line(r):
    """The one error line (warnings printed before it, e.g. 'no calibration', are separate lines)."""
    lines = [ln for ln in r.stderr.strip().splitlines() if ": warning: " not in ln]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_a_rig_that_goes_silent_ends_the_recording_with_the_rest_listed_as_lost(sim_process, tmp_path):
    sim = sim_process("--seconds", "60", "--seed", "3")
    out = tmp_path / "silent.npz"
    proc = subprocess.Popen(steplab_cmd("record", "--device", sim.port, "--seconds", "20", "--out", str(out),
                                        "--json", "--reconnect-timeout", "1.5"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = tmp_path / "silent.npz.journal"
    # the rig hangs once bytes are flowing and the recording has had time to arm (the first bytes
    # are the simulator's backlog, which arrive before the handshake's answer)
    assert wait_for(lambda: journal.exists() and journal.stat().st_size > 50_000, 60)
    time.sleep(3.0)
    os.kill(sim.proc.pid, signal.SIGSTOP)  # the rig hangs: the port stays open, nothing arrives
    try:
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        os.kill(sim.proc.pid, signal.SIGCONT)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["samples"] + summary["lost_samples"] == 20_000
    assert summary["gap_kinds"][-1] == "stalled" and 0 < summary["samples"] < 20_000
    trial = read_trial(out)
    assert trial.meta["ended"] == "stalled" and trial.quality["stalls"] >= 1


def test_another_device_on_the_port_after_an_unplug_ends_the_recording(sim_process, tmp_path):
    rig_b = default_rig().to_dict()
    rig_b["serial"] = "SIM-0099"  # a different rig unit
    (tmp_path / "rig_b.json").write_text(json.dumps(rig_b))
    sim_a = sim_process("--seconds", "60", "--seed", "1")
    link = tmp_path / "rig"
    os.symlink(sim_a.port, link)
    out = tmp_path / "a.npz"
    proc = subprocess.Popen(steplab_cmd("record", "--device", str(link), "--seconds", "20", "--out", str(out), "--json"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = tmp_path / "a.npz.journal"
    # unplug once bytes are flowing and the recording has had time to arm (not after a fixed time
    # from the start: a busy machine starts slower)
    assert wait_for(lambda: journal.exists() and journal.stat().st_size > 50_000, 60)
    time.sleep(3.0)
    sim_a.stop()  # unplugged
    sim_b = sim_process("--seconds", "60", "--seed", "99", "--rig", str(tmp_path / "rig_b.json"))
    link.unlink()
    os.symlink(sim_b.port, link)  # another device now answers on the same path
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    trial = read_trial(out)
    assert trial.meta["ended"] == "foreign_device" and trial.meta["foreign_device"]["serial"] == "SIM-0099"
    assert trial.quality["device_resets"] == 0 and len(trial.quality["segments"]) == 1  # nothing of B mixed in
    assert summary["samples"] + summary["lost_samples"] == 20000 and 0 < summary["samples"] < 20000


def test_ctrl_c_writes_the_partial_trial_and_says_so(sim_process, tmp_path):
    sim = sim_process("--seconds", "60", "--seed", "4")
    out = tmp_path / "partial.npz"
    proc = subprocess.Popen(steplab_cmd("record", "--device", sim.port, "--seconds", "30", "--out", str(out)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = tmp_path / "partial.npz.journal"
    assert wait_for(lambda: journal.exists() and journal.stat().st_size > 50_000, 20)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted after" in stderr and str(out) in stderr
    trial = read_trial(out)
    assert trial.meta["ended"] == "interrupted" and trial.quality["lost_samples"] == 0
    assert 2.0 < trial.duration_s < 20.0
    assert [r.event["event"] for r in read_journal(journal).records if r.kind == b"E"][-1] == "stopped"


def test_a_full_disk_is_a_one_line_error_and_the_journal_is_recoverable(tmp_path):
    out = tmp_path / "full.npz"

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))  # writes beyond 150 kB fail (EFBIG)

    # the in-process simulated rig: no backlog of a port opened late (that could fill 150 kB before the
    # rig has described itself, and then nothing was recorded and nothing is left to recover)
    r = subprocess.run(steplab_cmd("record", "--device", "sim", "--seconds", "8", "--out", str(out)),
                       capture_output=True, text=True, timeout=60, preexec_fn=small_disk)
    assert r.returncode == 2
    line = _one_line(r)
    assert "cannot write the journal" in line and "steplab recover" in line
    back = tmp_path / "back.npz"
    _trial, summary = recover(tmp_path / "full.npz.journal", back)
    assert summary["samples"] > 1000 and summary["lost_samples"] == 0


def test_a_damaged_journal_record_becomes_an_exact_gap_and_the_rest_is_recovered(tmp_path):
    rig = default_rig()
    frames = [protocol.encode_data_frame(boot_id=5, seq=k, first_sample=10 * k, device_time_us=0,
                                         counts=np.full((10, 12), k, np.int32)) for k in range(300)]
    info = protocol.encode_message_frame(protocol.FRAME_TYPE_REPLY, boot_id=5, seq=0, payload={
        "id": 1, "ok": True, "rig": rig.to_dict(), "rate_hz": 1000.0, "channels": 12, "serial": rig.serial,
        "firmware": "test"})
    path = tmp_path / "t.journal"
    with JournalWriter(path, header={"seconds": 60}) as j:
        j.append(info, t_ns=1)
        for k in range(0, 300, 10):
            j.append(b"".join(frames[k:k + 10]), t_ns=2 + k)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x10  # one flipped bit on disk, in the middle
    path.write_bytes(bytes(raw))
    contents = read_journal(path)
    assert contents.corrupt_bytes > 0 and contents.torn_tail_bytes == 0
    trial, summary = recover(path, tmp_path / "t.npz")
    assert summary["samples"] + summary["lost_samples"] == 3000  # the timeline reaches the last frame
    assert len(summary["gaps"]) == 1 and summary["gaps"][0]["length"] == 100  # exactly one record of 10 frames
    assert trial.meta["recovered"]["corrupt_bytes"] == contents.corrupt_bytes


def test_a_recording_shorter_than_one_sample_is_refused_and_leaves_nothing(sim_process, tmp_path):
    sim = sim_process("--seconds", "30")
    out = tmp_path / "tiny.npz"
    r = subprocess.run(steplab_cmd("record", "--device", sim.port, "--seconds", "0.0001", "--out", str(out)),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "shorter than one sample" in _one_line(r)
    assert not out.exists() and not (tmp_path / "tiny.npz.journal").exists()


def test_a_calibration_of_another_rig_is_refused_before_recording(sim_process, tmp_path):
    r = subprocess.run(steplab_cmd("calibrate", "--device", "sim", "--auto", "--rig", "split-box", "--plate", "box_left",
                                   "--out", str(tmp_path / "other.json")), capture_output=True, text=True, timeout=120)
    if r.returncode != 0:  # the rig option takes a file: write the split-box rig
        from steplab.acquisition.rig import split_box_rig
        (tmp_path / "split.json").write_text(split_box_rig().to_json())
        r = subprocess.run(steplab_cmd("calibrate", "--device", "sim", "--auto", "--rig", str(tmp_path / "split.json"),
                                       "--plate", "box_left", "--out", str(tmp_path / "other.json")),
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    sim = sim_process("--seconds", "30")
    out = tmp_path / "t.npz"
    t0 = time.monotonic()
    r = subprocess.run(steplab_cmd("record", "--device", sim.port, "--seconds", "20", "--out", str(out),
                                   "--calibration", str(tmp_path / "other.json")), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "SIM-0016" in _one_line(r)
    assert time.monotonic() - t0 < 15  # refused as soon as the device said which rig it is
    assert not out.exists() and not (tmp_path / "t.npz.journal").exists()


def test_a_file_made_at_out_during_the_recording_is_not_replaced_and_the_journal_is_kept(sim_process, tmp_path):
    """Issue 11.2: the existence check at the start is not enough; the final move refuses atomically."""
    sim = sim_process("--seconds", "60", "--seed", "8")
    out = tmp_path / "r.npz"
    proc = subprocess.Popen(steplab_cmd("record", "--device", sim.port, "--seconds", "6", "--out", str(out)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = tmp_path / "r.npz.journal"
    assert wait_for(lambda: journal.exists() and journal.stat().st_size > 20_000, 30)
    out.write_bytes(b"a colleague's recovered trial")  # e.g. `steplab recover other.journal --out r.npz`
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    line = _one_line(type("R", (), {"stderr": stderr})())
    assert "already exists" in line and str(journal) in line and "steplab recover" in line
    assert out.read_bytes() == b"a colleague's recovered trial"
    _trial, summary = recover(journal, tmp_path / "elsewhere.npz")  # nothing of the recording is lost
    assert summary["samples"] > 1000
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_a_disk_full_before_the_recording_starts_names_no_journal_that_was_removed(sim_process, tmp_path):
    """Issue 11.8: the message told the operator to recover a journal it had just deleted."""
    sim = sim_process("--seconds", "60", "--seed", "6")
    out = tmp_path / "early.npz"
    journal = tmp_path / "early.npz.journal"

    def tiny_disk():
        # the journal's header fits; the device's first info frame (its rig description, > 1 kB) does not
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    r = subprocess.run(steplab_cmd("record", "--device", sim.port, "--seconds", "8", "--out", str(out)),
                       capture_output=True, text=True, timeout=60, preexec_fn=tiny_disk)
    assert r.returncode == 2
    line = _one_line(r)
    assert "cannot write the journal" in line, line  # the first data, not the journal's creation, failed
    assert not journal.exists() and not out.exists()
    assert "steplab recover" not in line  # nothing to recover: the journal is gone


def _journal_with_data(path, *, stopped_reason=None):
    rig = default_rig()
    info = protocol.encode_message_frame(protocol.FRAME_TYPE_REPLY, boot_id=5, seq=0, payload={
        "id": 1, "ok": True, "rig": rig.to_dict(), "rate_hz": 1000.0, "channels": 12, "serial": rig.serial,
        "firmware": "test"})
    frames = b"".join(protocol.encode_data_frame(boot_id=5, seq=k + 1, first_sample=10 * k, device_time_us=10_000 * k,
                                                 counts=np.full((10, 12), k, np.int32)) for k in range(100))
    with JournalWriter(path, header={"seconds": 60}) as j:
        j.append(info + frames, t_ns=1)
        if stopped_reason:
            j.event("stopped", reason=stopped_reason)


@pytest.mark.parametrize("stopped, ended", [(None, "journal_ended"), ("terminated", "terminated"),
                                            ("complete", "complete")])
def test_a_recovered_trial_says_how_its_recording_ended(tmp_path, stopped, ended):
    """Issue 11.8: recovered trials had no `ended` key although trial_file.md lists it."""
    _journal_with_data(tmp_path / "j.journal", stopped_reason=stopped)
    trial, _ = recover(tmp_path / "j.journal", tmp_path / "t.npz")
    assert trial.meta["ended"] == ended
    assert read_trial(tmp_path / "t.npz").meta["ended"] == ended
