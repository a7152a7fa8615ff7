"""Recording benchmark: `steplab simulate --pty` and `steplab record` as separate processes.

Reports whether every sample arrived and the recorder process's CPU use
(user + system CPU seconds per wall-clock second, one core = 100 %).
Runnable as ``python -m steplab.benchmarks.bench_recording [--seconds 60]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def measure_recording(seconds: float = 60.0, rate_hz: float = 4000.0, rig: str = "split-box") -> dict:
    """Record ``seconds`` of the 16-channel rig at ``rate_hz`` through a pty; returns figures."""
    with tempfile.TemporaryDirectory() as tmp:
        sim_args = [sys.executable, "-m", "steplab.cli", "simulate", "--pty", "--rate", str(rate_hz),
                    "--seconds", str(seconds + 30), "--scenario", "session"]
        if rig:
            sim_args += ["--rig", rig]
        sim = subprocess.Popen(sim_args, stdout=subprocess.PIPE, text=True)
        try:
            assert sim.stdout is not None
            port = sim.stdout.readline().split(":", 1)[1].strip()
            out = Path(tmp) / "bench.npz"
            t0 = time.monotonic()
            rec = subprocess.Popen([sys.executable, "-m", "steplab.cli", "record", "--device", port,
                                    "--seconds", str(seconds), "--out", str(out), "--json"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            ps = psutil.Process(rec.pid)
            cpu = ps.cpu_times()
            sim_ps = psutil.Process(sim.pid)
            while rec.poll() is None:
                try:
                    cpu = ps.cpu_times()
                except psutil.NoSuchProcess:
                    break
                time.sleep(0.2)
            stdout, stderr = rec.communicate()
            wall = time.monotonic() - t0
            sim_cpu = sim_ps.cpu_times()
            if rec.returncode != 0:
                raise RuntimeError(f"record failed: {stderr.strip()}")
            summary = json.loads(stdout)
        finally:
            sim.terminate()
            sim.wait(10)
    cpu_s = cpu.user + cpu.system
    return {
        "seconds": seconds, "rate_hz": rate_hz, "channels": summary["channels"],
        "samples": summary["samples"], "lost_samples": summary["lost_samples"], "crc_errors": summary["crc_errors"],
        "complete": summary["samples"] == int(round(seconds * rate_hz)) and summary["lost_samples"] == 0,
        "recorder_cpu_s": round(cpu_s, 3), "recorder_wall_s": round(wall, 3),
        "recorder_cpu_pct_of_one_core": round(100.0 * cpu_s / wall, 1),
        "simulator_cpu_s": round(sim_cpu.user + sim_cpu.system, 3),
        "payload_bytes_per_s": summary["channels"] * 3 * rate_hz,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=4000.0)
    args = ap.parse_args(argv)
    print(json.dumps(measure_recording(args.seconds, args.rate), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
