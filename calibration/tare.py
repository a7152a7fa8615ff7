"""Tare (zero offsets) of a plate's cells, and automatic re-tare for the live path.

A tare is the mean of ≥ 2 s of unloaded counts per channel. It is rejected when
the plate is not steady (noise or drift of the plate's nominal vertical force above
a limit) and, when a reference zero is known (a previous tare or calibration), when
the plate reads clearly more than that zero (something is standing on it).
Everything is counted in samples; seconds are derived from the sample rate, so
nothing depends on the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    """Nominal vertical force [N] of a plate: Σ (counts − offset) / sensitivity per sample."""
    c = np.asarray(counts, dtype=np.float64)
    return ((c - np.asarray(offsets_counts, dtype=np.float64)) / np.asarray(counts_per_n, dtype=np.float64)).sum(axis=-1)


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
        raise TareError(f"plate is not steady during tare (noise {noise:.2f} N, drift {drift:.2f} N; limits {max_noise_n:g} N, {max_drift_n:g} N): keep it unloaded and still", "unsteady")
    if reference_offsets_counts is not None:
        ref = np.asarray(reference_offsets_counts, dtype=np.float64)
        if ref.shape != (k,):
            raise ValueError(f"reference_offsets_counts must have shape ({k},), got {ref.shape}")
        load = float(np.sum((offsets - ref) / sens))
        if load > max_load_n:
            raise TareError(f"plate is loaded during tare (reads {load:.1f} N above its zero): clear the plate and tare again", "loaded")
        if load < -max_load_n:
            raise TareError(f"plate reads {-load:.1f} N below its zero: it was loaded when the zero was taken; clear it and tare again", "loaded")
    return Tare(offsets, noise, drift, n, int(n if end_sample is None else end_sample), float(sample_rate_hz))


class AutoTare:
    """Re-tares a plate automatically, only while it is unloaded and steady.

    Feed it every block of the plate's raw counts (``update``); it keeps the last
    ``window_s`` of samples and, once the window is full, reads less than
    ``unloaded_max_n`` against the current offsets and is steady, takes a new
    tare. ``min_interval_s`` limits how often.

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

    def __init__(self, offsets_counts, counts_per_n, sample_rate_hz: float, *, window_s: float = 2.0,
                 unloaded_max_n: float = 10.0, max_noise_n: float = 1.0, max_drift_n: float = 0.5,
                 min_interval_s: float = 10.0) -> None:
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
