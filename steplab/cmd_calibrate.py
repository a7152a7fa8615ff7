"""`steplab calibrate`: guided dead-weight calibration of a plate, or of the simulated rig by its robot.

    steplab calibrate --device sim --auto --json [--rig FILE] [--seed N] [--out FILE]
    steplab calibrate --device URL --plate NAME [--rig FILE] [--out FILE] [--operator NAME]

The interactive form prints each prompt on stdout and waits for Enter before it
starts reading the plate for that step (the step is then accepted by itself once
the load is steady). The device side is any ``counts_source(n) -> (n, channels)``
callable; here ``DeviceCountsSource`` acquires through the same acquisition
session as ``steplab record`` (``acquisition.counts_source.SessionCountsSource``)
and sends ``start``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from steplab.errors import UserError


class DeviceCountsSource:
    """Raw counts from a step box: ``source(n)`` blocks until n samples arrived.

    The acquisition session's counts sink (``acquisition.counts_source``: the
    reader, handshake, identity check and timeline of ``steplab record``) with
    its errors as one-line UserErrors.
    """

    def __init__(self, address: str, rig) -> None:
        from steplab.acquisition.counts_source import SessionCountsSource
        from steplab.acquisition.device import DeviceError

        try:
            self._source = SessionCountsSource(address, rig)
        except DeviceError as exc:
            raise UserError(str(exc)) from None

    def command(self, cmd: str, **args) -> int:
        """Send a command frame to the device (its reply arrives with later reads); returns its id."""
        from steplab.acquisition.device import DeviceError

        try:
            return self._source.command(cmd, **args)
        except DeviceError as exc:
            raise UserError(str(exc)) from None

    def reply_to(self, command_id: int, timeout_s: float = 2.0) -> dict | None:
        """The device's reply to command ``command_id`` (None if none came within ``timeout_s``)."""
        return self._source.reply_to(command_id, timeout_s)

    def info(self, timeout_s: float = 10.0) -> dict | None:
        """The device's answer to ``info`` (None if it does not answer within ``timeout_s``)."""
        return self._source.info(timeout_s)

    def __call__(self, n: int) -> np.ndarray:
        from steplab.acquisition.device import DeviceError

        try:
            return self._source(n)
        except DeviceError as exc:
            raise UserError(str(exc)) from None

    def skip_pending(self) -> None:
        """Drop samples buffered before the operator acted."""
        self._source.skip_pending()

    def close(self) -> None:
        self._source.close()


class WireRobot:
    """The simulated rig's robot driven over the wire (``place_mass``/``clear_masses`` commands).

    Every command waits for the device's reply: a device that refuses one
    (``ok: false``, e.g. firmware that says it is simulated but has no robot) or
    does not answer within ``reply_timeout_s`` stops the calibration with one
    line, instead of retrying steps whose masses were never placed.
    """

    def __init__(self, source: DeviceCountsSource, reply_timeout_s: float = 10.0) -> None:
        self.source = source
        self.placements = 0
        self.reply_timeout_s = reply_timeout_s

    def _do(self, cmd: str, **args) -> None:
        cid = self.source.command(cmd, **args)
        reply = self.source.reply_to(cid, self.reply_timeout_s)
        if reply is None:
            raise UserError(f"the rig did not answer {cmd!r} within {self.reply_timeout_s:g} s; "
                            "--auto needs the simulated rig's robot")
        if reply.get("ok") is not True:
            raise UserError(f"the rig refused {cmd!r} ({reply.get('error') or 'no reason given'}); "
                            "--auto needs the simulated rig's robot: calibrate this rig without --auto")

    def act(self, prompt) -> None:
        self._do("clear_masses")
        if prompt.kind == "load" and prompt.mass_kg > 0:
            self._do("place_mass", plate=prompt.plate, x_mm=prompt.x_mm, y_mm=prompt.y_mm, mass_kg=prompt.mass_kg)
            self.placements += 1
        self.source.skip_pending()


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="guided calibration of a plate (tare, dead weights, fit, verification)",
        description="Guided calibration: warm-up and channel check, tare, dead weights at prompted positions "
                    "(loading up then down, repeated), least-squares fit, verification on other masses and "
                    "positions, and a saved calibration record. With --device sim --auto the simulated rig's "
                    "robot places the masses itself.",
    )
    p.add_argument("--device", required=True, help="'sim' (simulated rig) or a device address / pyserial URL")
    p.add_argument("--plate", help="plate name or role to calibrate (required unless --auto)")
    p.add_argument("--auto", action="store_true",
                   help="unattended run on a simulated rig: --device sim (in this process) or the port of "
                        "'steplab simulate --pty' (its robot places the masses through the wire protocol)")
    p.add_argument("--rig", help="rig description file (default: the default smart step)")
    p.add_argument("--out", help="write the calibration record here (default: $STEPLAB_DATA_DIR/calibrations/)")
    p.add_argument("--operator", default=None, help="who calibrates (stored in the record)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated rig (sim only)")
    p.add_argument("--warmup-s", type=float, default=None, metavar="S",
                   help="seconds of warm-up watched before the tare (default 900: 15 min from power-up; "
                        "less only if the rig has already been on that long)")
    p.add_argument("--settle-timeout", type=float, default=None, metavar="S",
                   help="seconds a load may take to become steady before the step stops (default 180)")
    p.add_argument("--json", action="store_true", help="print the verification summary as one JSON object")
    p.set_defaults(func=run)


