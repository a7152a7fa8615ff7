"""`steplab record`: record S seconds from a rig into a trial file, loss-free."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from steplab.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("record", help="record a trial from a rig",
                       description="Record S seconds from the rig into a trial file. Every byte is journaled "
                       "(FILE.journal) before decoding; every sample is delivered or listed as lost.")
    p.add_argument("--device", required=True, help="serial port, pyserial URL, usb:VID:PID[:SERIAL] or 'sim'")
    p.add_argument("--seconds", type=float, required=True, metavar="S", help="length of the trial in seconds (at most 3600)")
    p.add_argument("--out", required=True, metavar="FILE", help="trial file to write (.npz)")
    p.add_argument("--rig", default=None, metavar="FILE", help="rig description; default: what the device reports")
    p.add_argument("--calibration", default=None, metavar="FILE", help="calibration record the trial is to be analysed with")
    p.add_argument("--reconnect-timeout", type=float, default=30.0, metavar="S",
                   help="how long to wait for an unplugged rig to come back (default 30 s)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    from steplab.cmd_ingest_options import add_record_options

    add_record_options(p)  # --patient CODE [--visit ID] --protocol NAME [--lead L] [--db URL]
    p.set_defaults(func=run)


def _calibration_lookup(path: str | None):
    """calibration_for(rig, device_info) for the recorder: the named file, else the rig's active records."""
    from steplab.calibration.active import active_calibration
    from steplab.calibration.records import CalibrationRecordError

    def calibration_for(rig, device_info):
        device_hash = (device_info or {}).get("calibration_hash")
        try:
            active = active_calibration(rig, files=[path] if path else None, device_calibration_hash=device_hash)
        except CalibrationRecordError as exc:
            raise UserError(str(exc)) from None
        if active is None:
            print("steplab record: warning: no calibration for every plate of this rig; the trial will be "
                  "analysed with nominal gains (run steplab calibrate)", file=sys.stderr)
            return None
        for w in active.warnings:
            print(f"steplab record: warning: {w}", file=sys.stderr)
        return active.trial_reference()

    return calibration_for


def _say(text: str, file=None) -> None:
    """Print one line; a terminal that is gone (SIGHUP, a closed SSH session) is not an error.

    The stream is then pointed at /dev/null, so that Python's flush at exit does
    not fail again and turn the exit status 128 + N into 120.
    """
    stream = file or sys.stdout
    try:
        print(text, file=stream, flush=True)
    except OSError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass


def run(args: argparse.Namespace) -> int:
    from steplab.acquisition.recorder import journal_path_for
    from steplab.acquisition.stop_signals import StopSignals

    out = Path(args.out)
    stop = StopSignals(repeat_message=f"steplab record: already stopping; finishing the partial trial {out} "
                                      f"(the raw journal {journal_path_for(out)} is kept)")
    with stop:  # SIGINT, SIGTERM, SIGHUP: an orderly stop (an inherited "ignore" stays)
        return _record(args, out, stop)


def _record(args: argparse.Namespace, out: Path, stop) -> int:
    from steplab.acquisition.device import DeviceError, open_device
    from steplab.acquisition.journal import JournalError
    from steplab.acquisition.recorder import MAX_RECORDING_S, RecordingInterrupted, record
    from steplab.acquisition.rig import RigError, load_rig
    from steplab.acquisition.trial_file import TrialFileError

    if not (0 < args.seconds <= MAX_RECORDING_S):
        raise UserError(f"--seconds {args.seconds:g} must be in (0, {MAX_RECORDING_S:g}]")
    if os.path.lexists(out):
        raise UserError(f"{out} already exists; refusing to overwrite a recording")
    if not out.parent.is_dir():
        raise UserError(f"the folder of {out} does not exist")
    from steplab.cmd_ingest_options import check_record_target, save_recorded

    check_record_target(args)  # a bad --patient/--visit/--protocol is refused before recording
    try:
        rig = load_rig(args.rig) if args.rig else None
        calibration_for = _calibration_lookup(args.calibration)
        if args.calibration:
            from steplab.calibration.records import CalibrationRecordError, load_record
            try:
                load_record(args.calibration, rig)  # refuse a bad file before recording, not after
            except CalibrationRecordError as exc:
                raise UserError(str(exc)) from None
        device = open_device(args.device, rig=rig) if args.device.startswith("sim") else open_device(args.device)
        from steplab.acquisition.frame_decoder import warm_up

        warm_up()  # compile the decoder before the clock of the connect timeout starts
        if stop.is_set():  # a signal during the warm-up: nothing was opened or written
            _say(f"steplab record: stopped by {stop.signal_name or 'request'} before the recording started; "
                 "nothing was written", sys.stderr)
            return stop.exit_code
        trial, summary = record(device, args.seconds, out, rig=rig, calibration_for=calibration_for,
                                reconnect_timeout_s=args.reconnect_timeout, stop_event=stop)
    except RecordingInterrupted as exc:
        by = f" (stopped by {stop.signal_name})" if stop.signal_name and stop.signal_name != "SIGINT" else ""
        _say(f"steplab record: {exc}{by}", sys.stderr)
        if exc.summary is not None and args.json:
            _say(json.dumps(exc.summary))
        return stop.exit_code
    except (DeviceError, RigError, JournalError, TrialFileError) as exc:
        raise UserError(str(exc)) from None
    if args.json:
        _say(json.dumps(summary))
    else:
        _say(f"recorded {summary['samples']} samples ({summary['channels']} channels at {summary['sample_rate_hz']:g} Hz) "
             f"into {out}; lost {summary['lost_samples']} samples in {len(summary['gaps'])} gaps, "
             f"{summary['crc_errors']} CRC errors")
    if summary["lost_samples"]:
        _say(f"steplab record: warning: {summary['lost_samples']} samples lost; see quality.gaps in {out}", sys.stderr)
    save_recorded(args, out)  # with --patient: the trial and its analysis into the visit
    return 0
