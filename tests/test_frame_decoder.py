"""FrameDecoder: bytes in -> frames out, table-driven; splits, garbage, rejection reasons."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from steplab.acquisition import protocol as p
from steplab.acquisition.frame_decoder import FRAME_DTYPE, DecodedChunk, FrameDecoder, Message, warm_up


def data(seq, first, counts, boot=0xABC, t_us=None, flags=0):
    counts = np.asarray(counts, dtype=np.int32)
    return p.encode_data_frame(boot_id=boot, seq=seq, first_sample=first,
                               device_time_us=first * 1000 if t_us is None else t_us, counts=counts, flags=flags)


def raw_frame(header_fields, payload: bytes, crc_fix=True, crc_delta=0) -> bytes:
    """A frame with any header values (bypasses the encoder's checks)."""
    body = struct.pack("<BBHIIQQHH", *header_fields) + payload
    body += struct.pack("<I", (zlib.crc32(body) + crc_delta) & 0xFFFFFFFF)
    return p.cobs_encode(body) + b"\x00"


C1 = [[1, -1, 5], [2**23 - 2, -(2**23) + 1, 0]]
C2 = [[7, 8, 9]]
F1 = data(1, 100, C1)
F2 = data(2, 102, C2)
STATUS = p.encode_message_frame(p.FRAME_TYPE_STATUS, boot_id=0xABC, seq=3, device_time_us=5,
                                payload={"uptime_s": 1.0, "overruns": 0, "streaming": True, "rate_hz": 1000})
HDR_OK = (1, 1, 0, 0xABC, 9, 0, 0, 3, 1)

# (name, wire bytes, expected (first_sample, samples) of data frames, message seqs,
#  counters {frames_ok, crc_errors, malformed, oversize, bytes_discarded})
TABLE = [
    ("one data frame", F1, [(100, 2)], [], dict(frames_ok=1)),
    ("data, data, status", F1 + F2 + STATUS, [(100, 2), (102, 1)], [3], dict(frames_ok=3)),
    ("idle zeros between", b"\x00\x00" + F1 + b"\x00" + F2, [(100, 2), (102, 1)], [],
     dict(frames_ok=2, bytes_discarded=3)),
    ("garbage then frame", b"\x17\x42\x99\x00" + F1, [(100, 2)], [], dict(frames_ok=1, malformed=1, bytes_discarded=4)),
    ("crc wrong", raw_frame(HDR_OK, b"\x01\x02\x03", crc_delta=1) + F2, [(102, 1)], [],
     dict(frames_ok=1, crc_errors=1, bytes_discarded=len(raw_frame(HDR_OK, b"\x01\x02\x03")))),
    ("version 2", raw_frame((2,) + HDR_OK[1:], b"\x01\x02\x03"), [], [], dict(malformed=1)),
    ("frame type 0", raw_frame((1, 0) + HDR_OK[2:], b""), [], [], dict(malformed=1)),
    ("frame type 8", raw_frame((1, 8, 0, 1, 1, 0, 0, 0, 0), b"{}"), [], [], dict(malformed=1)),
    ("payload too short", raw_frame(HDR_OK, b"\x01\x02"), [], [], dict(malformed=1)),
    ("payload too long", raw_frame(HDR_OK, b"\x01\x02\x03\x04"), [], [], dict(malformed=1)),
    ("zero channels", raw_frame((1, 1, 0, 1, 1, 0, 0, 0, 1), b""), [], [], dict(malformed=1)),
    ("zero samples", raw_frame((1, 1, 0, 1, 1, 0, 0, 3, 0), b""), [], [], dict(malformed=1)),
    ("message with channels", raw_frame((1, 2, 0, 1, 1, 0, 0, 1, 0), b"{}"), [], [], dict(malformed=1)),
    ("message not JSON", raw_frame((1, 4, 0, 1, 1, 0, 0, 0, 0), b"{nope"), [], [], dict(malformed=1)),
    ("message JSON array", raw_frame((1, 4, 0, 1, 1, 0, 0, 0, 0), b"[1,2]"), [], [], dict(malformed=1)),
    ("message bad UTF-8", raw_frame((1, 4, 0, 1, 1, 0, 0, 0, 0), b'{"a":"\xff"}'), [], [], dict(malformed=1)),
    ("first_sample >= 2**63", raw_frame((1, 1, 0, 1, 1, 2**63, 0, 3, 1), b"\x00" * 9), [], [], dict(malformed=1)),
    ("body shorter than header", p.cobs_encode(b"\x01\x01" + b"\x00" * 20) + b"\x00", [], [], dict(malformed=1)),
    ("COBS block past end", b"\x09\x01\x02\x00", [], [], dict(malformed=1)),
]


@pytest.mark.parametrize("name,wire,expect_data,expect_msgs,expect_counters", TABLE, ids=[t[0] for t in TABLE])
def test_table(name, wire, expect_data, expect_msgs, expect_counters):
    dec = FrameDecoder()
    ch = dec.feed(wire)
    assert [(int(f["first_sample"]), int(f["samples"])) for f in ch.frames] == expect_data
    assert [m.seq for m in ch.messages] == expect_msgs
    full = dict(frames_ok=0, crc_errors=0, malformed=0, oversize=0, bytes_discarded=0)
    if "bytes_discarded" not in expect_counters and sum(expect_counters.get(k, 0) for k in
                                                        ("crc_errors", "malformed", "oversize")):
        accepted = sum(len(f) for f in (F1, F2, STATUS) if f in wire)
        expect_counters = dict(expect_counters, bytes_discarded=len(wire) - accepted)
    full.update(expect_counters)
    got = {k: getattr(ch, k) for k in full}
    assert got == full
    assert dec.counters()["pending"] == 0
    assert {k: getattr(dec, k) for k in full} == full  # cumulative equals the single chunk


def test_contents_and_offsets():
    dec = FrameDecoder()
    ch = dec.feed(F1 + STATUS + F2)
    assert ch.frames.dtype == FRAME_DTYPE
    np.testing.assert_array_equal(ch.counts, np.array(C1 + C2, dtype=np.int32))
    assert ch.counts.dtype == np.int32 and ch.counts.shape == (3, 3)
    f = ch.frames
    assert f["boot_id"].tolist() == [0xABC, 0xABC]
    assert f["seq"].tolist() == [1, 2]
    assert f["device_time_us"].tolist() == [100_000, 102_000]
    assert f["offset"].tolist() == [0, 2]
    assert f["channels"].tolist() == [3, 3]
    assert ch.messages == [Message(2, 0xABC, 3, 5, 0, {"uptime_s": 1.0, "overruns": 0, "streaming": True,
                                                       "rate_hz": 1000})]
    assert ch.n_samples == 3 and ch.more_runs == []


def test_flags_are_passed_through():
    wire = data(1, 0, [[2**23 - 1, 0]], flags=p.FLAG_SIMULATED | p.FLAG_OVERRUN)
    ch = FrameDecoder().feed(wire)
    assert int(ch.frames["flags"][0]) == p.FLAG_CLIPPING | p.FLAG_SIMULATED | p.FLAG_OVERRUN
    assert ch.counts.tolist() == [[2**23 - 1, 0]]


def test_command_frames_decode_for_the_device_side():
    ch = FrameDecoder().feed(p.encode_command("place_mass", 5, plate="box", x_mm=10.0, y_mm=-20.0, mass_kg=20))
    assert ch.messages == [Message(7, 0, 5, 0, 0, {"cmd": "place_mass", "id": 5, "plate": "box", "x_mm": 10.0,
                                                   "y_mm": -20.0, "mass_kg": 20})]


def test_mixed_channel_counts_split_into_runs():
    a = data(1, 0, [[1, 2, 3]])
    b = data(2, 1, [[4, 5, 6], [7, 8, 9]])
    c = data(3, 3, [[10, 11]])
    d = data(4, 4, [[12, 13, 14]])
    ch = FrameDecoder().feed(a + b + c + d)
    runs = ch.data_runs()
    assert [r.counts.shape for r in runs] == [(3, 3), (1, 2), (1, 3)]
    assert runs[0].counts.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert runs[0].frames["offset"].tolist() == [0, 1]
    assert runs[1].counts.tolist() == [[10, 11]] and runs[1].frames["seq"].tolist() == [3]
    assert runs[2].counts.tolist() == [[12, 13, 14]] and runs[2].frames["offset"].tolist() == [0]
    assert ch.frames is runs[0].frames and len(ch.more_runs) == 2


def _stream(n=40, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        if i % 7 == 3:
            frames.append(p.encode_message_frame(p.FRAME_TYPE_LOG, boot_id=5, seq=i, payload={"msg": "x" * i}))
        else:
            frames.append(data(i, 10 * i, rng.integers(-2**23, 2**23, (10, 12)), boot=5))
    return frames


def _summary(chunks: list[DecodedChunk]):
    frames = np.concatenate([c.frames for c in chunks if c.frames.size])
    counts = np.concatenate([c.counts for c in chunks if c.counts.size])
    msgs = [m for c in chunks for m in c.messages]
    tot = {k: sum(getattr(c, k) for c in chunks) for k in ("frames_ok", "crc_errors", "malformed", "bytes_discarded")}
    return frames[["seq", "first_sample", "samples"]].tolist(), counts, msgs, tot


@pytest.mark.parametrize("splitter", ["whole", "bytewise", "random", "at_zeros"])
def test_arbitrary_split_points_give_same_result(splitter):
    wire = b"\x55\x66\x00" + b"".join(_stream()) + b"\x01\x02\x00"
    rng = np.random.default_rng(4)
    if splitter == "whole":
        pieces = [wire]
    elif splitter == "bytewise":
        pieces = [wire[i:i + 1] for i in range(len(wire))]
    elif splitter == "random":
        cuts = np.sort(rng.choice(len(wire), 60, replace=False))
        pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)])]
    else:
        cuts = [i + 1 for i, b in enumerate(wire) if b == 0]
        pieces = [wire[a:b] for a, b in zip([0, *cuts], cuts)]
    dec = FrameDecoder()
    chunks = [dec.feed(memoryview(x) if i % 2 else bytearray(x)) for i, x in enumerate(pieces)]
    ref = FrameDecoder().feed(wire)
    frames, counts, msgs, tot = _summary(chunks)
    rframes, rcounts, rmsgs, rtot = _summary([ref])
    assert frames == rframes and len(frames) == 34
    np.testing.assert_array_equal(counts, rcounts)
    assert msgs == rmsgs and len(msgs) == 6
    assert tot == rtot == dict(frames_ok=40, crc_errors=0, malformed=2, bytes_discarded=6)


