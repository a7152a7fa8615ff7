"""Wire protocol encoders: byte-exact layout, COBS, CRC-32, 24-bit packing, the documented hex dump."""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from steplab.acquisition import _decoder_kernels as k
from steplab.acquisition import protocol as p
from steplab.acquisition.frame_decoder import FrameDecoder

REPO = Path(__file__).resolve().parents[1]


# -- an independent reference implementation, written for the tests -------------
def ref_cobs(data: bytes) -> bytes:
    """COBS by splitting at zeros (canonical: no spare 0x01 block after a final 254-run)."""
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


def ref_frame(version, ftype, flags, boot, seq, first, t_us, ch, ns, payload: bytes) -> bytes:
    header = struct.pack("<B", version) + struct.pack("<B", ftype) + struct.pack("<H", flags)
    header += struct.pack("<I", boot) + struct.pack("<I", seq) + struct.pack("<Q", first)
    header += struct.pack("<Q", t_us) + struct.pack("<H", ch) + struct.pack("<H", ns)
    assert len(header) == 32
    body = header + payload
    body += struct.pack("<I", zlib.crc32(body))
    return ref_cobs(body) + b"\x00"


def ref_pack24(counts) -> bytes:
    out = bytearray()
    for row in counts:
        for v in row:
            out += int(v).to_bytes(3, "little", signed=True)
    return bytes(out)


