"""Numba kernels of the streaming analyser (private; see ``dsp/streaming.py``).

All state lives in caller-owned arrays so a block can be processed without
allocation: the SOS filter keeps ``zi`` per plate and section; the rep detector
keeps its scalars in a float64 and an int64 state vector (indices below).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# -- detector state: int64 vector -------------------------------------------------------
I_PHASE = 0          # 0 idle (waiting for a quiet or unloaded stance), 1 armed (stance held), 2 moving
I_RUN_KIND = 1       # 0 none, 1 quiet at body weight, 2 unloaded
I_RUN_START = 2      # first sample of the current run (-1 none)
I_SEG_START = 3      # start of the stance run that precedes the current movement
I_DETECT = 4         # sample where the movement was detected (-1 none)
I_LAST_SLOW = 5      # last sample with |v| <= onset speed (live onset)
I_CONTACT = 6        # live contact sample (-1 none)
I_CONTACT_PLATE = 7  # index of the floor plate in contact (-1 none)
I_ARREST = 8         # live arrest sample (-1 none)
I_END_RUN_START = 9  # start of the end-of-rep stable run (-1 none)
I_CONTACT_RUN0 = 10  # run start of floor plate 0 above contact threshold (-1 none)
I_CONTACT_RUN1 = 11  # same for floor plate 1
N_I = 12

# -- detector state: float64 vector -----------------------------------------------------
F_BW = 0             # body weight, N
F_MASS = 1           # kg
F_THR = 2            # quiet band half width, N (onset threshold)
F_STAB = 3           # stabilisation band half width, N
F_UNLOADED = 4       # below this the plates are unloaded, N
F_V = 5              # live COM velocity, m/s
F_PREV = 6           # previous total force, N
F_ONSET_SPEED = 7    # m/s
F_CONTACT_N = 8      # contact threshold, N
N_F = 9

# -- events written by the detector: (kind, sample, a, b) --------------------------------
EV_MOVEMENT = 1      # a = live onset sample (last |v| <= onset speed)
EV_CONTACT = 2       # a = floor plate index (0 = first floor column)
EV_ARREST = 3
EV_REP_END = 4       # a = segment start, sample = end (exclusive)
EV_ABANDON = 5       # movement ended off the plates: a = new segment start


@njit(cache=True, nogil=True)
def sos_block(x, sos, zi, y):
    """Causal SOS filter of each row of ``x`` (P, n) into ``y``, carrying ``zi`` (P, S, 2).

    Transposed direct form II, as ``scipy.signal.sosfilt``; ``zi`` is updated in place.
    """
    p_n = x.shape[0]
    n = x.shape[1]
    s_n = sos.shape[0]
    for p in range(p_n):
        for i in range(n):
            v = x[p, i]
            for s in range(s_n):
                b0 = sos[s, 0]
                b1 = sos[s, 1]
                b2 = sos[s, 2]
                a1 = sos[s, 4]
                a2 = sos[s, 5]
                out = b0 * v + zi[p, s, 0]
                zi[p, s, 0] = b1 * v - a1 * out + zi[p, s, 1]
                zi[p, s, 1] = b2 * v - a2 * out
                v = out
            y[p, i] = v


@njit(cache=True, nogil=True)
def detect_block(total, floor, lo, hi, dt, min_stance_n, end_hold_n, contact_min_n, st_i, st_f, events):
    """Advance the rep detector over samples [lo, hi) of the buffered signals.

    Parameters
    ----------
    total : (N,) total vertical force, N (unfiltered).
    floor : (2, N) Fz of the floor plates (rows with no plate hold zeros), N.
    lo, hi : sample range to process (buffer indices).
    dt : sample period, s.
    min_stance_n : samples a stance (quiet or unloaded) must last to arm a rep.
    end_hold_n : samples of stable stance that end a rep.
    contact_min_n : samples a floor plate must stay above the contact threshold.
    st_i, st_f : detector state (int64 / float64 vectors, see the I_* / F_* indices).
    events : (E, 4) int64 output rows (kind, sample, a, b).

    Returns
    -------
    int : number of events written (capped at E).
    """
    cap = events.shape[0]
    ne = 0
    bw = st_f[F_BW]
    inv_m = 0.5 * dt / st_f[F_MASS]
    thr = st_f[F_THR]
    stab = min(thr, st_f[F_STAB])
    unl = st_f[F_UNLOADED]
    for i in range(lo, hi):
        f = total[i]
        # live COM velocity (trapezoid), held at 0 while standing still before a rep
        quiet = abs(f - bw) <= thr
        unloaded = f < unl
        kind = 1 if quiet else (2 if unloaded else 0)
        if kind != st_i[I_RUN_KIND]:
            st_i[I_RUN_KIND] = kind
            st_i[I_RUN_START] = i if kind != 0 else -1
        # live COM velocity (trapezoid); v = 0 where each stance run before a rep starts
        if st_i[I_PHASE] == 0 or (st_i[I_PHASE] == 1 and kind != 0 and st_i[I_RUN_START] == i):
            st_f[F_V] = 0.0
        else:
            st_f[F_V] += ((st_f[F_PREV] - bw) + (f - bw)) * inv_m
        st_f[F_PREV] = f
        v = st_f[F_V]
        if abs(v) <= st_f[F_ONSET_SPEED]:
            st_i[I_LAST_SLOW] = i
        run_len = i - st_i[I_RUN_START] + 1 if kind != 0 else 0
        phase = st_i[I_PHASE]
        if phase == 0:
            if kind != 0 and run_len >= min_stance_n:
                st_i[I_PHASE] = 1
                st_i[I_SEG_START] = st_i[I_RUN_START]
        elif phase == 1:
            if kind == 0:
                st_i[I_PHASE] = 2
                st_i[I_DETECT] = i
                st_i[I_CONTACT] = -1
                st_i[I_CONTACT_PLATE] = -1
                st_i[I_ARREST] = -1
                st_i[I_END_RUN_START] = -1
                # a plate already loaded when the movement starts must unload before it can make contact
                st_i[I_CONTACT_RUN0] = -2 if floor[0, i] >= st_f[F_CONTACT_N] else -1
                st_i[I_CONTACT_RUN1] = -2 if floor[1, i] >= st_f[F_CONTACT_N] else -1
                if ne < cap:
                    events[ne, 0] = EV_MOVEMENT
                    events[ne, 1] = i
                    events[ne, 2] = st_i[I_LAST_SLOW]
                    events[ne, 3] = 0
                    ne += 1
        else:
            # live contact: the first floor plate that stays loaded contact_min_n samples
            if st_i[I_CONTACT] < 0:
                for p in range(2):
                    k = I_CONTACT_RUN0 + p
                    if floor[p, i] >= st_f[F_CONTACT_N]:
                        if st_i[k] == -2:
                            continue
                        if st_i[k] < 0:
                            st_i[k] = i
                        if i - st_i[k] + 1 >= contact_min_n and st_i[I_CONTACT] < 0:
                            st_i[I_CONTACT] = st_i[k]
                            st_i[I_CONTACT_PLATE] = p
                            if ne < cap:
                                events[ne, 0] = EV_CONTACT
                                events[ne, 1] = st_i[k]
                                events[ne, 2] = p
                                events[ne, 3] = 0
                                ne += 1
                    else:
                        st_i[k] = -1
            elif st_i[I_ARREST] < 0 and v >= 0.0:
                st_i[I_ARREST] = i
                if ne < cap:
                    events[ne, 0] = EV_ARREST
                    events[ne, 1] = i
                    events[ne, 2] = 0
                    events[ne, 3] = 0
                    ne += 1
            # end of the rep: a stable stance at body weight held end_hold_n samples
            if abs(f - bw) <= stab:
                if st_i[I_END_RUN_START] < 0:
                    st_i[I_END_RUN_START] = i
                if i - st_i[I_END_RUN_START] + 1 >= end_hold_n:
                    if ne < cap:
                        events[ne, 0] = EV_REP_END
                        events[ne, 1] = i + 1
                        events[ne, 2] = st_i[I_SEG_START]
                        events[ne, 3] = st_i[I_END_RUN_START]
                        ne += 1
                    st_i[I_PHASE] = 1
                    st_i[I_SEG_START] = st_i[I_END_RUN_START]
                    st_i[I_RUN_KIND] = 1
                    st_i[I_RUN_START] = st_i[I_END_RUN_START]
                    st_f[F_V] = 0.0
            else:
                st_i[I_END_RUN_START] = -1
            if kind == 2 and run_len >= min_stance_n and st_i[I_PHASE] == 2:
                # the movement ended off the plates (e.g. walking back to the box): no rep
                if ne < cap:
                    events[ne, 0] = EV_ABANDON
                    events[ne, 1] = i + 1
                    events[ne, 2] = st_i[I_RUN_START]
                    events[ne, 3] = 0
                    ne += 1
                st_i[I_PHASE] = 1
                st_i[I_SEG_START] = st_i[I_RUN_START]
                st_f[F_V] = 0.0
    return ne


def new_state() -> tuple[np.ndarray, np.ndarray]:
    st_i = np.full(N_I, -1, dtype=np.int64)
    st_i[I_PHASE] = 0
    st_i[I_RUN_KIND] = 0
    st_f = np.zeros(N_F, dtype=np.float64)
    return st_i, st_f
