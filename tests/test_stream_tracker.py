"""StreamTracker: exact gaps, resets as new segments, seq wraps, duplicates; end-to-end fault property."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steplab.acquisition import protocol as p
from steplab.acquisition.frame_decoder import FRAME_DTYPE, FrameDecoder
from steplab.acquisition.stream_tracker import Gap, Reset, StreamTracker, kept_samples


def frame(seq, first, n=4, boot=0x1111, ch=2, flags=0):
    counts = (np.arange(n * ch, dtype=np.int32).reshape(n, ch) + first * 10)
    return p.encode_data_frame(boot_id=boot, seq=seq % 2**32, first_sample=first, device_time_us=first * 250,
                               counts=counts, flags=flags)


def run(*wires):
    dec, tr = FrameDecoder(), StreamTracker()
    evs = [tr.update(dec.feed(w)) for w in wires]
    return tr, evs


def test_contiguous_stream_has_no_events():
    tr, (ev,) = run(b"".join(frame(i, 4 * i) for i in range(50)))
    assert ev.gaps == [] and ev.resets == [] and ev.duplicate_samples == 0 and ev.keep.all()
    assert (tr.lost_samples, tr.segments, tr.samples_kept, tr.frames_kept) == (0, 1, 200, 50)
    assert tr.next_sample == 200 and tr.boot_id == 0x1111


def test_dropped_frames_leave_exact_gaps():
    sizes = [4, 3, 5, 2, 6, 1, 4]
    starts = np.concatenate(([1000], 1000 + np.cumsum(sizes)[:-1]))
    wires = [frame(i, int(s), n) for i, (s, n) in enumerate(zip(starts, sizes))]
    sent = [w for i, w in enumerate(wires) if i not in (2, 4, 5)]
    # deliver across two chunks, so the tracker state carries over
    tr, evs = run(b"".join(sent[:2]), b"".join(sent[2:]))
    gaps = [g for ev in evs for g in ev.gaps]
    assert gaps == [Gap(0x1111, int(starts[2]), 5), Gap(0x1111, int(starts[4]), 6 + 1)]
    assert tr.lost_samples == 12 == sizes[2] + sizes[4] + sizes[5]
    assert tr.gaps == 2 and tr.segments == 1


def test_overrun_flag_marks_device_side_gap():
    tr, (ev,) = run(frame(0, 0) + frame(1, 10, flags=p.FLAG_OVERRUN))
    assert ev.gaps == [Gap(0x1111, 4, 6, device_overrun=True)]


def test_device_reset_starts_new_segment_and_nothing_is_mixed():
    a = [frame(100 + i, 5000 + 4 * i, boot=0xAAAA) for i in range(5)]
    b = [frame(i, 4 * i, boot=0xBBBB) for i in range(5)]
    stale = frame(105, 5020, boot=0xAAAA)  # a late frame of the old boot
    dec, tr = FrameDecoder(), StreamTracker()
    ch = dec.feed(b"".join(a + b[:2]) + stale + b"".join(b[2:]))
    ev = tr.update(ch)
    assert ev.resets == [Reset(0xAAAA, 0xBBBB, 0)]
    assert ev.gaps == [] and ev.lost_samples == 0  # the sample index going back is not a loss
    assert ev.keep.tolist() == [True] * 7 + [False] + [True] * 3
    frames, counts = kept_samples(ch.frames, ch.counts, ev.keep)
    assert frames["boot_id"].tolist() == [0xAAAA] * 5 + [0xBBBB] * 5
    assert counts.shape == (40, 2) and frames["offset"].tolist() == list(range(0, 40, 4))
    assert counts[20:].tolist() == np.concatenate([np.arange(8).reshape(4, 2) + 40 * i for i in range(5)]).tolist()
    assert (tr.segments, tr.resets, tr.duplicate_samples) == (2, 1, 4)


def test_seq_wrap_is_not_a_reset():
    wires = [frame(2**32 - 3 + i, 4 * i) for i in range(6)]  # seq ... 2**32-1, 0, 1, 2
    tr, evs = run(b"".join(wires[:2]), b"".join(wires[2:]))
    assert all(ev.resets == [] and ev.gaps == [] for ev in evs)
    assert tr.seq_wraps == 1 and tr.segments == 1 and tr.samples_kept == 24


def test_seq_wrap_with_loss_across_it():
    wires = [frame(2**32 - 2 + i, 4 * i) for i in range(5)]
    tr, (ev,) = run(wires[0] + wires[3] + wires[4])
    assert ev.gaps == [Gap(0x1111, 4, 8)] and ev.resets == [] and tr.seq_wraps == 1


def test_duplicate_frame_dropped():
    w = [frame(i, 4 * i) for i in range(4)]
    dec, tr = FrameDecoder(), StreamTracker()
    ch = dec.feed(w[0] + w[1] + w[1] + w[2] + w[0] + w[3])
    ev = tr.update(ch)
    assert ev.keep.tolist() == [True, True, False, True, False, True]
    assert ev.duplicate_samples == 8 and ev.gaps == [] and tr.duplicate_samples == 8
    frames, counts = kept_samples(ch.frames, ch.counts, ev.keep)
    assert frames["first_sample"].tolist() == [0, 4, 8, 12]
    assert counts[:, 0].tolist() == [10 * f + 2 * j for f in (0, 4, 8, 12) for j in range(4)]


def test_a_replay_is_a_duplicate_even_when_the_device_numbers_it_anew():
    w = [frame(i, 4 * i) for i in range(6)]
    again = frame(99, 8)  # the samples 8..11 once more, same counts and device time, a new seq
    tr, (ev,) = run(b"".join(w[:4]) + again + b"".join(w[4:]))
    assert ev.keep.tolist() == [True] * 4 + [False, True, True]
    assert ev.duplicate_samples == 4 and ev.resets == [] and tr.segments == 1


def test_an_index_that_runs_back_without_a_replay_is_a_reset_even_with_the_same_boot_id():
    # the old code took the frame claiming samples 2..5 (after 0..7) for a partial duplicate
    restarted = p.encode_data_frame(boot_id=0x1111, seq=0, first_sample=2, device_time_us=500,
                                    counts=np.full((4, 2), 7, np.int32))  # new samples, not the ones sent before
    tr, (ev,) = run(frame(0, 0) + frame(1, 4) + restarted + frame(1, 6))
    assert ev.keep.tolist() == [True, True, True, True]
    assert ev.resets == [Reset(0x1111, 0x1111, 2)] and ev.resets[0].reason == "sample_index_backwards"
    assert ev.duplicate_samples == 0 and ev.gaps == [] and tr.segments == 2
    assert ev.segment_runs[0].tolist() == [1, 1, 2, 2]


def test_a_restart_with_the_boot_id_of_the_last_power_up_is_a_reset_not_7780_duplicates():
    """Issue 11.1: the simulator killed at device sample 8150 and started again with the same boot id."""
    boot = 0xB007
    before = [frame(i, 10 * i, n=10, boot=boot) for i in range(700, 815)]  # samples 7000..8149
    after = [frame(2 + i, 380 + 10 * i, n=10, boot=boot) for i in range(800)]  # the new process: 380 onwards
    dec, tr = FrameDecoder(), StreamTracker()
    ev1 = tr.update(dec.feed(b"".join(before)))
    ev2 = tr.update(dec.feed(b"".join(after)))
    assert ev1.resets == [] and ev1.gaps == []
    assert ev2.resets == [Reset(boot, boot, 380)] and ev2.resets[0].reason == "sample_index_backwards"
    assert ev2.duplicate_samples == 0 and tr.duplicate_samples == 0 and ev2.keep.all()
    assert tr.samples_kept == (815 - 700) * 10 + 800 * 10 and tr.segments == 2
    assert set(ev2.segment_runs[0].tolist()) == {2} and set(ev1.segment_runs[0].tolist()) == {1}


def test_a_device_time_that_runs_back_is_a_reset_whatever_the_boot_id():
    early = p.encode_data_frame(boot_id=0x1111, seq=3, first_sample=12, device_time_us=10,
                                counts=np.zeros((4, 2), np.int32))  # index goes on, the device clock restarted
    tr, (ev,) = run(frame(0, 0) + frame(1, 4) + frame(2, 8) + early + frame(4, 16))
    assert [r.reason for r in ev.resets] == ["device_time_backwards"] and ev.resets[0].first_sample == 12
    assert ev.keep.all() and ev.gaps == [] and tr.segments == 2


def test_same_index_and_time_but_other_counts_is_a_restart_not_a_replay():
    a = p.encode_data_frame(boot_id=5, seq=0, first_sample=0, device_time_us=0, counts=np.full((10, 3), 1, np.int32))
    b = p.encode_data_frame(boot_id=5, seq=1, first_sample=10, device_time_us=10_000, counts=np.full((10, 3), 2, np.int32))
    a2 = p.encode_data_frame(boot_id=5, seq=0, first_sample=0, device_time_us=0, counts=np.full((10, 3), 9, np.int32))
    tr, (ev,) = run(a + b + a2)
    assert ev.keep.all() and len(ev.resets) == 1 and ev.duplicate_samples == 0
    tr, (ev,) = run(a + b + a)  # the same bytes again: a replay
    assert ev.keep.tolist() == [True, True, False] and ev.resets == [] and ev.duplicate_samples == 10


def test_a_frame_older_than_the_replay_window_is_not_taken_for_a_replay():
    from steplab.acquisition.stream_tracker import REPLAY_WINDOW_FRAMES

    w = [frame(i, 4 * i) for i in range(REPLAY_WINDOW_FRAMES + 2)]
    tr, (ev,) = run(b"".join(w) + w[0])  # w[0] left the window: whatever it is, it is not silently dropped
    assert ev.duplicate_samples == 0 and len(ev.resets) == 1
    tr, (ev,) = run(b"".join(w) + w[3])  # still inside the window
    assert ev.duplicate_samples == 4 and ev.resets == []


def test_update_frames_and_validation():
    tr = StreamTracker()
    fr = np.zeros(2, dtype=FRAME_DTYPE)
    fr["boot_id"] = 3
    fr["samples"] = 5
    fr["first_sample"] = [0, 10]
    ev = tr.update_frames(fr)
    assert ev.gaps == [Gap(3, 5, 5)]
    with pytest.raises(ValueError):
        tr.update(fr)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        tr.update_frames(np.zeros(3))
    with pytest.raises(ValueError):
        kept_samples(fr, np.zeros((10, 1), np.int32), np.ones(3, bool))


def test_runs_of_different_channel_counts():
    tr, (ev,) = run(frame(0, 0, ch=2) + frame(1, 4, ch=3) + frame(2, 12, ch=3))
    assert [k.tolist() for k in ev.keep_runs] == [[True], [True, True]]
    assert ev.gaps == [Gap(0x1111, 8, 4)]


# -- end to end: random link faults ----------------------------------------------------
def _apply_faults(wire: bytes, faults) -> bytes:
    flips: dict[int, int] = {}
    drops: set[int] = set()
    inserts: dict[int, list[int]] = {}
    for kind, pos, val in faults:
        if kind == "flip":
            flips[pos] = flips.get(pos, 0) ^ (1 << (val % 8))
        elif kind == "drop":
            drops.add(pos)
        else:
            inserts.setdefault(pos, []).append(val)
    out = bytearray()
    for i in range(len(wire) + 1):
        out += bytes(inserts.get(i, []))
        if i < len(wire) and i not in drops:
            out.append(wire[i] ^ flips.get(i, 0))
    return bytes(out)


@st.composite
def scenario(draw):
    n = draw(st.integers(3, 25))
    channels = draw(st.integers(1, 4))
    seq0 = draw(st.sampled_from([0, 2**32 - 5]))
    reset_at = draw(st.one_of(st.none(), st.integers(1, n - 1)))
    same_boot = draw(st.booleans())  # a restarted device that kept its boot id: the index and time run back
    sizes = draw(st.lists(st.integers(1, 6), min_size=n, max_size=n))
    is_msg = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    values = draw(st.lists(st.integers(-2**23, 2**23 - 1), min_size=1, max_size=8))
    boot, seq, sample, seg = 0x0BADF00D, seq0, 500, 0
    sent = []  # (wire, kind, boot, seq, first_sample, samples, segment)
    for i in range(n):
        if reset_at is not None and i == reset_at:
            boot, seq, sample, seg = (boot if same_boot else 0x5EED1234), 0, draw(st.integers(0, 3)), 1
        if is_msg[i]:
            w = p.encode_message_frame(p.FRAME_TYPE_STATUS, boot_id=boot, seq=seq, payload={"i": i})
            sent.append((w, "msg", boot, seq, 0, 0, seg))
        else:
            c = np.resize(np.array(values, dtype=np.int32), (sizes[i], channels)) + i
            c = np.clip(c, -2**23, 2**23 - 2)
            w = p.encode_data_frame(boot_id=boot, seq=seq, first_sample=sample, device_time_us=sample * 1000, counts=c)
            sent.append((w, "data", boot, seq, sample, sizes[i], seg))
            sample += sizes[i]
        seq = (seq + 1) % 2**32
    total = sum(len(s[0]) for s in sent)
    faults = draw(st.lists(st.tuples(st.sampled_from(["flip", "drop", "insert"]), st.integers(0, total - 1),
                                     st.integers(0, 255)), max_size=6))
    splits = draw(st.lists(st.integers(0, total), max_size=8))
    return sent, faults, splits


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_faulty_link_never_accepts_corruption_and_accounts_every_lost_sample(sc):
    sent, faults, splits = sc
    wire = b"".join(s[0] for s in sent)
    bad = _apply_faults(wire, faults)
    cuts = sorted({min(c, len(bad)) for c in splits})
    pieces = [bad[a:b] for a, b in zip([0, *cuts], [*cuts, len(bad)])]
    dec, tr = FrameDecoder(), StreamTracker()
    delivered_data, delivered_msgs, gaps, resets = [], [], [], []
    for piece in pieces:
        ch = dec.feed(piece)
        ev = tr.update(ch)
        gaps += ev.gaps
        resets += ev.resets
        for run, keep in zip(ch.data_runs(), ev.keep_runs):
            assert keep.all()  # nothing on this link is duplicated
            for f in run.frames:
                c = run.counts[f["offset"]:f["offset"] + f["samples"]]
                delivered_data.append(p.encode_data_frame(
                    boot_id=int(f["boot_id"]), seq=int(f["seq"]), first_sample=int(f["first_sample"]),
                    device_time_us=int(f["device_time_us"]), counts=c, flags=int(f["flags"])))
        delivered_msgs += [p.encode_message_frame(m.frame_type, boot_id=m.boot_id, seq=m.seq, payload=m.payload,
                                                  device_time_us=m.device_time_us, flags=m.flags)
                           for m in ch.messages]
    dec.flush()
    delivered = delivered_data + delivered_msgs
    sent_wires = [s[0] for s in sent]
    # no corrupted frame accepted, none twice
    assert all(d in sent_wires for d in delivered)
    assert len(set(delivered)) == len(delivered)
    # every intact frame delivered: its bytes, the delimiter before it, and nothing inserted inside
    ends = np.cumsum([len(w) for w in sent_wires]) - 1
    starts = np.concatenate(([0], ends[:-1] + 1))
    hit = [(k, pos) for k, pos, _ in faults]
    for w, s0, e0 in zip(sent_wires, starts, ends):
        damaged = any((k != "insert" and s0 - 1 <= pos <= e0) or (k == "insert" and s0 <= pos <= e0)
                      for k, pos in hit)
        if not damaged:
            assert w in delivered
    # byte accounting: every fed byte is in an accepted frame or counted as discarded
    assert dec.bytes_fed == len(bad)
    assert dec.bytes_fed - dec.bytes_discarded == sum(len(d) for d in delivered)
    assert dec.frames_ok == len(delivered)
    # exact loss accounting, per device boot, between the first and last delivered data frame
    got = set(delivered_data)
    expected_gaps, lost = [], 0
    for seg in dict.fromkeys(s[6] for s in sent):
        data = [s for s in sent if s[1] == "data" and s[6] == seg]
        idx = [i for i, s in enumerate(data) if s[0] in got]
        if not idx:
            continue
        i = idx[0]
        while i <= idx[-1]:
            if data[i][0] in got:
                i += 1
                continue
            j = i
            while data[j][0] not in got:
                j += 1
            length = sum(s[5] for s in data[i:j])
            expected_gaps.append(Gap(data[i][2], data[i][4], length))
            lost += length
            i = j
    assert gaps == expected_gaps
    assert tr.lost_samples == lost
    assert tr.samples_kept == sum(s[5] for s in sent if s[0] in got)
    segs_seen = [g for g in dict.fromkeys(s[6] for s in sent) if any(s[0] in got and s[6] == g for s in sent if s[1] == "data")]
    boots_seen = [next(s[2] for s in sent if s[6] == g) for g in segs_seen]
    assert tr.segments == len(segs_seen)
    assert [(r.old_boot_id, r.new_boot_id) for r in resets] == list(zip(boots_seen[:-1], boots_seen[1:]))


def test_a_restart_that_repeats_index_time_and_counts_is_told_from_a_replay_by_its_older_seq():
    """A deterministic device (the simulator with the same seed) restarted with its old boot id: the same
    bytes but for seq, which restarts low.  A replay repeats its own seq or, renumbered, a newer one."""
    w = [frame(100 + i, 4 * i) for i in range(20)]
    restarted = frame(3, 4 * 5)  # the frame of samples 20..23 again, numbered as the restarted device numbers it
    tr, (ev,) = run(b"".join(w) + restarted)
    assert ev.duplicate_samples == 0 and [r.reason for r in ev.resets] == ["sample_index_backwards"]
    tr, (ev,) = run(b"".join(w) + w[5])  # the very same frame: a replay
    assert ev.duplicate_samples == 4 and ev.resets == []
    tr, (ev,) = run(b"".join(w) + frame(120, 4 * 5))  # renumbered after the last seq (119): a retransmission
    assert ev.duplicate_samples == 4 and ev.resets == []
