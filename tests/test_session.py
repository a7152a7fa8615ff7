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


def test_a_device_that_sends_only_status_frames_ends_the_recording_as_stalled():
    """Frames still arrive (status), so the link looks alive, but no sample comes: the session does not wait forever."""
    import os
    import threading
    import tty

    from steplab.acquisition import protocol
    from steplab.acquisition.device import SerialStepBox

    rig = default_rig()
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    stop = threading.Event()
    info = protocol.encode_message_frame(protocol.FRAME_TYPE_INFO, boot_id=9, seq=0, device_time_us=0, payload={
        "rig": rig.to_dict(), "rate_hz": 1000.0, "channels": 12, "serial": rig.serial, "firmware": "test"})
    data = b"".join(protocol.encode_data_frame(boot_id=9, seq=1 + k, first_sample=10 * k, device_time_us=0,
                                               counts=np.full((10, 12), k, np.int32)) for k in range(50))

    def send(blob: bytes) -> None:
        while blob and not stop.is_set():
            try:
                blob = blob[os.write(master, blob):]
            except BlockingIOError:
                stop.wait(0.01)

    def device() -> None:
        seq = 100
        try:
            send(info + data)
            while not stop.wait(0.1):
                seq += 1
                send(protocol.encode_message_frame(protocol.FRAME_TYPE_STATUS, boot_id=9, seq=seq,
                                                   device_time_us=0, payload={"streaming": False}))
        except OSError:
            pass

    t = threading.Thread(target=device, daemon=True)
    session = AcquisitionSession(SerialStepBox(os.ttyname(slave)), rig=rig, seconds=10, reconnect_timeout_s=1.0)
    try:
        session.start()
        t.start()
        assert session.wait_finished(20), (session.timeline.armed, session.stats, session.timeline.problem)
        assert session.ended_reason == "stalled"
        assert session.timeline.asm.samples == 500
    finally:
        if session.state == "running":
            session.stop()
        session.close()
        stop.set()
        t.join(5)
        os.close(master)
        os.close(slave)
