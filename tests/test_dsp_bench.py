"""The dsp benchmark runs and reports what the `steplab bench` command prints."""

from steplab.benchmarks.bench_dsp import measure_dsp


def test_measure_dsp_reports_throughput_and_start_times():
    r = measure_dsp(seconds_of_data=12.0, repeats=1)
    assert set(r) >= {"frames_per_s", "reference_frames_per_s", "speedup", "cold_start_s", "warm_start_s"}
    assert r["frames_per_s"] > 1e5
    assert r["cold_start_s"] is None or r["cold_start_s"] > 0
    if r["reference_frames_per_s"] is not None:
        assert r["speedup"] == r["frames_per_s"] / r["reference_frames_per_s"]
