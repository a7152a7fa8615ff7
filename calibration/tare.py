"""Tare (zero offsets) of a plate's cells, and the automatic re-tare policy of the live path.

A tare is the mean of ≥ 2 s of unloaded counts per channel. It is rejected when
the plate is not steady (noise or drift of the plate's nominal vertical force above
a limit) and, when a reference zero is known (a previous tare or calibration), when
the plate reads clearly more than that zero (something is standing on it).
Everything is counted in samples; seconds are derived from the sample rate, so
nothing depends on the wall clock.

The live path re-tares by itself only while a plate is unloaded and steady
(``AutoTarePolicy``: every threshold named and documented, decision 0009);
``LiveTare`` applies that policy to every plate of a calibration.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .apply import apply_plate_matrix
from .arrays import CalibrationArrays


class TareError(ValueError):
    """A tare that must not be applied; the message says why.

    ``reason`` is ``"short"``, ``"unsteady"`` or ``"loaded"``.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Tare:
    """Offsets of one plate's cells and when they were taken.

    Attributes
    ----------
    offsets_counts : numpy.ndarray
        (K,) mean unloaded counts per cell.
    noise_n : float
        SD of the plate's nominal vertical force during the tare [N].
    drift_n : float
        Change of the plate's nominal vertical force across the tare window [N].
    n_samples : int
        Samples averaged.
    end_sample : int
        Index (in the caller's sample count) of the sample after the tare window.
    sample_rate_hz : float
        Sample rate [Hz].
    """

    offsets_counts: np.ndarray
    noise_n: float
    drift_n: float
    n_samples: int
    end_sample: int
    sample_rate_hz: float

    def seconds_since(self, now_sample: int) -> float:
        """Time since the tare [s] at sample index ``now_sample``."""
        return max(int(now_sample) - self.end_sample, 0) / self.sample_rate_hz


def _validate_sens(counts_per_n, k: int) -> np.ndarray:
    s = np.asarray(counts_per_n, dtype=np.float64)
    s = np.broadcast_to(s, (k,)).astype(np.float64)
    if not np.all(s > 0):
        raise ValueError("counts_per_n must be positive for every cell")
    return s


def plate_force_n(counts, offsets_counts, counts_per_n) -> np.ndarray:
    """Nominal vertical force [N] of a plate: Σ (counts − offset) / sensitivity per sample.

    ``counts`` (..., K); the Fz row ``1/counts_per_n`` applied by ``apply.apply_plate_matrix``.
    """
    c = np.asarray(counts, dtype=np.float64)
    k = c.shape[-1] if c.ndim else 1
    lin = np.zeros((3, k))
    lin[0] = 1.0 / np.broadcast_to(np.asarray(counts_per_n, dtype=np.float64), (k,))
    return apply_plate_matrix(c, lin, offsets_counts=offsets_counts)[..., 0]


