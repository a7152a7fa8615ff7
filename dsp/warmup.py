"""Compile every dsp kernel at application start, and the synthetic step-down used to do so.

``warm_up()`` runs each protocol once on a tiny synthetic trial so that no clinician
waits on numba compilation (kernels are ``cache=True``: later starts load them).
"""

from __future__ import annotations

import math
import time

import numpy as np

from steplab.constants import G_M_S2
from steplab.dsp.params import PlateForces


def synthetic_step_down(rate_hz: float = 1000.0, mass_kg: float = 70.0, *, quiet_s: float = 2.0,
                        lower_s: float = 0.6, lower_acc_m_s2: float = 1.5, land_s: float = 0.3,
                        box_unload_s: float = 0.15, rebound_s: float = 0.4, end_quiet_s: float = 2.5,
                        cop_x0_mm: float = 5.0, cop_ramp_mm: float = 20.0, lead: str = "left",
                        noise_n: float = 0.0, seed: int = 0) -> dict[str, PlateForces]:
    """A step-down from a prescribed COM acceleration profile (noise-free unless noise_n > 0).

    Profile (τ from each phase start): quiet; lowering ``a = −A·sin(πτ/T)`` all on the
    box; at contact (``t_c = quiet_s + lower_s``) a landing pulse ``a = D·sin(πτ/Tl)`` with
    ``D = −v_c·π/(1.5·Tl)``; a rebound ``a = −E·sin(πτ/Te)`` bringing v back to 0; quiet on
    the lead floor plate.  Box force unloads as ``F·(1 + cos(πτ/Tb))/2`` over ``Tb`` after
    contact; the lead floor plate carries the rest.  Box COP x = x0 + ramp·(t − quiet_s)/T mm.
    """
    bw = mass_kg * G_M_S2
    n = int(round((quiet_s + lower_s + land_s + rebound_s + end_quiet_s) * rate_hz))
    t = np.arange(n) / rate_hz
    a = np.zeros(n)
    tau = t - quiet_s
    ph = (tau >= 0) & (tau < lower_s)
    a[ph] = -lower_acc_m_s2 * np.sin(np.pi * tau[ph] / lower_s)
    v_c = -2.0 * lower_acc_m_s2 * lower_s / np.pi
    d = -v_c * np.pi / (1.5 * land_s)
    tc = quiet_s + lower_s
    tau = t - tc
    ph = (tau >= 0) & (tau < land_s)
    a[ph] = d * np.sin(np.pi * tau[ph] / land_s)
    v_after = v_c + 2.0 * d * land_s / np.pi
    e = v_after * np.pi / (2.0 * rebound_s)
    tau = t - tc - land_s
    ph = (tau >= 0) & (tau < rebound_s)
    a[ph] = -e * np.sin(np.pi * tau[ph] / rebound_s)
    total = bw + mass_kg * a
    box = total.copy()
    tau = t - tc
    ph = (tau >= 0) & (tau < box_unload_s)
    box[ph] = total[ph] * 0.5 * (1.0 + np.cos(np.pi * tau[ph] / box_unload_s))
    box[tau >= box_unload_s] = 0.0
    floor = total - box
    if noise_n > 0:
        rng = np.random.default_rng(seed)
        box = box + rng.normal(0, noise_n / math.sqrt(2), n)
        floor = floor + rng.normal(0, noise_n / math.sqrt(2), n)
    cop_x = cop_x0_mm + cop_ramp_mm * (t - quiet_s) / lower_s
    my = -box * cop_x / 1000.0
    mx = np.zeros(n)
    zero = np.zeros(n)
    other = "floor_right" if lead == "left" else "floor_left"
    return {"box": PlateForces(box, mx, my), f"floor_{lead}": PlateForces(floor, zero.copy(), zero.copy()),
            other: PlateForces(zero.copy(), zero.copy(), zero.copy())}


def warm_up() -> float:
    """Compile (or load from cache) every dsp kernel; returns the seconds it took.

    The calibration kernels (counts → newtons) are ``steplab.calibration.warmup``'s;
    ``steplab.analysis_pipeline.warm_up`` warms both, as the commands need them.
    """
    from steplab.dsp.analysis import analyze_forces
    from steplab.dsp.filters import lowpass_zero_lag
    from steplab.dsp.kinematics import com_velocity

    t0 = time.perf_counter()
    plates = synthetic_step_down(rate_hz=500.0, quiet_s=1.5, end_quiet_s=1.2)
    analyze_forces(plates, 500.0, "step-down")
    from steplab.dsp.streaming import StreamingAnalyzer

    live = StreamingAnalyzer(500.0, tuple(plates), protocol="step-down")
    n = plates["box"].fz_n.shape[0]
    for i in range(0, n, 5):  # 10 ms blocks, as the live view pushes them
        live.push({r: pf.fz_n[i:i + 5] for r, pf in plates.items()})
    for proto in ("forward-step-down", "drop-landing", "squat", "balance"):
        analyze_forces(plates, 500.0, proto)
    f = plates["box"].fz_n
    com_velocity(f, 500.0, float(f[0]))
    com_velocity(f, 500.0, float(f[0]), backward=True)
    lowpass_zero_lag(f, 500.0, 10.0)
    return time.perf_counter() - t0
