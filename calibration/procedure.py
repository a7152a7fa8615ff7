"""The guided calibration of one plate: a state machine fed with blocks of counts.

Both the command line and the dashboard drive it the same way::

    proc = CalibrationProcedure(rig, "box")
    while proc.state not in (DONE, FAULT_FINAL):
        show(proc.prompt.text)            # what the operator (or robot) must do
        proc.feed(read_counts_block())    # (n, rig.channels) raw counts
        if proc.state in (FAULT, TIMEOUT):
            show(proc.message); wait_for_operator(); proc.resume()
    result = proc.result                  # fit, report, offsets → records.py

Phases: warm-up and channel health check → tare → dead weights at prompted
positions (loading up then down at each position, a zero reading after each
series, ``repeats`` times) → least-squares fit → verification on masses and
positions not used in the fit → report. Each load step is accepted by itself
once the plate's reading is steady and near the expected load; a step that does
not settle within a timeout stops with a message, and ``resume()`` retries it.
Every block is health-checked (a channel that dies mid-procedure stops it with
the cell named). Time is counted in samples, never on the wall clock, so the
simulated robot runs the procedure faster than real time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from steplab.acquisition.rig import Rig
from steplab.calibration.apply import apply_plate_matrix
from steplab.calibration.channel_health import check_block, check_response
from steplab.calibration.fitting import FitError, PlateFit, fit_plate_matrix
from steplab.calibration.geometry import (
    PlateGeometry,
    grid_positions_mm,
    nominal_matrix,
    plate_geometry,
    rigid_plate_cell_loads_n,
    verification_positions_mm,
    wrench_from_point_load,
)
from steplab.calibration.report import DOWN, UP, LoadSet, PlateReport, build_plate_report
from steplab.calibration.tare import Tare, TareError, compute_tare, plate_force_n, steadiness_n
from steplab.constants import G_M_S2

# states
WARMUP = "warmup"
TARE = "tare"
LOADING = "loading"
DONE = "done"
FAULT = "fault"  # stopped; resume() retries the step
TIMEOUT = "timeout"  # a step never settled; resume() retries it
FAILED = "failed"  # cannot continue (the fit refused the data)


@dataclass(frozen=True)
class CalibrationPlan:
    """Masses and positions of the dead-weight calibration of one plate.

    Attributes
    ----------
    fit_masses_kg : tuple of float
        Load levels used in the fit, ascending (≥ 5) [kg].
    fit_positions_mm : tuple of (x, y)
        Fit positions in the plate frame (≥ 9, a 3×3 grid near the cells) [mm].
    repeats : int
        Up-and-down series per position (≥ 2).
    verify_masses_kg, verify_positions_mm : tuples
        Independent verification loads and positions (none used in the fit).
    verify_repeats : int
        Series per verification position.
    """

    fit_masses_kg: tuple[float, ...]
    fit_positions_mm: tuple[tuple[float, float], ...]
    repeats: int
    verify_masses_kg: tuple[float, ...]
    verify_positions_mm: tuple[tuple[float, float], ...]
    verify_repeats: int = 2

    @classmethod
    def default(cls, geom: PlateGeometry) -> CalibrationPlan:
        """5 fit loads (10–80 kg), 3×3 grid (centre first), 2 repeats; 3 verification loads at 5 other positions."""
        grid = grid_positions_mm(geom, 3)
        order = [4, 0, 1, 2, 5, 8, 7, 6, 3]  # centre first, then round the edge
        return cls(
            fit_masses_kg=(10.0, 20.0, 40.0, 60.0, 80.0),
            fit_positions_mm=tuple((float(grid[i, 0]), float(grid[i, 1])) for i in order),
            repeats=2,
            verify_masses_kg=(15.0, 30.0, 50.0, 70.0),
            verify_positions_mm=tuple((float(x), float(y)) for x, y in verification_positions_mm(geom)),
            verify_repeats=2,
        )

    def validate(self, *, min_loads: int = 5, min_positions: int = 9, min_repeats: int = 2) -> None:
        """Raise ValueError naming what the plan lacks."""
        fm = np.asarray(self.fit_masses_kg, dtype=np.float64)
        if fm.size < min_loads or np.unique(fm).size < min_loads:
            raise ValueError(f"plan has {np.unique(fm).size} distinct fit loads; at least {min_loads} are needed")
        if np.any(fm <= 0) or np.any(np.diff(fm) <= 0):
            raise ValueError("fit masses must be positive and strictly ascending")
        fp = np.asarray(self.fit_positions_mm, dtype=np.float64).reshape(-1, 2)
        n_pos = np.unique(np.round(fp, 1), axis=0).shape[0]
        if n_pos < min_positions:
            raise ValueError(f"plan has {n_pos} distinct fit positions; at least {min_positions} are needed (3x3 grid)")
        if self.repeats < min_repeats:
            raise ValueError(f"plan has {self.repeats} repeats; at least {min_repeats} are needed")
        vm = np.asarray(self.verify_masses_kg, dtype=np.float64)
        vp = np.asarray(self.verify_positions_mm, dtype=np.float64).reshape(-1, 2)
        if vm.size < 1 or vp.shape[0] < 1 or self.verify_repeats < 1:
            raise ValueError("plan needs at least one verification mass, position and repeat")
        if np.any(vm <= 0) or np.any(np.diff(vm) <= 0):
            raise ValueError("verification masses must be positive and strictly ascending")
        if np.any(np.isin(np.round(vm, 3), np.round(fm, 3))):
            raise ValueError("verification masses must differ from the fit masses")
        for p in vp:
            if np.any(np.all(np.abs(fp - p) < 1.0, axis=1)):
                raise ValueError(f"verification position {tuple(p)} is a fit position")


@dataclass(frozen=True)
class ProcedureSettings:
    """Thresholds and durations of the procedure (durations in seconds, converted to samples).

    ``fast()`` gives the short settings the simulated robot and the tests use.
    """

    warmup_s: float = 900.0
    tare_s: float = 2.0
    steady_window_s: float = 1.0
    settle_timeout_s: float = 180.0
    creep_hold_s: float = 60.0
    max_noise_n: float = 1.0
    max_drift_n: float = 0.5
    channel_noise_limit_n: float = 5.0
    load_tolerance: float = 0.15
    load_tolerance_n: float = 5.0
    tare_max_load_n: float = 20.0
    quadratic: bool = True
    min_loads: int = 5
    min_positions: int = 9
    min_repeats: int = 2

    @classmethod
    def fast(cls) -> ProcedureSettings:
        return cls(warmup_s=0.5, tare_s=2.0, steady_window_s=0.25, settle_timeout_s=5.0, creep_hold_s=1.0)


@dataclass(frozen=True)
class Step:
    """One prompted step. ``direction`` is +1 loading up, −1 unloading, 0 a zero reading."""

    index: int
    kind: str  # "warmup" | "tare" | "load"
    phase: str  # "setup" | "fit" | "verify"
    mass_kg: float = 0.0
    position_mm: tuple[float, float] = (0.0, 0.0)
    position_index: int = -1
    repeat: int = 0
    direction: int = 0
    hold_samples: int = 0


@dataclass(frozen=True)
class Prompt:
    """What the operator (or robot) must do now."""

    step_index: int
    n_steps: int
    kind: str
    phase: str
    plate: str
    mass_kg: float
    x_mm: float
    y_mm: float
    text: str


@dataclass(frozen=True)
class Reading:
    """A steady reading accepted at a load step."""

    step: Step
    mean_counts: np.ndarray
    mid_sample: float
    noise_n: float


@dataclass(frozen=True)
class PlateCalibrationResult:
    """Everything the procedure produced for one plate (records.py stores it)."""

    geometry: PlateGeometry
    plan: CalibrationPlan
    tare: Tare
    offsets_counts: np.ndarray
    fit: PlateFit
    report: PlateReport
    fit_set: LoadSet
    verify_set: LoadSet
    samples_used: int
    log: tuple[str, ...] = field(default=())


def build_steps(plan: CalibrationPlan, rate_hz: float, settings: ProcedureSettings) -> tuple[Step, ...]:
    """The full step list of a plan: warm-up, tare, fit series, verification series."""
    steps: list[Step] = [Step(0, "warmup", "setup"), Step(1, "tare", "setup")]
    hold = int(round(settings.creep_hold_s * rate_hz))

    def series(phase, masses, positions, repeats):
        for r in range(repeats):
            for pi, pos in enumerate(positions):
                up = list(masses)
                for j, m in enumerate(up):
                    h = hold if (phase == "fit" and r == 0 and pi == 0 and j == len(up) - 1) else 0
                    steps.append(Step(len(steps), "load", phase, float(m), (float(pos[0]), float(pos[1])), pi, r, UP, h))
                for m in up[-2::-1]:
                    steps.append(Step(len(steps), "load", phase, float(m), (float(pos[0]), float(pos[1])), pi, r, DOWN))
                steps.append(Step(len(steps), "load", phase, 0.0, (float(pos[0]), float(pos[1])), pi, r, 0))

    series("fit", plan.fit_masses_kg, plan.fit_positions_mm, plan.repeats)
    series("verify", plan.verify_masses_kg, plan.verify_positions_mm, plan.verify_repeats)
    return tuple(steps)


class CalibrationProcedure:
    """Guided dead-weight calibration of one plate (see module docstring).

    Parameters
    ----------
    rig : Rig
        The rig; counts fed in are (n, rig.channels).
    plate : str
        Plate name or role.
    plan : CalibrationPlan or None
        Masses and positions; ``CalibrationPlan.default`` when None.
    settings : ProcedureSettings or None
        Thresholds and durations; defaults for a human operator when None.
    reference_offsets_counts : array_like or None
        (K,) a known zero (e.g. the previous calibration's offsets): a tare that
        reads more than ``settings.tare_max_load_n`` above it is refused at once.
    """

    def __init__(self, rig: Rig, plate: str, *, plan: CalibrationPlan | None = None,
                 settings: ProcedureSettings | None = None, reference_offsets_counts=None) -> None:
        self.rig = rig
        self.geometry = plate_geometry(rig, plate)
        self.settings = settings or ProcedureSettings()
        self.plan = plan or CalibrationPlan.default(self.geometry)
        s = self.settings
        self.plan.validate(min_loads=s.min_loads, min_positions=s.min_positions, min_repeats=s.min_repeats)
        self.rate_hz = float(rig.sample_rate_hz)
        self._chan = np.asarray(self.geometry.channels, dtype=np.int64)
        self._sens = self.geometry.nominal_counts_per_n
        self._noise_limit_counts = s.channel_noise_limit_n * self._sens
        self._window = max(int(round(s.steady_window_s * self.rate_hz)), 8)
        self._timeout = int(round(s.settle_timeout_s * self.rate_hz))
        self._warmup = max(int(round(s.warmup_s * self.rate_hz)), 3)
        self._tare_n = int(np.ceil(s.tare_s * self.rate_hz))
        self._ref = None if reference_offsets_counts is None else np.asarray(reference_offsets_counts, dtype=np.float64)
        self.steps = build_steps(self.plan, self.rate_hz, s)
        self._i = 0
        self.state = WARMUP
        self.message = ""
        self.log: list[str] = []
        self.samples_fed = 0
        self._buf = np.empty((0, len(self._chan)))
        self._step_samples = 0
        self._accepted: Reading | None = None  # waiting for a creep hold to finish
        self.tare: Tare | None = None
        self._zeros: list[tuple[float, np.ndarray]] = []
        self._readings: list[Reading] = []
        self._creep_pct = float("nan")
        self._last_reading_n = float("nan")
        self._last_noise_n = float("nan")
        self._tare_reason = "no steady 2 s stretch"
        self.fit: PlateFit | None = None
        self.result: PlateCalibrationResult | None = None
        self._note(self.prompt.text)

    # -- prompts ----------------------------------------------------------------
    @property
    def step(self) -> Step:
        return self.steps[min(self._i, len(self.steps) - 1)]

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    @property
    def prompt(self) -> Prompt:
        st, name = self.step, self.geometry.name
        if self.state == DONE:
            text = f"Calibration of plate {name} finished: remove all masses"
        elif st.kind == "warmup":
            text = f"Warm-up: leave plate {name} unloaded ({self.settings.warmup_s / 60:.1f} min) while every channel is checked"
        elif st.kind == "tare":
            text = f"Tare: keep plate {name} empty and still ({self.settings.tare_s:g} s)"
        elif st.mass_kg == 0:
            text = f"Remove all masses from plate {name} (zero reading, {st.phase} series {st.repeat + 1})"
        else:
            way = "loading up" if st.direction == UP else "unloading"
            reps = self.plan.repeats if st.phase == "fit" else self.plan.verify_repeats
            text = (f"Place {st.mass_kg:g} kg in total at x = {st.position_mm[0]:+.0f} mm, y = {st.position_mm[1]:+.0f} mm "
                    f"on plate {name} ({st.phase}, repeat {st.repeat + 1}/{reps}, {way}); accepted when steady")
        return Prompt(self._i, len(self.steps), st.kind, st.phase, name, st.mass_kg, st.position_mm[0], st.position_mm[1], text)

    def _note(self, text: str) -> None:
        self.log.append(f"[sample {self.samples_fed}] {text}")

    def _stop(self, state: str, message: str) -> None:
        self.state = state
        self.message = f"step {self._i + 1}/{len(self.steps)}: {message}"
        self._note(self.message)

    # -- driving ----------------------------------------------------------------
    def resume(self) -> None:
        """Retry the current step after a fault or timeout (the operator fixed the cause)."""
        if self.state not in (FAULT, TIMEOUT):
            raise ValueError(f"nothing to resume: the procedure is {self.state}")
        self._buf = self._buf[:0]
        self._step_samples = 0
        self._accepted = None
        self.state = {"warmup": WARMUP, "tare": TARE}.get(self.step.kind, LOADING)
        self.message = ""
        self._note(f"resumed: {self.prompt.text}")

    def feed(self, counts) -> str:
        """Process a block (n, rig.channels) of raw counts; returns the new state.

        A block that completes a step is not carried into the next one (the
        operator has not acted on the new prompt yet).
        """
        c = np.asarray(counts)
        if c.ndim != 2 or c.shape[1] != self.rig.channels:
            raise ValueError(f"counts must be (n, {self.rig.channels}), got shape {c.shape}")
        self.samples_fed += c.shape[0]
        if self.state in (DONE, FAULT, TIMEOUT, FAILED) or c.shape[0] == 0:
            return self.state
        block = c[:, self._chan].astype(np.float64)
        if block.shape[0] >= 3:
            # noise is judged only while the plate is meant to be unloaded and still:
            # a placed mass makes the plate ring (tens of Hz), which is not a cell fault
            quiet = self.step.kind in ("warmup", "tare")
            health = check_block(block, cell_names=self.geometry.cell_names, channels=self.geometry.channels,
                                 noise_limit_counts=self._noise_limit_counts if quiet else None)
            if not health.ok:
                self._stop(FAULT, f"channel fault: {health.message}; fix it and resume")
                return self.state
        keep = max(self._window, self._tare_n, self.step.hold_samples + self._window)
        self._buf = np.concatenate([self._buf, block])[-keep:]
        self._step_samples += block.shape[0]
        st = self.step
        if st.kind == "warmup":
            if self._step_samples >= self._warmup:
                self._note(f"warm-up done: all channels ok over {self._step_samples} samples")
                self._advance()
        elif st.kind == "tare":
            if self._buf.shape[0] >= self._tare_n:
                try:
                    tare = compute_tare(self._buf[-self._tare_n:], self.rate_hz, self._sens,
                                        min_duration_s=self.settings.tare_s, max_noise_n=self.settings.max_noise_n,
                                        max_drift_n=self.settings.max_drift_n, reference_offsets_counts=self._ref,
                                        max_load_n=self.settings.tare_max_load_n, end_sample=self.samples_fed)
                except TareError as exc:
                    if exc.reason != "unsteady":
                        self._stop(FAULT, f"{exc}; then resume")
                        return self.state
                    self._tare_reason = str(exc)  # keep waiting for a steady plate (until the timeout)
                    return self.state
                self.tare = tare
                self._readings.clear()
                self._zeros = [(self.samples_fed - self._tare_n / 2.0, tare.offsets_counts)]
                self._note(f"tare accepted (noise {tare.noise_n:.3f} N, drift {tare.drift_n:.3f} N)")
                self._advance()
        else:
            self._load_step(st)
        if (self.state in (TARE, LOADING) and st.kind != "warmup" and self._accepted is None
                and self._step_samples > self._timeout):
            self._stop(TIMEOUT, self._timeout_reason(st))
        return self.state

    def _timeout_reason(self, st: Step) -> str:
        if st.kind == "tare":
            return f"tare did not complete: {self._tare_reason}"
        exp = st.mass_kg * G_M_S2
        if np.isfinite(self._last_noise_n) and self._last_noise_n > self.settings.max_noise_n:
            why = f"load never became steady (noise {self._last_noise_n:.2f} N > {self.settings.max_noise_n:g} N)"
        else:
            why = f"reading steady at {self._last_reading_n:.1f} N"
        return (f"expected {exp:.1f} N ({st.mass_kg:g} kg) within {self.settings.settle_timeout_s:g} s but {why}: "
                "check the mass and its position, then resume")

    def _advance(self) -> None:
        self._i += 1
        self._buf = self._buf[:0]
        self._step_samples = 0
        self._accepted = None
        self._last_reading_n = self._last_noise_n = float("nan")
        if self._i >= len(self.steps):
            self._finish()
            return
        st = self.step
        if st.phase == "verify" and self.steps[self._i - 1].phase == "fit":
            if not self._fit():
                return
        self.state = TARE if st.kind == "tare" else LOADING
        self._note(self.prompt.text)

    def _load_step(self, st: Step) -> None:
        w = self._window
        if self._accepted is not None:  # creep hold after acceptance
            if self._buf.shape[0] >= st.hold_samples + w:
                f = plate_force_n(self._buf, self._zeros[-1][1], self._sens)
                start, end = f[:w].mean(), f[-w:].mean()
                self._creep_pct = float((end - start) / start * 100.0) if start > 0 else float("nan")
                self._note(f"creep over {st.hold_samples} samples: {self._creep_pct:.4f} % of reading")
                self._advance()
            return
        if self._buf.shape[0] < w:
            return
        win = self._buf[-w:]
        zero = self._zeros[-1][1]
        force = plate_force_n(win, zero, self._sens)
        noise, drift = steadiness_n(force)
        reading = float(force.mean())
        self._last_noise_n = noise
        self._last_reading_n = reading
        s = self.settings
        if noise > s.max_noise_n or drift > s.max_drift_n:
            return
        expected = st.mass_kg * G_M_S2
        tol = s.load_tolerance * expected + s.load_tolerance_n
        if reading < -tol:
            self._i = 1  # back to the tare
            self._stop(FAULT, f"plate {self.geometry.name} reads {-reading:.1f} N below its zero: it was loaded during the tare; "
                       "clear the plate and resume to tare again")
            return
        if expected > 0 and reading > 0.3 * expected:
            cell_n = rigid_plate_cell_loads_n(self.geometry, expected, *st.position_mm)
            exp_counts = cell_n * self._sens
            delta = win.mean(axis=0) - zero
            resp = check_response(delta, exp_counts, cell_names=self.geometry.cell_names, channels=self.geometry.channels,
                                  min_expected_counts=0.2 * float(np.sum(np.abs(exp_counts))))
            if not resp.ok:
                self._stop(FAULT, f"channel fault: {resp.message}; fix it and resume")
                return
        if abs(reading - expected) > tol:
            return
        mid = self.samples_fed - w / 2.0
        r = Reading(st, win.mean(axis=0), mid, noise)
        if st.mass_kg == 0:
            self._zeros.append((mid, r.mean_counts))
        else:
            self._readings.append(r)
        if st.hold_samples > 0:
            self._accepted = r
            self._buf = self._buf[-w:]
            return
        self._advance()

    # -- results ----------------------------------------------------------------
    def _zero_at(self, sample: float) -> np.ndarray:
        t = np.array([z[0] for z in self._zeros])
        v = np.vstack([z[1] for z in self._zeros])
        return np.array([np.interp(sample, t, v[:, j]) for j in range(v.shape[1])])

    def _load_set(self, phase: str) -> LoadSet:
        rs = [r for r in self._readings if r.step.phase == phase]
        d = np.vstack([r.mean_counts - self._zero_at(r.mid_sample) for r in rs])
        pos = np.array([r.step.position_mm for r in rs], dtype=np.float64)
        fz = np.array([r.step.mass_kg * G_M_S2 for r in rs])
        return LoadSet(
            delta_counts=d,
            applied=wrench_from_point_load(fz, pos[:, 0], pos[:, 1]),
            position_mm=pos,
            position_index=np.array([r.step.position_index for r in rs], dtype=np.int64),
            repeat=np.array([r.step.repeat for r in rs], dtype=np.int64),
            direction=np.array([r.step.direction for r in rs], dtype=np.int64),
        )

    def _fit(self) -> bool:
        fs = self._load_set("fit")
        try:
            self.fit = fit_plate_matrix(fs.delta_counts, fs.applied, positions_mm=fs.position_mm, quadratic=self.settings.quadratic,
                                        min_positions=self.settings.min_positions, min_loads=self.settings.min_loads)
        except FitError as exc:
            self._stop(FAILED, f"least-squares fit refused: {exc}")
            return False
        self._note(f"fit done: {self.fit.n_points} readings, residual SD {self.fit.residual_sd[0]:.3f} N, "
                   f"condition number {self.fit.condition_number:.1f}")
        return True

    def _finish(self) -> None:
        assert self.fit is not None and self.tare is not None  # _finish runs after the tare and the fit
        fit_set, ver_set = self._load_set("fit"), self._load_set("verify")
        z = np.vstack([v for _, v in self._zeros])
        zr = (apply_plate_matrix(np.diff(z, axis=0), self.fit.linear, self.fit.quadratic)[:, 0] if z.shape[0] > 1
              else np.zeros(1))
        report = build_plate_report(self.geometry.name, self.geometry.capacity_n, self.fit, fit_set, ver_set,
                                    nominal_matrix(self.geometry), creep_pct=self._creep_pct,
                                    zero_return_n=float(np.max(np.abs(zr))))
        self.state = DONE
        self._note(f"calibration of plate {self.geometry.name} done")
        self.result = PlateCalibrationResult(self.geometry, self.plan, self.tare, self._zeros[-1][1].copy(), self.fit, report,
                                             fit_set, ver_set, self.samples_fed, tuple(self.log))
