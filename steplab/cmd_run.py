"""`steplab run`: the lab dashboard (default: the simulated step box, on 127.0.0.1:8050).

The web side is waitress with a bounded pool of worker threads and a bounded
number of connections; acquisition (the session's reader and consumer) and the
live analysis run on threads of their own, so no number of web connections
can cost a sample.  The port is bound before anything is announced (a busy
port is a one-line error).  SIGTERM or SIGINT: the server stops taking
requests, the live session stops (the device is closed) and the command exits 0.

Access: only 127.0.0.1 unless ``--allow-remote``; the first start on a records
database without users adds the admin ``admin`` with a one-time password that is
printed once, on this terminal only.  The key that signs session cookies is kept
in STEPLAB_DATA_DIR (mode 0600), so a restart keeps everyone logged in.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import secrets
import signal
import sys
import threading
from pathlib import Path

from steplab.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("run", help="start the lab dashboard",
                       description="Start the lab dashboard. By default it uses the simulated step box and "
                       "listens on http://127.0.0.1:8050 only.")
    p.add_argument("--device", default="sim", help="'sim' (default), a serial port, a pyserial URL or usb:VID:PID[:SERIAL]")
    p.add_argument("--rig", default=None, metavar="FILE", help="rig description (default: the 12-channel smart step)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --host that other computers can reach (refused without it)")
    p.add_argument("--port", type=int, default=8050, help="TCP port (default 8050)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated subject (with --device sim)")
    p.add_argument("--db", default=None, metavar="URL",
                   help="records database, an SQLAlchemy URL (default: $STEPLAB_DB, else steplab.sqlite in $STEPLAB_DATA_DIR)")
    p.set_defaults(func=run)


def build_live(device: str, rig_file: str | None, seed: int = 0):
    """The live source for ``--device`` (not yet started); without ``--rig`` the device's own rig is used.

    The simulated rig starts calibrated (decision 0016): when no calibration
    record covers it, the real automatic procedure of ``steplab calibrate
    --device sim --auto`` runs here against the simulated unit (its robot places
    the masses), the record is checked against the verification targets and saved
    in $STEPLAB_DATA_DIR/calibrations, and later starts reuse it.
    """
    from steplab.acquisition.device import DeviceError, open_device
    from steplab.acquisition.rig import RigError, load_rig
    from steplab.calibration.active import active_calibration
    from steplab.calibration.records import CalibrationRecordError
    from steplab.dashboard.live_feed import LiveFeed

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
        if device.startswith("sim"):
            calibrate_sim_if_needed(rig or dev.rig, seed)  # type: ignore[attr-defined]
        calibration = calibration_for(rig) if rig is not None else None
    except (RigError, DeviceError, CalibrationRecordError) as exc:
        raise UserError(str(exc)) from None

    def on_trial_saved(path, trial, summary) -> None:
        # the file in STEPLAB_DATA_DIR/trials is written first; the session page saves it into its visit
        print(f"steplab: saved trial {path.name} ({summary.get('samples', 0)} samples, "
              f"{summary.get('lost_samples', 0)} lost)", flush=True)

    return LiveFeed(dev, rig, calibration=calibration, calibration_for=calibration_for, on_trial_saved=on_trial_saved)


def calibrate_sim_if_needed(rig, seed: int = 0):
    """Calibrate the simulated unit of ``rig`` by its robot unless a record already covers it; the saved path or None."""
    from steplab.calibration.active import active_calibration
    from steplab.calibration.records import CalibrationRecordError, save_record
    from steplab.calibration.report import verification_failures
    from steplab.calibration.robot import CalibrationAborted, run_auto_calibration

    if active_calibration(rig) is not None:
        return None
    try:
        auto = run_auto_calibration(rig=rig, seed=seed)
    except CalibrationAborted as exc:
        raise UserError(f"the simulated rig could not be calibrated: {exc}") from None
    failures = [f for res in auto.results.values() for f in verification_failures(res.report)]
    if failures:
        raise UserError("the simulated rig's calibration missed its verification targets: " + "; ".join(failures))
    try:
        path = save_record(auto.record)
    except (CalibrationRecordError, OSError) as exc:
        raise UserError(f"cannot save the simulated rig's calibration: {exc}") from None
    print(f"steplab: the simulated rig had no calibration: calibrated it by its robot (the steplab calibrate "
          f"--auto procedure), saved {auto.record.calibration_id} to {path}; later starts reuse it", flush=True)
    return path


def trials_dir():
    """Where the dashboard's recordings go: ``$STEPLAB_DATA_DIR/trials``."""
    from steplab.calibration.records import data_dir

    return data_dir() / "trials"