def test_every_single_bit_flip_is_rejected():
    frame = data(1, 0, [[123456, -654321, 7]])
    for i in range(len(frame) - 1):
        for bit in range(8):
            bad = bytearray(frame)
            bad[i] ^= 1 << bit
            dec = FrameDecoder()
            ch = dec.feed(bytes(bad) + b"\x00")
            assert ch.frames_ok == 0 and ch.frames.size == 0
            assert ch.crc_errors + ch.malformed + ch.oversize >= 1
            assert ch.bytes_discarded == len(bad) + 1


def test_garbage_only_nothing_accepted_everything_discarded():
    rng = np.random.default_rng(5)
    garbage = rng.integers(0, 256, 20_000).astype(np.uint8)
    garbage[rng.random(garbage.size) < 0.02] = 0
    dec = FrameDecoder()
    chunks = [dec.feed(garbage[i:i + 777].tobytes()) for i in range(0, garbage.size, 777)]
    chunks.append(dec.flush())
    assert sum(c.frames_ok for c in chunks) == 0
    assert all(c.frames.size == 0 and not c.messages for c in chunks)
    assert sum(c.bytes_discarded for c in chunks) == garbage.size == dec.bytes_discarded == dec.bytes_fed
    assert dec.pending == 0


def test_oversize_body_is_rejected():
    payload = b'{"a":"' + b"x" * (p.MAX_BODY - 36 - 7) + b'"}'  # body of MAX_BODY + 1 bytes
    body = struct.pack("<BBHIIQQHH", 1, 6, 0, 1, 1, 0, 0, 0, 0) + payload
    body += struct.pack("<I", zlib.crc32(body))
    assert len(body) == p.MAX_BODY + 1
    dec = FrameDecoder()
    ch = dec.feed(p.cobs_encode(body) + b"\x00" + F1)
    assert (ch.oversize, ch.frames_ok, ch.malformed) == (1, 1, 0)
    # the largest allowed body is accepted
    ok = p.encode_message_frame(p.FRAME_TYPE_LOG, boot_id=1, seq=2, payload={"a": "x" * (p.MAX_BODY - 36 - 8)})
    ch = dec.feed(ok)
    assert ch.frames_ok == 1 and len(p.cobs_decode(ok[:-1])) == p.MAX_BODY


