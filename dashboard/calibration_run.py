"""The guided calibration run from the dashboard: one at a time, on a thread of its own, polled by the page.

``CalibrationRun(live)`` drives ``calibration.procedure.CalibrationProcedure``
with ``calibration.robot.drive`` (the loop ``steplab calibrate`` uses) on the
device the dashboard's ``LiveFeed`` owns:

* it refuses to start while a recording is in progress or another run is going;
* it stops the live feed (the device is free), runs the procedure, and starts
  the live feed again, whatever happened, so it picks up the new calibration
  (``LiveFeed.reload_calibration()`` is called first when the feed has it);
* the verification report is judged against rig.md's targets
  (``calibration.report.verification_failures``): a plate that misses one means
  nothing is saved (the refusal names the figure); otherwise the record is saved
  (``calibration.records.save_record``) and its id is given.

How the masses get onto the plate (``mode``):

``robot-sim``
    The dashboard's device is the in-process simulated rig
    (``SimulatedStepBox``): as ``steplab calibrate --device sim --auto`` does,
    the robot calibrates the same simulated unit (same rig, same cell
    imperfections) with nobody on it, faster than real time.
    ``sim_model_factory(rig, device)`` makes that model (a test seam: a rig
    whose robot misplaces the masses).
``robot-wire``
    The device says it is simulated (``steplab simulate --pty``): its robot is
    commanded over the wire (``place_mass``/``clear_masses``), as
    ``steplab calibrate --device PORT --auto``.
``operator``
    A real rig: each prompt waits for the operator's ``confirm()`` (Continue)
    before the plate is read for that step; the step is then accepted by itself
    once the load is steady.  A step that stops (no mass, wrong mass, a dying
    channel) waits for ``confirm()`` (retry) or ``cancel()``.

``status()`` is thread-safe and cheap (a copy under a lock): what the page shows.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from steplab.acquisition.counts_source import SessionCountsSource
from steplab.acquisition.device import DeviceError, SimulatedStepBox, StepBox
from steplab.acquisition.rig import Rig
from steplab.acquisition.session import AcquisitionSession
from steplab.calibration.procedure import CalibrationProcedure, ProcedureSettings, Prompt
from steplab.calibration.report import (
    VERIFY_COP_RMS_MAX_MM,
    VERIFY_FZ_MAX_PCT_FS,
    summary_dict,
    verification_failures,
)
from steplab.calibration.robot import CalibrationAborted, SimRobot, drive

ALL_PLATES = "__all__"  # the robot may calibrate every plate in one run
MODES = ("robot-sim", "robot-wire", "operator")
#: states: idle → running (→ waiting ↔ running, stopped ↔ running) → saved | refused | failed | cancelled
FINAL_STATES = ("saved", "refused", "failed", "cancelled")
#: rig.md § Calibration step 5: the targets the verification set must meet (None: reported, no target)
TARGETS = {"fz_error_pct_fs": VERIFY_FZ_MAX_PCT_FS, "cop_rms_mm": VERIFY_COP_RMS_MAX_MM,
           "nonlinearity_pct_fs": None, "hysteresis_pct_fs": None, "repeatability_n": None}
WAIT_POLL_S = 0.1


class CalibrationBusy(RuntimeError):
    """A calibration cannot start now (another one runs, a recording is in progress, no rig); one line."""


class _Cancelled(Exception):
    pass


@dataclass(frozen=True)
class RunStatus:
    """What the page shows of the current (or last) run.

    Attributes
    ----------
    state : str
        ``idle``, ``running``, ``waiting`` (for the operator's Continue), ``stopped`` (a step stopped:
        fix it, then Continue), or a final state: ``saved``, ``refused``, ``failed``, ``cancelled``.
    mode : str
        ``robot-sim``, ``robot-wire`` or ``operator`` (see the module docstring).
    plates : tuple of str
        The plates of this run, in order; ``plate_index`` the one being calibrated (0-based).
    prompt : Prompt or None
        The procedure's current prompt.
    step, n_steps : int
        Steps done so far on the current plate (1-based: step k of n), and its number of steps.
    message : str
        Why the run stopped, was refused or failed (one line; empty otherwise).
    reports : dict
        Plate → its five verification figures (``report.summary_dict``) once measured.
    failures : tuple of str
        The verification targets missed (a refusal), one line each.
    calibration_id, record_path : str or None
        The saved record (state ``saved``).
    live_note : str
        What became of the live view afterwards (restarted with the new calibration, or why not).
    actor : str
        Who started the run.
    warmup_s : float
        The warm-up of this run [s] (the operator is told how long it takes).
    version : int
        Grows with every change (the page redraws only when it changed).
    """

    state: str = "idle"
    mode: str = "operator"
    plates: tuple[str, ...] = ()
    plate_index: int = 0
    prompt: Prompt | None = None
    step: int = 0
    n_steps: int = 0
    message: str = ""
    reports: dict = field(default_factory=dict)
    failures: tuple[str, ...] = ()
    calibration_id: str | None = None
    record_path: str | None = None
    live_note: str = ""
    actor: str = ""
    warmup_s: float = 0.0
    version: int = 0

    @property
    def active(self) -> bool:
        return self.state in ("running", "waiting", "stopped")


class _DeviceCountsSource(SessionCountsSource):
    """``acquisition.counts_source.SessionCountsSource`` over a device object already made (the live feed's).

    The parent opens its device by address; the dashboard must calibrate the very
    StepBox its live feed owns (the in-process simulated rig has no address to
    open again).  Same session options as the parent.
    """

    def __init__(self, device: StepBox, rig: Rig, *, idle_timeout_s: float = 5.0, info_timeout_s: float = 1.0,
                 reconnect_timeout_s: float = 10.0) -> None:
        self.rig = rig
        self.channels = rig.channels
        self.idle_timeout_s = float(idle_timeout_s)
        self._cond = threading.Condition()
        self._pending: list[np.ndarray] = []
        self._n_pending = 0
        self._next_position = 0
        self.lost_samples = 0
        self.received_samples = 0
        self.session = AcquisitionSession(device, rig=rig, info_timeout_s=info_timeout_s, keep_samples=False,
                                          fatal_problems=True, reconnect_timeout_s=reconnect_timeout_s)
        self.session.add_sink(self)
        self.session.start()
        self.command("start")


class _WireRobot:
    """The simulated rig's robot over the wire: clear, place, wait for each reply (as ``cmd_calibrate.WireRobot``)."""

    def __init__(self, source: SessionCountsSource, reply_timeout_s: float = 10.0) -> None:
        self.source = source
        self.reply_timeout_s = reply_timeout_s

    def _do(self, cmd: str, **args) -> None:
        reply = self.source.reply_to(self.source.command(cmd, **args), self.reply_timeout_s)
        if reply is None:
            raise CalibrationAborted(f"the rig did not answer {cmd!r} within {self.reply_timeout_s:g} s")
        if reply.get("ok") is not True:
            raise CalibrationAborted(f"the rig refused {cmd!r} ({reply.get('error') or 'no reason given'}): "
                                     "it has no robot; calibrate it by hand")

    def act(self, prompt: Prompt) -> None:
        self._do("clear_masses")
        if prompt.kind == "load" and prompt.mass_kg > 0:
            self._do("place_mass", plate=prompt.plate, x_mm=prompt.x_mm, y_mm=prompt.y_mm, mass_kg=prompt.mass_kg)
        self.source.skip_pending()


def default_sim_model(rig: Rig, device: SimulatedStepBox):
    """The simulated unit of ``device`` with nobody on it (scenario ``empty``): same rig, cells and rate."""
    from steplab.acquisition.sim_rig import SimulatedRigModel
    from steplab.acquisition.sim_subject import Subject

    m = device.model
    return SimulatedRigModel(rig, Subject(), scenario="empty", seed=m.seed, rate_hz=m.rate_hz, unit_seed=m.unit_seed)


def detect_mode(live) -> str:
    """How the masses get onto this live feed's rig (``MODES``)."""
    if isinstance(live.device, SimulatedStepBox):
        return "robot-sim"
    info = live.session.timeline.device_info or {}
    return "robot-wire" if info.get("simulated") else "operator"


class CalibrationRun:
    """One guided calibration at a time on the live feed's device (see the module docstring).

    Parameters
    ----------
    live : LiveFeed or None
        The dashboard's live feed (None: no rig, nothing can start).
    mode : str or None
        One of ``MODES``; None: ``detect_mode(live)`` at each start.
    settings : ProcedureSettings or None
        None: ``ProcedureSettings.fast()`` for a robot, the operator's defaults otherwise
        (a 15 min warm-up; ``warmed_up=True`` at start shortens it).
    directory : path or None
        Where records are saved (None: ``$STEPLAB_DATA_DIR/calibrations``).
    on_event : callable or None
        ``on_event(actor, action, subject, detail)`` after each start and outcome
        (``calibration-start``, ``calibration-saved``, ``calibration-refused``, ``calibration-failed``,
        ``calibration-cancelled``): the audit hook.
    sim_model_factory : callable
        ``factory(rig, device)`` the model the in-process robot calibrates (``default_sim_model``).
    """

    def __init__(self, live, *, mode: str | None = None, settings: ProcedureSettings | None = None,
                 directory: str | Path | None = None,
                 on_event: Callable[[str, str, str, dict], None] | None = None,
                 sim_model_factory: Callable[[Rig, SimulatedStepBox], object] = default_sim_model) -> None:
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode {mode!r} must be one of {', '.join(MODES)}")
        self.live = live
        self.mode = mode
        self.settings = settings
        self.directory = directory
        self.on_event = on_event
        self.sim_model_factory = sim_model_factory
        self._lock = threading.Lock()
        self._status = RunStatus()
        self._thread: threading.Thread | None = None
        self._confirm = threading.Event()
        self._cancel = threading.Event()

    # -- what the page calls ---------------------------------------------------------
    def status(self) -> RunStatus:
        with self._lock:
            return self._status

    def current_mode(self) -> str:
        if self.mode is not None:
            return self.mode
        return detect_mode(self.live) if self.live is not None else "operator"

    def plate_names(self) -> list[str]:
        rig = self.rig()
        return list(rig.plate_names) if rig is not None else []

    def start(self, plate: str, actor: str, *, warmed_up: bool = False) -> RunStatus:
        """Start calibrating ``plate`` (a name, a role, or ``ALL_PLATES`` with a robot); CalibrationBusy if not now."""
        live = self.live
        if live is None:
            raise CalibrationBusy("no rig is connected to the dashboard (start steplab run with --device)")
        rig = self.rig()
        if rig is None:
            raise CalibrationBusy("the rig has not described itself yet: wait for the live view to show data")
        mode = self.current_mode()
        if plate == ALL_PLATES:
            if mode == "operator":
                raise CalibrationBusy("choose one plate: by hand, plates are calibrated one at a time")
            plates = tuple(rig.plate_names)
        else:
            try:
                plates = (rig.plate(plate).name,)
            except ValueError:
                raise CalibrationBusy(f"this rig has no plate {plate!r} (plates: {', '.join(rig.plate_names)})") from None
        with self._lock:
            if self._status.active or (self._thread is not None and self._thread.is_alive()):
                raise CalibrationBusy(f"a calibration is already running (started by {self._status.actor})")
            if live.recording is not None:
                raise CalibrationBusy("a recording is in progress: calibrate when it has ended")
            problem = self._event(actor, "calibration-start", plates, {"mode": mode})
            if problem:  # a change to every later measurement is never made unaudited
                raise CalibrationBusy(f"the audit log cannot be written ({problem}), so the calibration did not start")
            self._confirm.clear()
            self._cancel.clear()
            self._status = RunStatus(state="running", mode=mode, plates=plates, actor=actor,
                                     version=self._status.version + 1)
            self._thread = threading.Thread(target=self._run, args=(rig, plates, mode, actor, warmed_up),
                                            name="steplab-calibration", daemon=True)
            self._thread.start()
            return self._status

    def confirm(self) -> bool:
        """The operator did what the prompt asked (or fixed what stopped the step); False when nothing waits."""
        if self.status().state not in ("waiting", "stopped"):
            return False
        self._confirm.set()
        return True

    def cancel(self) -> bool:
        """Stop the run; nothing is saved.  False when none is running."""
        if not self.status().active:
            return False
        self._cancel.set()
        self._confirm.set()
        return True

    def join(self, timeout_s: float) -> bool:
        """Wait for the run's thread to end (True when it has)."""
        t = self._thread
        if t is not None:
            t.join(timeout_s)
        return t is None or not t.is_alive()

    # -- the run ---------------------------------------------------------------------
    def rig(self) -> Rig | None:
        """The rig of the live feed (None: no rig, or it has not described itself yet)."""
        live = self.live
        if live is None:
            return None
        return live.rig or live.session.timeline.rig

    def _set(self, **changes) -> None:
        with self._lock:
            self._status = dataclasses.replace(self._status, version=self._status.version + 1, **changes)

    def _event(self, actor: str, action: str, plates, detail: dict) -> str:
        """Tell ``on_event``; returns "" or why the audit log was not written."""
        if self.on_event is None:
            return ""
        try:
            self.on_event(actor, action, "calibration of " + ", ".join(plates), detail)
        except Exception as exc:  # an audit failure is shown, never hidden, and never kills the run
            return str(exc) or type(exc).__name__
        return ""

    def _settings(self, mode: str, warmed_up: bool) -> ProcedureSettings:
        if self.settings is not None:
            return self.settings
        if mode == "robot-sim":
            return ProcedureSettings.fast()
        if mode == "robot-wire":  # the robot's command reaches the plate one link latency later
            return dataclasses.replace(ProcedureSettings.fast(), settle_timeout_s=30.0)
        base = ProcedureSettings()
        return dataclasses.replace(base, warmup_s=10.0) if warmed_up else base

    def _run(self, rig: Rig, plates: tuple[str, ...], mode: str, actor: str, warmed_up: bool) -> None:
        """The run's thread: live feed off, procedure, live feed on; the final state is set last."""
        live = self.live
        outcome: tuple[str, str, dict] = ("failed", "calibration-failed", {})
        try:
            live.stop("calibration")
            outcome = self._calibrate(rig, plates, mode, actor, self._settings(mode, warmed_up))
        except Exception as exc:  # one line on the page, never a silent dead thread
            self._set(message=f"Calibration stopped by an error ({type(exc).__name__}: {exc}). Nothing saved.")
            outcome = ("failed", "calibration-failed", {"reason": str(exc)})
        finally:
            note = self._restart_live(outcome[0] == "saved")
        problem = self._event(actor, outcome[1], plates, outcome[2])
        if problem:
            note += f" The audit log was not written: {problem}."
        self._set(state=outcome[0], live_note=note)

    def _calibrate(self, rig: Rig, plates: tuple[str, ...], mode: str, actor: str,
                   settings: ProcedureSettings) -> tuple[str, str, dict]:
        """Run the procedure on every plate: (final state, audit action, audit detail); the status holds the rest."""
        from steplab.calibration.records import CalibrationRecordError, make_record, save_record

        results = {}
        source: SessionCountsSource | None = None
        robot_act: Callable[[Prompt], None] | None
        try:
            if mode == "robot-sim":
                model = self.sim_model_factory(rig, self.live.device)
                read, robot_act = model.read_counts, SimRobot(model).act  # type: ignore[attr-defined]
                clear: Callable[[], None] | None = model.clear_masses  # type: ignore[attr-defined]
            else:
                source = _DeviceCountsSource(self.live.device, rig)
                read, clear = source, None
                robot_act = _WireRobot(source).act if mode == "robot-wire" else None
            for i, name in enumerate(plates):
                proc = CalibrationProcedure(rig, name, settings=settings)
                self._set(plate_index=i, n_steps=proc.n_steps, step=1, prompt=proc.prompt, warmup_s=settings.warmup_s)
                budget = (proc.n_steps * int(settings.settle_timeout_s * rig.sample_rate_hz)
                          + int((settings.warmup_s + settings.tare_s) * rig.sample_rate_hz) + 1000)
                retry = [False]
                results[proc.geometry.name] = drive(
                    proc, read, on_prompt=self._on_prompt(robot_act, source, retry),
                    on_stop=self._on_stop(robot_act, retry),
                    block_samples=max(int(rig.sample_rate_hz // 20), 1),
                    max_samples=budget if robot_act is not None else None)
                self._set(reports={**self.status().reports, proc.geometry.name: summary_dict(results[proc.geometry.name].report)})
            if clear is not None:
                clear()
        except _Cancelled:
            self._set(message="Calibration stopped by the user: nothing saved.")
            return "cancelled", "calibration-cancelled", {}
        except (CalibrationAborted, DeviceError, ValueError) as exc:
            self._set(message=f"Calibration stopped: {exc}. Nothing saved.")
            return "failed", "calibration-failed", {"reason": str(exc)}
        finally:
            if source is not None:
                if mode == "robot-wire":
                    try:
                        source.command("clear_masses")  # leave the plate empty
                    except DeviceError:
                        pass
                source.close()
        failures = tuple(f for res in results.values() for f in verification_failures(res.report))
        figures = {name: summary_dict(res.report) for name, res in results.items()}
        if failures:
            self._set(failures=failures, reports=figures,
                      message="Check the masses, their positions and that the plate moves freely, "
                              "then calibrate again.")
            return "refused", "calibration-refused", {"failures": list(failures), "figures": figures}
        operator = f"sim-robot ({actor})" if mode != "operator" else actor
        record = make_record(list(results.values()), rig, operator=operator)
        try:
            path = save_record(record, self.directory)
        except (CalibrationRecordError, OSError) as exc:
            self._set(reports=figures, message=f"Calibration not saved: {exc}.")
            return "failed", "calibration-failed", {"reason": str(exc)}
        self._set(reports=figures, calibration_id=record.calibration_id, record_path=str(path))
        return "saved", "calibration-saved", {"calibration_id": record.calibration_id, "figures": figures}

    def _wait_for_operator(self, source: SessionCountsSource | None) -> None:
        """Block until Continue (or Cancel: _Cancelled); samples that arrive meanwhile are dropped."""
        while not self._confirm.wait(WAIT_POLL_S):
            if source is not None:
                source.skip_pending()  # bounded memory however long the operator takes
        self._confirm.clear()
        if self._cancel.is_set():
            raise _Cancelled
        if source is not None:
            source.skip_pending()  # the plate is read from the operator's Continue on

    def _on_prompt(self, robot_act, source, retry: list[bool]):
        def on_prompt(prompt: Prompt) -> None:
            if self._cancel.is_set():
                raise _Cancelled
            if robot_act is not None:
                self._set(prompt=prompt, step=prompt.step_index + 1, n_steps=prompt.n_steps, message="",
                          state="running")
                robot_act(prompt)
                return
            if retry[0]:  # the step stopped: the operator fixes it and presses Continue once
                retry[0] = False
                self._set(prompt=prompt, step=prompt.step_index + 1, n_steps=prompt.n_steps)
            else:
                self._set(prompt=prompt, step=prompt.step_index + 1, n_steps=prompt.n_steps, message="",
                          state="waiting")
            self._wait_for_operator(source)
            self._set(state="running", message="")
        return on_prompt

    def _on_stop(self, robot_act, retry: list[bool]):
        resumes = [0]

        def on_stop(proc) -> bool:
            if self._cancel.is_set():
                raise _Cancelled
            if robot_act is not None:  # the robot retries a few times; it cannot fix hardware
                resumes[0] += 1
                return resumes[0] <= 3
            self._set(state="stopped", message=proc.message)
            retry[0] = True  # the step's prompt comes again: it waits for Continue
            return True
        return on_stop

    def _restart_live(self, saved: bool) -> str:
        """Start the live feed again (it reloads the calibrations); what became of it, in one line."""
        live = self.live
        try:
            reload = getattr(live, "reload_calibration", None)
            if callable(reload):
                reload()
            live.start()
        except Exception as exc:
            return f"The live view did not restart: {exc}."
        return self._calibration_note() if saved else "The live view goes on with the calibration it had."

    def _calibration_note(self) -> str:
        live = self.live
        new_id = self.status().calibration_id
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and not live.armed:
            time.sleep(0.05)
        ids = str(getattr(live.calibration, "calibration_id", "") or "").split("+")
        if live.calibrated and new_id in ids:
            return "The live view now uses it."
        rig = live.rig
        if rig is not None:
            from steplab.calibration.active import active_calibration

            try:
                if active_calibration(rig, directory=self.directory) is None:
                    return ("The live view keeps nominal gains until every plate of the rig has a calibration "
                            f"({', '.join(rig.plate_names)}).")
            except Exception as exc:
                return f"The live view cannot use the calibrations: {exc}."
        return "The live view uses it from the next start of steplab run."