WEB_THREADS = 4  # waitress worker threads: bounded, whatever the number of clients
WEB_CONNECTION_LIMIT = 64  # connections beyond this wait in the listen backlog; acquisition never waits
WEB_CHANNEL_TIMEOUT_S = 20  # an idle (or half-open) connection is closed after this long


class _LateApp:
    """A WSGI application that answers 503 until the dashboard is plugged in."""

    def __init__(self) -> None:
        self.app = None

    def __call__(self, environ, start_response):
        if self.app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("Retry-After", "2")])
            return [b"steplab is starting\n"]
        return self.app(environ, start_response)


def bind_server(wsgi_app, host: str, port: int):
    """The waitress server bound to host:port (not yet serving); a busy port is a one-line UserError."""
    from waitress.server import create_server

    try:
        return create_server(wsgi_app, host=host, port=port, threads=WEB_THREADS,
                             connection_limit=WEB_CONNECTION_LIMIT, channel_timeout=WEB_CHANNEL_TIMEOUT_S,
                             clear_untrusted_proxy_headers=True, ident="steplab")
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is in use by another program (try --port)") from None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


STOP_REASONS = {signal.SIGTERM: "terminated", signal.SIGINT: "interrupted"}


def serve_until_signalled(server, stop: threading.Event) -> str:
    """Serve on a thread of its own until SIGTERM/SIGINT (or ``stop``), then stop taking requests.

    Returns how it ended ("terminated", "interrupted", "stopped").  The handlers
    stay installed (they only set ``stop``): a second signal cannot break the
    saving of a recording in progress that follows.
    """
    why = ["stopped"]

    def on_signal(signum, _frame) -> None:
        if not stop.is_set():
            why[0] = STOP_REASONS.get(signum, "stopped")
        stop.set()

    for sig in STOP_REASONS:
        signal.signal(sig, on_signal)
    thread = threading.Thread(target=server.run, name="steplab-web", daemon=True)
    thread.start()
    try:
        while not stop.wait(0.5):
            if not thread.is_alive():
                break
    finally:
        server.close()  # no new requests; the worker threads are daemons and end with the process
    return why[0]


SECRET_FILE = "dashboard-session.key"  # in STEPLAB_DATA_DIR: signs the session cookies
SECRET_BYTES = 32


def _read_secret(path: Path) -> bytes:
    mode = path.stat().st_mode  # FileNotFoundError: not made yet
    if mode & 0o077:
        raise UserError(f"the session key {path} can be read by other users: chmod 600 it "
                        "(or delete it: everyone logs in again)")
    key = path.read_bytes()
    if len(key) < SECRET_BYTES:
        raise UserError(f"the session key {path} is damaged: delete it (everyone logs in again)")
    return key


def session_secret(folder: Path) -> bytes:
    """The dashboard's session-signing key from ``folder``; made once (random, mode 0600, atomically).

    The key is written to a private temporary file and hard-linked into place, which
    never replaces a key: of two servers starting at once, both read the one that won.
    """
    path = Path(folder) / SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(SECRET_BYTES))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise UserError(f"cannot make the session key {path}: {exc.strerror or exc}") from None
    return _read_secret(path)


