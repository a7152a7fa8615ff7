"""Private numba kernels of counts → newtons (no validation here: ``calibration.apply`` does it).

Every kernel is ``cache=True`` (compiled once, loaded by later starts; see
``calibration.warmup``) and ``nogil=True`` (the live path calls them from its
consumer thread).  Index conventions as the calibration arrays: slot ``k`` of plate
``p`` reads wire channel ``channel_index[p, k]``; ``-1`` marks an unused slot.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def calibrate_counts(counts, channel_index, offsets, linear, quadratic, in_total, out, total):
    """counts (n, C) int → out (P, 3, n) = (Fz [N], Mx, My [N·m]); total (n,) = Σ Fz of in_total plates.

    One fused pass over the counts (row-major: each frame read once).
    """
    n = counts.shape[0]
    n_p = channel_index.shape[0]
    n_k = channel_index.shape[1]
    for i in range(n):
        tot = 0.0
        for p in range(n_p):
            fz = 0.0
            mx = 0.0
            my = 0.0
            for k in range(n_k):
                ch = channel_index[p, k]
                if ch >= 0:
                    c = counts[i, ch] - offsets[p, k]
                    c2 = c * c
                    fz += linear[p, 0, k] * c + quadratic[p, 0, k] * c2
                    mx += linear[p, 1, k] * c + quadratic[p, 1, k] * c2
                    my += linear[p, 2, k] * c + quadratic[p, 2, k] * c2
            out[p, 0, i] = fz
            out[p, 1, i] = mx
            out[p, 2, i] = my
            if in_total[p]:
                tot += fz
        total[i] = tot


@njit(cache=True, nogil=True)
def calibrate_fz(counts, channel_index, offsets, gain, quad, use_quad, in_total, fz_out, total):
    """counts (n, C) int → fz_out (P, n) plate Fz [N] and total (n,) = Σ Fz of in_total plates.

    Only the Fz row of the calibration is applied (gain, quad: (P, K) N/count, N/count²;
    unused slots have channel −1).  Plate-major: each plate's Fz is one pass over the
    frames (the 4-cell plate unrolled); the linear part uses Σ g·(c − o) = Σ g·c − Σ g·o.
    Moments are computed later, only inside the windows that need them (``calibrate_moments``).
    """
    n = counts.shape[0]
    n_p = channel_index.shape[0]
    n_k = channel_index.shape[1]
    for p in range(n_p):
        o = fz_out[p]
        const = 0.0
        ch = np.zeros(n_k, dtype=np.int64)
        g = np.zeros(n_k)
        for k in range(n_k):
            if channel_index[p, k] >= 0:
                ch[k] = channel_index[p, k]
                g[k] = gain[p, k]
                const += gain[p, k] * offsets[p, k]
        if use_quad and n_k == 4:
            c0, c1, c2, c3 = ch[0], ch[1], ch[2], ch[3]
            g0, g1, g2, g3 = g[0], g[1], g[2], g[3]
            q0, q1, q2, q3 = quad[p, 0], quad[p, 1], quad[p, 2], quad[p, 3]
            o0, o1, o2, o3 = offsets[p, 0], offsets[p, 1], offsets[p, 2], offsets[p, 3]
            if channel_index[p, 0] < 0:
                q0 = 0.0
            if channel_index[p, 1] < 0:
                q1 = 0.0
            if channel_index[p, 2] < 0:
                q2 = 0.0
            if channel_index[p, 3] < 0:
                q3 = 0.0
            for i in range(n):
                d0 = counts[i, c0] - o0
                d1 = counts[i, c1] - o1
                d2 = counts[i, c2] - o2
                d3 = counts[i, c3] - o3
                o[i] = (g0 + q0 * d0) * d0 + (g1 + q1 * d1) * d1 + (g2 + q2 * d2) * d2 + (g3 + q3 * d3) * d3
        elif use_quad:
            for i in range(n):
                a = 0.0
                for k in range(n_k):
                    if channel_index[p, k] >= 0:
                        c = counts[i, ch[k]] - offsets[p, k]
                        a += (g[k] + quad[p, k] * c) * c
                o[i] = a
        elif n_k == 4:
            c0, c1, c2, c3 = ch[0], ch[1], ch[2], ch[3]
            g0, g1, g2, g3 = g[0], g[1], g[2], g[3]
            for i in range(n):
                o[i] = g0 * counts[i, c0] + g1 * counts[i, c1] + g2 * counts[i, c2] + g3 * counts[i, c3] - const
        else:
            for i in range(n):
                a = -const
                for k in range(n_k):
                    a += g[k] * counts[i, ch[k]]
                o[i] = a
    for i in range(n):
        t = 0.0
        for p in range(n_p):
            if in_total[p]:
                t += fz_out[p, i]
        total[i] = t


@njit(cache=True, nogil=True)
def calibrate_moments(counts, lo, hi, channel_row, offsets_row, linear_p, quadratic_p, mx_out, my_out):
    """Mx, My [N·m] of one plate for frames [lo, hi) into mx_out, my_out (length hi − lo)."""
    n_k = channel_row.shape[0]
    for i in range(lo, hi):
        mx = 0.0
        my = 0.0
        for k in range(n_k):
            ch = channel_row[k]
            if ch >= 0:
                c = counts[i, ch] - offsets_row[k]
                c2 = c * c
                mx += linear_p[1, k] * c + quadratic_p[1, k] * c2
                my += linear_p[2, k] * c + quadratic_p[2, k] * c2
        mx_out[i - lo] = mx
        my_out[i - lo] = my


@njit(cache=True, nogil=True)
def count_saturated_rows(counts, channels, lo, hi):
    """Rows in which any of ``channels`` sits at or beyond the converter's limits [lo, hi] (counts)."""
    n = counts.shape[0]
    m = channels.shape[0]
    k = 0
    for i in range(n):
        for j in range(m):
            v = counts[i, channels[j]]
            if v <= lo or v >= hi:
                k += 1
                break
    return k
