"""The trial file: round trips, atomic no-replace writes, corrupt and inconsistent files refused."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile

import numpy as np
import pytest
from conftest import steplab_cmd

from steplab.acquisition.atomic_create import create_new_file
from steplab.acquisition.rig import default_rig, split_box_rig
from steplab.acquisition.trial_file import Trial, TrialFileError, read_trial, write_trial


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


# -- issue 11.2: an existing file is never replaced, not even one made during the recording ---------------

def test_write_trial_refuses_an_existing_file_and_leaves_it_untouched(tmp_path):
    tmp_path = tmp_path / "work"  # beside the data dir the fixtures make
    tmp_path.mkdir()
    target = tmp_path / "t.npz"
    target.write_bytes(b"somebody else's recording")
    with pytest.raises(TrialFileError, match="already exists"):
        write_trial(target, _trial())
    assert target.read_bytes() == b"somebody else's recording"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npz"]  # no temporary file left
    (tmp_path / "link.npz").symlink_to(tmp_path / "nowhere")  # a dangling symlink is a name in use too
    with pytest.raises(TrialFileError, match="already exists"):
        write_trial(tmp_path / "link.npz", _trial())


def test_a_file_that_appears_while_the_content_is_written_is_not_replaced(tmp_path):
    tmp_path = tmp_path / "work"  # beside the data dir the fixtures make
    tmp_path.mkdir()
    target = tmp_path / "r.npz"

    def slow_writer(fh):
        fh.write(b"x" * 1000)
        target.write_bytes(b"made meanwhile")  # e.g. `steplab recover other.journal --out r.npz`
        fh.write(b"y" * 1000)

    with pytest.raises(FileExistsError):
        create_new_file(target, slow_writer)
    assert target.read_bytes() == b"made meanwhile"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.npz"]
    assert create_new_file(tmp_path / "new.bin", b"abc").read_bytes() == b"abc"


def test_a_write_that_fails_leaves_no_temporary_file(tmp_path):
    tmp_path = tmp_path / "work"  # beside the data dir the fixtures make
    tmp_path.mkdir()
    def broken(fh):
        fh.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        create_new_file(tmp_path / "x.npz", broken)
    assert list(tmp_path.iterdir()) == []


def test_recover_refuses_a_file_made_meanwhile_and_keeps_the_journal(tmp_path):
    from steplab.acquisition import protocol
    from steplab.acquisition.journal import JournalWriter
    from steplab.acquisition.recorder import recover

    rig = default_rig()
    info = protocol.encode_message_frame(protocol.FRAME_TYPE_REPLY, boot_id=5, seq=0, payload={
        "id": 1, "ok": True, "rig": rig.to_dict(), "rate_hz": 1000.0, "channels": 12, "serial": rig.serial,
        "firmware": "test"})
    frames = b"".join(protocol.encode_data_frame(boot_id=5, seq=k + 1, first_sample=10 * k, device_time_us=10_000 * k,
                                                 counts=np.full((10, 12), k, np.int32)) for k in range(50))
    journal = tmp_path / "a.journal"
    with JournalWriter(journal, header={"seconds": 60}) as j:
        j.append(info + frames, t_ns=1)
    (tmp_path / "out.npz").write_bytes(b"kept")
    with pytest.raises(TrialFileError, match="already exists"):
        recover(journal, tmp_path / "out.npz")
    assert (tmp_path / "out.npz").read_bytes() == b"kept" and journal.exists()


# -- issue 11.4: indices are checked against the recording's length before anything is allocated ---------

def _with_index(tmp_path, name, index, meta_changes=None):
    good = tmp_path / "good.npz"
    if not good.exists():
        write_trial(good, _trial())
    with zipfile.ZipFile(good) as z:
        members = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(members["meta.json"])
    meta.update(meta_changes or {})
    import io
    buf = io.BytesIO()
    np.lib.format.write_array(buf, index.astype(np.int64), allow_pickle=False)
    members["sample_index.npy"] = buf.getvalue()
    members["meta.json"] = json.dumps(meta).encode()
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    return path


@pytest.mark.parametrize("jump", [10**7, 10**10])
def test_a_huge_jump_in_sample_index_is_refused_before_allocating(tmp_path, jump):
    index = _trial().sample_index.copy()
    index[-1] = jump  # one row far beyond the recording: 1e10 would need 74.5 GiB dense
    path = _with_index(tmp_path, "huge.npz", index)
    with pytest.raises(TrialFileError, match="spans"):
        read_trial(path)
    r = subprocess.run(steplab_cmd("analyze", str(path), "--json"), capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and "spans" in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_missing_positions_must_be_listed_as_gaps(tmp_path):
    index = _trial().sample_index.copy()
    index[600:] += 500  # 500 more positions missing than quality.gaps lists
    with pytest.raises(TrialFileError, match="lists 25 lost"):
        read_trial(_with_index(tmp_path, "unlisted.npz", index))
    ok = _with_index(tmp_path, "listed.npz", index, {"quality": {"lost_samples": 525, "gaps": [
        {"at_sample": 400, "length": 25}, {"at_sample": 625, "length": 500}]}})
    assert read_trial(ok).dense_counts()[0].shape[0] == 1525
    over = _trial().sample_index.copy()
    over[-1] = 3600 * 1000 + 5  # listed, but longer than any recording may be
    path = _with_index(tmp_path, "long.npz", over, {"quality": {"lost_samples": 3600 * 1000, "gaps": [
        {"at_sample": 400, "length": 3600 * 1000}]}})
    with pytest.raises(TrialFileError, match="more than 3600 s"):
        read_trial(path)


def test_meta_with_a_number_that_is_not_finite_is_refused(tmp_path):
    tmp_path = tmp_path / "work"  # beside the data dir the fixtures make
    tmp_path.mkdir()
    t = _trial()
    t.meta["device"] = {"info": {"rate_hz": float("nan")}}
    with pytest.raises(TrialFileError, match="not finite"):
        write_trial(tmp_path / "nan.npz", t)
    assert list(tmp_path.iterdir()) == []


def test_without_hard_links_the_name_is_reserved_exclusively_and_still_never_replaced(tmp_path, monkeypatch):
    """FAT sticks and some network shares refuse os.link: the O_EXCL fallback keeps the promise."""
    import errno

    work = tmp_path / "work"
    work.mkdir()

    def no_links(src, dst, *a, **k):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    assert create_new_file(work / "a.bin", b"first").read_bytes() == b"first"
    target = work / "b.bin"

    def racing(fh):
        fh.write(b"mine")
        target.write_bytes(b"theirs")  # appears while we write

    with pytest.raises(FileExistsError):
        create_new_file(target, racing)
    assert target.read_bytes() == b"theirs"
    assert sorted(p.name for p in work.iterdir()) == ["a.bin", "b.bin"]