def check_host(host: str, allow_remote: bool) -> bool:
    """True when ``host`` is this computer only; a reachable one is refused unless ``allow_remote``."""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        if host != "localhost":
            raise UserError(f"--host {host!r} is not an IP address") from None
        local = True
    if not local and not allow_remote:
        raise UserError(f"--host {host} lets other computers on the network reach the dashboard: "
                        "add --allow-remote if that is meant")
    return local


def login_lines(url: str, one_time_password: str | None, users: list[dict]) -> list[str]:
    """What the terminal says about logging in (after the "dashboard on" line)."""
    login = url.rstrip("/") + "/login"
    if one_time_password is not None:
        return ["steplab: first start: no users yet, so an administrator account was made:",
                f"steplab:   log in at {login}",
                "steplab:   user name: admin",
                f"steplab:   one-time password: {one_time_password}",
                "steplab:   right after this login you choose your own password (this one is shown only here; "
                "add clinicians on the Users page)"]
    lines = [f"steplab: log in at {login}"]
    admins = [u for u in users if u["role"] == "admin" and u["active"]]
    if admins and all(u["must_change_password"] for u in admins):
        lines.append(f"steplab: no admin has chosen a password yet; lost the one-time password? "
                     f"run: steplab user reset-password {admins[0]['name']}")
    return lines


def run(args: argparse.Namespace) -> int:
    if not (1 <= args.port <= 65535):
        raise UserError(f"--port {args.port} is outside 1..65535")
    if not check_host(args.host, args.allow_remote):
        print(f"steplab: warning: listening on {args.host}: other computers on the network can reach the "
              "login page, and the traffic is not encrypted (on a clinic network put it behind an HTTPS proxy)",
              file=sys.stderr, flush=True)
    from steplab.acquisition.device import DeviceError
    from steplab.acquisition.frame_decoder import warm_up as warm_decoder
    from steplab.analysis_pipeline import warm_up as warm_dsp
    from steplab.dashboard.app import create_app
    from steplab.dashboard.context import DashboardSettings, DashContext
    from steplab.dashboard.session_control import control_for
    from steplab.records.db import DatabaseError, data_dir, open_database
    from steplab.records.users import ensure_first_admin, list_users

    try:
        db = open_database(args.db)
    except DatabaseError as exc:
        raise UserError(str(exc)) from None
    live = build_live(args.device, args.rig, args.seed)  # a bad --device or --rig fails before the slow warm-up
    try:
        settings = DashboardSettings(secret_key=session_secret(data_dir()))  # made once, kept across restarts
    except UserError:
        live.close()
        raise
    holder = _LateApp()  # the dashboard is plugged in once the device is known
    server = bind_server(holder, args.host, args.port)  # a busy port fails before anything is announced
    stop = threading.Event()
    try:
        print("steplab: compiling the analysis core (cached after the first start)…", flush=True)
        warm_decoder()
        warm_dsp()
        try:
            live.start()
        except DeviceError as exc:
            raise UserError(str(exc)) from None
        reason = "stopped"
        ctx = None
        try:
            ctx = DashContext(db=db, live=live, settings=settings, trials_dir=trials_dir())
            app = create_app(ctx)
            first_password = ensure_first_admin(db)  # only now: its password is printed right below
            holder.app = app.server
            rate = f"{live.rate_hz:g} Hz" if live.rate_hz > 0 else "rate not yet known"
            url = f"http://{args.host}:{args.port}/"
            print(f"steplab: dashboard on {url} (device {live.device.address}, {rate})", flush=True)
            print("\n".join(login_lines(url, first_password, list_users(db))), flush=True)
            reason = serve_until_signalled(server, stop)
        finally:
            live.stop(reason)  # a recording in progress is finished and saved (on_trial_saved: the records hook)
            live.close()
            if ctx is not None and not control_for(ctx).wait_saved():  # its save into the visit, on a worker
                print("steplab: warning: a trial was still being saved into its visit; its trial file is kept",
                      file=sys.stderr, flush=True)
    finally:
        server.close()
    print("steplab: dashboard stopped", flush=True)
    return 0
