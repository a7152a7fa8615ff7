"""Recording a trial: device → acquisition session (journal first) → timeline → trial file.

``record`` is what ``steplab record`` runs; ``recover`` rebuilds a trial from a
journal after a crash with the same decoder and the same timeline
(``session.SessionTimeline``), so a recovered trial is the trial the recorder
would have written.  The recording is armed when the device has described
itself (the ``info`` reply: rate, channel map, rig) or, for a device that does
not answer, after ``info_timeout_s`` with the rig given by the caller; its
first sample is timeline position 0 and it lasts ``seconds × rate`` positions,
every one either received or listed as lost.

Stopping: Ctrl-C (KeyboardInterrupt in the calling thread) in any phase, or
``stop_event.set()`` from anywhere (a signal handler), ends the recording: the
partial trial is written (or nothing, before the first sample) and
``RecordingInterrupted`` is raised.  While the partial trial is written,
further SIGINT/SIGTERM are held back (when ``record`` runs on the main
thread), so a second Ctrl-C cannot break the file.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from steplab import __version__

from . import protocol
from .device import DeviceError, StepBox
from .frame_decoder import FrameDecoder
from .journal import JournalError, read_journal
from .rig import Rig, RigError
from .session import IDENTITY_TIMEOUT_S, AcquisitionSession, SessionError, SessionTimeline
from .trial_file import Trial, TrialFileError, write_trial

MAX_RECORDING_S = 3600.0  # one trial file holds at most an hour (it is built in memory)
STOP_TIMEOUT_S = 10.0  # the longest wait for the session to shut down

__all__ = ["MAX_RECORDING_S", "IDENTITY_TIMEOUT_S", "RecordingError", "RecordingInterrupted", "build_trial",
           "summary", "journal_path_for", "record", "recover", "finish_recording", "journal_header"]


class RecordingError(DeviceError):
    """The recording could not be made (one-line message)."""


class RecordingInterrupted(RecordingError):
    """The operator stopped the recording (Ctrl-C); a partial trial may have been written."""

    def __init__(self, message: str, trial: Trial | None = None, summary: dict | None = None):
        super().__init__(message)
        self.trial = trial
        self.summary = summary


def build_trial(session: SessionTimeline, *, address: str, extra: dict | None = None) -> Trial:
    """The trial of a finished timeline (counts, positions and the quality metadata)."""
    tl = session
    if tl.assembler is None or tl.assembler.samples == 0:
        raise RecordingError("no samples were recorded")
    a = tl.asm
    counts, index = a.arrays()
    saturated = int(np.count_nonzero(np.any((counts >= protocol.COUNTS_MAX) | (counts <= protocol.COUNTS_MIN), axis=1)))
    started = _dt.datetime.fromtimestamp((a.first_host_time_ns or 0) / 1e9, tz=_dt.UTC)
    quality = {
        "frames": a.frames, "samples": a.samples, "lost_samples": a.lost_samples,
        "gaps": [g.to_dict() for g in a.gaps], "crc_errors": tl.crc_errors, "malformed": tl.malformed,
        "oversize": tl.oversize, "bytes_discarded": tl.bytes_discarded,
        "duplicate_samples": a.duplicate_samples, "device_resets": a.resets,
        "clipped_frames": a.clipped_frames, "overrun_frames": a.overrun_frames,
        "foreign_samples": a.foreign_samples, "timeline_samples": a.next_position,
        "segments": a.segments, "saturated_samples": saturated,
        "identity_unverified_reconnects": tl.identity_unverified,
    }
    meta: dict[str, Any] = {
        "started_at": started.isoformat(timespec="milliseconds"),
        "software_version": __version__,
        "device": {"address": address, "info": tl.device_info, "last_status": tl.last_status},
        "calibration": None,
        "quality": quality,
    }
    if extra:
        for k, v in extra.items():
            if isinstance(v, dict) and isinstance(meta.get(k), dict):
                meta[k].update(v)
            else:
                meta[k] = v
    return Trial(counts=counts, sample_index=index, sample_rate_hz=a.rate_hz, rig=tl.armed_rig, meta=meta)

def summary(session: SessionTimeline, out: str | Path) -> dict:
    """The ``steplab record --json`` object (interfaces.md) plus extra fields."""
    tl = session
    a = tl.asm
    return {
        "frames": a.frames, "samples": a.samples, "lost_samples": a.lost_samples,
        "crc_errors": tl.crc_errors,
        "gaps": [{"at_sample": g.at_sample, "length": g.length} for g in a.gaps],
        "sample_rate_hz": float(a.rate_hz), "channels": int(a.channels), "out": str(out),
        "gap_kinds": [g.kind for g in a.gaps], "malformed": tl.malformed,
        "duplicate_samples": a.duplicate_samples, "device_resets": a.resets,
    }


def journal_path_for(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".journal")


def journal_header(address: str, seconds: float, rig: Rig | None, calibration_ref: dict | None = None) -> dict:
    """The journal header ``steplab recover`` needs to rebuild the trial."""
    return {"address": address, "seconds": seconds, "software_version": __version__,
            "rig": rig.to_dict() if rig else None, "calibration": calibration_ref,
            "started_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")}


@contextlib.contextmanager
def _signals_held() -> Iterator[list[int]]:
    """Hold SIGINT/SIGTERM back while a file is written (main thread only; elsewhere a no-op)."""
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, lambda signum, _frame: held.append(signum))
        except (ValueError, OSError):  # pragma: no cover - not the main interpreter
            pass
    try:
        yield held
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def record(device: StepBox, seconds: float, out: str | Path, *, rig: Rig | None = None,
           journal_path: str | Path | None = None, calibration_ref: dict | None = None,
           calibration_for: Callable[[Rig, dict | None], dict | None] | None = None,
           connect_timeout_s: float = 3.0, reconnect_timeout_s: float = 30.0,
           progress: Callable[[SessionTimeline], None] | None = None,
           stop_event: threading.Event | None = None) -> tuple[Trial, dict]:
    """Record ``seconds`` of the device into the trial file ``out``; returns (trial, summary).

    ``calibration_for(rig, device_info)`` (optional) returns the calibration
    reference to store in the trial; it is called as soon as the rig is known,
    so a calibration that does not fit stops the recording before it starts.
    Acquisition itself knows nothing of newtons.

    A rig that stays unplugged or silent for ``reconnect_timeout_s`` ends the
    recording with the rest listed as a gap; a different device appearing on
    the port ends it too.  Ctrl-C or ``stop_event`` writes the partial trial
    and raises RecordingInterrupted.  Raises RecordingError (a one-line
    reason) when nothing usable arrives; then nothing is left behind.
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

    def on_armed(tl: SessionTimeline) -> None:
        if calibration_for is not None and cal["ref"] is None:
            cal["ref"] = calibration_for(tl.armed_rig, tl.device_info)

    header = journal_header(device.address, seconds, rig, calibration_ref)
    session = AcquisitionSession(device, rig=rig, seconds=seconds, journal_path=journal_path, journal_header=header,
                                 connect_timeout_s=connect_timeout_s, reconnect_timeout_s=reconnect_timeout_s,
                                 on_armed=on_armed)
    asked = False
    try:
        try:
            try:
                session.start()
            except JournalError as exc:
                raise RecordingError(str(exc)) from None
            while not session.wait_finished(0.05):
                if stop_event is not None and stop_event.is_set():
                    asked = True
                    session.request_stop(getattr(stop_event, "reason", None) or "interrupted")
                if progress is not None:
                    progress(session.timeline)
        except KeyboardInterrupt:  # in any phase: the handshake, arming, streaming
            asked = True
            session.request_stop("interrupted")
        with _signals_held():  # the shutdown and the partial trial are not to be torn by a second signal
            if session.state != "running":  # interrupted while the device was being opened
                if session.journal is not None:  # ours (a journal is created exclusively), and empty
                    session.journal.close()
                    journal_path.unlink(missing_ok=True)
                device.close()
                raise RecordingInterrupted("interrupted before the recording started; nothing was written")
            session.stop("interrupted")
            interrupted = asked or session.ended_reason == "interrupted"
            signal_name = getattr(stop_event, "signal_name", None) if stop_event is not None else None
            return finish_recording(session, out, journal_path, cal["ref"], interrupted, signal_name)
    finally:
        if session.state == "running":  # an exception in our own code: leave nothing running
            session.stop("error")
        session.close()


