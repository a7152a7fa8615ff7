"""The assembler lays frames on the trial timeline with every loss at its exact place."""

from __future__ import annotations

import numpy as np

from steplab.acquisition import protocol
from steplab.acquisition.frame_decoder import FrameDecoder
from steplab.acquisition.trial_assembler import TrialAssembler

C, SPF, RATE = 12, 10, 1000.0


def _frames(boot, first_frame, n_frames, seq0=0, flags_at=None):
    out = []
    for k in range(n_frames):
        f = first_frame + k
        counts = (np.arange(SPF * C, dtype=np.int32).reshape(SPF, C) + f * 1000 + boot % 7)
        flags = protocol.FLAG_OVERRUN if flags_at == k else 0
        out.append(protocol.encode_data_frame(boot_id=boot, seq=seq0 + k, first_sample=f * SPF,
                                              device_time_us=f * SPF * 1000, counts=counts, flags=flags))
    return out


def _feed(asm, frames, t_ns=0):
    dec = FrameDecoder()
    asm.add(dec.feed(b"".join(frames)), t_ns)


def test_dropped_frames_become_exact_gaps_and_the_limit_cuts_the_tail():
    frames = _frames(5, 100, 50)
    kept = [f for i, f in enumerate(frames) if i not in (3, 4, 20)]
    asm = TrialAssembler(channels=C, rate_hz=RATE, max_samples=400)
    _feed(asm, kept)
    counts, index = asm.arrays()
    assert [(g.at_sample, g.length, g.kind) for g in asm.gaps] == [(30, 20, "link"), (200, 10, "link")]
    assert index[0] == 0 and index[-1] == 399 and counts.shape == (400 - 30, C)
    assert asm.samples + asm.lost_samples == 400 and asm.done
    # each received row is the frame that was sent for that position
    for pos in (0, 29, 50, 199, 210, 399):
        row = counts[np.searchsorted(index, pos)]
        frame = 100 + pos // SPF
        assert row[0] == (pos % SPF) * C + frame * 1000 + 5 % 7


def test_device_reset_starts_a_new_segment_placed_by_the_host_clock():
    asm = TrialAssembler(channels=C, rate_hz=RATE)
    dec = FrameDecoder()
    asm.add(dec.feed(b"".join(_frames(1, 0, 10))), 1_000_000_000)  # 100 samples, host t = 1 s
    asm.add(dec.feed(b"".join(_frames(2, 0, 10))), 1_500_000_000)  # rebooted; arrives 0.5 s later
    _, index = asm.arrays()
    assert asm.resets == 1 and len(asm.segments) == 2
    gap = asm.gaps[0]
    assert gap.kind == "reset" and gap.estimated and gap.at_sample == 100
    assert gap.length == 500 - 100  # 0.5 s at 1 kHz minus the 100 samples that came with the new boot
    assert index[100] == 500 and index[-1] == 599
    assert asm.segments[1] == {"boot_id": 2, "first_device_sample": 0, "at_sample": 500}


def test_duplicates_are_dropped_and_overrun_gaps_are_named():
    frames = _frames(9, 0, 20, flags_at=12)
    stream = frames[:10] + frames[5:8] + frames[12:]  # replay of 5..7, then frames 10, 11 lost on the device
    asm = TrialAssembler(channels=C, rate_hz=RATE)
    _feed(asm, stream)
    assert asm.duplicate_samples == 30
    assert [(g.at_sample, g.length, g.kind) for g in asm.gaps] == [(100, 20, "device_overrun")]
    assert asm.samples == 180 and asm.overrun_frames == 1


def test_a_missing_tail_is_a_disconnected_gap():
    asm = TrialAssembler(channels=C, rate_hz=RATE, max_samples=1000)
    _feed(asm, _frames(3, 0, 30))
    asm.finish("disconnected")
    assert [(g.at_sample, g.length, g.kind) for g in asm.gaps] == [(300, 700, "disconnected")]
    assert asm.samples + asm.lost_samples == 1000


