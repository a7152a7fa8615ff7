"""Recording a trial: device → reader (journal first) → assembler → trial file.

``record`` is what ``steplab record`` runs; ``recover`` rebuilds a trial from a
journal after a crash with the same decoder and assembler.  The recording is
armed when the device has described itself (the ``info`` reply: rate, channel
map, rig) or, for a device that does not answer, after ``info_timeout_s`` with
the rig given by the caller; its first sample is timeline position 0 and it
lasts ``seconds × rate`` positions, every one either received or listed as lost.
"""

from __future__ import annotations

import datetime as _dt
import math
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steplab import __version__

from . import protocol
from .device import DeviceError, StepBox
from .frame_decoder import DecodedChunk, FrameDecoder
from .journal import JournalWriter, read_journal
from .reader import AcquisitionReader
from .rig import Rig, RigError
from .trial_assembler import TrialAssembler
from .trial_file import Trial, TrialFileError, write_trial

MAX_RECORDING_S = 3600.0  # one trial file holds at most an hour (it is built in memory)
IDENTITY_TIMEOUT_S = 3.0  # how long a re-plugged device has to say who it is


class RecordingError(DeviceError):
    """The recording could not be made (one-line message)."""


class RecordingInterrupted(RecordingError):
    """The operator stopped the recording (Ctrl-C); a partial trial may have been written."""

    def __init__(self, message: str, trial: Trial | None = None, summary: dict | None = None):
        super().__init__(message)
        self.trial = trial
        self.summary = summary