def finish_recording(session: AcquisitionSession, out: Path, journal_path: Path, calibration_ref=None,
                     interrupted: bool = False, signal_name: str | None = None) -> tuple[Trial, dict]:
    """Write the trial of a stopped recording session (``seconds`` given); returns (trial, summary).

    The journal is removed when nothing was recorded.  Raises RecordingError
    (one line) when nothing usable arrived or the session failed, and
    RecordingInterrupted (with the partial trial written) when ``interrupted``.
    """
    device = session.device
    tl = session.timeline
    reason = session.ended_reason or "complete"
    nothing = tl.assembler is None or tl.assembler.samples == 0
    if session.failure is not None or session.error is not None:
        if nothing:
            journal_path.unlink(missing_ok=True)  # nothing usable arrived: leave nothing behind
        session.raise_failure()
        if nothing or not journal_path.exists():
            raise RecordingError(session.error)
        raise RecordingError(f"{session.error}; `steplab recover {journal_path}` restores what was journaled")
    if nothing:
        journal_path.unlink(missing_ok=True)
        if interrupted:
            raise RecordingInterrupted("interrupted before the recording started; nothing was written")
        raise RecordingError("no samples were recorded")
    if interrupted:
        tl.truncate()
    tl.asm.finish(reason)
    st = session.stats
    extra = {"journal": journal_path.name, "calibration": calibration_ref, "ended": reason,
             "quality": {"reconnects": st.reconnects, "disconnects": st.disconnects,
                         "queue_dropped_samples": st.queue_dropped_samples, "stalls": st.stalls}}
    if tl.foreign_device is not None:
        extra["foreign_device"] = tl.foreign_device
    if signal_name:
        extra["stop_signal"] = signal_name
    trial = build_trial(tl, address=device.address, extra=extra)
    try:
        write_trial(out, trial)
    except TrialFileError as exc:
        raise RecordingError(f"{exc}; `steplab recover {journal_path}` restores the recording") from None
    result = summary(tl, out)
    if interrupted:
        raise RecordingInterrupted(f"interrupted after {trial.duration_s:.2f} s: the partial trial is in {out}",
                                   trial, result)
    return trial, result