def test_a_lost_frame_at_the_very_end_still_completes_the_recording():
    """Frames 0..8 arrive, frame 9 (the last inside the limit) is lost, frame 10 arrives: done, one gap."""
    frames = _frames(4, 0, 12)
    kept = frames[:9] + frames[10:]
    asm = TrialAssembler(channels=C, rate_hz=RATE, max_samples=100)
    _feed(asm, kept)
    assert asm.done
    asm.finish("disconnected")
    assert [(g.at_sample, g.length, g.kind) for g in asm.gaps] == [(90, 10, "link")]
    assert asm.samples + asm.lost_samples == 100


def test_the_gap_after_a_reconnect_is_named_disconnected():
    asm = TrialAssembler(channels=C, rate_hz=RATE)
    dec = FrameDecoder()
    frames = _frames(6, 0, 30)
    asm.add(dec.feed(b"".join(frames[:10])), 0)
    asm.after_reconnect = True  # the session saw the port come back
    asm.add(dec.feed(b"".join(frames[20:])), 0)
    assert [(g.at_sample, g.length, g.kind) for g in asm.gaps] == [(100, 100, "disconnected")]
    assert not asm.after_reconnect


def test_a_reset_pause_is_timed_from_the_last_data_not_from_a_status_frame():
    asm = TrialAssembler(channels=C, rate_hz=RATE)
    dec = FrameDecoder()
    asm.add(dec.feed(b"".join(_frames(1, 0, 10))), 1_000_000_000)
    status = protocol.encode_message_frame(protocol.FRAME_TYPE_STATUS, boot_id=1, seq=11, payload={"uptime_s": 1})
    asm.add(dec.feed(status), 3_000_000_000)  # a status frame 2 s into the pause carries no samples
    asm.add(dec.feed(b"".join(_frames(2, 0, 10))), 4_000_000_000)
    gap = asm.gaps[0]
    assert gap.kind == "reset" and gap.length == 3000 - 100


def test_a_restart_that_keeps_its_boot_id_is_a_new_segment_with_an_estimated_pause():
    """Issue 11.1: the device index runs back (8150 -> 380) under the same boot id: a reset, not duplicates."""
    asm = TrialAssembler(channels=C, rate_hz=RATE)
    dec = FrameDecoder()
    asm.add(dec.feed(b"".join(_frames(7, 700, 115))), 1_000_000_000)  # device samples 7000..8149
    asm.add(dec.feed(b"".join(_frames(7, 38, 200, seq0=2))), 13_000_000_000)  # a new process, 12 s later
    counts, index = asm.arrays()
    assert asm.duplicate_samples == 0 and asm.resets == 1 and asm.samples == 1150 + 2000
    assert [s["first_device_sample"] for s in asm.segments] == [7000, 380]
    gap = asm.gaps[0]
    assert gap.kind == "reset" and gap.estimated and gap.at_sample == 1150
    assert gap.length == 12_000 - 2000  # 12 s at 1 kHz minus the samples that came with the new process
    assert np.all(np.diff(index) > 0) and index[-1] + 1 == 1150 + gap.length + 2000


def test_without_keeping_samples_every_block_still_reaches_the_listener_in_place():
    frames = _frames(5, 0, 30)
    kept = [f for i, f in enumerate(frames) if i not in (7, 8)]
    seen = []
    asm = TrialAssembler(channels=C, rate_hz=RATE, keep_samples=False,
                         on_samples=lambda pos, counts: seen.append((pos.copy(), counts.copy())))
    _feed(asm, kept)
    positions = np.concatenate([p for p, _ in seen])
    counts = np.concatenate([c for _, c in seen])
    np.testing.assert_array_equal(positions, np.r_[0:70, 90:300])  # the lost frames are a gap, not a splice
    assert asm.samples == positions.size and asm.lost_samples == 20
    assert asm.arrays()[0].shape == (0, C)  # nothing kept
    keeper = TrialAssembler(channels=C, rate_hz=RATE)
    _feed(keeper, kept)
    np.testing.assert_array_equal(keeper.arrays()[0], counts)  # the listener saw exactly what a trial keeps
