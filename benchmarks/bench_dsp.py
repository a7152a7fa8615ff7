"""Throughput of the dsp core (``analyze_counts``, step-down) against the plain reference.

``measure_dsp`` synthesises step-down reps (forces → counts through the nominal
calibration's inverse), then times the full pipeline on 12-channel int32 counts at 1 kHz.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import time

import numpy as np


def _make_counts(seconds_of_data: float, rate_hz: float = 1000.0):
    from steplab.acquisition.rig import default_rig
    from steplab.dsp.calibration_arrays import nominal_calibration
    from steplab.dsp.params import PlateForces
    from steplab.dsp.warmup import forces_to_counts, synthetic_step_down

    rig = default_rig(sample_rate_hz=rate_hz)
    one = synthetic_step_down(rate_hz=rate_hz, noise_n=2.0)
    reps = max(1, int(round(seconds_of_data * rate_hz / len(one["box"].fz_n))))
    # one long recording of identical reps back to back (each begins and ends in quiet stance;
    # the step back up is instantaneous, which segmentation tolerates)
    plates = {r: PlateForces(np.tile(pf.fz_n, reps), np.tile(pf.mx_nm, reps), np.tile(pf.my_nm, reps))
              for r, pf in one.items()}
    return forces_to_counts(plates, rig), nominal_calibration(rig)


def _time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best




def measure_dsp(seconds_of_data: float = 60.0, repeats: int = 3) -> dict:
    """Frames per second of ``analyze_counts`` (step-down, 12 channels, 1 kHz) and of the reference.

    Returns
    -------
    dict with ``frames_per_s``, ``reference_frames_per_s`` (None if the reference is missing),
    ``speedup`` (None likewise), ``cold_start_s`` (first warm-up in a fresh process: import,
    compile or cache load), ``warm_start_s`` (a second warm-up in that process).
    """
    from steplab.dsp import analyze_counts

    counts, cal = _make_counts(seconds_of_data)
    n = counts.shape[0]
    analyze_counts(counts[:5000], 1000.0, cal, "step-down")  # compile
    t_core = _time(lambda: analyze_counts(counts, 1000.0, cal, "step-down"), repeats)
    ref_fps = None
    try:
        ref = importlib.import_module("steplab.benchmarks.reference_analysis")
        t_ref = _time(lambda: ref.analyze_counts(counts, 1000.0, cal, "step-down"), max(1, repeats // 2))
        ref_fps = n / t_ref
    except ModuleNotFoundError:
        ref_fps = None
    try:
        out = subprocess.run([sys.executable, "-c",
                              "import time;t=time.perf_counter();from steplab.dsp.warmup import warm_up;warm_up();"
                              "a=time.perf_counter()-t;t=time.perf_counter();warm_up();print(a, time.perf_counter()-t)"],
                             capture_output=True, text=True, timeout=300)
        cold, warm = (float(x) for x in out.stdout.split())
    except (subprocess.SubprocessError, ValueError):
        cold = warm = None
    fps = n / t_core
    return {
        "frames_per_s": fps,
        "reference_frames_per_s": ref_fps,
        "speedup": (fps / ref_fps) if ref_fps else None,
        "cold_start_s": cold,
        "warm_start_s": warm,
        "frames": n,
    }


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(measure_dsp(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0), indent=2))
