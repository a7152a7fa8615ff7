"""`steplab run`: the lab dashboard (default: the simulated step box, on 127.0.0.1:8050)."""

from __future__ import annotations

import argparse
import ipaddress

from steplab.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("run", help="start the lab dashboard",
                       description="Start the lab dashboard. By default it uses the simulated step box and "
                       "listens on http://127.0.0.1:8050 only.")
    p.add_argument("--device", default="sim", help="'sim' (default), a serial port, a pyserial URL or usb:VID:PID[:SERIAL]")
    p.add_argument("--rig", default=None, metavar="FILE", help="rig description (default: the 12-channel smart step)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=8050, help="TCP port (default 8050)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated subject (with --device sim)")
    p.set_defaults(func=run)


def build_live(device: str, rig_file: str | None, seed: int = 0):
    """The live source for ``--device`` (not yet started); without ``--rig`` the device's own rig is used."""
    from steplab.acquisition.device import DeviceError, open_device
    from steplab.acquisition.rig import RigError, load_rig
    from steplab.calibration.active import active_calibration
    from steplab.calibration.records import CalibrationRecordError
    from steplab.dashboard.live_source import LiveAcquisition

    def calibration_for(rig):
        active = active_calibration(rig)
        if active is None:
            print("steplab: no calibration for every plate of this rig: showing nominal gains, re-tared while "
                  "plates are unloaded (run steplab calibrate)", flush=True)
            return None
        for w in active.warnings:
            print(f"steplab: warning: {w}", flush=True)
        return active.arrays

    try:
        rig = load_rig(rig_file) if rig_file else None
        dev = open_device(device, rig=rig, seed=seed) if device.startswith("sim") else open_device(device)
        calibration = calibration_for(rig) if rig is not None else None
    except (RigError, DeviceError, CalibrationRecordError) as exc:
        raise UserError(str(exc)) from None
    return LiveAcquisition(dev, rig, calibration=calibration, calibration_for=calibration_for)


def run(args: argparse.Namespace) -> int:
    if not (1 <= args.port <= 65535):
        raise UserError(f"--port {args.port} is outside 1..65535")
    try:
        ipaddress.ip_address(args.host)
    except ValueError:
        if args.host != "localhost":
            raise UserError(f"--host {args.host!r} is not an IP address") from None
    from steplab.acquisition.device import DeviceError
    from steplab.acquisition.frame_decoder import warm_up as warm_decoder
    from steplab.dashboard.app import create_app
    from steplab.dsp.warmup import warm_up as warm_dsp

    live = build_live(args.device, args.rig, args.seed)  # a bad --device or --rig fails before the slow warm-up
    print("steplab: compiling the analysis core (cached after the first start)…", flush=True)
    warm_decoder()
    warm_dsp()
    try:
        live.start()
    except DeviceError as exc:
        raise UserError(str(exc)) from None
    app = create_app(live)
    rate = f"{live.rate_hz:g} Hz" if live.rate_hz > 0 else "rate not yet known"
    print(f"steplab: dashboard on http://{args.host}:{args.port}/ (device {live.device.address}, {rate})", flush=True)
    try:
        app.run(host=args.host, port=args.port, debug=False)
    finally:
        live.stop()
    return 0