def _load_rig(path):
    from steplab.acquisition.rig import RigError, load_rig

    try:
        return load_rig(path)
    except RigError as exc:
        raise UserError(str(exc)) from None


def _summary(record, results) -> dict:
    from steplab.calibration.report import summary_dict

    return {"calibration_id": record.calibration_id,
            "plates": {name: summary_dict(res.report) for name, res in results.items()}}


def _check_verification(results) -> None:
    """Refuse to save a calibration that misses rig.md's verification targets: it would become active."""
    from steplab.calibration.report import format_report, verification_failures

    failures = [f for res in results.values() for f in verification_failures(res.report)]
    if failures:
        for res in results.values():
            print(format_report(res.report), file=sys.stderr)
        raise UserError("verification failed, calibration not saved: " + "; ".join(failures)
                        + " (check the masses, their positions and that the plate moves freely, then recalibrate)")


def _save(record, out) -> Path:
    from steplab.calibration.records import CalibrationRecordError, save_record

    try:
        return save_record(record, path=out) if out else save_record(record)
    except CalibrationRecordError as exc:  # --out appeared during the calibration: never replaced
        raise UserError(f"calibration not saved: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot save the calibration record: {exc.strerror or exc}") from None


WARMUP_RANGE_S = (0.0, 7200.0)
SETTLE_TIMEOUT_RANGE_S = (1.0, 3600.0)


def _check_options(args: argparse.Namespace) -> None:
    """Refuse absurd options once, before anything runs, for every form (sim, port, --auto)."""
    if not (0 <= args.seed < 2**32):
        raise UserError(f"--seed {args.seed} must be in 0..{2**32 - 1}")
    lo, hi = WARMUP_RANGE_S
    if args.warmup_s is not None and not (lo <= args.warmup_s <= hi):  # also NaN
        raise UserError(f"--warmup-s {args.warmup_s:g} must be in {lo:g}..{hi:g}")
    lo, hi = SETTLE_TIMEOUT_RANGE_S
    if args.settle_timeout is not None and not (lo <= args.settle_timeout <= hi):
        raise UserError(f"--settle-timeout {args.settle_timeout:g} must be in {lo:g}..{hi:g}")
    if args.out:
        out = Path(args.out)
        if out.is_dir():
            raise UserError(f"--out {args.out} is a directory; give a file name")
        if os.path.lexists(out):
            raise UserError(f"--out {args.out} already exists; refusing to overwrite a calibration record")
        if not out.parent.is_dir():
            raise UserError(f"the folder of --out {args.out} does not exist")


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    rig = _load_rig(args.rig)
    if args.auto and args.device == "sim":
        return _run_auto(args, rig)
    if args.auto:
        return _run_interactive(args, rig, auto=True)
    if not args.plate:
        raise UserError("--plate NAME is required (or use --device sim --auto)")
    if args.device == "sim":
        raise UserError("the simulated rig is calibrated with --auto (its robot places the masses)")
    return _run_interactive(args, rig)


def _run_auto(args, rig) -> int:
    from steplab.calibration.report import format_report
    from steplab.calibration.robot import CalibrationAborted, run_auto_calibration

    plates = None
    if args.plate:
        try:
            plates = (rig.plate(args.plate).name,)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    try:
        auto = run_auto_calibration(rig=rig, seed=args.seed, plates=plates, operator=args.operator or "sim-robot",
                                    settings=_in_process_settings(args))
    except CalibrationAborted as exc:
        raise UserError(f"calibration stopped: {exc}") from None
    _check_verification(auto.results)
    path = _save(auto.record, args.out)
    if args.json:
        print(json.dumps(_summary(auto.record, auto.results)))
    else:
        for res in auto.results.values():
            print(format_report(res.report))
        print(f"saved calibration {auto.record.calibration_id} to {path}")
    return 0