def steadiness_n(force_n: np.ndarray) -> tuple[float, float]:
    """(noise SD, drift) [N] of a force trace: SD about the mean, and the change
    between the means of its first and last quarter."""
    f = np.asarray(force_n, dtype=np.float64)
    if f.size < 4:
        raise ValueError(f"need at least 4 samples to judge steadiness, got {f.size}")
    q = max(f.size // 4, 1)
    return float(np.std(f)), float(abs(f[-q:].mean() - f[:q].mean()))


def compute_tare(
    counts,
    sample_rate_hz: float,
    counts_per_n,
    *,
    min_duration_s: float = 2.0,
    max_noise_n: float = 2.0,
    max_drift_n: float = 1.0,
    reference_offsets_counts=None,
    max_load_n: float = 20.0,
    end_sample: int | None = None,
) -> Tare:
    """Tare a plate from a block of unloaded counts.

    Parameters
    ----------
    counts : array_like
        (n, K) raw counts of the plate's cells.
    sample_rate_hz : float
        Sample rate [Hz]; the block must span at least ``min_duration_s``.
    counts_per_n : array_like
        (K,) or scalar nominal sensitivity [counts/N], to judge steadiness in newtons.
    min_duration_s : float
        Shortest acceptable tare [s] (2 s by the procedure).
    max_noise_n, max_drift_n : float
        Largest acceptable SD and drift of the plate's nominal force [N].
    reference_offsets_counts : array_like or None
        (K,) a known zero; the tare is refused when the plate reads more than
        ``max_load_n`` above (or below) it.
    max_load_n : float
        Load tolerance against the reference zero [N].
    end_sample : int or None
        Sample index just after the block (for "time since tare"); defaults to n.

    Returns
    -------
    Tare

    Raises
    ------
    TareError
        Too short, unsteady, or loaded.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 1:
        raise ValueError(f"counts must be (n, K), got shape {c.shape}")
    if not sample_rate_hz > 0:
        raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
    n, k = c.shape
    sens = _validate_sens(counts_per_n, k)
    need = int(np.ceil(min_duration_s * sample_rate_hz))
    if n < max(need, 4):
        raise TareError(f"tare needs at least {min_duration_s:g} s ({need} samples), got {n} samples", "short")
    offsets = c.mean(axis=0)
    force = plate_force_n(c, offsets, sens)
    noise, drift = steadiness_n(force)
    if noise > max_noise_n or drift > max_drift_n:
        raise TareError(f"plate is not steady during tare (noise {noise:.2f} N, drift {drift:.2f} N; limits {max_noise_n:g} N, "
                        f"{max_drift_n:g} N): keep it unloaded and still", "unsteady")
    if reference_offsets_counts is not None:
        ref = np.asarray(reference_offsets_counts, dtype=np.float64)
        if ref.shape != (k,):
            raise ValueError(f"reference_offsets_counts must have shape ({k},), got {ref.shape}")
        load = float(np.sum((offsets - ref) / sens))
        if load > max_load_n:
            raise TareError(f"plate is loaded during tare (reads {load:.1f} N above its zero): clear the plate and tare again", "loaded")
        if load < -max_load_n:
            raise TareError(f"plate reads {-load:.1f} N below its zero: it was loaded when the zero was taken; "
                            "clear it and tare again", "loaded")
    return Tare(offsets, noise, drift, n, int(n if end_sample is None else end_sample), float(sample_rate_hz))


@dataclass(frozen=True)
class AutoTarePolicy:
    """When the live path may re-tare a plate by itself: only while it is unloaded and steady.

    Decision 0009 (the thresholds left the screen layer for here).  A plate is
    re-tared when, over the last ``steady_window_s``, its nominal vertical force
    (counts against the current offsets, nominal sensitivities) has a mean within
    ``±unloaded_max_n(...)``, an SD ≤ ``max_noise_n`` and a drift ≤ ``max_drift_n``,
    and its previous re-tare is at least ``min_interval_s`` old.  A person standing,
    even very still, sways by more than ``max_noise_n``: a foot is never tared away.

    Attributes
    ----------
    steady_window_s : float
        Hold time [s]: the plate must be unloaded and steady over this whole window.
    calibrated_unloaded_max_n : float
        "Unloaded" limit [N] of a calibrated plate: its tare is known, an empty plate reads ≈ 0 N.
    uncalibrated_unloaded_fraction : float
        "Unloaded" limit of a plate on nominal gains, as a fraction of its capacity:
        the cells' zero balance (±1-2 % of rated output each) can put an empty
        uncalibrated plate 100 N or more off, so up to 3 % of capacity still counts as empty.
    max_noise_n : float
        Steadiness: largest SD of the plate's nominal force over the window [N].
    max_drift_n : float
        Steadiness: largest change between the means of the window's first and last quarter [N].
    min_interval_s : float
        Shortest time between two re-tares of one plate [s].
    """

    steady_window_s: float = 2.0
    calibrated_unloaded_max_n: float = 10.0
    uncalibrated_unloaded_fraction: float = 0.03
    max_noise_n: float = 1.0
    max_drift_n: float = 0.5
    min_interval_s: float = 10.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"auto-tare {f.name} must be a finite number, got {v!r}")
            if f.name == "min_interval_s" and v < 0:
                raise ValueError(f"auto-tare min_interval_s must be >= 0, got {v!r}")
            if f.name != "min_interval_s" and not v > 0:
                raise ValueError(f"auto-tare {f.name} must be > 0, got {v!r}")

    def unloaded_max_n(self, capacity_n: float, calibrated: bool) -> float:
        """The "unloaded" limit [N] of a plate of ``capacity_n`` [N], calibrated or on nominal gains."""
        if calibrated:
            return self.calibrated_unloaded_max_n
        return self.uncalibrated_unloaded_fraction * float(capacity_n)


class AutoTare:
    """Re-tares one plate automatically, only while it is unloaded and steady.

    Feed it every block of the plate's raw counts (``update``); it keeps the last
    ``window_s`` of samples and, once the window is full, reads less than
    ``unloaded_max_n`` against the current offsets and is steady, takes a new
    tare. ``min_interval_s`` limits how often.  The defaults are ``AutoTarePolicy``'s
    (``from_policy`` builds one from a policy).

    Parameters
    ----------
    offsets_counts : array_like
        (K,) current offsets (e.g. from the calibration).
    counts_per_n : array_like
        (K,) or scalar nominal sensitivity [counts/N].
    sample_rate_hz : float
        Sample rate [Hz].
    window_s, unloaded_max_n, max_noise_n, max_drift_n, min_interval_s : float
        Window length [s], unloaded threshold [N], steadiness limits [N],
        shortest time between re-tares [s].
    """

    def __init__(self, offsets_counts, counts_per_n, sample_rate_hz: float, *,
                 window_s: float = AutoTarePolicy.steady_window_s,
                 unloaded_max_n: float = AutoTarePolicy.calibrated_unloaded_max_n,
                 max_noise_n: float = AutoTarePolicy.max_noise_n, max_drift_n: float = AutoTarePolicy.max_drift_n,
                 min_interval_s: float = AutoTarePolicy.min_interval_s) -> None:
        off = np.asarray(offsets_counts, dtype=np.float64).copy()
        if off.ndim != 1 or off.size < 1:
            raise ValueError(f"offsets_counts must be (K,), got shape {off.shape}")
        if not sample_rate_hz > 0 or not window_s > 0:
            raise ValueError("sample_rate_hz and window_s must be positive")
        self._k = off.size
        self._sens = _validate_sens(counts_per_n, self._k)
        self.sample_rate_hz = float(sample_rate_hz)
        self._window = max(int(round(window_s * sample_rate_hz)), 4)
        self._buf = np.zeros((self._window, self._k))
        self._fill = 0
        self.unloaded_max_n = float(unloaded_max_n)
        self.max_noise_n = float(max_noise_n)
        self.max_drift_n = float(max_drift_n)
        self._min_interval = int(round(min_interval_s * sample_rate_hz))
        self._samples = 0
        self.last_tare = Tare(off, float("nan"), float("nan"), 0, 0, self.sample_rate_hz)

    @classmethod
    def from_policy(cls, policy: AutoTarePolicy, offsets_counts, counts_per_n, sample_rate_hz: float, *,
                    capacity_n: float, calibrated: bool) -> AutoTare:
        """One plate's auto-tare under ``policy`` (plate capacity [N]; calibrated or nominal gains)."""
        return cls(offsets_counts, counts_per_n, sample_rate_hz, window_s=policy.steady_window_s,
                   unloaded_max_n=policy.unloaded_max_n(capacity_n, calibrated), max_noise_n=policy.max_noise_n,
                   max_drift_n=policy.max_drift_n, min_interval_s=policy.min_interval_s)

    @property
    def offsets_counts(self) -> np.ndarray:
        return self.last_tare.offsets_counts

    @property
    def samples_seen(self) -> int:
        return self._samples

    def seconds_since_tare(self) -> float:
        """Time since the last tare [s] (since construction when none was taken)."""
        return self.last_tare.seconds_since(self._samples)

    def update(self, counts) -> Tare | None:
        """Feed a block (n, K) of raw counts; returns the new Tare when one was taken."""
        c = np.asarray(counts, dtype=np.float64)
        if c.ndim != 2 or c.shape[1] != self._k:
            raise ValueError(f"counts must be (n, {self._k}), got shape {c.shape}")
        n = c.shape[0]
        self._samples += n
        if n >= self._window:
            self._buf[:] = c[-self._window:]
            self._fill = self._window
        elif n:
            self._buf = np.roll(self._buf, -n, axis=0)
            self._buf[-n:] = c
            self._fill = min(self._fill + n, self._window)
        if self._fill < self._window:
            return None
        if self._samples - self.last_tare.end_sample < self._min_interval and self.last_tare.n_samples > 0:
            return None
        force = plate_force_n(self._buf, self.offsets_counts, self._sens)
        if abs(float(force.mean())) > self.unloaded_max_n:
            return None
        noise, drift = steadiness_n(force)
        if noise > self.max_noise_n or drift > self.max_drift_n:
            return None
        tare = Tare(self._buf.mean(axis=0), noise, drift, self._window, self._samples, self.sample_rate_hz)
        self.last_tare = tare
        self._fill = 0
        return tare


class LiveTare:
    """The auto-tare policy applied to every plate of a calibration (the live path).

    Feed it every block of raw counts (``update``); when a plate re-tares, the
    calibration's offsets of that plate's cells are replaced and the new
    calibration (hash recomputed: the arrays changed) is returned and kept in
    ``calibration``.

    Parameters
    ----------
    rig : steplab.acquisition.rig.Rig
        The rig: each used channel's cell gives its nominal sensitivity [counts/N]
        and capacity [N].
    calibration : CalibrationArrays
        The calibration in force (its offsets are the starting zero).
    rate_hz : float
        Sample rate [Hz].
    calibrated : bool
        True for a real calibration, False for nominal gains (``AutoTarePolicy.unloaded_max_n``).
    policy : AutoTarePolicy or None
        The thresholds; None: the defaults.
    """

    def __init__(self, rig, calibration: CalibrationArrays, rate_hz: float, *, calibrated: bool,
                 policy: AutoTarePolicy | None = None) -> None:
        if not isinstance(calibration, CalibrationArrays):
            raise ValueError(f"calibration must be a CalibrationArrays, got {type(calibration).__name__}")
        self.policy = policy if policy is not None else AutoTarePolicy()
        cells = {c.channel: c for p in rig.plates for c in p.cells}
        self.calibration = calibration
        self.retares = 0
        self._slots: list[np.ndarray] = []
        self._tares: list[AutoTare] = []
        for p in range(calibration.n_plates):
            slots = np.flatnonzero(calibration.channel_index[p] >= 0)
            channels = calibration.channel_index[p, slots]
            missing = [int(ch) for ch in channels if int(ch) not in cells]
            if missing:
                raise ValueError(f"calibration plate {calibration.plate_roles[p]!r} uses channel(s) {missing} "
                                 "that no cell of the rig has")
            plate_cells = [cells[int(ch)] for ch in channels]
            self._slots.append(slots)
            self._tares.append(AutoTare.from_policy(
                self.policy, calibration.offsets_counts[p, slots], [c.nominal_counts_per_n for c in plate_cells],
                rate_hz, capacity_n=sum(c.capacity_n for c in plate_cells), calibrated=calibrated))

    def update(self, counts) -> CalibrationArrays | None:
        """Feed raw counts (n, channels); the new calibration when some plate was re-tared, else None."""
        c = np.asarray(counts)
        cal = self.calibration
        offsets = None
        for p, (slots, tare) in enumerate(zip(self._slots, self._tares)):
            if tare.update(c[:, cal.channel_index[p, slots]]) is not None:
                if offsets is None:
                    offsets = np.array(cal.offsets_counts)
                offsets[p, slots] = tare.offsets_counts
        if offsets is None:
            return None
        self.retares += 1
        self.calibration = dataclasses.replace(cal, offsets_counts=offsets, calibration_hash="")
        return self.calibration

    def seconds_since_tare(self, role: str) -> float:
        """Time since plate ``role`` was last tared [s] (since the start when it never was)."""
        return self._tares[self.calibration.plate_index(role)].seconds_since_tare()