@dataclass
class RecordingSession:
    """The bookkeeping shared by live recording and recovery (no I/O of its own).

    After the link comes back (``expect_identity``) data is held until the
    device has answered ``info`` again: only the same rig (serial number and
    channel count) continues the recording; another device ends it.
    """

    seconds: float
    rig_override: Rig | None = None
    info_timeout_s: float = 1.0
    on_armed: Callable[[RecordingSession], None] | None = None

    def __post_init__(self) -> None:
        self.device_info: dict | None = None
        self.rig: Rig | None = None
        self.assembler: TrialAssembler | None = None
        self.last_status: dict | None = None
        self._first_data_ns: int | None = None
        self.crc_errors = self.malformed = self.oversize = self.bytes_discarded = 0
        self.awaiting_identity_since_ns: int | None = None
        self._held: list[tuple[DecodedChunk, int]] = []
        self.identity_unverified = 0
        self.foreign_device: dict | None = None

    @property
    def armed(self) -> bool:
        return self.assembler is not None

    def _arm(self, rate_hz: float, rig: Rig) -> None:
        max_samples = int(round(self.seconds * rate_hz))
        if max_samples < 1:
            raise RecordingError(f"--seconds {self.seconds:g} is shorter than one sample at {rate_hz:g} Hz")
        self.rig = rig
        self.assembler = TrialAssembler(channels=rig.channels, rate_hz=rate_hz, max_samples=max_samples)
        if self.on_armed is not None:
            self.on_armed(self)

    def expect_identity(self, host_time_ns: int) -> None:
        """The link came back: hold data until the device says who it is."""
        if self.armed and not self.done:
            self.awaiting_identity_since_ns = host_time_ns
            self.assembler.after_reconnect = True

    def release_unverified(self) -> None:
        """A re-plugged device that never answers ``info``: keep its data, say so."""
        if self.awaiting_identity_since_ns is not None:
            self.identity_unverified += 1
            self.awaiting_identity_since_ns = None
            held, self._held = self._held, []
            for chunk, t in held:
                self._add_data(chunk, t)

    def _check_identity(self, info: dict) -> None:
        same = (str(info.get("serial")) == str((self.device_info or {}).get("serial"))
                and int(info.get("channels", -1)) == self.rig.channels)
        self.awaiting_identity_since_ns = None
        held, self._held = self._held, []
        if not same:
            self.foreign_device = {"serial": info.get("serial"), "channels": info.get("channels")}
            return
        for chunk, t in held:
            self._add_data(chunk, t)

    def add(self, chunk: DecodedChunk, host_time_ns: int) -> None:
        if self.armed:
            self.crc_errors += chunk.crc_errors
            self.malformed += chunk.malformed
            self.oversize += chunk.oversize
            self.bytes_discarded += chunk.bytes_discarded
        for msg in chunk.messages:
            if msg.frame_type in (protocol.FRAME_TYPE_REPLY, protocol.FRAME_TYPE_INFO) and "rig" in msg.payload:
                info = {k: v for k, v in msg.payload.items() if k not in ("id", "ok")}
                if self.device_info is None:
                    self.device_info = info
                elif self.awaiting_identity_since_ns is not None:
                    self._check_identity(info)
            elif msg.frame_type == protocol.FRAME_TYPE_STATUS:
                self.last_status = msg.payload
        if self.foreign_device is not None:
            return
        if not self.armed:
            if self.device_info is not None:
                rate = float(self.device_info.get("rate_hz") or 0)
                rig = self.rig_override
                if rig is None:
                    try:
                        rig = Rig.from_dict(self.device_info["rig"])
                    except (RigError, KeyError, TypeError) as exc:
                        raise RecordingError(f"the device describes its rig badly ({exc}); give --rig FILE") from None
                if rate <= 0:
                    rate = rig.sample_rate_hz
                if int(self.device_info.get("channels", rig.channels)) != rig.channels:
                    raise RecordingError(f"the device streams {self.device_info.get('channels')} channels but the rig has {rig.channels}")
                self._arm(rate, rig)
            elif chunk.n_samples:
                if self._first_data_ns is None:
                    self._first_data_ns = host_time_ns
                if self.rig_override is not None and host_time_ns - self._first_data_ns >= self.info_timeout_s * 1e9:
                    self._arm(self.rig_override.sample_rate_hz, self.rig_override)
            if not self.armed:
                return
            # the data frames of the chunk that armed the session start the recording
        if self.awaiting_identity_since_ns is not None:
            if chunk.n_samples:
                self._held.append((chunk, host_time_ns))
            return
        self._add_data(chunk, host_time_ns)

    def _add_data(self, chunk: DecodedChunk, host_time_ns: int) -> None:
        if not self.assembler.done:
            self.assembler.add(chunk, host_time_ns)

    @property
    def done(self) -> bool:
        return self.armed and self.assembler.done

    def truncate(self) -> None:
        """End the timeline where it is now (an interrupted recording): no tail gap."""
        if self.armed:
            self.assembler.max_samples = max(self.assembler.next_position, 1)

    def build_trial(self, *, address: str, extra: dict | None = None) -> Trial:
        if not self.armed or self.assembler.samples == 0:
            raise RecordingError("no samples were recorded")
        a = self.assembler
        counts, index = a.arrays()
        saturated = int(np.count_nonzero(np.any((counts >= protocol.COUNTS_MAX) | (counts <= protocol.COUNTS_MIN), axis=1)))
        started = _dt.datetime.fromtimestamp(a.first_host_time_ns / 1e9, tz=_dt.UTC)
        quality = {
            "frames": a.frames, "samples": a.samples, "lost_samples": a.lost_samples,
            "gaps": [g.to_dict() for g in a.gaps], "crc_errors": self.crc_errors, "malformed": self.malformed,
            "oversize": self.oversize, "bytes_discarded": self.bytes_discarded,
            "duplicate_samples": a.duplicate_samples, "device_resets": a.resets,
            "clipped_frames": a.clipped_frames, "overrun_frames": a.overrun_frames,
            "foreign_samples": a.foreign_samples, "timeline_samples": a.next_position,
            "segments": a.segments, "saturated_samples": saturated,
            "identity_unverified_reconnects": self.identity_unverified,
        }
        meta = {
            "started_at": started.isoformat(timespec="milliseconds"),
            "software_version": __version__,
            "device": {"address": address, "info": self.device_info, "last_status": self.last_status},
            "calibration": None,
            "quality": quality,
        }
        if extra:
            for k, v in extra.items():
                if isinstance(v, dict) and isinstance(meta.get(k), dict):
                    meta[k].update(v)
                else:
                    meta[k] = v
        return Trial(counts=counts, sample_index=index, sample_rate_hz=a.rate_hz, rig=self.rig, meta=meta)

    def summary(self, out: str | Path) -> dict:
        """The ``steplab record --json`` object (interfaces.md) plus extra fields."""
        a = self.assembler
        return {
            "frames": a.frames, "samples": a.samples, "lost_samples": a.lost_samples,
            "crc_errors": self.crc_errors,
            "gaps": [{"at_sample": g.at_sample, "length": g.length} for g in a.gaps],
            "sample_rate_hz": float(a.rate_hz), "channels": int(a.channels), "out": str(out),
            "gap_kinds": [g.kind for g in a.gaps], "malformed": self.malformed,
            "duplicate_samples": a.duplicate_samples, "device_resets": a.resets,
        }


