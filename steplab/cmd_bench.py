"""`steplab bench`: speed measured as ratios within one run (noisy machines)."""

from __future__ import annotations

import argparse
import json

from steplab.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure the analysis core, the decoder and the live path",
                       description="Benchmarks: the numba analysis core against the plain NumPy/SciPy reference "
                       "on the same data in the same run, the frame decoder's throughput with CRC checks, the "
                       "streaming path's block latency, the records database (a clinic's year in SQLite and PostgreSQL; a small "
                       "clinic with --quick) and (without --quick) a 16-channel 4 kHz recording; with --browser "
                       "also the dashboard in headless Chromium.")
    p.add_argument("--quick", action="store_true", help="finish in under 30 s")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--recording-seconds", type=float, default=60.0, metavar="S",
                   help="length of the 16 ch x 4 kHz recording benchmark (default 60; skipped with --quick)")
    p.add_argument("--browser", action="store_true",
                   help="also measure the dashboard in headless Chromium (needs chromium and chromium-driver; "
                   "a few minutes; not with --quick): live frames per second and arrival-to-screen delay, "
                   "patient list and progress page loads in the clinic's year")
    p.set_defaults(func=run)


def collect(quick: bool, recording_seconds: float = 60.0, browser: bool = False) -> dict:
    from steplab.benchmarks.bench_decoder import measure_decoder
    from steplab.benchmarks.bench_dsp import measure_dsp

    result: dict = {"quick": quick}
    result["dsp"] = measure_dsp(seconds_of_data=60.0 if quick else 300.0, repeats=3 if quick else 5)
    result["decoder"] = measure_decoder(seconds=1.0 if quick else 3.0)
    from steplab.benchmarks.bench_sim import measure_encoder, measure_simulator

    result["simulator"] = measure_simulator(seconds=2.0 if quick else 10.0)
    result["encoder"] = measure_encoder()
    from steplab.dsp.streaming import measure_streaming

    result["streaming"] = measure_streaming()
    from steplab.benchmarks.bench_records import measure_records

    result["records"] = measure_records(quick)
    if not quick and recording_seconds > 0:
        from steplab.benchmarks.bench_recording import measure_recording

        result["recording"] = measure_recording(seconds=recording_seconds)
    if browser:
        from steplab.benchmarks.bench_browser import BrowserBenchError, measure_browser

        try:
            result["browser"] = measure_browser(stand_in=True)
        except BrowserBenchError as exc:
            result["browser"] = {"error": str(exc)}
    return result


def run(args: argparse.Namespace) -> int:
    if args.recording_seconds < 0:
        raise UserError("--recording-seconds must not be negative")
    if args.browser and args.quick:
        raise UserError("--browser takes minutes: run it without --quick")
    result = collect(args.quick, args.recording_seconds, args.browser)
    if args.json:
        print(json.dumps(result))
    else:
        d, dec = result["dsp"], result["decoder"]
        print(f"dsp: {d['frames_per_s'] / 1e6:.1f} M frames/s, reference {(d.get('reference_frames_per_s') or 0) / 1e6:.2f} M frames/s, "
              f"speedup {d.get('speedup')}")
        print(f"decoder: {dec['bytes_per_s'] / 1e6:.1f} MB/s ({dec['bytes_per_s'] / 1e6:.0f}x a 1 MB/s USB full-speed link)")
        if "simulator" in result:
            s, e = result["simulator"], result["encoder"]
            print(f"simulator: 16 ch x 4 kHz at {s['x_real_time']:.0f}x real time; encoder: "
                  f"{e['share_of_one_core_at_link_rate'] * 100:.1f} % of one core at 16 ch x 4 kHz")
        if "streaming" in result:
            s = result["streaming"]
            print(f"streaming: 10 ms block p50 {s.get('p50_ms')} ms, p99 {s.get('p99_ms')} ms")
        for backend in ("sqlite", "postgresql"):
            r = result.get("records", {}).get(backend) or {}
            if "error" in r:
                print(f"records {backend}: {r['error']}")
            elif r:
                print(f"records {backend} ({r['size']['trials']} trials): patient list {r['patient_list_ms']} ms, "
                      f"progress {r['patient_progress_ms']} ms, visit summary {r['visit_summary_ms']} ms, "
                      f"save a 20 s trial {r['save_trial_ms']} ms (+ analysis {r['analyse_and_save_trial_ms']} ms)")
        if "recording" in result:
            r = result["recording"]
            print(f"recording 16 ch x 4 kHz for {r['seconds']:g} s: {r['samples']} samples, {r['lost_samples']} lost, "
                  f"recorder CPU {r['recorder_cpu_pct_of_one_core']} % of one core")
        if "browser" in result:
            from steplab.benchmarks.bench_browser import summary_lines

            b = result["browser"]
            for line in [f"browser: {b['error']}"] if "error" in b else summary_lines(b):
                print(f"browser {line}")
    return 0
