"""The reader thread: journal before decode, bounded queue that counts drops, stall watchdog."""

from __future__ import annotations

import os
import queue
import threading
import time
import tty

import numpy as np
import pytest
from conftest import wait_for

from steplab.acquisition import protocol
from steplab.acquisition.device import SerialStepBox
from steplab.acquisition.journal import JournalWriter, read_journal
from steplab.acquisition.reader import AcquisitionReader
from steplab.acquisition.stream_tracker import StreamTracker


def _pty():
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


def _frames(n, first_frame=0, spf=10, channels=12):
    return [protocol.encode_data_frame(boot_id=77, seq=first_frame + k, first_sample=(first_frame + k) * spf,
                                       device_time_us=0, counts=np.full((spf, channels), k, np.int32))
            for k in range(n)]


def test_every_byte_is_journaled_and_a_silent_rig_trips_the_watchdog(tmp_path):
    master, slave, name = _pty()
    dev = SerialStepBox(name)
    dev.open()
    journal = JournalWriter(tmp_path / "j", header={})
    reader = AcquisitionReader(dev, journal, stall_timeout_s=0.5)
    reader.start()
    try:
        wire = b"".join(_frames(50))
        os.write(master, wire)
        assert wait_for(lambda: reader.stats.bytes_read == len(wire), 5)
        assert reader.stats.state == "streaming"
        assert wait_for(lambda: reader.stats.state == "stalled", 3)  # the rig went silent, the port stayed open
        assert reader.stats.stalls == 1
        os.write(master, b"".join(_frames(5, first_frame=50)))
        assert wait_for(lambda: reader.stats.state == "streaming", 3)
    finally:
        reader.stop()
        dev.close()
        journal.close()
        os.close(master)
        os.close(slave)
    got = read_journal(tmp_path / "j")
    data = b"".join(r.payload for r in got.records if r.kind == b"D")
    assert data == wire + b"".join(_frames(5, first_frame=50))
    assert [r.event["event"] for r in got.records if r.kind == b"E"] == ["stalled", "resumed"]


def test_a_consumer_that_falls_behind_loses_counted_chunks_that_show_as_exact_gaps(tmp_path):
    master, slave, name = _pty()
    dev = SerialStepBox(name)
    dev.open()
    reader = AcquisitionReader(dev, None, queue_size=3)
    reader.start()
    frames = _frames(400)
    try:
        for k in range(0, 400, 20):  # 20 writes; nobody reads the queue meanwhile
            os.write(master, b"".join(frames[k:k + 20]))
            time.sleep(0.06)
        assert wait_for(lambda: reader.stats.bytes_read == sum(map(len, frames)), 5)
    finally:
        reader.stop()
        dev.close()
        os.close(master)
        os.close(slave)
    assert reader.stats.queue_dropped_chunks > 0
    tracker = StreamTracker()
    delivered = 0
    while not reader.queue.empty():
        chunk = reader.queue.get_nowait().chunk
        tracker.update(chunk)
        delivered += chunk.n_samples
    assert delivered + reader.stats.queue_dropped_samples == 4000
    # what the queue dropped in the middle is a gap at its exact place; a dropped tail is unknowable downstream
    assert tracker.lost_samples + delivered + (4000 - tracker.next_sample) == 4000


def test_send_command_writes_a_command_frame(tmp_path):
    master, slave, name = _pty()
    dev = SerialStepBox(name)
    dev.open()
    reader = AcquisitionReader(dev, None)
    try:
        cid = reader.send_command("set_rate", rate_hz=2000)
        data = b""
        deadline = time.monotonic() + 2
        while not data.endswith(b"\x00") and time.monotonic() < deadline:
            data += os.read(master, 4096)
    finally:
        dev.close()
        os.close(master)
        os.close(slave)
    from steplab.acquisition.frame_decoder import FrameDecoder

    msgs = FrameDecoder().feed(data).messages
    assert len(msgs) == 1 and msgs[0].frame_type == protocol.FRAME_TYPE_COMMAND
    assert msgs[0].payload == {"cmd": "set_rate", "id": cid, "rate_hz": 2000}


