"""The `steplab` command: help everywhere, one-line errors, the bench JSON contract."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import steplab_cmd

COMMANDS = ("run", "simulate", "record", "recover", "analyze", "calibrate", "bench")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    r = subprocess.run(steplab_cmd(command, "--help"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "usage: steplab " + command in r.stdout


@pytest.mark.parametrize("args, message", [
    (["simulate", "--pty", "--rate", "0"], "--rate"),
    (["simulate", "--pty", "--fault-rate", "0.7"], "--fault-rate"),
    (["simulate", "--pty", "--seconds", "-1"], "--seconds"),
    (["simulate", "--pty", "--rig", "/nonexistent/rig.json"], "cannot read rig file"),
    (["run", "--port", "70000"], "--port"),
    (["run", "--host", "not an address"], "--host"),
    (["recover", "/nonexistent.journal", "--out", "x.npz"], "does not exist"),
    (["record", "--device", "usb:zz:01", "--seconds", "1", "--out", "x.npz"], "hexadecimal"),
    # issue 11.8: NaN is not a length of time (it ran forever)
    (["simulate", "--pty", "--seconds", "nan"], "--seconds"),
    (["simulate", "--pty", "--seconds", "inf"], "--seconds"),
    (["simulate", "--pty", "--unplug-after", "nan"], "--unplug-after"),
    (["simulate", "--pty", "--reset-after", "nan"], "--reset-after"),
    (["simulate", "--pty", "--unplug-for", "inf"], "--unplug-for"),
    (["simulate", "--pty", "--boot-id", "0"], "--boot-id"),
    (["simulate", "--pty", "--boot-id", str(2**32)], "--boot-id"),
    (["record", "--device", "sim", "--seconds", "nan", "--out", "x.npz"], "--seconds"),
    # issue 11.7: the in-process simulated rig ignored these (rc 0, record written)
    *[(["calibrate", "--device", "sim", "--auto", "--warmup-s", v, "--out", "c.json"], "--warmup-s")
      for v in ("nan", "-1", "1e9")],
    *[(["calibrate", "--device", "sim", "--auto", "--settle-timeout", v, "--out", "c.json"], "--settle-timeout")
      for v in ("0", "-5", "nan")],
    (["calibrate", "--device", "/dev/nonexistent-port", "--plate", "box", "--warmup-s", "nan"], "--warmup-s"),
])
def test_bad_input_is_one_line_on_stderr_and_nonzero(tmp_path, args, message):
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run(steplab_cmd(*args), capture_output=True, text=True, timeout=60, cwd=work)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert list(work.iterdir()) == []


def test_a_bad_rig_file_is_refused(tmp_path):
    rig = tmp_path / "rig.json"
    rig.write_text(json.dumps({"format": "steplab-rig", "name": "x", "channels": 4, "sample_rate_hz": 1000,
                               "plates": [{"name": "p", "width_mm": 1, "length_mm": 1, "centre_mm": [0, 0, 0],
                                           "cells": [{"name": "a", "channel": 9, "x_mm": 0, "y_mm": 0}] * 4}]}))
    r = subprocess.run(steplab_cmd("simulate", "--pty", "--rig", str(rig)), capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "channel 9" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_bench_quick_prints_the_contracted_json():
    r = subprocess.run(steplab_cmd("bench", "--quick", "--json"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for key in ("frames_per_s", "reference_frames_per_s", "speedup"):
        assert isinstance(d["dsp"][key], float) and d["dsp"][key] > 0
    assert abs(d["dsp"]["speedup"] - d["dsp"]["frames_per_s"] / d["dsp"]["reference_frames_per_s"]) < 1e-6 * d["dsp"]["speedup"]
    assert isinstance(d["decoder"]["bytes_per_s"], float) and d["decoder"]["bytes_per_s"] > 0
    assert d["streaming"]["p99_ms"] > 0


@pytest.mark.parametrize("args", [
    ["calibrate", "--device", "sim", "--auto", "--out", "EXISTING"],
    ["recover", "some.journal", "--out", "EXISTING"],
    ["record", "--device", "sim", "--seconds", "1", "--out", "EXISTING"],
])
def test_an_existing_out_file_is_refused_and_left_untouched(tmp_path, args):
    """Issue 11.2: `calibrate --out` replaced a record silently."""
    work = tmp_path / "work"
    work.mkdir()
    existing = work / "existing.json"
    existing.write_text("a colleague's file")
    (work / "some.journal").write_bytes(b"")
    r = subprocess.run(steplab_cmd(*[str(existing) if a == "EXISTING" else a for a in args]), capture_output=True,
                       text=True, timeout=120, cwd=work)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "already exists" in lines[0], r.stderr
    assert existing.read_text() == "a colleague's file"
    assert sorted(p.name for p in work.iterdir()) == ["existing.json", "some.journal"]


def test_a_reader_that_goes_away_is_a_quiet_exit_not_a_traceback(tmp_path):
    """`steplab simulate --pty | head -1` style: stdout closed early ends the command quietly (exit 128 + SIGPIPE)."""
    import signal

    proc = subprocess.Popen(steplab_cmd("simulate", "--pty", "--seconds", "30", "--link", str(tmp_path / "rig")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # nobody reads the "port: ..." line
    try:
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 128 + signal.SIGPIPE, stderr
    assert b"Traceback" not in stderr and stderr.strip() == b""
    assert not (tmp_path / "rig").exists()  # the simulator cleaned up its link on the way out
