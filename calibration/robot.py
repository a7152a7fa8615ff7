"""Driving the calibration procedure: the generic loop and the simulated rig's robot.

``drive(procedure, counts_source, on_prompt=..., on_stop=...)`` is the loop both the
command line and the robot use: it reads blocks of counts from ``counts_source``
(any callable ``n -> (n, channels)`` int array: the simulated rig's
``read_counts``, or a reader of a real device), feeds them to the procedure, calls
``on_prompt(prompt)`` whenever the prompt changes, and ``on_stop(procedure)`` on a
fault or timeout (return True to resume the step, False to give up).

``SimRobot`` is the robot of the simulated rig: on every prompt it clears the
plate and places the prompted total mass at the prompted position with
``place_mass``. ``run_auto_calibration`` calibrates every plate of the simulated
rig unattended and builds the calibration record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from steplab.acquisition.rig import Rig, default_rig
from steplab.calibration.procedure import (
    DONE,
    FAILED,
    FAULT,
    TIMEOUT,
    CalibrationPlan,
    CalibrationProcedure,
    PlateCalibrationResult,
    ProcedureSettings,
    Prompt,
)
from steplab.calibration.records import CalibrationRecord, make_record


class CalibrationAborted(RuntimeError):
    """The procedure stopped and the operator (or robot) gave up; the message says where."""


def drive(procedure: CalibrationProcedure, counts_source: Callable[[int], object], *,
          on_prompt: Callable[[Prompt], None] | None = None,
          on_stop: Callable[[CalibrationProcedure], bool] | None = None,
          block_samples: int = 50, max_samples: int | None = None) -> PlateCalibrationResult:
    """Run ``procedure`` to the end on counts from ``counts_source``.

    Parameters
    ----------
    procedure : CalibrationProcedure
        A fresh (or resumed) procedure.
    counts_source : callable
        ``counts_source(n)`` returns the next (n, rig.channels) raw counts.
    on_prompt : callable or None
        Called with each new prompt (show it; the robot acts on it).
    on_stop : callable or None
        Called on a fault or timeout; True resumes the step, False (or None) aborts.
    block_samples : int
        Samples read per block (keep below the steady window).
    max_samples : int or None
        Abort after this many samples (a guard for unattended runs).

    Raises
    ------
    CalibrationAborted
        On a stop that is not resumed, a failed fit, or ``max_samples`` exceeded.
    """
    if int(block_samples) < 1:
        raise ValueError(f"block_samples must be at least 1, got {block_samples}")
    last = None
    while procedure.state != DONE:
        if procedure.state == FAILED:
            raise CalibrationAborted(procedure.message)
        if procedure.state in (FAULT, TIMEOUT):
            if on_stop is None or not on_stop(procedure):
                raise CalibrationAborted(procedure.message)
            procedure.resume()
            last = None
        p = procedure.prompt
        key = (p.step_index, p.kind, p.mass_kg, p.x_mm, p.y_mm)
        if key != last:
            last = key
            if on_prompt is not None:
                on_prompt(p)
        procedure.feed(counts_source(int(block_samples)))
        if max_samples is not None and procedure.samples_fed > max_samples:
            raise CalibrationAborted(f"calibration of plate {procedure.geometry.name} did not finish "
                                     f"within {max_samples} samples")
    assert procedure.result is not None  # DONE sets it
    return procedure.result


class SimRobot:
    """Places the prompted masses on the simulated rig (``place_mass`` / ``clear_masses``)."""

    def __init__(self, model) -> None:
        self.model = model
        self.placements = 0

    def act(self, prompt: Prompt) -> None:
        self.model.clear_masses()
        if prompt.kind == "load" and prompt.mass_kg > 0:
            self.model.place_mass(prompt.plate, prompt.x_mm, prompt.y_mm, prompt.mass_kg)
            self.placements += 1


@dataclass(frozen=True)
class AutoCalibration:
    """Results of an unattended calibration: per-plate results and the record."""

    results: dict[str, PlateCalibrationResult]
    record: CalibrationRecord


def make_sim_model(rig: Rig | None = None, seed: int = 0):
    """The simulated rig with nobody on it (``scenario="empty"``)."""
    from steplab.acquisition.sim_rig import SimulatedRigModel
    from steplab.acquisition.sim_subject import Subject

    return SimulatedRigModel(rig or default_rig(), Subject(), scenario="empty", seed=seed)


def run_auto_calibration(model=None, rig: Rig | None = None, *, seed: int = 0, plates=None,
                         settings: ProcedureSettings | None = None, plans: dict[str, CalibrationPlan] | None = None,
                         operator: str = "sim-robot", block_samples: int = 125) -> AutoCalibration:
    """Calibrate the simulated rig's plates one after another, unattended.

    Parameters
    ----------
    model : SimulatedRigModel or None
        The simulated rig; ``make_sim_model(rig, seed)`` when None.
    rig : Rig or None
        Its description (``default_rig()`` when None).
    plates : sequence of str or None
        Plates to calibrate (all when None).
    settings : ProcedureSettings or None
        ``ProcedureSettings.fast()`` when None (short windows, in samples).
    plans : dict or None
        Plan per plate name (``CalibrationPlan.default`` otherwise).
    operator : str
        Stored in the record.

    Raises
    ------
    CalibrationAborted
        If any plate's procedure stops (the robot cannot fix hardware).
    """
    rig = rig or default_rig()
    model = model if model is not None else make_sim_model(rig, seed)
    settings = settings or ProcedureSettings.fast()
    robot = SimRobot(model)
    results: dict[str, PlateCalibrationResult] = {}
    names = tuple(plates) if plates is not None else rig.plate_names
    for name in names:
        proc = CalibrationProcedure(rig, name, plan=(plans or {}).get(name), settings=settings)
        budget = (proc.n_steps * int(settings.settle_timeout_s * rig.sample_rate_hz)
                  + int((settings.warmup_s + settings.tare_s) * rig.sample_rate_hz) + 1000)
        results[proc.geometry.name] = drive(proc, model.read_counts, on_prompt=robot.act, block_samples=block_samples, max_samples=budget)
    model.clear_masses()
    record = make_record([results[n] for n in results], rig, operator=operator)
    return AutoCalibration(results, record)