def test_reconnect_backoff_stops_when_asked(tmp_path):
    master, slave, name = _pty()
    dev = SerialStepBox(name)
    dev.open()
    reader = AcquisitionReader(dev, None, reconnect_backoff_s=(0.05,))
    reader.start()
    os.close(master)
    os.close(slave)  # unplugged, and the port never comes back
    try:
        assert wait_for(lambda: reader.stats.state == "disconnected", 3)
        assert reader.stats.disconnected_since is not None
    finally:
        t = threading.Thread(target=reader.stop)
        t.start()
        t.join(3)
    assert not reader.running


def test_a_restarted_reader_reads_again(tmp_path):
    master, slave, name = _pty()
    dev = SerialStepBox(name)
    dev.open()
    reader = AcquisitionReader(dev, None)
    try:
        reader.start()
        first = b"".join(_frames(5))
        os.write(master, first)
        assert wait_for(lambda: reader.stats.bytes_read == len(first), 5)
        reader.stop()
        assert not reader.running and reader.stats.state == "stopped"
        reader.start()  # the stop request of the first run must not end the second
        assert reader.running and reader.stats.state == "streaming"
        second = b"".join(_frames(7, first_frame=5))
        os.write(master, second)
        assert wait_for(lambda: reader.stats.bytes_read == len(second), 5), reader.stats
    finally:
        reader.stop()
        dev.close()
        os.close(master)
        os.close(slave)
    chunks = []
    while not reader.queue.empty():
        chunks.append(reader.queue.get_nowait().chunk)
    assert sum(c.n_samples for c in chunks) == 120


def test_a_reconnect_event_is_never_dropped_and_keeps_its_place_under_back_pressure(tmp_path):
    """The queue is full when the rig comes back: data is dropped (counted), the event is not."""
    link = tmp_path / "rig"
    m1, s1, n1 = _pty()
    os.symlink(n1, link)
    dev = SerialStepBox(str(link))
    dev.open()
    reader = AcquisitionReader(dev, None, queue_size=2, reconnect_backoff_s=(0.05,))
    reader.start()
    m2 = s2 = None
    try:
        for k in range(4):  # nobody reads: the queue fills, later chunks are dropped and counted
            os.write(m1, b"".join(_frames(3, first_frame=3 * k)))
            assert wait_for(lambda k=k: reader.stats.bytes_read >= sum(map(len, _frames(3 * (k + 1)))), 5)
            time.sleep(0.1)
        assert reader.queue.full() and reader.stats.queue_dropped_chunks >= 1
        m2, s2, n2 = _pty()  # the rig is unplugged, and comes back under another name
        link.unlink()
        os.symlink(n2, link)
        os.close(m1)
        os.close(s1)
        assert wait_for(lambda: reader.stats.reconnects == 1, 5)
        after = b"".join(_frames(3, first_frame=100))
        os.write(m2, after)
        assert wait_for(lambda: reader.stats.bytes_read >= len(after), 5)
        time.sleep(0.2)
        items = []
        while True:  # the consumer catches up: the event is there, after the old data
            try:
                items.append(reader.queue.get(timeout=0.5))
            except queue.Empty:
                break
        kinds = [it.event or "data" for it in items]
        assert kinds == ["data", "data", "reconnected"], kinds  # what came after it was dropped: counted
        delivered = sum(it.chunk.n_samples for it in items if it.chunk is not None)
        assert delivered + reader.stats.queue_dropped_samples == 150  # 12 frames before, 3 after: all counted
        # room again: the re-plugged device's next data arrives after the event
        os.write(m2, b"".join(_frames(2, first_frame=103)))
        nxt = reader.queue.get(timeout=5)
        while nxt.chunk is not None and nxt.chunk.frames.size == 0:  # a read that ended inside a frame
            nxt = reader.queue.get(timeout=5)
        assert nxt.event is None and nxt.chunk.frames["first_sample"][0] == 1030
    finally:
        reader.stop()
        dev.close()
        for fd in (m2, s2):
            if fd is not None:
                os.close(fd)
    assert not reader.running


def test_the_read_queue_bounds_data_but_never_events():
    from steplab.acquisition.reader import ReadItem, ReadQueue

    q = ReadQueue(2)
    assert q.put_data(ReadItem(1, "a")) and q.put_data(ReadItem(2, "b"))
    assert not q.put_data(ReadItem(3, "c")) and q.full()
    q.put_event(ReadItem(4, None, "reconnected"))
    assert [q.get_nowait().host_time_ns for _ in range(3)] == [1, 2, 4]
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    with pytest.raises(ValueError):
        ReadQueue(0)
