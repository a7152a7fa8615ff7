"""The simulated step box: subject physics → plate forces and COP → cell loads → 24-bit counts.

:class:`SimulatedRigModel` streams raw counts for any rig description (default
12-channel rig, split-box 16-channel rig, ...), keeps the truth of what it
generated (plate forces, COP, COM height and velocity, rep events), and has a
calibration robot that places dead weights.  :func:`simulate_trial` is the pure
offline entry point for tests and benchmarks.  See ``rig_docs/simulator.md``.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from .rig import Rig
from .sim_cells import CellArray, HiddenCellModel, cell_loads_from_cop
from .sim_movements import DT_S, SCENARIOS, SURF_AIR, SURF_BOX, RepEvent, ScenarioStream, Stage
from .sim_subject import G_M_S2, Subject

MASS_SETTLE_S = 0.3  # the robot lowers (or lifts) a mass over this time
TRUTH_COP_MIN_FORCE_N = 1.0


@dataclass
class SimTruth:
    """What the simulator generated, sample by sample (aligned with the counts).

    Attributes
    ----------
    t_s : (n,) model time of each sample (s).
    plate_names : plate names in rig order.
    fz_n : (n, P) true vertical load on each plate (N), subject plus robot masses.
    cop_x_mm, cop_y_mm : (n, P) true COP in each plate's frame (mm); NaN where Fz < 1 N.
    com_z_m : (n,) centre-of-mass height above the floor (m).
    com_v_m_s : (n,) vertical COM velocity (m/s, up positive).
    events : the reps completed so far (times in model seconds).
    body_mass_kg : the subject's mass (kg).
    scenario : the scenario name.
    """

    t_s: np.ndarray
    plate_names: tuple[str, ...]
    fz_n: np.ndarray
    cop_x_mm: np.ndarray
    cop_y_mm: np.ndarray
    com_z_m: np.ndarray
    com_v_m_s: np.ndarray
    events: list[RepEvent]
    body_mass_kg: float
    scenario: str

    @property
    def body_weight_n(self) -> float:
        return self.body_mass_kg * G_M_S2

    @property
    def total_fz_n(self) -> np.ndarray:
        """(n,) sum of all plates' true vertical load (N)."""
        return self.fz_n.sum(axis=1)

    def plate_index(self, name: str) -> int:
        if name not in self.plate_names:
            raise ValueError(f"no plate named {name!r} (plates: {', '.join(self.plate_names)})")
        return self.plate_names.index(name)

    def fz(self, name: str) -> np.ndarray:
        """(n,) true vertical load of one plate (N)."""
        return self.fz_n[:, self.plate_index(name)]


@dataclass
class _Mass:
    plate: int
    x_mm: float
    y_mm: float
    mass_kg: float
    t_on_s: float
    t_off_s: float | None = None

    def load_n(self, t: np.ndarray) -> np.ndarray:
        def ramp(tt):
            s = np.clip(tt / MASS_SETTLE_S, 0.0, 1.0)
            return 0.5 - 0.5 * np.cos(np.pi * s)
        on = t - self.t_on_s
        f = ramp(on)
        # a mass released by the robot swings a little before it settles
        after = np.clip(on - MASS_SETTLE_S, 0.0, None)
        f = f + np.where(on > MASS_SETTLE_S, 0.02 * np.sin(2 * np.pi * 4.0 * after) * np.exp(-after / 0.15), 0.0)
        if self.t_off_s is not None:
            f = f * (1.0 - ramp(t - self.t_off_s))
        return self.mass_kg * G_M_S2 * f


def rig_unit_seed(rig: Rig) -> int:
    """A stable seed for a rig unit's hidden cell parameters, from its serial number."""
    return zlib.crc32(rig.serial.encode("utf-8"))