def _ended_reason(contents) -> str:
    """Why the journaled recording ended: its last "stopped" event, else "journal_ended" (the process died)."""
    for rec in reversed(contents.records):
        if rec.kind == b"E":
            try:
                event = rec.event
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(event, dict) and event.get("event") == "stopped":
                return str(event.get("reason") or "stopped")
    return "journal_ended"


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
    tl = SessionTimeline(seconds=seconds, rig_override=rig)
    decoder = FrameDecoder()
    reconnects = disconnects = 0
    try:
        for rec in contents.records:
            if tl.done or tl.foreign_device is not None:
                break
            since = tl.awaiting_identity_since_ns
            if since is not None and rec.host_time_ns - since > IDENTITY_TIMEOUT_S * 1e9:
                tl.release_unverified()
            if rec.kind == b"E":
                try:
                    name = rec.event.get("event")
                except (ValueError, AttributeError):
                    continue
                reconnects += name == "reconnected"
                disconnects += name == "disconnected"
                if name == "reconnected":
                    tl.expect_identity(rec.host_time_ns)
                continue
            tl.add(decoder.feed(rec.payload), rec.host_time_ns)
    except SessionError as exc:
        raise RecordingError(f"journal {journal_path}: {exc}") from None
    tl.release_unverified()
    if tl.assembler is None or tl.assembler.samples == 0:
        raise RecordingError(f"journal {journal_path} holds no usable recording")
    extra = {"journal": Path(journal_path).name, "calibration": calibration, "ended": _ended_reason(contents),
             "recovered": {"torn_tail_bytes": contents.torn_tail_bytes, "corrupt_bytes": contents.corrupt_bytes,
                           "records": len(contents.records)},
             "quality": {"reconnects": reconnects, "disconnects": disconnects}}
    trial = build_trial(tl, address=str(header.get("address", "")), extra=extra)
    write_trial(out, trial)
    return trial, summary(tl, out)
