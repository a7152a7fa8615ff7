"""The raw journal and the trial file: round trips, torn tails, corrupt input."""

from __future__ import annotations

import json
import os
import struct
import zipfile

import numpy as np
import pytest

from steplab.acquisition.journal import JournalError, JournalWriter, read_journal
from steplab.acquisition.rig import default_rig, split_box_rig
from steplab.acquisition.trial_file import Trial, TrialFileError, read_trial, write_trial


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


def _trial(n=1000, rig=None, gap=(400, 25)):
    rig = rig or default_rig()
    idx = np.arange(n + gap[1])
    idx = np.delete(idx, np.arange(gap[0], gap[0] + gap[1]))
    counts = np.random.default_rng(0).integers(-(2**23), 2**23, (n, rig.channels)).astype(np.int32)
    return Trial(counts=counts, sample_index=idx.astype(np.int64), sample_rate_hz=1000.0, rig=rig,
                 meta={"quality": {"lost_samples": gap[1], "gaps": [{"at_sample": gap[0], "length": gap[1]}]}})


@pytest.mark.parametrize("rig", [default_rig(), split_box_rig()], ids=["12ch", "16ch"])
def test_trial_file_round_trip(tmp_path, rig):
    t = _trial(rig=rig)
    write_trial(tmp_path / "t.npz", t)
    back = read_trial(tmp_path / "t.npz")
    np.testing.assert_array_equal(back.counts, t.counts)
    np.testing.assert_array_equal(back.sample_index, t.sample_index)
    assert back.rig == rig and back.sample_rate_hz == 1000.0
    assert back.quality["gaps"] == [{"at_sample": 400, "length": 25}]
    assert back.meta["rig_hash"] == rig.hash()
    dense, present = back.dense_counts()
    assert dense.shape == (1025, rig.channels) and present.sum() == 1000
    assert np.isnan(dense[400:425]).all() and not present[400:425].any()
    # numpy alone can read it (documented format)
    with np.load(tmp_path / "t.npz") as z:
        np.testing.assert_array_equal(z["counts"], t.counts)
        assert json.loads(z["meta.json"])["format"] == "steplab-trial"


def test_trial_file_bad_input_is_refused_and_nothing_is_left_behind(tmp_path):
    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    t = _trial()
    t.sample_index[5] = t.sample_index[4]
    with pytest.raises(TrialFileError, match="strictly increasing"):
        write_trial(tmp_path / "t.npz", t)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(TrialFileError, match="not a steplab trial file"):
        read_trial(tmp_path / "junk.npz")
    with pytest.raises(TrialFileError, match="does not exist"):
        read_trial(tmp_path / "missing.npz")
    good = _trial()
    write_trial(tmp_path / "g.npz", good)
    with zipfile.ZipFile(tmp_path / "g.npz") as z:
        members = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(members["meta.json"])
    meta["format_version"] = 7
    with zipfile.ZipFile(tmp_path / "v.npz", "w") as z:
        for n, b in members.items():
            z.writestr(n, json.dumps(meta) if n == "meta.json" else b)
    with pytest.raises(TrialFileError, match="format version 7"):
        read_trial(tmp_path / "v.npz")
    with zipfile.ZipFile(tmp_path / "c.npz", "w") as z:
        for n, b in members.items():
            z.writestr(n, b[: len(b) // 2] if n == "counts.npy" else b)
    with pytest.raises(TrialFileError, match="corrupt|inconsistent"):
        read_trial(tmp_path / "c.npz")