class SimulatedRigModel:
    """A physics-based simulated step box producing raw int32 counts.

    Parameters
    ----------
    rig : the rig description (plates, cells, channel map).
    subject : the virtual subject.
    scenario : one of ``SCENARIOS`` ('step-down', 'forward-step-down', 'drop-landing',
        'squat', 'balance', 'quiet', 'empty', 'session').
    seed : makes the subject's variability and the noise reproducible.
    unit_seed : the simulated rig unit's own cell imperfections (offsets, gains,
        cross-talk, non-linearity).  They belong to the hardware, not to the
        session: by default they are derived from ``rig.serial``, so a rig
        calibrated in one session stays calibrated in the next, as a real one does.
    rate_hz : sample rate (Hz); default the rig's.
    keep_truth_s : how much truth history to keep (s); None keeps everything.
    """

    def __init__(self, rig: Rig, subject: Subject | None = None, scenario: str = "session", seed: int = 0,
                 rate_hz: float | None = None, keep_truth_s: float | None = 120.0, unit_seed: int | None = None):
        if not isinstance(rig, Rig):
            raise ValueError("rig must be a steplab Rig")
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
        if keep_truth_s is not None and not keep_truth_s > 0:
            raise ValueError(f"keep_truth_s must be positive or None, got {keep_truth_s!r}")
        self.rig = rig
        self.subject = subject if subject is not None else Subject()
        self.scenario = scenario
        self.seed = int(seed)
        self.keep_truth_s = keep_truth_s
        self.unit_seed = rig_unit_seed(rig) if unit_seed is None else int(unit_seed)
        self.hidden = HiddenCellModel.draw(rig, self.unit_seed)
        rate = float(rig.sample_rate_hz if rate_hz is None else rate_hz)
        self._check_rate(rate)
        self._rate = rate
        self._cells = CellArray(rig, self.hidden, rate, self.seed)
        self._stream = ScenarioStream(Stage.from_rig(rig), self.subject, scenario, self.seed)
        self._seg_t0 = 0.0
        self._seg_k0 = 0
        self._k = 0
        self.samples_since_reset = 0
        self.resets = 0
        self._masses: list[_Mass] = []
        # episode buffer on the internal grid
        self._base = 0
        self._end = 0
        self._z = np.zeros(0)
        self._v = np.zeros(0)
        self._f = np.zeros((2, 0))
        self._x = np.zeros((2, 0))
        self._y = np.zeros((2, 0))
        self._surf = np.zeros((2, 0), dtype=np.int8)
        self._events: list[RepEvent] = []
        self._truth_chunks: list[tuple[np.ndarray, ...]] = []
        # plate geometry (room frame)
        pl = rig.plates
        self._pcx = np.array([p.centre_mm[0] for p in pl])
        self._pcy = np.array([p.centre_mm[1] for p in pl])
        self._pz = np.array([p.centre_mm[2] for p in pl])
        self._phw = np.array([p.width_mm / 2 for p in pl])
        self._phl = np.array([p.length_mm / 2 for p in pl])

    # -- configuration -----------------------------------------------------------------
    @staticmethod
    def _check_rate(rate_hz: float) -> None:
        if not (isinstance(rate_hz, (int, float)) and math.isfinite(rate_hz) and 1.0 <= rate_hz <= 20000.0):
            raise ValueError(f"rate_hz must be in 1..20000 Hz, got {rate_hz!r}")

    @property
    def rate_hz(self) -> float:
        return self._rate

    @property
    def time_s(self) -> float:
        """Model time of the next sample (s)."""
        return self._seg_t0 + (self._k - self._seg_k0) / self._rate

    @property
    def samples_generated(self) -> int:
        return self._k

    def set_rate(self, rate_hz: float) -> None:
        """Change the sample rate; the movement continues seamlessly in time."""
        rate = float(rate_hz)
        self._check_rate(rate)
        self._seg_t0 = self.time_s
        self._seg_k0 = self._k
        self._rate = rate
        self._cells.set_rate(rate)

    def reset(self) -> None:
        """A device reboot: the subject and the plates carry on; the sample counter restarts."""
        self.resets += 1
        self.samples_since_reset = 0

    # -- calibration robot ------------------------------------------------------------------
    def place_mass(self, plate: str, x_mm: float, y_mm: float, mass_kg: float) -> None:
        """Lower a dead weight onto ``plate`` at (x_mm, y_mm) in the plate frame (settles in 0.3 s)."""
        try:
            p = self.rig.plate(plate)
        except ValueError:
            raise ValueError(f"no plate named {plate!r} (plates: {', '.join(self.rig.plate_names)})") from None
        for name, val in (("x_mm", x_mm), ("y_mm", y_mm), ("mass_kg", mass_kg)):
            if not isinstance(val, (int, float)) or not math.isfinite(val):
                raise ValueError(f"{name} must be a finite number, got {val!r}")
        if abs(x_mm) > p.width_mm / 2 or abs(y_mm) > p.length_mm / 2:
            raise ValueError(f"position ({x_mm}, {y_mm}) mm is outside plate {p.name!r} "
                             f"({p.width_mm} × {p.length_mm} mm)")
        if not 0.0 < mass_kg <= 1000.0:
            raise ValueError(f"mass_kg must be in (0, 1000] kg, got {mass_kg}")
        self._masses.append(_Mass(self.rig.plates.index(p), float(x_mm), float(y_mm), float(mass_kg), self.time_s))

    def clear_masses(self) -> None:
        """Lift every dead weight off (over 0.3 s)."""
        now = self.time_s
        self._masses = [m for m in self._masses if m.t_off_s is None or m.t_off_s + MASS_SETTLE_S > now]
        for m in self._masses:
            if m.t_off_s is None:
                m.t_off_s = now

    def perform(self, scenario: str, lead: str | None = None) -> None:
        """The subject performs ``scenario`` (leading with ``lead``) from the next movement on (ScenarioStream.follow)."""
        self._stream.follow(scenario, lead)

    # -- generation ---------------------------------------------------------------------------
    def _extend(self, end_index: int) -> None:
        while self._end <= end_index:
            ep = self._stream.next_episode()
            t0 = self._end * DT_S
            self._events.extend(ev.shifted(t0) for ev in ep.events)
            self._z = np.concatenate([self._z, ep.z_m])
            self._v = np.concatenate([self._v, ep.v_m_s])
            self._f = np.concatenate([self._f, ep.foot_f_n], axis=1)
            self._x = np.concatenate([self._x, ep.foot_x_mm], axis=1)
            self._y = np.concatenate([self._y, ep.foot_y_mm], axis=1)
            self._surf = np.concatenate([self._surf, ep.foot_surf], axis=1)
            self._end += ep.n

    def _trim(self, keep_from: int) -> None:
        cut = keep_from - self._base
        if cut > 200000:
            self._z, self._v = self._z[cut:], self._v[cut:]
            self._f, self._x, self._y, self._surf = self._f[:, cut:], self._x[:, cut:], self._y[:, cut:], self._surf[:, cut:]
            self._base = keep_from

    def _feet_on_plates(self, surf: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(n,) plate index under a foot (−1: in the air or on no plate)."""
        height = np.where(surf == SURF_BOX, self.rig.box_height_mm, 0.0)
        dx = np.maximum(np.abs(x[:, None] - self._pcx[None, :]) - self._phw[None, :], 0.0)
        dy = np.maximum(np.abs(y[:, None] - self._pcy[None, :]) - self._phl[None, :], 0.0)
        dist = np.hypot(dx, dy)
        dist = np.where(np.abs(self._pz[None, :] - height[:, None]) < 1.0, dist, np.inf)
        idx = np.argmin(dist, axis=1) if dist.shape[1] else np.full(len(x), -1)
        ok = np.isfinite(dist[np.arange(len(x)), idx]) & (surf != SURF_AIR) if dist.shape[1] else np.zeros(len(x), bool)
        return np.where(ok, idx, -1)

    def read_counts(self, n_samples: int) -> np.ndarray:
        """The next ``n_samples`` samples of raw counts, int32 (n, rig.channels); streaming and deterministic."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 0:
            raise ValueError(f"n_samples must be a non-negative integer, got {n_samples!r}")
        n = int(n_samples)
        n_pl = len(self.rig.plates)
        if n == 0:
            return np.zeros((0, self.rig.channels), dtype=np.int32)
        ks = np.arange(self._k, self._k + n)
        t = self._seg_t0 + (ks - self._seg_k0) / self._rate
        f_abs = t / DT_S
        i_abs = np.floor(f_abs).astype(np.int64)
        w = f_abs - i_abs
        self._extend(int(i_abs[-1]) + 1)
        li = i_abs - self._base
        w1 = 1.0 - w

        def lerp(a):
            return a[..., li] * w1 + a[..., li + 1] * w

        z, v = lerp(self._z), lerp(self._v)
        f, x, y = lerp(self._f), lerp(self._x), lerp(self._y)
        surf = np.where(w < 0.5, self._surf[:, li], self._surf[:, li + 1])
        fz = np.zeros((n, n_pl))
        mx = np.zeros((n, n_pl))
        my = np.zeros((n, n_pl))
        loads = np.zeros((n, self.rig.channels))
        for foot in (0, 1):
            where = self._feet_on_plates(surf[foot], x[foot], y[foot])
            for p_i, plate in enumerate(self.rig.plates):
                on = where == p_i
                if not on.any():
                    continue
                ff = np.where(on, f[foot], 0.0)
                xl = x[foot] - self._pcx[p_i]
                yl = y[foot] - self._pcy[p_i]
                fz[:, p_i] += ff
                mx[:, p_i] += ff * xl
                my[:, p_i] += ff * yl
                loads[:, list(plate.channels)] += cell_loads_from_cop(plate, ff, xl, yl)
        for mass in self._masses:
            ff = mass.load_n(t)
            plate = self.rig.plates[mass.plate]
            fz[:, mass.plate] += ff
            mx[:, mass.plate] += ff * mass.x_mm
            my[:, mass.plate] += ff * mass.y_mm
            loads[:, list(plate.channels)] += cell_loads_from_cop(plate, ff, np.full(n, mass.x_mm), np.full(n, mass.y_mm))
        counts = self._cells.process(loads, t)
        ok = fz >= TRUTH_COP_MIN_FORCE_N
        safe = np.where(ok, fz, 1.0)
        self._truth_chunks.append((t, fz, np.where(ok, mx / safe, np.nan), np.where(ok, my / safe, np.nan), z, v))
        self._k += n
        self.samples_since_reset += n
        self._trim(int(i_abs[-1]) - 10)
        if self.keep_truth_s is not None:
            horizon = t[-1] - self.keep_truth_s
            while len(self._truth_chunks) > 1 and self._truth_chunks[0][0][-1] < horizon:
                self._truth_chunks.pop(0)
        return counts

    @property
    def truth(self) -> SimTruth:
        """The truth of everything generated so far (limited to ``keep_truth_s``)."""
        n_pl = len(self.rig.plates)
        if self._truth_chunks:
            t, fz, cx, cy, z, v = (np.concatenate(parts) for parts in zip(*self._truth_chunks))
        else:
            t, z, v = np.zeros(0), np.zeros(0), np.zeros(0)
            fz, cx, cy = np.zeros((0, n_pl)), np.zeros((0, n_pl)), np.zeros((0, n_pl))
        t_last = t[-1] if t.size else -1.0
        events = [ev for ev in self._events if ev.t_end_s <= t_last]
        return SimTruth(t, self.rig.plate_names, fz, cx, cy, z, v, events, self.subject.body_mass_kg, self.scenario)


def simulate_trial(rig: Rig, subject: Subject | None = None, scenario: str = "step-down", seconds: float = 20.0,
                   rate_hz: float | None = None, seed: int = 0) -> tuple[np.ndarray, SimTruth]:
    """Simulate a whole trial offline.

    Parameters
    ----------
    rig : the rig description.
    subject : the virtual subject (default ``Subject()``).
    scenario : a name from ``SCENARIOS``.
    seconds : trial duration (s), > 0.
    rate_hz : sample rate (Hz); default the rig's.
    seed : random seed.

    Returns
    -------
    counts : int32 (n, rig.channels) raw counts, n = round(seconds × rate_hz).
    truth : :class:`SimTruth` for the same samples (all of it).
    """
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    model = SimulatedRigModel(rig, subject, scenario, seed, rate_hz, keep_truth_s=None)
    counts = model.read_counts(int(round(seconds * model.rate_hz)))
    return counts, model.truth