def journal_path_for(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".journal")


def record(device: StepBox, seconds: float, out: str | Path, *, rig: Rig | None = None,
           journal_path: str | Path | None = None, calibration_ref: dict | None = None,
           calibration_for: Callable[[Rig, dict | None], dict | None] | None = None,
           connect_timeout_s: float = 3.0, reconnect_timeout_s: float = 30.0,
           progress: Callable[[RecordingSession], None] | None = None) -> tuple[Trial, dict]:
    """Record ``seconds`` of the device into the trial file ``out``; returns (trial, summary).

    ``calibration_for(rig, device_info)`` (optional) returns the calibration
    reference to store in the trial; it is called as soon as the rig is known,
    so a calibration that does not fit stops the recording before it starts.
    Acquisition itself knows nothing of newtons.

    A rig that stays unplugged or silent for ``reconnect_timeout_s`` ends the
    recording with the rest listed as a gap; a different device appearing on
    the port ends it too.  Ctrl-C writes the partial trial and raises
    RecordingInterrupted.  Raises RecordingError (a one-line reason) when
    nothing usable arrives; then nothing is left behind.
    """
    if not (0 < seconds <= MAX_RECORDING_S):
        raise RecordingError(f"--seconds {seconds:g} must be in (0, {MAX_RECORDING_S:g}]")
    if not (math.isfinite(reconnect_timeout_s) and 0 <= reconnect_timeout_s <= 3600):
        raise RecordingError(f"--reconnect-timeout {reconnect_timeout_s:g} must be in 0..3600 s")
    out = Path(out)
    if not out.parent.is_dir():
        raise RecordingError(f"the folder of {out} does not exist")
    journal_path = Path(journal_path) if journal_path else journal_path_for(out)
    cal = {"ref": calibration_ref}

    def on_armed(sess: RecordingSession) -> None:
        if calibration_for is not None and cal["ref"] is None:
            cal["ref"] = calibration_for(sess.rig, sess.device_info)

    session = RecordingSession(seconds=seconds, rig_override=rig, on_armed=on_armed)
    device.open()
    try:
        journal = JournalWriter(journal_path, header={
            "address": device.address, "seconds": seconds, "software_version": __version__,
            "rig": rig.to_dict() if rig else None, "calibration": calibration_ref,
            "started_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")})
    except ValueError as exc:
        device.close()
        raise RecordingError(str(exc)) from None
    reader = AcquisitionReader(device, journal)
    reader.start()
    t_start = time.monotonic()
    reader.send_command("info")
    last_info_request = t_start
    finished_reason = None
    interrupted = False

    def shut_down(reason: str) -> None:
        reader.stop()
        device.close()
        while True:  # what the reader queued before it stopped
            try:
                item = reader.queue.get_nowait()
            except queue.Empty:
                break
            if session.armed and not session.done and session.foreign_device is None and not interrupted:
                if item.chunk is not None:
                    session.add(item.chunk, item.host_time_ns)
        if not journal.closed:
            try:
                journal.event("stopped", reason=reason)
                journal.close()
            except OSError:
                pass

    try:
        while not session.done:
            try:
                item = reader.queue.get(timeout=0.05)
            except queue.Empty:
                item = None
            now = time.monotonic()
            if item is not None and item.event == "reconnected":
                # the link came back: hold the data that follows until the device says who it is
                session.expect_identity(item.host_time_ns)
                reader.send_command("info")
                last_info_request = now
            elif item is not None:
                session.add(item.chunk, item.host_time_ns)
            st = reader.stats
            if st.error:
                raise RecordingError(f"{st.error}; `steplab recover {journal_path}` restores what was journaled")
            if session.awaiting_identity_since_ns is not None:
                if now - last_info_request > 0.5:
                    reader.send_command("info")
                    last_info_request = now
                if time.time_ns() - session.awaiting_identity_since_ns > IDENTITY_TIMEOUT_S * 1e9:
                    session.release_unverified()
            if session.foreign_device is not None:
                finished_reason = "foreign_device"
                break
            if not session.armed:
                if now - t_start > connect_timeout_s:
                    if st.bytes_read == 0:
                        raise RecordingError(f"no data from {device.address} in {connect_timeout_s:g} s: is the rig connected, powered and streaming?")
                    if st.last_valid_frame_monotonic is None:
                        raise RecordingError(f"{device.address} sends data but no valid steplab frames in {connect_timeout_s:g} s "
                                             "(wrong baud rate, or not a steplab rig?)")
                    if session.device_info is None and rig is None:
                        raise RecordingError(f"{device.address} streams frames but does not answer 'info'; give --rig FILE")
                if session.device_info is None and now - last_info_request > 0.5:
                    reader.send_command("info")
                    last_info_request = now
            if st.disconnected_since is not None and now - st.disconnected_since > reconnect_timeout_s:
                finished_reason = "disconnected"
                break
            if st.stalled_since is not None and now - st.stalled_since > reconnect_timeout_s:
                finished_reason = "stalled"
                break
            if progress is not None:
                progress(session)
            if not reader.running and session.armed and not session.done:
                finished_reason = "disconnected"
                break
    except KeyboardInterrupt:
        interrupted = True
        finished_reason = "interrupted"
    except BaseException:
        shut_down("error")
        if not session.armed or session.assembler.samples == 0:
            journal_path.unlink(missing_ok=True)  # nothing usable arrived: leave nothing behind
        raise
    shut_down(finished_reason or "complete")
    if not session.armed or session.assembler.samples == 0:
        journal_path.unlink(missing_ok=True)
        if interrupted:
            raise RecordingInterrupted("interrupted before the recording started; nothing was written")
        raise RecordingError("no samples were recorded")
    if interrupted:
        session.truncate()
    session.assembler.finish(finished_reason)
    extra = {"journal": journal_path.name, "calibration": cal["ref"], "ended": finished_reason or "complete",
             "quality": {"reconnects": reader.stats.reconnects, "disconnects": reader.stats.disconnects,
                         "queue_dropped_samples": reader.stats.queue_dropped_samples,
                         "stalls": reader.stats.stalls}}
    if session.foreign_device is not None:
        extra["foreign_device"] = session.foreign_device
    trial = session.build_trial(address=device.address, extra=extra)
    try:
        write_trial(out, trial)
    except TrialFileError as exc:
        raise RecordingError(f"{exc}; `steplab recover {journal_path}` restores the recording") from None
    summary = session.summary(out)
    if interrupted:
        raise RecordingInterrupted(f"interrupted after {trial.duration_s:.2f} s: the partial trial is in {out}", trial, summary)
    return trial, summary


