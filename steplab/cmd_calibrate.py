"""`steplab calibrate`: guided dead-weight calibration of a plate, or of the simulated rig by its robot.

    steplab calibrate --device sim --auto --json [--rig FILE] [--seed N] [--out FILE]
    steplab calibrate --device URL --plate NAME [--rig FILE] [--out FILE] [--operator NAME]

The interactive form prints each prompt on stdout and waits for Enter before it
starts reading the plate for that step (the step is then accepted by itself once
the load is steady). The device side is any ``counts_source(n) -> (n, channels)``
callable; here ``DeviceCountsSource`` opens the address with
``acquisition.device.open_device``, sends ``start`` and decodes frames with
``acquisition.frame_decoder.FrameDecoder``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from steplab.errors import UserError


class DeviceCountsSource:
    """Raw counts from a step box: ``source(n)`` blocks until n samples arrived."""

    def __init__(self, address: str, channels: int, max_idle_reads: int = 100) -> None:
        from steplab.acquisition import protocol
        from steplab.acquisition.device import DeviceError, open_device
        from steplab.acquisition.frame_decoder import FrameDecoder

        try:
            self.device = open_device(address)
            self.device.open()
            self.device.write(protocol.encode_command("start", 1))
        except DeviceError as exc:
            raise UserError(str(exc)) from None
        self.decoder = FrameDecoder()
        self.channels = int(channels)
        self.max_idle_reads = int(max_idle_reads)
        self._pending = np.zeros((0, self.channels), dtype=np.int32)

    def __call__(self, n: int) -> np.ndarray:
        from steplab.acquisition.device import DeviceError

        idle = 0
        while self._pending.shape[0] < n:
            try:
                data = self.device.read()
            except DeviceError as exc:
                raise UserError(f"device lost: {exc}") from None
            chunk = self.decoder.feed(data) if data else None
            if chunk is None or chunk.counts.shape[0] == 0:
                idle += 1
                if idle > self.max_idle_reads:
                    raise UserError("the device sends no data")
                continue
            idle = 0
            if chunk.counts.shape[1] != self.channels:
                raise UserError(f"the device sends {chunk.counts.shape[1]} channels but the rig has {self.channels}")
            self._pending = np.concatenate([self._pending, chunk.counts])
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def skip_pending(self) -> None:
        """Drop samples buffered before the operator acted."""
        self._pending = self._pending[:0]

    def close(self) -> None:
        self.device.close()


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
    p.add_argument("--auto", action="store_true", help="unattended run on the simulated rig (needs --device sim)")
    p.add_argument("--rig", help="rig description file (default: the default smart step)")
    p.add_argument("--out", help="write the calibration record here (default: $STEPLAB_DATA_DIR/calibrations/)")
    p.add_argument("--operator", default=None, help="who calibrates (stored in the record)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated rig (sim only)")
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


def _save(record, out) -> Path:
    from steplab.calibration.records import save_record

    try:
        return save_record(record, path=out) if out else save_record(record)
    except OSError as exc:
        raise UserError(f"cannot save the calibration record: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    rig = _load_rig(args.rig)
    if args.out and Path(args.out).is_dir():
        raise UserError(f"--out {args.out} is a directory; give a file name")
    if args.auto:
        return _run_auto(args, rig)
    if not args.plate:
        raise UserError("--plate NAME is required (or use --device sim --auto)")
    if args.device == "sim":
        raise UserError("the simulated rig is calibrated with --auto (its robot places the masses)")
    return _run_interactive(args, rig)


def _run_auto(args, rig) -> int:
    from steplab.calibration.report import format_report
    from steplab.calibration.robot import CalibrationAborted, run_auto_calibration

    if args.device != "sim":
        raise UserError("--auto needs --device sim: only the simulated rig has a robot to place the masses")
    plates = None
    if args.plate:
        try:
            plates = (rig.plate(args.plate).name,)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    try:
        auto = run_auto_calibration(rig=rig, seed=args.seed, plates=plates, operator=args.operator or "sim-robot")
    except CalibrationAborted as exc:
        raise UserError(f"calibration stopped: {exc}") from None
    path = _save(auto.record, args.out)
    if args.json:
        print(json.dumps(_summary(auto.record, auto.results)))
    else:
        for res in auto.results.values():
            print(format_report(res.report))
        print(f"saved calibration {auto.record.calibration_id} to {path}")
    return 0


def _run_interactive(args, rig) -> int:  # pragma: no cover - needs an operator at a rig
    from steplab.calibration.procedure import CalibrationProcedure
    from steplab.calibration.records import make_record
    from steplab.calibration.report import format_report
    from steplab.calibration.robot import CalibrationAborted, drive

    try:
        proc = CalibrationProcedure(rig, args.plate)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    source = DeviceCountsSource(args.device, rig.channels)

    def on_prompt(prompt) -> None:
        print(f"[{prompt.step_index + 1}/{prompt.n_steps}] {prompt.text}", flush=True)
        input("  press Enter when ready ")
        source.skip_pending()

    def on_stop(p) -> bool:
        print(f"stopped: {p.message}", flush=True)
        return input("  fix it, then Enter to resume (q to quit) ").strip().lower() != "q"

    try:
        result = drive(proc, source, on_prompt=on_prompt, on_stop=on_stop, block_samples=max(int(rig.sample_rate_hz // 20), 1))
    except CalibrationAborted as exc:
        raise UserError(f"calibration stopped: {exc}") from None
    except EOFError:
        raise UserError("calibration stopped: no operator input") from None
    finally:
        source.close()
    record = make_record([result], rig, operator=args.operator or "operator")
    path = _save(record, args.out)
    print(format_report(result.report))
    if args.json:
        print(json.dumps(_summary(record, {result.geometry.name: result})))
    print(f"saved calibration {record.calibration_id} to {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
