"""Simulated load cells: plate load → cell loads → 24-bit counts with hidden imperfections.

A plate's vertical load and its centre of pressure are shared between the plate's
cells by the standard bilinear split (four cells on the corners of a rectangle;
exact COP, statically admissible) or, for other layouts, the minimum-norm split
(the rigid-plate solution for equal cell stiffnesses).  Each cell then passes
through the plate's mechanical resonance (ringing after impacts), an overload
stop, a small quadratic non-linearity, cross-talk between a plate's cells, its
gain error and nominal sensitivity, an offset, a slow warm-up drift, white noise
and the converter's ±(2^23 − 1) limit.  The hidden parameters live in a
:class:`HiddenCellModel` that tests and the calibration robot may inspect; the
host only ever sees the counts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.linalg import expm

from steplab.constants import ADC_FULL_SCALE_COUNTS

from ._sim_kernels import counts_from_signal, plate_resonance
from .rig import Plate, Rig

OVERLOAD_FACTOR = 1.5  # mechanical overload stop of a cell, × capacity
DRIFT_TIME_CONSTANT_S = 1200.0  # warm-up drift approaches its final value with this time constant


@functools.lru_cache(maxsize=64)
def _rectangle_layout(plate: Plate) -> tuple[np.ndarray, np.ndarray, float, float, float, float] | None:
    """(sign_x, sign_y, cx, cy, half_w, half_l) if the cells sit on the corners of an axis-aligned rectangle."""
    if len(plate.cells) != 4:
        return None
    xs = np.array([c.x_mm for c in plate.cells])
    ys = np.array([c.y_mm for c in plate.cells])
    ux, uy = np.unique(xs), np.unique(ys)
    if len(ux) != 2 or len(uy) != 2:
        return None
    corners = {(x, y) for x, y in zip(xs, ys)}
    if len(corners) != 4:
        return None
    cx, cy = float(ux.mean()), float(uy.mean())
    hw, hl = float(ux[1] - ux[0]) / 2.0, float(uy[1] - uy[0]) / 2.0
    return np.sign(xs - cx), np.sign(ys - cy), cx, cy, hw, hl


def cell_loads_from_cop(plate: Plate, fz_n: np.ndarray, cop_x_mm: np.ndarray, cop_y_mm: np.ndarray) -> np.ndarray:
    """Share a plate's vertical load between its cells so that the cells reproduce the COP.

    Parameters
    ----------
    plate : the plate (cell positions in mm, plate frame).
    fz_n : (n,) vertical load (N).
    cop_x_mm, cop_y_mm : (n,) centre of pressure in the plate frame (mm); ignored where fz_n is 0.

    Returns
    -------
    (n, n_cells) cell loads (N), in the order of ``plate.cells``.  Four corner cells use
    the bilinear split F_i = F·(1 + sx_i·x/a)(1 + sy_i·y/b)/4; other layouts the
    minimum-norm solution of ΣF_i = F, ΣF_i·x_i = F·x, ΣF_i·y_i = F·y.
    """
    fz = np.asarray(fz_n, dtype=np.float64)
    x = np.asarray(cop_x_mm, dtype=np.float64)
    y = np.asarray(cop_y_mm, dtype=np.float64)
    if fz.ndim != 1 or x.shape != fz.shape or y.shape != fz.shape:
        raise ValueError("fz_n, cop_x_mm and cop_y_mm must be 1-D arrays of the same length")
    x = np.where(np.isfinite(x), x, 0.0)
    y = np.where(np.isfinite(y), y, 0.0)
    rect = _rectangle_layout(plate)
    if rect is not None:
        sx, sy, cx, cy, hw, hl = rect
        u = (x - cx) / hw
        w = (y - cy) / hl
        return 0.25 * fz[:, None] * (1.0 + u[:, None] * sx[None, :]) * (1.0 + w[:, None] * sy[None, :])
    pos = np.array([[1.0, c.x_mm, c.y_mm] for c in plate.cells]).T  # (3, n_cells)
    rhs = np.stack([fz, fz * x, fz * y])  # (3, n)
    return (np.linalg.pinv(pos) @ rhs).T


def cop_from_cell_loads(plate: Plate, loads_n: np.ndarray, min_force_n: float = 20.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plate force (N) and COP (mm, plate frame) from cell loads; COP is NaN where Fz < min_force_n."""
    loads = np.asarray(loads_n, dtype=np.float64)
    if loads.ndim != 2 or loads.shape[1] != len(plate.cells):
        raise ValueError(f"loads_n must have shape (n, {len(plate.cells)})")
    xs = np.array([c.x_mm for c in plate.cells])
    ys = np.array([c.y_mm for c in plate.cells])
    fz = loads.sum(axis=1)
    ok = fz >= min_force_n
    safe = np.where(ok, fz, 1.0)
    x = np.where(ok, loads @ xs / safe, np.nan)
    y = np.where(ok, loads @ ys / safe, np.nan)
    return fz, x, y


