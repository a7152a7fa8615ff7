"""The raw journal: round trips, flushing, torn tails, corrupt input."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from steplab.acquisition.journal import JournalError, JournalWriter, read_journal


def test_journal_round_trip_keeps_every_byte_in_order(tmp_path):
    rng = np.random.default_rng(1)
    chunks = [rng.integers(0, 256, rng.integers(1, 3000)).astype(np.uint8).tobytes() for _ in range(200)]
    with JournalWriter(tmp_path / "j", header={"seconds": 5}) as j:
        for i, c in enumerate(chunks):
            j.append(c, t_ns=1000 + i)
            if i == 50:
                j.event("disconnected", reason="test")
    got = read_journal(tmp_path / "j")
    assert got.header == {"seconds": 5}
    data = [r for r in got.records if r.kind == b"D"]
    assert [r.payload for r in data] == chunks
    assert [r.host_time_ns for r in data] == [1000 + i for i in range(200)]
    events = [r.event for r in got.records if r.kind == b"E"]
    assert events == [{"event": "disconnected", "reason": "test"}]
    assert got.torn_tail_bytes == 0


def test_journal_flushes_to_the_os_within_100_ms(tmp_path):
    j = JournalWriter(tmp_path / "j", header={}, flush_interval_s=0.1)
    size0 = os.path.getsize(tmp_path / "j")
    j.append(b"\x01" * 100)
    import time
    time.sleep(0.12)
    j.maybe_flush()
    # another process (recover after SIGKILL) sees the bytes without close()
    assert os.path.getsize(tmp_path / "j") > size0
    got = read_journal(tmp_path / "j")
    assert [r.payload for r in got.records] == [b"\x01" * 100]
    j.close()


def test_torn_tail_is_dropped_and_counted(tmp_path):
    with JournalWriter(tmp_path / "j", header={}) as j:
        j.append(b"abc")
        j.append(b"defgh")
    raw = (tmp_path / "j").read_bytes()
    (tmp_path / "t").write_bytes(raw[:-3])  # the crash tore the last record
    got = read_journal(tmp_path / "t")
    assert [r.payload for r in got.records] == [b"abc"]
    record_size = 1 + 8 + 4 + len(b"defgh") + 4  # kind, time, length, payload, crc
    assert got.torn_tail_bytes == record_size - 3
    # a flipped byte inside a record is caught by its CRC
    bad = bytearray(raw)
    bad[-6] ^= 0xFF
    (tmp_path / "b").write_bytes(bytes(bad))
    assert [r.payload for r in read_journal(tmp_path / "b").records] == [b"abc"]


def test_journal_refuses_to_overwrite_and_rejects_foreign_files(tmp_path):
    JournalWriter(tmp_path / "j", header={}).close()
    with pytest.raises(JournalError, match="already exists"):
        JournalWriter(tmp_path / "j", header={})
    (tmp_path / "x").write_bytes(b"hello world, not a journal")
    with pytest.raises(JournalError, match="not a steplab journal"):
        read_journal(tmp_path / "x")
    with pytest.raises(JournalError, match="does not exist"):
        read_journal(tmp_path / "nope")
    raw = (tmp_path / "j").read_bytes()
    (tmp_path / "v").write_bytes(raw[:8] + struct.pack("<H", 99) + raw[10:])
    with pytest.raises(JournalError, match="version 99"):
        read_journal(tmp_path / "v")