# -- COBS ------------------------------------------------------------------------
WIKIPEDIA_VECTORS = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (b"\x00" + bytes(range(1, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize("raw,encoded", WIKIPEDIA_VECTORS)
def test_cobs_published_vectors(raw, encoded):
    assert p.cobs_encode(raw) == encoded
    assert p.cobs_decode(encoded) == raw


@pytest.mark.parametrize("raw", [
    b"", b"\x00" * 300, b"\x07" * 253, b"\x07" * 254, b"\x07" * 255, b"\x07" * 256,
    b"\x07" * 508, b"\x07" * 509, b"\x00" + b"\x09" * 254 + b"\x00", b"\x09" * 254 + b"\x00" * 2,
])
def test_cobs_edge_cases(raw):
    enc = p.cobs_encode(raw)
    assert enc == ref_cobs(raw)
    assert b"\x00" not in enc
    assert len(enc) <= len(raw) + len(raw) // 254 + 1
    assert p.cobs_decode(enc) == raw


def test_cobs_empty_and_run_lengths():
    assert p.cobs_encode(b"") == b"\x01"
    assert len(p.cobs_encode(b"\x05" * 254)) == 255  # one full block, no trailing 0x01
    assert len(p.cobs_encode(b"\x05" * 255)) == 257  # FF block + 02 block
    assert len(p.cobs_encode(b"\x05" * 256)) == 258


def test_cobs_random_against_reference():
    rng = np.random.default_rng(1)
    for n in [1, 2, 253, 254, 255, 600, 5000]:
        for zero_p in (0.0, 0.01, 0.5):
            raw = rng.integers(1, 256, n).astype(np.uint8)
            raw[rng.random(n) < zero_p] = 0
            assert p.cobs_encode(raw.tobytes()) == ref_cobs(raw.tobytes())


def test_cobs_decode_rejects_bad_input():
    with pytest.raises(ValueError):
        p.cobs_decode(b"\x05\x01\x02")  # block runs past the end
    with pytest.raises(ValueError):
        p.cobs_decode(b"\x03\x00\x01")


# -- CRC ---------------------------------------------------------------------------
def test_crc_check_value_and_kernel_matches_zlib():
    assert p.crc32(b"123456789") == 0xCBF43926
    assert k.crc32_array(np.frombuffer(b"123456789", np.uint8), k.CRC_TABLES) == 0xCBF43926
    rng = np.random.default_rng(2)
    data = rng.integers(0, 256, 4099).astype(np.uint8)
    for n in range(0, 40):
        assert k.crc32_array(data[:n], k.CRC_TABLES) == zlib.crc32(data[:n].tobytes())
    for a, b in [(0, 4099), (3, 4000), (17, 18), (100, 100)]:
        assert k.crc32_update(0, data, a, b, k.CRC_TABLES) == zlib.crc32(data[a:b].tobytes())


# -- frame layout ------------------------------------------------------------------
def test_data_frame_byte_exact():
    counts = np.array([[0, 1, -1], [255, -256, 65536], [8388606, -8388607, 12345]], dtype=np.int32)
    wire = p.encode_data_frame(boot_id=0xDEADBEEF, seq=0xFFFFFFFF, first_sample=2**40 + 7,
                               device_time_us=123456789012, counts=counts, flags=p.FLAG_SIMULATED)
    expected = ref_frame(1, 1, 4, 0xDEADBEEF, 0xFFFFFFFF, 2**40 + 7, 123456789012, 3, 3, ref_pack24(counts))
    assert wire == expected
    assert wire.count(b"\x00") == 1 and wire.endswith(b"\x00")


def test_data_frame_accepts_other_integer_dtypes():
    counts = np.array([[1, -2], [3, -4]])
    for dt in (np.int64, np.int16, np.int32):
        wire = p.encode_data_frame(boot_id=9, seq=1, first_sample=0, device_time_us=0, counts=counts.astype(dt))
        assert wire == ref_frame(1, 1, 0, 9, 1, 0, 0, 2, 2, ref_pack24(counts))


def test_message_frame_byte_exact():
    payload = {"uptime_s": 12.5, "overruns": 0, "streaming": True, "rate_hz": 1000.0, "note": "µ"}
    wire = p.encode_message_frame(p.FRAME_TYPE_STATUS, boot_id=77, seq=5, payload=payload,
                                  device_time_us=99, flags=p.FLAG_SIMULATED)
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert wire == ref_frame(1, 2, 4, 77, 5, 0, 99, 0, 0, text)


def test_command_frame():
    wire = p.encode_command("set_rate", 42, rate_hz=2000)
    text = b'{"cmd":"set_rate","id":42,"rate_hz":2000}'
    assert wire == ref_frame(1, 7, 0, 0, 42, 0, 0, 0, 0, text)
    assert p.encode_command("info", 2**32 + 3) == ref_frame(1, 7, 0, 0, 3, 0, 0, 0, 0, b'{"cmd":"info","id":4294967299}')


# -- 24-bit boundaries and clipping ------------------------------------------------------
def _body(wire: bytes) -> bytes:
    return p.cobs_decode(wire[:-1])


def test_24bit_boundaries_and_clipping_flag():
    inside = np.array([[2**23 - 2, -(2**23) + 1, 0, -1]], dtype=np.int64)
    body = _body(p.encode_data_frame(boot_id=1, seq=0, first_sample=0, device_time_us=0, counts=inside))
    assert struct.unpack_from("<H", body, 2)[0] & p.FLAG_CLIPPING == 0
    assert body[32:-4] == bytes.fromhex("feff7f 010080 000000 ffffff".replace(" ", ""))

    rails = np.array([[2**23 - 1, -(2**23)]], dtype=np.int64)
    body = _body(p.encode_data_frame(boot_id=1, seq=0, first_sample=0, device_time_us=0, counts=rails))
    assert struct.unpack_from("<H", body, 2)[0] & p.FLAG_CLIPPING
    assert body[32:-4] == bytes.fromhex("ffff7f000080")

    beyond = np.array([[2**23, -(2**23) - 1, 2**31 - 1, -(2**31)]], dtype=np.int64)
    body = _body(p.encode_data_frame(boot_id=1, seq=0, first_sample=0, device_time_us=0, counts=beyond,
                                     flags=p.FLAG_OVERRUN))
    flags = struct.unpack_from("<H", body, 2)[0]
    assert flags == p.FLAG_CLIPPING | p.FLAG_OVERRUN
    assert body[32:-4] == bytes.fromhex("ffff7f000080ffff7f000080")


# -- argument validation ---------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    dict(boot_id=0), dict(boot_id=2**32), dict(seq=-1), dict(seq=2**32), dict(first_sample=2**63),
    dict(device_time_us=-5), dict(flags=2**16), dict(counts=np.zeros(4, np.int32)),
    dict(counts=np.zeros((2, 2))), dict(counts=np.zeros((0, 3), np.int32)),
    dict(counts=np.zeros((22000, 1), np.int32)), dict(boot_id=1.5),
])
def test_data_frame_rejects_bad_arguments(kwargs):
    args = dict(boot_id=1, seq=0, first_sample=0, device_time_us=0, counts=np.zeros((2, 2), np.int32))
    args.update(kwargs)
    with pytest.raises(ValueError):
        p.encode_data_frame(**args)


def test_message_and_command_reject_bad_arguments():
    with pytest.raises(ValueError):
        p.encode_message_frame(p.FRAME_TYPE_DATA, boot_id=1, seq=0, payload={})
    with pytest.raises(ValueError):
        p.encode_message_frame(p.FRAME_TYPE_LOG, boot_id=1, seq=0, payload=[1, 2])
    with pytest.raises(ValueError):
        p.encode_message_frame(p.FRAME_TYPE_LOG, boot_id=1, seq=0, payload={"x": float("nan")})
    with pytest.raises(ValueError):
        p.encode_message_frame(p.FRAME_TYPE_LOG, boot_id=1, seq=0, payload={"x": object()})
    with pytest.raises(ValueError):
        p.encode_message_frame(p.FRAME_TYPE_LOG, boot_id=1, seq=0, payload={"x": "a" * 70000})
    with pytest.raises(ValueError):
        p.encode_command("", 1)
    with pytest.raises(ValueError):
        p.encode_command("info", -1)
    with pytest.raises(ValueError):
        p.encode_command("info", 1.0)
    with pytest.raises(ValueError):
        p.encode_command("set_rate", 1, rate_hz=float("inf"))


# -- encoder: 1 s of 16 ch x 4 kHz frames decode back exactly (its speed is in `steplab bench`) --
def test_encoder_frames_of_16ch_4khz_decode_back_exactly():
    rng = np.random.default_rng(3)
    blocks = [rng.integers(-300_000, 300_000, (20, 16)).astype(np.int32) for _ in range(200)]
    wire = b"".join(p.encode_data_frame(boot_id=1, seq=i, first_sample=20 * i, device_time_us=5000 * i, counts=c)
                    for i, c in enumerate(blocks))
    assert len(wire) > 192_000
    chunk = FrameDecoder().feed(wire)
    assert chunk.frames_ok == 200 and chunk.crc_errors == 0 and chunk.malformed == 0
    assert chunk.frames["first_sample"].tolist() == [20 * i for i in range(200)]
    np.testing.assert_array_equal(chunk.counts, np.concatenate(blocks))


# -- the worked example in rig_docs/protocol.md -------------------------------------------
def _doc_block(name: str) -> str:
    text = (REPO / "rig_docs" / "protocol.md").read_text(encoding="utf-8")
    m = re.search(rf"<!-- {name} -->\s*```[a-z]*\n(.*?)```", text, re.S)
    assert m, f"block {name} not found in protocol.md"
    return m.group(1)


def _hex(block: str) -> bytes:
    # each line: "OFFSET: hh hh hh ..." (anything after two spaces and '|' is a comment)
    out = bytearray()
    for line in block.strip().splitlines():
        line = line.split("|")[0]
        _, _, hexpart = line.partition(":")
        out += bytes.fromhex(hexpart)
    return bytes(out)


def test_protocol_doc_hex_dump_matches_encoder():
    counts = np.array([[1000, -1000], [2**23 - 2, -2]], dtype=np.int32)
    wire = p.encode_data_frame(boot_id=0x1A2B3C4D, seq=7, first_sample=20, device_time_us=20000,
                               counts=counts, flags=p.FLAG_SIMULATED)
    assert _hex(_doc_block("hexdump-wire")) == wire
    assert _hex(_doc_block("hexdump-body")) == p.cobs_decode(wire[:-1])


def test_protocol_doc_cobs_example_matches_encoder():
    block = _doc_block("cobs-example")
    raw_line, enc_line = block.strip().splitlines()[:2]
    raw = bytes.fromhex(raw_line.partition(":")[2])
    enc = bytes.fromhex(enc_line.partition(":")[2])
    assert p.cobs_encode(raw) + b"\x00" == enc
