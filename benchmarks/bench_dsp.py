"""Throughput of the analysis core (``analysis_pipeline.analyze_counts``, step-down) against the plain reference.

``measure_dsp`` records a multi-rep step-down trial on the physics simulator
(``simulate_trial``, ≥ 60 s of 12-channel int32 counts at 1 kHz, hidden cell offsets,
gains and cross-talk included), calibrates the simulated rig the way a clinic does
(the unattended calibration procedure, then a tare of the empty rig at the start of
the session), and times the full pipeline, counts → metrics, of the core and of the
reference on the same data in the same process.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import time

import numpy as np

MIN_SECONDS = 60.0
RATE_HZ = 1000.0


def tared_calibration(rig, seed: int, record_calibration=None, tare_s: float = 2.0):
    """A proper calibration of the simulated rig for a trial simulated with ``seed``.

    Gains (and quadratic terms) come from the unattended calibration procedure
    (``run_auto_calibration``) unless ``record_calibration`` (a ``CalibrationArrays``)
    is given; offsets are the tare: the mean counts of a ``tare_s`` recording of the
    empty rig at the start of a session with the same seed (the cells' warm-up drift
    is then that of the trial's start).

    Parameters
    ----------
    rig : steplab.acquisition.rig.Rig
    seed : int
        The seed of the trial to be analysed.
    record_calibration : CalibrationArrays or None
    tare_s : float
        Tare duration, s (≥ 2 s, as the calibration procedure's tare).

    Returns
    -------
    CalibrationArrays
    """
    from steplab.acquisition.sim_rig import simulate_trial
    from steplab.calibration.arrays import CalibrationArrays

    if not tare_s >= 2.0:
        raise ValueError(f"tare must last at least 2 s, got {tare_s!r}")
    if record_calibration is None:
        from steplab.calibration.robot import run_auto_calibration

        record_calibration = run_auto_calibration(rig=rig, seed=seed).record.to_arrays()
    cal = record_calibration
    empty, _ = simulate_trial(rig, None, "empty", tare_s, RATE_HZ, seed=seed)
    offsets = empty.mean(axis=0)[np.maximum(cal.channel_index, 0)]
    offsets = np.where(cal.channel_index >= 0, offsets, 0.0)
    return CalibrationArrays(cal.plate_roles, cal.channel_index, offsets, cal.linear, cal.quadratic,
                             calibration_id=f"{cal.calibration_id}+tare")


def simulated_step_down(seconds_of_data: float = MIN_SECONDS, seed: int = 3):
    """(counts, calibration, truth) of a simulated multi-rep step-down trial (≥ 60 s, 1 kHz)."""
    from steplab.acquisition.rig import default_rig
    from steplab.acquisition.sim_rig import simulate_trial

    rig = default_rig(sample_rate_hz=RATE_HZ)
    seconds = max(MIN_SECONDS, float(seconds_of_data))
    counts, truth = simulate_trial(rig, None, "step-down", seconds, RATE_HZ, seed=seed)
    return counts, tared_calibration(rig, seed), truth


def _times(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def measure_dsp(seconds_of_data: float = MIN_SECONDS, repeats: int = 3) -> dict:
    """Frames per second of ``analyze_counts`` (step-down, 12 channels, 1 kHz) and of the reference.

    Parameters
    ----------
    seconds_of_data : float
        Length of the simulated recording, s (at least 60 s are always used).
    repeats : int
        Timed runs of each implementation, interleaved core/reference; the best run counts.

    Returns
    -------
    dict with ``frames_per_s``, ``reference_frames_per_s`` (None if the reference is missing),
    ``speedup`` (None likewise), ``speedups`` (per interleaved round), ``reps`` (reps the core
    found), ``frames``, ``cold_start_s`` (first warm-up in a fresh process: import, compile or
    cache load), ``warm_start_s`` (a second warm-up in that process).
    """
    from steplab.analysis_pipeline import analyze_counts

    counts, cal, _ = simulated_step_down(seconds_of_data)
    n = counts.shape[0]
    res = analyze_counts(counts, RATE_HZ, cal, "step-down")  # compile / load the cache
    try:
        ref = importlib.import_module("steplab.benchmarks.reference_analysis")
    except ModuleNotFoundError:
        ref = None
    t_core, t_ref, rounds = [], [], []
    for _ in range(max(1, repeats)):
        tc = min(_times(lambda: analyze_counts(counts, RATE_HZ, cal, "step-down"), 3))
        t_core.append(tc)
        if ref is not None:
            tr = min(_times(lambda: ref.analyze_counts(counts, RATE_HZ, cal, "step-down"), 1))
            t_ref.append(tr)
            rounds.append(tr / tc)
    fps = n / min(t_core)
    ref_fps = n / min(t_ref) if t_ref else None
    cold: float | None
    warm: float | None
    try:
        out = subprocess.run([sys.executable, "-c",
                              "import time;t=time.perf_counter();from steplab.analysis_pipeline import warm_up;warm_up();"
                              "a=time.perf_counter()-t;t=time.perf_counter();warm_up();print(a, time.perf_counter()-t)"],
                             capture_output=True, text=True, timeout=300)
        cold, warm = (float(x) for x in out.stdout.split())
    except (subprocess.SubprocessError, ValueError):
        cold = warm = None
    return {
        "frames_per_s": fps,
        "reference_frames_per_s": ref_fps,
        "speedup": (fps / ref_fps) if ref_fps else None,
        "speedups": rounds,
        "reps": len(res.reps),
        "cold_start_s": cold,
        "warm_start_s": warm,
        "frames": n,
    }


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(measure_dsp(float(sys.argv[1]) if len(sys.argv) > 1 else MIN_SECONDS), indent=2))
