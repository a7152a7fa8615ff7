"""The live ring buffer: samples by timeline position, lost and overwritten ones told apart from received ones."""

from __future__ import annotations

import numpy as np
import pytest

from steplab.acquisition.ring_buffer import CountsRing


def _counts(positions: np.ndarray, channels: int = 3) -> np.ndarray:
    return (positions[:, None] * 10 + np.arange(channels)).astype(np.int32)


def test_samples_come_back_at_their_positions_and_gaps_are_not_received():
    ring = CountsRing(window_s=1.0)
    ring.arm(100.0, 3)  # 100 slots
    first = np.arange(0, 40)
    second = np.arange(50, 80)  # 40..49 lost
    ring.on_samples(first, _counts(first))
    ring.on_samples(second, _counts(second))
    positions, counts, received, generation = ring.read(0)
    assert generation == 1 and ring.head == 80
    np.testing.assert_array_equal(positions, np.arange(80))
    np.testing.assert_array_equal(np.flatnonzero(~received), np.arange(40, 50))
    np.testing.assert_array_equal(counts[received], _counts(positions[received]))
    assert not counts[~received].any()


def test_a_reader_too_far_behind_sees_overwritten_samples_as_not_received():
    ring = CountsRing(window_s=1.0)
    ring.arm(100.0, 3)
    allpos = np.arange(250)
    ring.on_samples(allpos, _counts(allpos))  # more than the capacity in one block
    positions, counts, received, _ = ring.read(100, 250)
    np.testing.assert_array_equal(received, positions >= 150)  # only the last 100 positions are still there
    np.testing.assert_array_equal(counts[received], _counts(positions[received]))
    ring.arm(100.0, 3)  # a new timeline: nothing of the old one is received at its positions
    positions, _counts_, received, generation = ring.read(0, 10)
    assert generation == 2 and positions.size == 0 and ring.head == 0


def test_bad_window_is_refused():
    with pytest.raises(ValueError):
        CountsRing(window_s=0)
