"""The calibration's counts source over the acquisition session: blocks in order, lost samples counted, replies."""

from __future__ import annotations

import os
import select
import threading
import tty

import numpy as np
import pytest

from steplab.acquisition import protocol
from steplab.acquisition.counts_source import SessionCountsSource, SourceError
from steplab.acquisition.frame_decoder import FrameDecoder
from steplab.acquisition.rig import default_rig


class FakeRig:
    """A pty device: answers info, refuses place_mass (ok: false), streams what the test queues."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.name = os.ttyname(self.slave)
        self.rig = default_rig()
        self.stop = threading.Event()
        self.outbox: list[bytes] = []
        self.lock = threading.Lock()
        self.seq = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _frame(self, ftype: int, payload: dict) -> bytes:
        self.seq += 1
        return protocol.encode_message_frame(ftype, boot_id=3, seq=self.seq, device_time_us=0, payload=payload)

    def data(self, first_frame: int, n_frames: int) -> bytes:
        return b"".join(protocol.encode_data_frame(boot_id=3, seq=1000 + k, first_sample=10 * k, device_time_us=0,
                                                   counts=np.full((10, 12), k, np.int32))
                        for k in range(first_frame, first_frame + n_frames))

    def queue(self, blob: bytes) -> None:
        with self.lock:
            self.outbox.append(blob)

    def _serve(self) -> None:
        dec = FrameDecoder()
        while not self.stop.is_set():
            try:
                ready, _, _ = select.select([self.master], [], [], 0.02)
                if ready:
                    for m in dec.feed(os.read(self.master, 65536)).messages:
                        cmd = m.payload.get("cmd")
                        if cmd == "info":
                            self.queue(self._frame(protocol.FRAME_TYPE_REPLY, {
                                "id": m.payload["id"], "ok": True, "rig": self.rig.to_dict(), "rate_hz": 1000.0,
                                "channels": 12, "serial": self.rig.serial, "firmware": "fake", "simulated": True}))
                        elif cmd == "place_mass":
                            self.queue(self._frame(protocol.FRAME_TYPE_REPLY, {
                                "id": m.payload["id"], "ok": False, "error": "no robot"}))
                with self.lock:
                    out, self.outbox = b"".join(self.outbox), []
                if out:
                    os.write(self.master, out)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for fd in (self.master, self.slave):
            os.close(fd)


def test_blocks_arrive_in_order_lost_samples_are_counted_and_replies_are_kept():
    dev = FakeRig()
    src = SessionCountsSource(dev.name, dev.rig, idle_timeout_s=2.0)
    try:
        info = src.info(5)
        assert info is not None and info["simulated"] is True
        dev.queue(dev.data(0, 20) + dev.data(25, 15))  # frames 20..24 lost on the link
        block = src(300)
        assert block.shape == (300, 12) and block.dtype == np.int32
        np.testing.assert_array_equal(block[::10, 0], np.r_[0:20, 25:35])  # received samples, in order
        assert src.lost_samples == 50
        cid = src.command("place_mass", plate="box", x_mm=0, y_mm=0, mass_kg=10)
        reply = src.reply_to(cid, 5)
        assert reply is not None and reply["ok"] is False and reply["error"] == "no robot"
        with pytest.raises(SourceError, match="no data"):
            src(1000)  # 50 samples left, then nothing for 2 s
    finally:
        src.close()
        dev.close()


def test_a_gap_inside_one_placed_block_is_counted():
    """A link gap can fall inside one block the timeline places (it did on a loaded machine):
    the positions the block skips are lost samples too, not only those before it."""
    dev = FakeRig()
    src = SessionCountsSource(dev.name, dev.rig, idle_timeout_s=2.0)
    try:
        assert src.info(5) is not None and src.session.wait_armed(5)
        positions = np.r_[0:100, 150:200].astype(np.int64)  # 50 samples lost inside the block
        src.on_samples(positions, np.zeros((150, 12), np.int32))
        assert src.lost_samples == 50 and src.received_samples == 150
        src.on_samples(np.arange(210, 220, dtype=np.int64), np.zeros((10, 12), np.int32))  # 10 lost before
        assert src.lost_samples == 60
        assert src(160).shape == (160, 12)
    finally:
        src.close()
        dev.close()
