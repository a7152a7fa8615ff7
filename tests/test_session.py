"""The acquisition session: an enforced lifecycle, a restart that acquires again, sinks fed in order."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import wait_for

from steplab.acquisition.device import SimulatedStepBox
from steplab.acquisition.rig import default_rig
from steplab.acquisition.ring_buffer import CountsRing
from steplab.acquisition.session import AcquisitionSession, SessionStateError


class Collect:
    """A sink that keeps every block it is handed."""

    def __init__(self) -> None:
        self.armed = 0
        self.blocks: list[tuple[np.ndarray, np.ndarray]] = []

    def on_armed(self, session) -> None:
        self.armed += 1
        self.blocks.clear()

    def on_samples(self, positions, counts) -> None:
        self.blocks.append((positions.copy(), counts.copy()))

    @property
    def positions(self) -> np.ndarray:
        return np.concatenate([p for p, _ in self.blocks]) if self.blocks else np.zeros(0, np.int64)


def _session(**kw) -> AcquisitionSession:
    rig = default_rig()
    return AcquisitionSession(SimulatedStepBox(rig, scenario="quiet", seed=3), **kw)


def test_a_session_restarts_and_acquires_again():
    session = _session()
    sink = Collect()
    session.add_sink(sink)
    assert session.state == "configured"
    for run in (1, 2):
        session.start()
        assert session.state == "running"
        assert session.wait_armed(5)
        assert wait_for(lambda: sink.positions.size >= 300, 10), sink.positions.size
        session.stop()
        assert session.state == "stopped" and session.ended_reason == "stopped" and session.finished
        assert sink.armed == run
        pos = sink.positions
        np.testing.assert_array_equal(pos, np.arange(pos.size))  # a fresh timeline from 0, every sample in place
        assert session.stats.state == "stopped"
    session.close()
    assert session.state == "closed"


def test_illegal_transitions_raise():
    session = _session()
    with pytest.raises(SessionStateError):
        session.stop()  # never started
    with pytest.raises(SessionStateError):
        session.send_command("info")
    session.start()
    try:
        with pytest.raises(SessionStateError):
            session.start()
        with pytest.raises(SessionStateError):
            session.close()  # stop first
        with pytest.raises(SessionStateError):
            session.configure(info_timeout_s=2.0)
    finally:
        session.stop()
    session.stop()  # stopping a stopped session is harmless (a signal path may race the end)
    session.configure(info_timeout_s=2.0)
    session.close()
    with pytest.raises(SessionStateError):
        session.start()
    with pytest.raises(SessionStateError):
        session.configure(info_timeout_s=1.0)


def test_request_stop_is_safe_any_number_of_times_and_keeps_the_first_reason():
    session = _session()
    session.request_stop("ignored before start")  # never raises
    session.start()  # a start clears an earlier request
    assert session.wait_armed(5)
    session.request_stop("terminated")
    session.request_stop("interrupted")
    assert session.wait_finished(5)
    assert session.ended_reason == "terminated"
    session.stop()
    session.close()


def test_a_recording_session_ends_by_itself_after_its_seconds():
    session = _session(seconds=0.5, keep_samples=True)
    ring = CountsRing(window_s=5)
    session.add_sink(ring)
    session.start()
    assert session.wait_finished(10)
    session.stop()
    session.close()
    tl = session.timeline
    assert session.ended_reason == "complete" and tl.done
    assert tl.assembler.samples == 500 and tl.assembler.lost_samples == 0
    positions, counts, received, _gen = ring.read(0)
    assert received.all() and positions.size == 500
    np.testing.assert_array_equal(counts, tl.assembler.arrays()[0])  # the sink saw exactly the trial's samples


def test_bad_options_are_refused():
    with pytest.raises(ValueError):
        _session(seconds=0)
    with pytest.raises(ValueError):
        _session(info_timeout_s=0)
    with pytest.raises(ValueError):
        _session(reconnect_timeout_s=-1)
