"""`steplab simulate --pty`: the virtual step box on a pseudo-terminal."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading

from steplab.errors import UserError

SCENARIOS = ("session", "step-down", "forward-step-down", "drop-landing", "squat", "balance", "quiet", "empty")


def register(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="run the simulated step box on a pseudo-terminal",
        description="Serve the physics-based simulated step box on a pseudo-terminal. The first line on "
        "stdout is 'port: /dev/pts/N'; it streams frames until killed or until --seconds pass. "
        "SIGUSR1 reboots the device at once (its reset button): a new boot id, the sample index from 0.",
    )
    p.add_argument("--pty", action="store_true", required=True, help="serve on a pseudo-terminal (the only transport)")
    p.add_argument("--rate", type=float, default=None, metavar="HZ", help="sample rate in Hz (default: the rig's, 1000)")
    p.add_argument("--seconds", type=float, default=None, metavar="S", help="stop after S seconds (default: run until killed)")
    p.add_argument("--scenario", default="session", choices=SCENARIOS, help="what the virtual subject does (default: session)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same subject and noise")
    p.add_argument("--boot-id", type=int, default=None, metavar="N",
                   help="fixed boot id of this power-up, 1..4294967295 (default: a fresh random one, as a real rig "
                        "draws at every power-up; for tests of a host facing firmware that repeats its boot id)")
    p.add_argument("--fault-rate", type=float, default=0.0, metavar="P",
                   help="probability per byte of a bit flip, a dropped byte or an inserted byte")
    p.add_argument("--rig", default=None, metavar="FILE",
                   help="rig description (JSON), or 'split-box' for the 16-channel rig (default: the 12-channel smart step)")
    p.add_argument("--link", default=None, metavar="PATH",
                   help="keep a symlink at PATH to the current pty (like /dev/serial/by-id/ for a USB rig)")
    p.add_argument("--unplug-after", type=float, default=None, metavar="S", help="close the pty after S seconds (an unplug)")
    p.add_argument("--unplug-for", type=float, default=2.0, metavar="S", help="how long the rig stays unplugged (default 2 s)")
    p.add_argument("--reset-after", type=float, default=None, metavar="S", help="reboot the device after S seconds")
    p.add_argument("--samples-per-frame", type=int, default=None, metavar="N", help="samples per data frame (default: 10 ms worth)")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="X",
                   help="run the device X times faster than real time (0.1..100; demos and unattended calibration)")
    p.add_argument("--body-mass", type=float, default=70.0, metavar="KG", help="the virtual subject's body mass (default 70 kg)")
    p.add_argument("--involved", choices=("left", "right", "none"), default="left", help="the subject's involved (weaker) limb")
    p.add_argument("--asymmetry", type=float, default=0.15, help="how much weaker the involved limb is, 0..0.5 (default 0.15)")
    p.set_defaults(func=run)


def build_sim(args) -> tuple:
    """Rig, model and engine from the command-line options (shared with other commands)."""
    from steplab.acquisition.rig import RigError, load_rig, split_box_rig
    from steplab.acquisition.sim_device import SimDeviceEngine
    from steplab.acquisition.sim_rig import SimulatedRigModel
    from steplab.acquisition.sim_subject import Subject

    try:
        rig = split_box_rig() if args.rig == "split-box" else load_rig(args.rig)
    except RigError as exc:
        raise UserError(str(exc)) from None
    rate = args.rate if args.rate is not None else rig.sample_rate_hz
    if not (10.0 <= rate <= 8000.0):
        raise UserError(f"--rate {rate:g} Hz is outside 10..8000")
    if not (0 <= args.seed < 2**32):
        raise UserError(f"--seed {args.seed} must be in 0..{2**32 - 1}")
    if not (0.0 <= args.fault_rate < 0.5):
        raise UserError(f"--fault-rate {args.fault_rate:g} must be in [0, 0.5)")
    if args.seconds is not None and not (math.isfinite(args.seconds) and args.seconds > 0):
        raise UserError(f"--seconds {args.seconds:g} must be a positive number of seconds")
    if args.boot_id is not None and not (1 <= args.boot_id < 2**32):
        raise UserError(f"--boot-id {args.boot_id} must be in 1..{2**32 - 1}")
    if not (20.0 <= args.body_mass <= 300.0):
        raise UserError(f"--body-mass {args.body_mass:g} kg is outside 20..300")
    if not (0.0 <= args.asymmetry <= 0.5):
        raise UserError(f"--asymmetry {args.asymmetry:g} must be in 0..0.5")
    if args.samples_per_frame is not None and not (1 <= args.samples_per_frame <= 1000):
        raise UserError("--samples-per-frame must be in 1..1000")
    if not (0.1 <= args.time_scale <= 100.0):
        raise UserError(f"--time-scale {args.time_scale:g} must be in 0.1..100")
    try:
        subject = Subject(body_mass_kg=args.body_mass, involved_limb=None if args.involved == "none" else args.involved,
                          asymmetry=args.asymmetry)
        model = SimulatedRigModel(rig, subject, scenario=args.scenario, seed=args.seed, rate_hz=rate)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    engine = SimDeviceEngine(model, rig, rate_hz=rate, samples_per_frame=args.samples_per_frame,
                             seed=args.seed, fault_rate=args.fault_rate, time_scale=args.time_scale,
                             boot_id=getattr(args, "boot_id", None))
    return rig, model, engine


def run(args: argparse.Namespace) -> int:
    from steplab.acquisition.sim_device import LinkError, check_link_path, run_pty_server

    if args.link is not None:
        try:
            check_link_path(args.link)  # before anything starts: never replace a file that is not our symlink
        except LinkError as exc:
            raise UserError(str(exc)) from None
    if not (math.isfinite(args.unplug_for) and args.unplug_for > 0):
        raise UserError(f"--unplug-for {args.unplug_for:g} must be a positive number of seconds")
    for name, value in (("--unplug-after", args.unplug_after), ("--reset-after", args.reset_after)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UserError(f"{name} {value:g} must be a number of seconds, not negative")
    rig, _, engine = build_sim(args)
    from steplab.acquisition.sim_device import warm_up

    warm_up(rig)  # compile before announcing the port: the first frames are then on time

    def _terminate(*_):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up
        sys.exit(0)

    signal.signal(signal.SIGTERM, _terminate)
    reset_button = threading.Event()  # SIGUSR1: reboot the device now (tests time a reset inside a recording)
    signal.signal(signal.SIGUSR1, lambda *_: reset_button.set())
    try:
        run_pty_server(engine, seconds=args.seconds, link=args.link, unplug_after_s=args.unplug_after,
                       unplug_for_s=args.unplug_for, reset_after_s=args.reset_after, reset_request=reset_button)
    except LinkError as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt:
        pass
    return 0