def _run_interactive(args, rig, auto: bool = False) -> int:
    """The guided procedure on a rig over its port: prompts for an operator, or (``auto``) the
    simulated rig's robot answering them through the wire protocol."""
    from steplab.acquisition.frame_decoder import warm_up
    from steplab.calibration.procedure import CalibrationProcedure
    from steplab.calibration.records import make_record
    from steplab.calibration.report import format_report
    from steplab.calibration.robot import CalibrationAborted

    warm_up()  # compile the decoder before talking to the rig
    source = DeviceCountsSource(args.device, rig)
    try:
        robot = None
        if auto:
            info = source.info()
            if not info or not info.get("simulated"):
                raise UserError(f"--auto needs a simulated rig; {args.device} is not one (or does not answer 'info')")
            robot = WireRobot(source)
        names = [rig.plate(args.plate).name] if args.plate else list(rig.plate_names)
        if not auto and len(names) != 1:
            raise UserError("--plate NAME is required")
        results = {}
        for name in names:
            proc = CalibrationProcedure(rig, name, settings=_settings(args, auto))
            results[proc.geometry.name] = _drive_one(proc, source, robot, rig)
    except (CalibrationAborted, ValueError) as exc:
        raise UserError(f"calibration stopped: {exc}") from None
    except EOFError:
        raise UserError("calibration stopped: no operator input") from None
    finally:
        if robot is not None:
            try:
                source.command("clear_masses")  # leave the plate empty; a lost device must not hide the reason
            except UserError:
                pass
        source.close()
    _check_verification(results)
    record = make_record(list(results.values()), rig, operator=args.operator or ("sim-robot" if auto else "operator"))
    path = _save(record, args.out)
    if args.json:
        print(json.dumps(_summary(record, results)))
    else:
        for res in results.values():
            print(format_report(res.report))
    print(f"saved calibration {record.calibration_id} to {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _in_process_settings(args: argparse.Namespace):
    """The in-process robot's fast settings with --warmup-s / --settle-timeout applied (None: the defaults)."""
    import dataclasses

    from steplab.calibration.procedure import ProcedureSettings

    changes: dict[str, float] = {}
    if args.warmup_s is not None:
        changes["warmup_s"] = max(args.warmup_s, 0.5)  # the channel health check needs a little data
    if args.settle_timeout is not None:
        changes["settle_timeout_s"] = args.settle_timeout
    return dataclasses.replace(ProcedureSettings.fast(), **changes) if changes else None  # type: ignore[arg-type]


def _settings(args, auto: bool):
    """Procedure settings: the robot's fast ones or the operator's defaults, with the options applied."""
    import dataclasses

    from steplab.calibration.procedure import ProcedureSettings

    settings = ProcedureSettings.fast() if auto else ProcedureSettings()
    changes: dict[str, float] = {}
    if auto:
        # over a port the robot's command reaches the plate one link latency later (device and host
        # buffers): give a load 30 s of samples to settle instead of the in-process robot's 5 s
        changes["settle_timeout_s"] = 30.0
    if args.warmup_s is not None:  # (ranges checked in _check_options)
        changes["warmup_s"] = max(args.warmup_s, 0.5)  # the channel health check needs a little data
    if args.settle_timeout is not None:
        changes["settle_timeout_s"] = args.settle_timeout
    return dataclasses.replace(settings, **changes) if changes else settings  # type: ignore[arg-type]


def _drive_one(proc, source, robot, rig):
    from steplab.calibration.robot import drive

    def on_prompt(prompt) -> None:
        if robot is not None:
            robot.act(prompt)
            return
        print(f"[{prompt.step_index + 1}/{prompt.n_steps}] {prompt.text}", flush=True)
        input("  press Enter when ready ")
        source.skip_pending()

    resumes = [0]

    def on_stop(p) -> bool:
        print(f"stopped: {p.message}", file=sys.stderr if robot is not None else sys.stdout, flush=True)
        if robot is not None:
            resumes[0] += 1
            return resumes[0] <= 3  # the robot retries a step a few times; it cannot fix hardware
        return input("  fix it, then Enter to resume (q to quit) ").strip().lower() != "q"

    return drive(proc, source, on_prompt=on_prompt, on_stop=on_stop, block_samples=max(int(rig.sample_rate_hz // 20), 1))
