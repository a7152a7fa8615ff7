"""The reference firmware (rig_docs/firmware) against the host, byte for byte.

- The C tests (``make -C rig_docs/firmware test``) run the firmware code on every
  shared vector of ``rig_docs/firmware/vectors/wire_vectors.txt``.
- The same vectors are read here by the Python decoder and checked against an
  independent encoder written for these tests (struct + zlib + split-at-zero COBS).
- The C encoder and steplab's encoder agree on random frames up to the largest body.
- ``steplab record`` records from ``steplab-fw-host --pty`` (the firmware logic on
  a real pty) with nothing lost, every sample equal to the synthetic bridge signal
  recomputed here in plain Python.
- The target build cross-compiles with arm-none-eabi-gcc and fits the STM32F411CE.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import steplab_cmd, wait_for

from steplab.acquisition import protocol as p
from steplab.acquisition.frame_decoder import FrameDecoder
from steplab.acquisition.rig import Rig
from steplab.acquisition.stream_tracker import StreamTracker
from steplab.acquisition.trial_file import read_trial

REPO = Path(__file__).resolve().parents[1]
FW = REPO / "rig_docs" / "firmware"
VECTORS = FW / "vectors" / "wire_vectors.txt"
FLASH_BYTES = 512 * 1024  # STM32F411CE
RAM_BYTES = 128 * 1024


def _load_vector_module():
    spec = importlib.util.spec_from_file_location("steplab_fw_make_vectors", FW / "vectors" / "make_vectors.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


mv = _load_vector_module()


def _vectors() -> list[dict]:
    return mv.parse(VECTORS.read_text(encoding="utf-8"))


# -- an independent reference, written for these tests ---------------------------------
def ref_cobs(data: bytes) -> bytes:
    out = bytearray()
    runs = data.split(b"\x00")
    for i, run in enumerate(runs):
        last = i == len(runs) - 1
        while len(run) >= 254:
            out += b"\xff" + run[:254]
            run = run[254:]
            if not run and last:
                return bytes(out)
        out += bytes([len(run) + 1]) + run
    return bytes(out)


def ref_frame(ftype: int, flags: int, boot: int, seq: int, first: int, t_us: int, ch: int, ns: int, payload: bytes) -> bytes:
    body = struct.pack("<BBHIIQQHH", 1, ftype, flags, boot, seq, first, t_us, ch, ns) + payload
    body += struct.pack("<I", zlib.crc32(body))
    return ref_cobs(body) + b"\x00"


def ref_synthetic(n: int, c: int, rate: int, channels: int, clip_every: int = 0) -> int:
    """The host build's synthetic bridge signal, one value, plain integers (rig_docs/firmware.md)."""
    def lowbias32(x: int) -> int:
        x &= 0xFFFFFFFF
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        x ^= x >> 16
        return x

    if clip_every and n > 0 and n % clip_every == 0 and c == 0:
        return 2**23 - 1
    period, ramp, a = 2 * rate, rate // 5, 2_746_000
    cycle = n % period
    if cycle < ramp:
        amp = a * cycle // ramp
    elif cycle < rate:
        amp = a
    elif cycle < rate + ramp:
        amp = a * (rate + ramp - cycle) // ramp
    else:
        amp = 0
    loaded = (n // period) % ((channels + 3) // 4)
    v = 20000 + 1500 * c
    if c // 4 == loaded:
        v += amp * (4 + c % 4) // 22
    return v + lowbias32(n * 64 + c) % 61 - 30


def ref_synthetic_block(index: np.ndarray, rate: int, channels: int, clip_every: int = 0) -> np.ndarray:
    return np.array([[ref_synthetic(int(n), c, rate, channels, clip_every) for c in range(channels)] for n in index],
                    dtype=np.int64).reshape(len(index), channels)


# -- building ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fw_build(tmp_path_factory) -> Path:
    """The host build and the C test runner, built by the firmware's Makefile into a fresh folder."""
    build = tmp_path_factory.mktemp("fw-build")
    r = subprocess.run(["make", "-s", "-C", str(FW), f"BUILD={build}", "host", f"{build}/fw-tests"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (build / "steplab-fw-host").is_file() and (build / "fw-tests").is_file()
    return build


def test_the_vector_file_is_what_the_generator_writes():
    assert VECTORS.read_text(encoding="utf-8") == mv.render(mv.build_vectors())


def test_c_tests_pass_on_every_shared_vector(fw_build):
    r = subprocess.run([str(fw_build / "fw-tests"), str(VECTORS)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"(\d+) unit checks, (\d+) vectors, 0 failures", r.stdout)
    assert m and int(m.group(2)) == len(_vectors()) >= 30 and int(m.group(1)) > 300, r.stdout


def test_c_tests_fail_when_one_expected_byte_is_wrong(fw_build, tmp_path):
    text = VECTORS.read_text(encoding="utf-8")
    vs = _vectors()
    target = next(v for v in vs if v["name"] == "overrun_drops_the_oldest_and_flags")
    wire = bytearray.fromhex(target["wire"])
    wire[len(wire) // 2] ^= 0x10
    bad = tmp_path / "bad.txt"
    bad.write_text(text.replace(target["wire"], wire.hex()), encoding="utf-8")
    r = subprocess.run([str(fw_build / "fw-tests"), str(bad)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "overrun_drops_the_oldest_and_flags" in r.stderr and "1 failures" in r.stdout


def test_the_firmware_emits_exactly_the_expected_bytes_of_every_vector(fw_build):
    r = subprocess.run([str(fw_build / "fw-tests"), "--emit", str(VECTORS)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    emitted = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    for v in _vectors():
        assert emitted[v["name"]] == v["wire"], v["name"]


# -- the vectors read by the Python decoder, independently of the C code ---------------------
def _decode_one(wire: bytes):
    dec = FrameDecoder()
    chunk = dec.feed(wire)
    assert dec.pending == 0 and chunk.crc_errors == chunk.malformed == chunk.oversize == chunk.bytes_discarded == 0
    return chunk


def test_cobs_vectors_match_the_reference_and_decode_back():
    vs = [v for v in _vectors() if v["kind"] == "cobs"]
    assert len(vs) >= 6
    for v in vs:
        raw, wire = bytes.fromhex(v["raw"]), bytes.fromhex(v["wire"])
        assert wire == ref_cobs(raw) and 0 not in wire, v["name"]
        assert p.cobs_decode(wire) == raw, v["name"]


def test_data_vectors_decode_to_their_inputs():
    vs = [v for v in _vectors() if v["kind"] == "data"]
    assert {"protocol_md_example", "largest_firmware_frame", "clipping_positive_rail", "clipping_negative_rail",
            "overrun_flag", "seq_at_wrap", "largest_counters"} <= {v["name"] for v in vs}
    for v in vs:
        ch, ns = int(v["channels"]), int(v["samples"])
        counts = np.array([int(x) for x in v["counts"].split()], dtype=np.int64).reshape(ns, ch)
        clipped = np.clip(counts, -(2**23), 2**23 - 1)
        rail = bool(((clipped == 2**23 - 1) | (clipped == -(2**23))).any())
        flags = int(v["flags"]) | (p.FLAG_CLIPPING if rail else 0)
        payload = b"".join(int(x).to_bytes(3, "little", signed=True) for x in clipped.ravel())
        wire = bytes.fromhex(v["wire"])
        assert wire == ref_frame(1, flags, int(v["boot_id"]), int(v["seq"]), int(v["first_sample"]),
                                 int(v["device_time_us"]), ch, ns, payload), v["name"]
        chunk = _decode_one(wire)
        fr = chunk.frames
        assert fr.shape[0] == 1 and not chunk.messages, v["name"]
        got = (int(fr["boot_id"][0]), int(fr["seq"][0]), int(fr["first_sample"][0]), int(fr["device_time_us"][0]),
               int(fr["flags"][0]), int(fr["channels"][0]), int(fr["samples"][0]))
        assert got == (int(v["boot_id"]), int(v["seq"]), int(v["first_sample"]), int(v["device_time_us"]), flags, ch, ns)
        np.testing.assert_array_equal(chunk.counts, clipped)
    md = next(v for v in vs if v["name"] == "protocol_md_example")
    doc = (REPO / "rig_docs" / "protocol.md").read_text(encoding="utf-8")
    block = doc.split("<!-- hexdump-wire -->", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    doc_wire = bytes.fromhex("".join(line.split(":", 1)[1] for line in block.strip().splitlines()))
    assert bytes.fromhex(md["wire"]) == doc_wire  # the firmware reproduces protocol.md's worked example


def test_message_vectors_decode_to_their_inputs():
    vs = [v for v in _vectors() if v["kind"] == "message"]
    assert len(vs) >= 3
    for v in vs:
        wire = bytes.fromhex(v["wire"])
        assert wire == ref_frame(int(v["frame_type"]), int(v["flags"]), int(v["boot_id"]), int(v["seq"]), 0,
                                 int(v["device_time_us"]), 0, 0, v["payload"].encode("utf-8")), v["name"]
        (msg,) = _decode_one(wire).messages
        assert (msg.frame_type, msg.boot_id, msg.seq, msg.device_time_us, msg.flags) == (
            int(v["frame_type"]), int(v["boot_id"]), int(v["seq"]), int(v["device_time_us"]), int(v["flags"]))
        assert msg.payload == json.loads(v["payload"])


def _exchange(name: str):
    v = next(v for v in _vectors() if v["name"] == name)
    chunk = _decode_one(bytes.fromhex(v["wire"]))
    return v, chunk


def _check_data_is_the_synthetic_signal(v: dict, chunk, clip_every: int = 0, rate_of=None) -> None:
    """Every sample is the synthetic signal at its index; ``rate_of(n)`` the rate sample n was taken at."""
    channels = int(v["channels"])
    for run in chunk.data_runs():
        for fr in run.frames:
            first, ns, off = int(fr["first_sample"]), int(fr["samples"]), int(fr["offset"])
            want = np.array([[ref_synthetic(n, c, rate_of(n) if rate_of else int(v["rate_hz"]), channels, clip_every)
                              for c in range(channels)] for n in range(first, first + ns)])
            np.testing.assert_array_equal(run.counts[off:off + ns], want)
            rail = bool((want >= 2**23 - 1).any())
            assert bool(fr["flags"] & p.FLAG_CLIPPING) == rail


def _seqs_in_order(chunk) -> list[tuple[int, int]]:
    items = [(int(fr["boot_id"]), int(fr["seq"])) for run in chunk.data_runs() for fr in run.frames]
    items += [(m.boot_id, m.seq) for m in chunk.messages]
    return items


def test_exchange_power_up_announces_info_first_then_data_and_status():
    v, chunk = _exchange("power_up_info_then_data_and_status")
    info, status = chunk.messages
    assert info.frame_type == p.FRAME_TYPE_INFO and info.seq == 0 and info.device_time_us == 0
    assert info.payload["boot_id"] == 0x11111111 == info.boot_id and info.payload["firmware"] == "steplab-fw 1.0.0"
    assert info.payload["rig"]["name"] == "vector-rig"
    assert info.payload["channels"] == 12 and info.payload["samples_per_frame"] == 10 and info.payload["rate_hz"] == 1000
    assert status.frame_type == p.FRAME_TYPE_STATUS and status.payload == {
        "uptime_s": 1.0, "overruns": 0, "streaming": True, "rate_hz": 1000}
    assert chunk.frames["first_sample"].tolist() == [0, 10, 20] and chunk.frames["seq"].tolist() == [1, 2, 4]
    assert chunk.frames["device_time_us"].tolist() == [0, 10_000, 20_000]
    assert sorted(s for _, s in _seqs_in_order(chunk)) == list(range(5))  # every frame numbered, none skipped
    _check_data_is_the_synthetic_signal(v, chunk)


def test_exchange_commands_get_replies_with_their_ids():
    v, chunk = _exchange("commands_and_replies")
    replies = {m.payload["id"]: m.payload for m in chunk.messages if m.frame_type == p.FRAME_TYPE_REPLY}
    assert sorted(replies) == list(range(1, 12))
    assert replies[1]["ok"] and replies[1]["rate_hz"] == 1000 and replies[1]["boot_id"] == 0x22222222
    assert replies[2] == {"id": 2, "ok": True, "rate_hz": 2000}
    for bad in (3, 4, 5, 6, 7):
        assert replies[bad]["ok"] is False and replies[bad]["error"], replies[bad]
    assert "3000 Hz is not supported" in replies[3]["error"] and "unknown command 'spin'" == replies[7]["error"]
    assert replies[8] == {"id": 8, "ok": True, "streaming": False}
    assert replies[9] == {"id": 9, "ok": True, "streaming": True}
    assert replies[11]["rate_hz"] == 2000 and replies[11]["samples_per_frame"] == 20
    # the index runs on seamlessly through set_rate, stop and start; frames shorten only where the rate changed or streaming stopped
    tracker = StreamTracker()
    ev = tracker.update(chunk)
    assert tracker.lost_samples == 0 and not ev.gaps and tracker.resets == 0
    fs, ns = chunk.frames["first_sample"], chunk.frames["samples"]
    assert (fs[1:] == fs[:-1] + ns[:-1]).all() and ns.tolist() == [10, 5, 20, 20, 7, 20]
    # the script changes the rate to 2 kHz after sample 15 (the later set_rate commands are refused)
    _check_data_is_the_synthetic_signal(v, chunk, rate_of=lambda n: 1000 if n < 15 else 2000)


def test_exchange_damaged_commands_get_no_reply():
    _, chunk = _exchange("damaged_commands_are_not_answered")
    replies = [m.payload for m in chunk.messages if m.frame_type == p.FRAME_TYPE_REPLY]
    assert replies == [{"id": 2, "ok": True}]


def test_exchange_reset_starts_a_new_segment_from_zero():
    v, chunk = _exchange("reset_restarts_boot_seq_index_and_time")
    infos = [m for m in chunk.messages if m.frame_type == p.FRAME_TYPE_INFO]
    assert [(m.boot_id, m.seq, m.device_time_us) for m in infos] == [(0x44444444, 0, 0), (0x55555555, 0, 0)]
    tracker = StreamTracker()
    ev = tracker.update(chunk)
    assert tracker.resets == 1 and ev.resets[0].new_boot_id == 0x55555555 and tracker.lost_samples == 0
    last = chunk.frames[-1]
    assert (int(last["boot_id"]), int(last["seq"]), int(last["first_sample"]), int(last["device_time_us"])) == (0x55555555, 1, 0, 0)
    _check_data_is_the_synthetic_signal(v, chunk)


def test_exchange_overrun_leaves_an_exact_flagged_gap():
    v, chunk = _exchange("overrun_drops_the_oldest_and_flags")
    tracker = StreamTracker()
    ev = tracker.update(chunk)
    assert [(g.at_sample, g.length, g.device_overrun) for g in ev.gaps] == [(10, 30, True)]
    assert chunk.frames["flags"].tolist() == [0, p.FLAG_OVERRUN, 0, 0]
    status = [m.payload for m in chunk.messages if m.frame_type == p.FRAME_TYPE_STATUS]
    assert status == [{"uptime_s": 1.0, "overruns": 30, "streaming": True, "rate_hz": 1000}]
    _check_data_is_the_synthetic_signal(v, chunk)


def test_exchange_seq_wrap_is_not_a_reset():
    _, chunk = _exchange("seq_wraps_inside_a_boot")
    assert chunk.frames["seq"].tolist() == [2**32 - 2, 2**32 - 1, 0]
    tracker = StreamTracker()
    tracker.update(chunk)
    assert tracker.seq_wraps == 1 and tracker.resets == 0 and tracker.lost_samples == 0


def test_exchange_clipping_and_sixteen_channels():
    v, chunk = _exchange("clipping_through_the_device")
    assert (chunk.frames["flags"] & p.FLAG_CLIPPING).tolist() == [0, 1, 1]
    _check_data_is_the_synthetic_signal(v, chunk, clip_every=13)
    v, chunk = _exchange("sixteen_channels_4khz_simulated")
    assert chunk.counts.shape == (80, 16) and chunk.frames["samples"].tolist() == [40, 40]
    assert all(m.flags & p.FLAG_SIMULATED for m in chunk.messages) and (chunk.frames["flags"] & p.FLAG_SIMULATED).all()
    assert chunk.messages[-1].payload["simulated"] is True and chunk.messages[-1].payload["samples_per_frame"] == 40
    _check_data_is_the_synthetic_signal(v, chunk)


def test_exchange_device_time_beyond_32_bits():
    _, chunk = _exchange("device_time_beyond_32_bits")
    assert int(chunk.frames["device_time_us"][0]) == 5_000_000_000
    status = next(m for m in chunk.messages if m.frame_type == p.FRAME_TYPE_STATUS)
    assert status.device_time_us == 5_000_000_000 and status.payload["uptime_s"] == 5000.0


# -- the C encoder and steplab's encoder on random frames ------------------------------------
def test_c_and_python_encoders_agree_on_random_frames_up_to_the_largest_body(fw_build, tmp_path):
    rng = np.random.default_rng(7)
    shapes = [(1, 1), (1, 21833), (21833, 1), (40, 16), (10, 12)] + [
        (int(rng.integers(1, 60)), int(rng.integers(1, 40))) for _ in range(60)]
    lines, expected = [], {}
    for i, (ns, ch) in enumerate(shapes):
        counts = rng.integers(-(2**23) - 5, 2**23 + 5, size=(ns, ch))
        if i % 3 == 0:
            counts = np.clip(counts, -(2**23) + 1, 2**23 - 2)  # some frames without any rail value
        hdr = dict(boot_id=int(rng.integers(1, 2**32)), seq=int(rng.integers(0, 2**32)),
                   first_sample=int(rng.integers(0, 2**63)), device_time_us=int(rng.integers(0, 2**63)),
                   flags=int(rng.integers(0, 8)))
        name = f"random_{i}"
        expected[name] = p.encode_data_frame(counts=counts, **hdr)
        lines += [f"[{name}]", "kind = data", *(f"{k} = {val}" for k, val in hdr.items()),
                  f"channels = {ch}", f"samples = {ns}", "counts = " + " ".join(map(str, counts.ravel())), ""]
    for i in range(20):
        payload = {"level": "info", "msg": "x" * int(rng.integers(0, 3000)), "n": int(rng.integers(0, 2**53))}
        text = json.dumps(payload, separators=(",", ":"))
        hdr = dict(frame_type=int(rng.integers(2, 8)), boot_id=int(rng.integers(0, 2**32)),
                   seq=int(rng.integers(0, 2**32)), device_time_us=int(rng.integers(0, 2**63)), flags=int(rng.integers(0, 8)))
        name = f"random_msg_{i}"
        expected[name] = p.encode_message_frame(hdr["frame_type"], boot_id=hdr["boot_id"], seq=hdr["seq"],
                                                payload=payload, device_time_us=hdr["device_time_us"], flags=hdr["flags"])
        lines += [f"[{name}]", "kind = message", *(f"{k} = {val}" for k, val in hdr.items()), f"payload = {text}", ""]
    path = tmp_path / "random.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    r = subprocess.run([str(fw_build / "fw-tests"), "--emit", str(path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert set(got) == set(expected)
    for name, wire in expected.items():
        assert got[name] == wire.hex(), name
    assert len(expected["random_1"]) > 65535  # a 65 535-byte body: the protocol's largest frame


# -- the host build on a real pty, recorded by steplab record ----------------------------------
class FwHost:
    """`steplab-fw-host --pty ...` as a process; ``port`` from its first line."""

    def __init__(self, exe: Path, *args: str):
        self.proc = subprocess.Popen([str(exe), "--pty", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        line = self.readline(10.0)
        if not line.startswith("port: "):
            self.stop()
            raise AssertionError(f"steplab-fw-host did not announce a port: {line!r}")
        self.port = line.split(":", 1)[1].strip()

    def readline(self, timeout_s: float) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if ready else ""
        self.lines.append(line)
        return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def fw_host(fw_build):
    started: list[FwHost] = []

    def start(*args: str) -> FwHost:
        h = FwHost(fw_build / "steplab-fw-host", *args)
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop()


def _record(port: str, seconds: float, out: Path) -> dict:
    r = subprocess.run(steplab_cmd("record", "--device", port, "--seconds", str(seconds), "--out", str(out), "--json"),
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _expected_trial_counts(trial, rate: int, channels: int, clip_every: int = 0) -> np.ndarray:
    """Per segment: the synthetic signal at the device sample indices of the trial's samples."""
    parts = []
    segs = trial.quality["segments"]
    pos = trial.sample_index
    bounds = [s["at_sample"] for s in segs] + [2**62]
    for k, s in enumerate(segs):
        sel = pos[(pos >= bounds[k]) & (pos < bounds[k + 1])]
        parts.append(ref_synthetic_block(s["first_device_sample"] + sel - bounds[k], rate, channels, clip_every))
    return np.concatenate(parts)


@pytest.mark.slow
def test_steplab_record_from_the_firmware_host_build_loses_nothing(fw_host, tmp_path):
    host = fw_host("--seconds", "120", "--boot-id", "0x5eed1234", "--clip-every", "1500")
    out = tmp_path / "fw.npz"
    summary = _record(host.port, 5, out)
    assert summary["samples"] == 5000 and summary["lost_samples"] == 0 and summary["gaps"] == []
    assert summary["crc_errors"] == 0 and summary["malformed"] == 0 and summary["duplicate_samples"] == 0
    assert summary["channels"] == 12 and summary["sample_rate_hz"] == 1000.0 and summary["frames"] == 500
    trial = read_trial(out)
    np.testing.assert_array_equal(trial.sample_index, np.arange(5000))
    seg = trial.quality["segments"]
    assert len(seg) == 1 and seg[0]["boot_id"] == 0x5EED1234
    expected = _expected_trial_counts(trial, 1000, 12, clip_every=1500)
    np.testing.assert_array_equal(trial.counts, expected)
    clipped_samples = int((expected[:, 0] == 2**23 - 1).sum())
    assert clipped_samples >= 3 and trial.quality["saturated_samples"] == clipped_samples
    assert trial.quality["clipped_frames"] == clipped_samples  # 1500 apart: one clipped sample per flagged frame
    info = trial.meta["device"]["info"]
    assert info["firmware"] == "steplab-fw 1.0.0" and info["boot_id"] == 0x5EED1234 and info["simulated"] is True
    assert Rig.from_dict(info["rig"]).serial == info["serial"] == "FWH-0012" and trial.rig.channels == 12


@pytest.mark.slow
def test_sixteen_channels_at_4khz_record_complete(fw_host, tmp_path):
    host = fw_host("--seconds", "120", "--channels", "16")
    out = tmp_path / "fw16.npz"
    summary = _record(host.port, 3, out)
    assert summary["samples"] == 12000 and summary["lost_samples"] == 0 and summary["gaps"] == []
    assert summary["channels"] == 16 and summary["sample_rate_hz"] == 4000.0 and summary["frames"] == 300
    trial = read_trial(out)
    np.testing.assert_array_equal(trial.counts, _expected_trial_counts(trial, 4000, 16))


@pytest.mark.slow
def test_a_firmware_reset_mid_recording_starts_a_new_segment(fw_host, tmp_path):
    host = fw_host("--seconds", "120")
    out = tmp_path / "reset.npz"
    journal = tmp_path / "reset.npz.journal"
    rec = subprocess.Popen(steplab_cmd("record", "--device", host.port, "--seconds", "6", "--out", str(out), "--json"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # about 1 s of data journaled: the recording runs; now power-cycle the box
        assert wait_for(lambda: journal.exists() and journal.stat().st_size > 40_000, 60)
        host.proc.send_signal(signal.SIGUSR1)
        stdout, stderr = rec.communicate(timeout=120)
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.communicate(timeout=10)
    assert rec.returncode == 0, stderr
    summary = json.loads(stdout)
    assert host.readline(5.0).strip() == "event: reset"
    trial = read_trial(out)
    segs = trial.quality["segments"]
    assert len(segs) == 2 and segs[0]["boot_id"] != segs[1]["boot_id"] and segs[1]["first_device_sample"] == 0
    assert trial.quality["device_resets"] == 1 and summary["samples"] + summary["lost_samples"] == 6000
    np.testing.assert_array_equal(trial.counts, _expected_trial_counts(trial, 1000, 12))


def _ask_info(port: str) -> dict:
    import serial

    with serial.Serial(port, timeout=0.1) as s:
        s.write(p.encode_command("info", 1))
        dec = FrameDecoder()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for m in dec.feed(s.read(s.in_waiting or 1)).messages:
                if m.frame_type == p.FRAME_TYPE_REPLY and m.payload.get("id") == 1:
                    return m.payload
    raise AssertionError(f"no info reply from {port}")


def test_every_power_up_draws_a_fresh_boot_id_unless_one_is_fixed(fw_host):
    ids = []
    for _ in range(3):
        host = fw_host("--seconds", "30")
        ids.append(_ask_info(host.port)["boot_id"])
        host.stop()
    assert len(set(ids)) == 3 and all(0 < i < 2**32 for i in ids)
    host = fw_host("--seconds", "30", "--boot-id", "4294967295")
    assert _ask_info(host.port)["boot_id"] == 2**32 - 1


@pytest.mark.parametrize("args, words", [
    ((), "--pty is required"),
    (("--pty", "--channels", "7"), "--channels must be 12 or 16"),
    (("--pty", "--rate", "3000"), "--rate must be"),
    (("--pty", "--boot-id", "0"), "--boot-id must be"),
    (("--pty", "--seconds", "-1"), "--seconds needs"),
    (("--pty", "--bogus"), "unknown option --bogus"),
])
def test_bad_options_are_one_line_errors(fw_build, args, words):
    r = subprocess.run([str(fw_build / "steplab-fw-host"), *args], capture_output=True, text=True, timeout=30)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and words in lines[0] and r.stdout == ""


# -- rig files and the target build -------------------------------------------------------------
def test_the_shipped_rig_files_are_valid_rigs():
    for path in sorted((FW / "rigs").glob("*.json")):
        rig = Rig.from_dict(json.loads(path.read_text(encoding="utf-8")))
        assert rig.channels in (12, 16) and rig.serial, path.name


def test_a_rig_file_the_firmware_cannot_carry_is_a_one_line_error(tmp_path):
    rig = json.loads((FW / "rigs" / "smart-step-12.json").read_text(encoding="utf-8"))
    for change, words in (({"channels": 20}, "channels must be 1..16"), ({"sample_rate_hz": 3000}, "sample_rate_hz must be"),
                          ({"serial": ""}, "needs a serial")):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**rig, **change}), encoding="utf-8")
        out = tmp_path / "rig.c"
        r = subprocess.run([sys.executable, str(FW / "tools" / "embed_rig.py"), str(out), str(bad)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("link", ["uart", "usb"])
def test_the_target_cross_compiles_and_fits_the_stm32f411(tmp_path, link):
    missing = [t for t in ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-objcopy") if shutil.which(t) is None]
    assert not missing, (f"{', '.join(missing)} missing: the target build needs Debian's gcc-arm-none-eabi and "
                         "libnewlib-arm-none-eabi (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    r = subprocess.run(["make", "-s", "-C", str(FW), f"BUILD={tmp_path}", f"LINK={link}", "size"], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "LC_ALL": "C"})
    assert r.returncode == 0, r.stderr
    m = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+[0-9a-f]+\s+\S+\.elf", r.stdout, re.M)
    assert m, r.stdout
    text, data, bss = (int(x) for x in m.groups())
    assert 4_000 < text + data <= FLASH_BYTES, (text, data)
    assert data + bss <= RAM_BYTES - 8 * 1024, (data, bss)  # at least 8 KiB left for the stack
    image = (tmp_path / "target" / "steplab-fw-stm32f411.bin").read_bytes()
    sp, reset = struct.unpack_from("<II", image)
    assert sp == 0x2000_0000 + RAM_BYTES  # the stack starts at the top of SRAM
    assert reset & 1 and 0x0800_0000 <= reset & ~1 < 0x0800_0000 + len(image)  # a Thumb address inside the image
    assert len(image) <= FLASH_BYTES and abs(len(image) - (text + data)) < 256  # the flashed image is the program


def test_make_host_builds_the_documented_path():
    r = subprocess.run(["make", "-n", "-C", str(FW), "host"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "-o build/steplab-fw-host" in r.stdout  # interfaces.md: rig_docs/firmware/build/steplab-fw-host


def test_the_guides_tap_test_finds_a_plates_first_resonance(tmp_path, capsys):
    """The tap-test snippet of building_the_rig.md, run as printed on a recording of a plate ringing at 180 Hz."""
    from steplab.acquisition.rig import default_rig
    from steplab.acquisition.trial_file import Trial, write_trial

    guide = (REPO / "rig_docs" / "building_the_rig.md").read_text(encoding="utf-8")
    snippet = guide.split("## Tap test", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    rate, n = 1000.0, 5000
    t = np.arange(n) / rate
    rng = np.random.default_rng(3)
    counts = (20000 + rng.normal(0, 30, size=(n, 12))).astype(np.int64)
    after = t >= 2.0
    ring = 40000 * np.exp(-(t[after] - 2.0) / 0.08) * np.sin(2 * np.pi * 180.0 * (t[after] - 2.0))
    counts[after, 0:4] += (ring[:, None] * np.array([0.3, 0.2, 0.25, 0.25])).astype(np.int64)
    trial = Trial(counts=counts.astype(np.int32), sample_index=np.arange(n), sample_rate_hz=rate, rig=default_rig(),
                  meta={"quality": {}})
    write_trial(tmp_path / "tap.npz", trial)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(snippet, "building_the_rig.md", "exec"), {})
    finally:
        os.chdir(cwd)
    m = re.search(r"first resonance ≈ (\d+) Hz", capsys.readouterr().out)
    assert m and abs(int(m.group(1)) - 180) <= 4


@pytest.mark.slow
def test_a_host_that_stops_reading_gets_an_exact_gap_counted_by_the_device(fw_host):
    """Over a real pty: a reader that pauses longer than the ring (5.1 s) finds one flagged gap of exactly the device's overruns."""
    import serial

    host = fw_host("--seconds", "120")
    dec, tracker = FrameDecoder(), StreamTracker()
    gaps: list = []
    statuses: list[dict] = []

    def read_for(seconds: float, s) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            chunk = dec.feed(s.read(s.in_waiting or 1))
            gaps.extend(tracker.update(chunk).gaps)
            statuses.extend(m.payload for m in chunk.messages if m.frame_type == p.FRAME_TYPE_STATUS)

    with serial.Serial(host.port, timeout=0.05) as s:
        read_for(1.5, s)
        assert tracker.samples_kept > 0 and not gaps
        time.sleep(12.0)  # the host stops reading: the pty fills (~68 kB, 1.7 s), then the firmware's ring (5.1 s)
        read_for(3.0, s)
    assert len(gaps) == 1 and gaps[0].device_overrun, gaps
    assert tracker.lost_samples == gaps[0].length == statuses[-1]["overruns"] > 0
    assert dec.crc_errors == dec.malformed == 0