def test_endless_frame_is_dropped_early_and_decoder_resyncs():
    dec = FrameDecoder()
    junk = b"\x07" * 50_000
    chunks = [dec.feed(junk) for _ in range(3)]  # 150 kB without a delimiter
    assert dec.pending <= p.MAX_ENCODED
    assert dec.oversize == 1
    ch = dec.feed(b"\x07" * 10 + b"\x00" + F1)
    assert ch.frames_ok == 1 and ch.frames["seq"].tolist() == [1]
    assert dec.bytes_discarded == 150_011 and sum(c.frames_ok for c in chunks) == 0


def test_feed_rejects_non_bytes():
    with pytest.raises(ValueError):
        FrameDecoder().feed("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FrameDecoder().feed([1, 2, 3])  # type: ignore[arg-type]


def test_empty_feed_and_warm_up():
    warm_up()
    dec = FrameDecoder()
    ch = dec.feed(b"")
    assert ch.frames.size == 0 and ch.counts.shape == (0, 0) and ch.data_runs() == []
    assert dec.counters() == dict(frames_ok=0, crc_errors=0, malformed=0, oversize=0, bytes_discarded=0,
                                  bytes_fed=0, pending=0)


def test_byte_accounting_with_pending_tail():
    frames = _stream(10)
    wire = b"".join(frames)
    dec = FrameDecoder()
    dec.feed(wire[:-5])
    assert dec.frames_ok == 9 and dec.pending == len(frames[-1]) - 5
    dec.feed(wire[-5:])
    assert dec.frames_ok == 10 and dec.pending == 0 and dec.bytes_discarded == 0 and dec.bytes_fed == len(wire)


def test_benchmark_reports_throughput_above_target():
    from steplab.benchmarks.bench_decoder import build_stream, measure_decoder

    wire, n = build_stream(channels=3, samples_per_frame=2, target_bytes=5000, rate_hz=100)
    ch = FrameDecoder().feed(wire)
    assert ch.frames_ok == n and len(ch.messages) == n - ch.frames.size >= 1
    r = measure_decoder(seconds=0.2)
    assert set(r) >= {"bytes_per_s", "frames_per_s", "link_ratio", "mb_per_s"}
    assert r["mb_per_s"] == pytest.approx(r["bytes_per_s"] / 1e6)
    assert r["frames_per_s"] == pytest.approx(r["bytes_per_s"] / r["frame_bytes"])
    assert r["bytes_per_s"] > 50e6  # the target: 50 MB/s of wire bytes on one core
    with pytest.raises(ValueError):
        measure_decoder(seconds=0)