def recover(journal_path: str | Path, out: str | Path) -> tuple[Trial, dict]:
    """Rebuild the trial from a journal (after a crash) with the recorder's own logic."""
    contents = read_journal(journal_path)
    header = contents.header
    try:
        if not isinstance(header, dict):
            raise TypeError("the header is not a JSON object")
        rig = Rig.from_dict(header["rig"]) if header.get("rig") else None
        seconds = float(header.get("seconds") or MAX_RECORDING_S)
        if not (0 < seconds <= MAX_RECORDING_S):
            raise ValueError(f"seconds {seconds!r} is out of range")
        calibration = header.get("calibration")
        if calibration is not None and not isinstance(calibration, dict):
            raise TypeError("calibration is not an object")
    except (TypeError, ValueError, AttributeError, RigError) as exc:
        raise RecordingError(f"journal {journal_path} has an unusable header ({exc})") from None
    session = RecordingSession(seconds=seconds, rig_override=rig)
    decoder = FrameDecoder()
    reconnects = disconnects = 0
    for rec in contents.records:
        if session.done or session.foreign_device is not None:
            break
        since = session.awaiting_identity_since_ns
        if since is not None and rec.host_time_ns - since > IDENTITY_TIMEOUT_S * 1e9:
            session.release_unverified()
        if rec.kind == b"E":
            try:
                name = rec.event.get("event")
            except (ValueError, AttributeError):
                continue
            reconnects += name == "reconnected"
            disconnects += name == "disconnected"
            if name == "reconnected":
                session.expect_identity(rec.host_time_ns)
            continue
        session.add(decoder.feed(rec.payload), rec.host_time_ns)
    session.release_unverified()
    if not session.armed or session.assembler.samples == 0:
        raise RecordingError(f"journal {journal_path} holds no usable recording")
    extra = {"journal": Path(journal_path).name, "calibration": calibration,
             "recovered": {"torn_tail_bytes": contents.torn_tail_bytes, "corrupt_bytes": contents.corrupt_bytes,
                           "records": len(contents.records)},
             "quality": {"reconnects": reconnects, "disconnects": disconnects}}
    trial = session.build_trial(address=str(header.get("address", "")), extra=extra)
    write_trial(out, trial)
    return trial, session.summary(out)
