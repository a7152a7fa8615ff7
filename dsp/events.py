"""Event timing helpers: threshold crossings interpolated between samples (metrics.md § conventions)."""

from __future__ import annotations

import numpy as np


def crossing_time_s(x: np.ndarray, i: int, level: float, rate_hz: float) -> float:
    """Time (s) at which x crosses ``level`` between samples i−1 and i (linear interpolation).

    If i is 0 or the two samples are equal, the time of sample i.
    """
    if i <= 0:
        return i / rate_hz
    a = float(x[i - 1])
    b = float(x[i])
    if b == a:
        return i / rate_hz
    frac = (level - a) / (b - a)
    frac = min(1.0, max(0.0, frac))
    return (i - 1 + frac) / rate_hz


def value_at(x: np.ndarray, t_s: float, rate_hz: float) -> float:
    """x at time t_s (s) by linear interpolation between the neighbouring samples."""
    pos = t_s * rate_hz
    n = x.shape[0]
    if pos <= 0:
        return float(x[0])
    if pos >= n - 1:
        return float(x[n - 1])
    i = int(np.floor(pos))
    f = pos - i
    return float(x[i] * (1.0 - f) + x[i + 1] * f)


def integral_between(x: np.ndarray, t0_s: float, t1_s: float, rate_hz: float) -> float:
    """∫ x dt over [t0_s, t1_s] (trapezoid on the samples, interpolated end points)."""
    if t1_s <= t0_s:
        return 0.0
    n = x.shape[0]
    dt = 1.0 / rate_hz
    p0 = t0_s * rate_hz
    p1 = min(t1_s * rate_hz, n - 1.0)
    i0 = int(np.ceil(p0))
    i1 = int(np.floor(p1))
    if i1 < i0:  # both inside one sample interval
        return 0.5 * (value_at(x, t0_s, rate_hz) + value_at(x, p1 / rate_hz, rate_hz)) * (p1 - p0) * dt
    total = 0.0
    total += 0.5 * (value_at(x, t0_s, rate_hz) + float(x[i0])) * (i0 - p0) * dt
    if i1 > i0:
        seg = x[i0:i1 + 1]
        total += float(np.sum(seg[1:] + seg[:-1])) * 0.5 * dt
    total += 0.5 * (float(x[i1]) + value_at(x, p1 / rate_hz, rate_hz)) * (p1 - i1) * dt
    return total


def first_at_or_above(x: np.ndarray, lo: int, hi: int, level: float) -> int | None:
    """First index in [lo, hi) with x ≥ level, or None."""
    if hi <= lo:
        return None
    hit = np.flatnonzero(x[lo:hi] >= level)
    return int(lo + hit[0]) if hit.size else None


def last_at_or_below_abs(x: np.ndarray, lo: int, hi: int, level: float) -> int | None:
    """Last index in [lo, hi) with |x| ≤ level, or None."""
    if hi <= lo:
        return None
    hit = np.flatnonzero(np.abs(x[lo:hi]) <= level)
    return int(lo + hit[-1]) if hit.size else None