def _resonance_matrices(freq_hz: np.ndarray, damping: np.ndarray, rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact zero-order-hold discretisation of x'' + 2ζωx' + ω²x = ω²u, per group."""
    dt = 1.0 / rate_hz
    n = len(freq_hz)
    a = np.zeros((max(n, 1), 2, 2))
    b = np.zeros((max(n, 1), 2))
    for g in range(n):
        w = 2.0 * np.pi * freq_hz[g]
        m = np.zeros((3, 3))
        m[0, 1] = 1.0
        m[1, 0] = -w * w
        m[1, 1] = -2.0 * damping[g] * w
        m[1, 2] = w * w
        e = expm(m * dt)
        a[g] = e[:2, :2]
        b[g] = e[:2, 2]
    return a, b


@dataclass(frozen=True)
class HiddenCellModel:
    """The imperfections of every channel, hidden from the host (arrays indexed by channel).

    Attributes
    ----------
    nominal_counts_per_n : (C,) datasheet sensitivity (counts/N).
    gain : (C,) actual/nominal sensitivity (1 ± 0.03).
    offset_counts : (C,) zero offset (counts, within ±2 % of full scale).
    crosstalk : (C, C) mixing matrix (identity plus ≤ 1 % between cells of one plate).
    nonlinearity : (C,) β in L' = L + β·L·|L|/capacity (≤ 0.2 % of full scale at capacity).
    capacity_n : (C,) rated capacity (N); loads are stopped at OVERLOAD_FACTOR × capacity.
    noise_sd_counts : (C,) white noise SD (counts).
    drift_final_n : (C,) final value of the warm-up drift (N); drift(t) = D·(1 − exp(−t/τ)).
    drift_tau_s : τ of the drift (s); initial slope D/τ is about 0.05 N/min (a warmed-up cell).
    plate_of_channel : (C,) index of the plate a channel belongs to (−1 if none).
    resonance_hz, resonance_damping : (P,) per plate ringing frequency (Hz) and damping ratio.
    """

    nominal_counts_per_n: np.ndarray
    gain: np.ndarray
    offset_counts: np.ndarray
    crosstalk: np.ndarray
    nonlinearity: np.ndarray
    capacity_n: np.ndarray
    noise_sd_counts: np.ndarray
    drift_final_n: np.ndarray
    drift_tau_s: float
    plate_of_channel: np.ndarray
    resonance_hz: np.ndarray
    resonance_damping: np.ndarray
    full_scale_counts: int = ADC_FULL_SCALE_COUNTS

    @classmethod
    def draw(cls, rig: Rig, seed: int = 0) -> HiddenCellModel:
        """Draw a plausible set of hidden parameters for ``rig`` (deterministic for a seed)."""
        rng = np.random.default_rng([int(seed), 0xCE11])
        n_ch = rig.channels
        fs = float(ADC_FULL_SCALE_COUNTS)
        nominal = np.full(n_ch, 4000.0)
        capacity = np.full(n_ch, 1961.33)
        plate_of = np.full(n_ch, -1, dtype=np.int64)
        for p_i, plate in enumerate(rig.plates):
            for cell in plate.cells:
                nominal[cell.channel] = cell.nominal_counts_per_n
                capacity[cell.channel] = cell.capacity_n
                plate_of[cell.channel] = p_i
        gain = 1.0 + rng.uniform(-0.03, 0.03, n_ch)
        offset = rng.uniform(-0.02, 0.02, n_ch) * fs
        cross = np.eye(n_ch)
        for plate in rig.plates:
            chans = [c.channel for c in plate.cells]
            for i in chans:
                for j in chans:
                    if i != j:
                        cross[i, j] = rng.uniform(-0.008, 0.008)
        beta_max = 0.002 * fs / (capacity * nominal)  # deviation at capacity ≤ 0.2 % FS (before gain)
        nonlin = rng.uniform(-0.9, 0.9, n_ch) * beta_max
        noise_sd = rng.uniform(0.03, 0.15, n_ch) * nominal
        slope_n_per_min = rng.uniform(0.03, 0.07, n_ch) * rng.choice([-1.0, 1.0], n_ch)
        drift_final = slope_n_per_min / 60.0 * DRIFT_TIME_CONSTANT_S
        n_pl = len(rig.plates)
        return cls(
            nominal_counts_per_n=nominal, gain=gain, offset_counts=offset, crosstalk=cross,
            nonlinearity=nonlin, capacity_n=capacity, noise_sd_counts=noise_sd,
            drift_final_n=drift_final, drift_tau_s=DRIFT_TIME_CONSTANT_S, plate_of_channel=plate_of,
            resonance_hz=rng.uniform(150.0, 250.0, n_pl), resonance_damping=rng.uniform(0.05, 0.12, n_pl),
        )

    @property
    def counts_per_n(self) -> np.ndarray:
        """Actual sensitivity of each channel (counts/N)."""
        return self.nominal_counts_per_n * self.gain

    def drift_n(self, t_s: np.ndarray) -> np.ndarray:
        """(n, C) drift (N) at model times ``t_s`` (s)."""
        t = np.asarray(t_s, dtype=np.float64)
        return (1.0 - np.exp(-t / self.drift_tau_s))[:, None] * self.drift_final_n[None, :]

    def signal_counts(self, loads_n: np.ndarray, t_s: np.ndarray) -> np.ndarray:
        """Noise-free converter input (float counts) for cell loads (N) seen through the plate."""
        cap = self.capacity_n[None, :]
        lim = OVERLOAD_FACTOR * cap
        loads = np.clip(loads_n, -lim, lim)
        loads = loads + self.nonlinearity[None, :] * loads * np.abs(loads) / cap
        mixed = loads @ self.crosstalk.T
        return (mixed + self.drift_n(t_s)) * self.counts_per_n[None, :] + self.offset_counts[None, :]

    def loads_from_counts(self, counts: np.ndarray, t_s: np.ndarray) -> np.ndarray:
        """Invert the hidden model: counts → cell loads (N) (noise and ringing stay in)."""
        c = np.asarray(counts, dtype=np.float64)
        mixed = (c - self.offset_counts[None, :]) / self.counts_per_n[None, :] - self.drift_n(t_s)
        loads_nl = np.linalg.solve(self.crosstalk, mixed.T).T
        cap = self.capacity_n[None, :]
        b = self.nonlinearity[None, :] / cap
        mag = np.abs(loads_nl)
        return np.sign(loads_nl) * 2.0 * mag / (1.0 + np.sqrt(1.0 + 4.0 * b * mag))


class CellArray:
    """The stateful converter side of the rig: plate ringing, imperfections, noise, clipping.

    ``process(loads_n, t_s)`` turns true cell loads (n, C) into int32 counts; the plate
    resonance state and the noise stream continue across calls, so blocks of any size
    give the same counts as one call.
    """

    def __init__(self, rig: Rig, hidden: HiddenCellModel, rate_hz: float, seed: int = 0):
        self.rig = rig
        self.hidden = hidden
        self._rng = np.random.default_rng([int(seed), 0x0015E])
        self._state = np.zeros((rig.channels, 2))
        self._primed = False
        self.set_rate(rate_hz)

    def set_rate(self, rate_hz: float) -> None:
        if not (np.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz must be a positive number, got {rate_hz!r}")
        self._a, self._b = _resonance_matrices(self.hidden.resonance_hz, self.hidden.resonance_damping, float(rate_hz))

    def process(self, loads_n: np.ndarray, t_s: np.ndarray) -> np.ndarray:
        loads = np.array(loads_n, dtype=np.float64, order="C", copy=True)
        if loads.ndim != 2 or loads.shape[1] != self.rig.channels:
            raise ValueError(f"loads_n must have shape (n, {self.rig.channels})")
        if loads.shape[0] == 0:
            return np.zeros((0, self.rig.channels), dtype=np.int32)
        if not self._primed:  # the plate starts at rest under its initial load
            self._state[:, 0] = loads[0]
            self._primed = True
        plate_resonance(loads, self._a, self._b, self.hidden.plate_of_channel, self._state)
        signal = self.hidden.signal_counts(loads, t_s)
        signal += self._rng.standard_normal(loads.shape) * self.hidden.noise_sd_counts[None, :]
        return counts_from_signal(signal, float(self.hidden.full_scale_counts))
