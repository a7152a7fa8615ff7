"""Stop signals: SIGTERM, SIGHUP and Ctrl-C (twice) end a recording in order, with the partial trial complete.

Every child gets its signal dispositions from the test itself (``preexec_fn``), never from whatever
started pytest (a ``nohup`` or a CI runner that ignores SIGHUP or SIGINT).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import steplab_cmd, wait_for

from steplab.acquisition import protocol
from steplab.acquisition.frame_decoder import FrameDecoder
from steplab.acquisition.journal import JournalError, read_journal
from steplab.acquisition.recorder import recover
from steplab.acquisition.rig import default_rig
from steplab.acquisition.sim_rig import SimulatedRigModel
from steplab.acquisition.sim_subject import Subject
from steplab.acquisition.stop_signals import STOP_REASONS, StopSignals
from steplab.acquisition.trial_file import read_trial

STOP = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


# -- the module in this process ----------------------------------------------------------------------

@pytest.fixture
def saved_dispositions():
    saved = {s: signal.getsignal(s) for s in STOP}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def test_the_first_signal_is_a_stop_request_with_its_reason_and_exit_code(saved_dispositions):
    for sig in STOP:
        signal.signal(sig, signal.SIG_DFL)
    with StopSignals() as stop:
        assert not stop.is_set() and stop.reason is None and stop.exit_code == 130
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5) and stop.is_set()
        assert (stop.reason, stop.signal_name, stop.exit_code, stop.count) == ("terminated", "SIGTERM", 143, 1)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back as it was


def test_a_second_signal_is_held_and_says_so_on_stderr(saved_dispositions, capfd):
    with StopSignals(repeat_message="already stopping; journal x.journal is kept") as stop:
        os.kill(os.getpid(), signal.SIGHUP)
        assert stop.wait(5)
        os.kill(os.getpid(), signal.SIGINT)  # would be a KeyboardInterrupt without the handler
        assert wait_for(lambda: stop.count == 2, 5)
    assert (stop.reason, stop.exit_code) == ("hangup", 129)  # the first signal decides
    assert "already stopping; journal x.journal is kept" in capfd.readouterr().err


def test_an_inherited_ignore_is_kept(saved_dispositions):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with StopSignals() as stop:
        assert stop.ignored == (signal.SIGINT,)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)
        assert not stop.wait(0.2)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_a_stop_asked_without_a_signal_and_bad_arguments():
    stop = StopSignals()
    stop.request("stalled")
    assert stop.is_set() and stop.reason == "stalled" and stop.signal_name is None and stop.exit_code == 130
    with pytest.raises(ValueError):
        StopSignals((signal.SIGUSR1,))
    assert set(STOP_REASONS.values()) == {"interrupted", "terminated", "hangup"}


# -- steplab record as a process ----------------------------------------------------------------------

def _dispositions(ignore=()):
    def set_them():
        for s in STOP:
            signal.signal(s, signal.SIG_IGN if s in ignore else signal.SIG_DFL)
    return set_them


def _start_record(port, out, seconds, ignore=()):
    return subprocess.Popen(steplab_cmd("record", "--device", port, "--seconds", str(seconds), "--out", str(out),
                                        "--json"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_dispositions(ignore))


def _samples_after_the_handshake(journal) -> int:
    """Samples journaled after the rig answered the recorder's ``info`` (the recording is armed by then)."""
    try:
        records = read_journal(journal).records
    except JournalError:
        return 0  # not written yet
    dec, seen_info, n = FrameDecoder(), False, 0
    for rec in records:
        if rec.kind != b"D":
            continue
        chunk = dec.feed(rec.payload)
        if seen_info:
            n += chunk.n_samples
        seen_info = seen_info or any(m.frame_type == protocol.FRAME_TYPE_REPLY and "rig" in m.payload
                                     for m in chunk.messages)
    return n


def _wait_recording(out, min_samples=2000):
    journal = out.with_name(out.name + ".journal")
    assert wait_for(lambda: journal.exists() and _samples_after_the_handshake(journal) >= min_samples, 60, 0.2)
    return journal


def _expected_counts(trial, seed):
    seg = trial.quality["segments"]
    assert len(seg) == 1, seg
    first = seg[0]["first_device_sample"]
    model = SimulatedRigModel(default_rig(), Subject(body_mass_kg=70.0, involved_limb="left", asymmetry=0.15),
                              scenario="session", seed=seed, rate_hz=trial.sample_rate_hz)
    return model.read_counts(first + trial.n_samples)[first:]


def _check_partial_trial(out, journal, seed, ended, tmp_path):
    """The partial trial: every sample up to the stop, in place, the right ones, and the journal closed."""
    trial = read_trial(out)
    assert trial.meta["ended"] == ended
    assert trial.quality["lost_samples"] == 0 and trial.quality["gaps"] == []
    n = trial.n_samples
    assert n > 1000
    np.testing.assert_array_equal(trial.sample_index, np.arange(n))
    np.testing.assert_array_equal(trial.counts, _expected_counts(trial, seed))
    events = [r.event for r in read_journal(journal).records if r.kind == b"E"]
    assert events[-1]["event"] == "stopped" and events[-1]["reason"] == ended
    back, _ = recover(journal, tmp_path / "recovered.npz")  # the journal holds the same samples (and maybe more)
    assert back.n_samples >= n
    np.testing.assert_array_equal(back.counts[:n], trial.counts)
    return trial


