"""numba kernels of the simulated step box (private: use sim_movements / sim_cells / sim_rig)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def integrate_com(z_init, v_init, mass_kg, g, dt_s,
                  pd_w, z_ref, v_ref, a_ref, kp, kd,
                  ext_n, tremor_n,
                  spr_z0, spr_k, spr_c,
                  stop_below_z,
                  out_z, out_v, out_pd, out_spr):
    """Semi-implicit Euler integration of m·z'' = F_pd + F_ext + ΣF_spring − m·g.

    F_pd = pd_w·(m(g + a_ref) + kp(z_ref − z) + kd(v_ref − v)) + tremor, clipped ≥ 0;
    spring s: max(0, k_s(z0_s − z) − c_s·v) while z < z0_s (unilateral contact);
    where no PD is active the tremor scales the spring forces.  Stops at the first
    step whose height is below ``stop_below_z``; returns that index (rows before it
    are complete; out_z/out_v at the returned index hold the state to continue from).
    """
    n = pd_w.shape[0]
    n_spr = spr_z0.shape[0]
    z = z_init
    v = v_init
    for i in range(n):
        out_z[i] = z
        out_v[i] = v
        if z < stop_below_z:
            return i
        f_pd = 0.0
        if pd_w[i] > 0.0:
            f_pd = pd_w[i] * (mass_kg * (g + a_ref[i]) + kp * (z_ref[i] - z) + kd * (v_ref[i] - v)) + tremor_n[i]
            if f_pd < 0.0:
                f_pd = 0.0
        f_spr_total = 0.0
        for s in range(n_spr):
            f = 0.0
            if z < spr_z0[s, i]:
                f = spr_k[s] * (spr_z0[s, i] - z) - spr_c[s] * v
                if f < 0.0:
                    f = 0.0
            out_spr[s, i] = f
            f_spr_total += f
        if pd_w[i] <= 0.0 and f_spr_total > 0.0:
            scale = (f_spr_total + tremor_n[i]) / f_spr_total
            if scale < 0.0:
                scale = 0.0
            for s in range(n_spr):
                out_spr[s, i] *= scale
            f_spr_total *= scale
        out_pd[i] = f_pd
        f_total = f_pd + ext_n[i] + f_spr_total
        v = v + (f_total / mass_kg - g) * dt_s
        z = z + v * dt_s
    return n


@njit(cache=True, nogil=True)
def plate_resonance(loads_n, a_mat, b_vec, group, state):
    """Second-order plate/cell resonance (unit DC gain) applied per channel, in place.

    ``a_mat[g]`` (2×2) and ``b_vec[g]`` (2,) are the exact discretisation (zero-order
    hold) of x'' + 2ζω x' + ω² x = ω² u for resonance group ``g``; ``group[c]`` is the
    group of channel c; ``state[c]`` = (x, x') carried across calls.
    """
    n, n_ch = loads_n.shape
    for i in range(n):
        for c in range(n_ch):
            gi = group[c]
            if gi < 0:
                continue
            u = loads_n[i, c]
            x0 = state[c, 0]
            x1 = state[c, 1]
            y0 = a_mat[gi, 0, 0] * x0 + a_mat[gi, 0, 1] * x1 + b_vec[gi, 0] * u
            y1 = a_mat[gi, 1, 0] * x0 + a_mat[gi, 1, 1] * x1 + b_vec[gi, 1] * u
            state[c, 0] = y0
            state[c, 1] = y1
            loads_n[i, c] = y0
    return loads_n


@njit(cache=True, nogil=True)
def counts_from_signal(signal_counts, full_scale):
    """Round to integers and clip at ±full_scale (24-bit converter); int32 out."""
    n, n_ch = signal_counts.shape
    out = np.empty((n, n_ch), dtype=np.int32)
    for i in range(n):
        for c in range(n_ch):
            x = signal_counts[i, c]
            if x != x:
                x = 0.0
            r = np.floor(x + 0.5)
            if r > full_scale:
                r = full_scale
            elif r < -full_scale:
                r = -full_scale
            out[i, c] = np.int32(r)
    return out
