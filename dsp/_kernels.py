"""Private numba kernels of the analysis core (no validation here: the public edge does it).

Index conventions: indices are plain sample indices; a kernel that may find
nothing returns -1 and the Python caller turns that into ``None`` at once
(never used in arithmetic).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def all_finite(x):
    for i in range(x.shape[0]):
        if not math.isfinite(x[i]):
            return False
    return True


# --------------------------------------------------------------------------- filtering
@njit(cache=True, nogil=True)
def _sos_pass(ext, sos, zi, y, forward):
    """One pass of a cascade of biquads (transposed direct form II) over ext into y.

    The state starts at zi·(first sample) (steady state for a constant input,
    as scipy's sosfilt_zi), so a constant signal passes with no transient.
    """
    m = ext.shape[0]
    n_s = sos.shape[0]
    z = np.empty((n_s, 2))
    x0 = ext[0] if forward else ext[m - 1]
    # steady-state initial condition for the cascade: each section sees the DC
    # output of the previous one; zi was computed for the whole cascade by the caller.
    for s in range(n_s):
        z[s, 0] = zi[s, 0] * x0
        z[s, 1] = zi[s, 1] * x0
    for j in range(m):
        idx = j if forward else m - 1 - j
        x = ext[idx]
        for s in range(n_s):
            b0 = sos[s, 0]
            b1 = sos[s, 1]
            b2 = sos[s, 2]
            a1 = sos[s, 4]
            a2 = sos[s, 5]
            yy = b0 * x + z[s, 0]
            z[s, 0] = b1 * x - a1 * yy + z[s, 1]
            z[s, 1] = b2 * x - a2 * yy
            x = yy
        y[idx] = x


@njit(cache=True, nogil=True)
def filtfilt_rows(x, sos, zi, padlen, out):
    """Zero-phase forward-backward SOS filter of each row of x (m, n) into out.

    Edge padding: odd reflection about the end points by ``padlen`` samples
    (``2·x[0] − x[padlen..1]`` before, ``2·x[-1] − x[-2..-padlen-1]`` after), with
    steady-state initial conditions for each pass — the same convention as
    ``scipy.signal.sosfiltfilt(padtype="odd")``.  Requires n > padlen.
    """
    m = x.shape[0]
    n = x.shape[1]
    L = n + 2 * padlen
    ext = np.empty(L)
    y = np.empty(L)
    for r in range(m):
        a0 = x[r, 0]
        an = x[r, n - 1]
        for j in range(padlen):
            ext[j] = 2.0 * a0 - x[r, padlen - j]
            ext[padlen + n + j] = 2.0 * an - x[r, n - 2 - j]
        for j in range(n):
            ext[padlen + j] = x[r, j]
        _sos_pass(ext, sos, zi, y, True)
        _sos_pass(y, sos, zi, ext, False)
        for j in range(n):
            out[r, j] = ext[padlen + j]


# --------------------------------------------------------------------------- weighing
@njit(cache=True, nogil=True)
def min_sd_window(f, lo, hi, w):
    """Window [s, s+w) inside [lo, hi) with the smallest SD of f, by running sums.

    Returns (s, mean, sd); s = -1 when hi − lo < w.  Sums are taken about
    f[lo] to avoid cancellation.
    """
    if hi - lo < w or w < 1:
        return -1, np.nan, np.nan
    ref = f[lo]
    s1 = 0.0
    s2 = 0.0
    for i in range(lo, lo + w):
        d = f[i] - ref
        s1 += d
        s2 += d * d
    best = lo
    best_var = s2 / w - (s1 / w) ** 2
    for s in range(lo + 1, hi - w + 1):
        d_out = f[s - 1] - ref
        d_in = f[s + w - 1] - ref
        s1 += d_in - d_out
        s2 += d_in * d_in - d_out * d_out
        var = s2 / w - (s1 / w) ** 2
        if var < best_var:
            best_var = var
            best = s
    # exact two-pass statistics of the chosen window
    mean = 0.0
    for i in range(best, best + w):
        mean += f[i]
    mean /= w
    ss = 0.0
    for i in range(best, best + w):
        ss += (f[i] - mean) ** 2
    sd = math.sqrt(ss / (w - 1)) if w > 1 else 0.0
    return best, mean, sd


@njit(cache=True, nogil=True)
def band_runs(f, lo, hi, centre, half_width, min_len, out_starts, out_ends):
    """Runs of |f − centre| ≤ half_width of at least min_len samples inside [lo, hi).

    Writes [start, end) pairs; returns how many were written (capped at the buffers' size).
    """
    cap = out_starts.shape[0]
    count = 0
    start = -1
    for i in range(lo, hi):
        inside = abs(f[i] - centre) <= half_width
        if inside:
            if start < 0:
                start = i
        else:
            if start >= 0:
                if i - start >= min_len and count < cap:
                    out_starts[count] = start
                    out_ends[count] = i
                    count += 1
                start = -1
    if start >= 0 and hi - start >= min_len and count < cap:
        out_starts[count] = start
        out_ends[count] = hi
        count += 1
    return count


@njit(cache=True, nogil=True)
def first_outside(f, lo, hi, centre, half_width):
    """First i in [lo, hi) with |f[i] − centre| > half_width, or -1."""
    for i in range(lo, hi):
        if abs(f[i] - centre) > half_width:
            return i
    return -1


# --------------------------------------------------------------------------- contact
@njit(cache=True, nogil=True)
def contact_events(fz, thr, min_n, out_on, out_off):
    """Contacts of a plate: runs with fz ≥ thr of at least min_n samples.

    out_on[k] = first sample of the run, out_off[k] = first sample after it (n if
    the run lasts to the end).  Returns the number of events (capped).
    """
    cap = out_on.shape[0]
    n = fz.shape[0]
    count = 0
    start = -1
    for i in range(n):
        if fz[i] >= thr:
            if start < 0:
                start = i
        else:
            if start >= 0:
                if i - start >= min_n and count < cap:
                    out_on[count] = start
                    out_off[count] = i
                    count += 1
                start = -1
    if start >= 0 and n - start >= min_n and count < cap:
        out_on[count] = start
        out_off[count] = n
        count += 1
    return count


# --------------------------------------------------------------------------- kinematics
@njit(cache=True, nogil=True)
def integrate_velocity(f, i0, i1, bw, mass, dt, v):
    """v[i0] = 0, v[i] = v[i−1] + ½(a[i−1] + a[i])·dt with a = (f − bw)/mass, for i in (i0, i1)."""
    if i1 <= i0:
        return
    v[i0] = 0.0
    inv = dt * 0.5 / mass
    prev = f[i0] - bw
    acc = 0.0
    for i in range(i0 + 1, i1):
        cur = f[i] - bw
        acc += (prev + cur) * inv
        v[i] = acc
        prev = cur


@njit(cache=True, nogil=True)
def integrate_velocity_backward(f, i0, i1, bw, mass, dt, v):
    """v[i1−1] = 0 and trapezoid integration backwards in time down to i0."""
    if i1 <= i0:
        return
    v[i1 - 1] = 0.0
    inv = dt * 0.5 / mass
    prev = f[i1 - 1] - bw
    acc = 0.0
    for i in range(i1 - 2, i0 - 1, -1):
        cur = f[i] - bw
        acc -= (prev + cur) * inv
        v[i] = acc
        prev = cur


@njit(cache=True, nogil=True)
def filtfilt_rows_sum(x, sos, zi, padlen, out, total):
    """As ``filtfilt_rows`` for all rows at once (interleaved: the rows' recursions
    overlap in the pipeline), also writing the sum of the filtered rows to ``total``."""
    m = x.shape[0]
    n = x.shape[1]
    n_s = sos.shape[0]
    L = n + 2 * padlen
    ext = np.empty((L, m))
    z = np.empty((m, n_s, 2))
    for r in range(m):
        a0 = x[r, 0]
        an = x[r, n - 1]
        for j in range(padlen):
            ext[j, r] = 2.0 * a0 - x[r, padlen - j]
            ext[padlen + n + j, r] = 2.0 * an - x[r, n - 2 - j]
    for j in range(n):
        for r in range(m):
            ext[padlen + j, r] = x[r, j]
    # forward pass, in place
    for r in range(m):
        for s in range(n_s):
            z[r, s, 0] = zi[s, 0] * ext[0, r]
            z[r, s, 1] = zi[s, 1] * ext[0, r]
    for j in range(L):
        for r in range(m):
            xx = ext[j, r]
            for s in range(n_s):
                yy = sos[s, 0] * xx + z[r, s, 0]
                z[r, s, 0] = sos[s, 1] * xx - sos[s, 4] * yy + z[r, s, 1]
                z[r, s, 1] = sos[s, 2] * xx - sos[s, 5] * yy
                xx = yy
            ext[j, r] = xx
    # backward pass, in place
    for r in range(m):
        for s in range(n_s):
            z[r, s, 0] = zi[s, 0] * ext[L - 1, r]
            z[r, s, 1] = zi[s, 1] * ext[L - 1, r]
    for jj in range(L):
        j = L - 1 - jj
        for r in range(m):
            xx = ext[j, r]
            for s in range(n_s):
                yy = sos[s, 0] * xx + z[r, s, 0]
                z[r, s, 0] = sos[s, 1] * xx - sos[s, 4] * yy + z[r, s, 1]
                z[r, s, 1] = sos[s, 2] * xx - sos[s, 5] * yy
                xx = yy
            ext[j, r] = xx
    for j in range(n):
        acc = 0.0
        for r in range(m):
            y = ext[padlen + j, r]
            out[r, j] = y
            acc += y
        total[j] = acc