@pytest.mark.slow
@pytest.mark.parametrize("sig, ended, code", [(signal.SIGTERM, "terminated", 143), (signal.SIGHUP, "hangup", 129)])
def test_sigterm_and_sighup_write_the_partial_trial_like_ctrl_c(sim_process, tmp_path, sig, ended, code):
    sim = sim_process("--seconds", "90", "--seed", "21")
    out = tmp_path / "stopped.npz"
    proc = _start_record(sim.port, out, 60)
    journal = _wait_recording(out)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    lines = stderr.strip().splitlines()
    assert len([ln for ln in lines if ": warning: " not in ln]) == 1 and "Traceback" not in stderr, stderr
    assert str(out) in stderr and signal.Signals(sig).name in stderr
    summary = json.loads(stdout)
    trial = _check_partial_trial(out, journal, 21, ended, tmp_path)
    assert trial.meta["stop_signal"] == signal.Signals(sig).name
    assert summary["samples"] == trial.n_samples and summary["lost_samples"] == 0


@pytest.mark.slow
def test_ctrl_c_twice_still_writes_the_partial_trial(sim_process, tmp_path):
    sim = sim_process("--seconds", "90", "--seed", "22")
    out = tmp_path / "twice.npz"
    proc = _start_record(sim.port, out, 60)
    journal = _wait_recording(out)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)  # the impatient second Ctrl-C, while the first stop is under way
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted after" in stderr and str(out) in stderr
    _check_partial_trial(out, journal, 22, "interrupted", tmp_path)
    assert json.loads(stdout)["lost_samples"] == 0


@pytest.mark.slow
def test_an_inherited_ignored_sigint_is_kept_and_the_recording_completes(sim_process, tmp_path):
    sim = sim_process("--seconds", "60", "--seed", "23")
    out = tmp_path / "ignored.npz"
    proc = _start_record(sim.port, out, 4, ignore=(signal.SIGINT,))
    _wait_recording(out, 500)
    proc.send_signal(signal.SIGINT)  # as a script run with `trap '' INT` would not notice
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    trial = read_trial(out)
    assert trial.meta["ended"] == "complete" and trial.n_samples + trial.quality["lost_samples"] == 4000


@pytest.mark.slow
def test_a_signal_during_the_handshake_leaves_nothing_behind(tmp_path):
    import tty

    master, slave = os.openpty()  # a port on which no rig answers yet
    tty.setraw(slave)
    out = tmp_path / "early.npz"
    try:
        proc = _start_record(os.ttyname(slave), out, 10)
        journal = out.with_name(out.name + ".journal")
        assert wait_for(journal.exists, 30)  # the recording has begun: waiting for the rig to speak
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 143, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing was written" in lines[0] and "SIGTERM" in lines[0], stderr
    assert not out.exists() and not journal.exists()
    assert list(tmp_path.glob("early*")) == []


def test_the_children_of_these_tests_do_not_inherit_pytests_dispositions():
    """The wrapper sets SIG_DFL itself even when this process ignores a signal."""
    saved = signal.getsignal(signal.SIGHUP)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        code = "import signal; print(signal.getsignal(signal.SIGHUP) is signal.SIG_DFL)"
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                           preexec_fn=_dispositions())
    finally:
        signal.signal(signal.SIGHUP, saved)
    assert r.stdout.strip() == "True"


def _catches(pid: int, sig: int) -> bool:
    """True once process ``pid`` has a handler installed for ``sig`` (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except OSError:
        pass
    return False


@pytest.mark.slow
def test_a_signal_as_soon_as_the_handlers_are_in_place_leaves_nothing_behind(tmp_path):
    """The earliest SIGTERM the recorder can act on (warm-up or handshake): one line, exit 143, no files."""
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    out = tmp_path / "earliest.npz"
    try:
        proc = _start_record(os.ttyname(slave), out, 10)
        assert wait_for(lambda: _catches(proc.pid, signal.SIGTERM) or proc.poll() is not None, 60, 0.01)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 143, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing was written" in lines[0] and "SIGTERM" in lines[0], stderr
    assert list(tmp_path.glob("earliest*")) == []


@pytest.mark.slow
def test_sighup_with_the_terminal_gone_still_writes_the_trial_and_exits_129(sim_process, tmp_path):
    """The clinician closed the terminal: stdout is gone when the summary is printed."""
    sim = sim_process("--seconds", "90", "--seed", "24")
    out = tmp_path / "hup.npz"
    proc = _start_record(sim.port, out, 60)
    journal = _wait_recording(out)
    proc.stdout.close()  # nobody reads the JSON summary any more
    proc.send_signal(signal.SIGHUP)
    try:
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert proc.returncode == 129, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    _check_partial_trial(out, journal, 24, "hangup", tmp_path)
