"""The browser benchmark's harness (benchmarks/bench_browser.py) in a tiny mode, in a real headless Chromium.

No speed is asserted here (that is the benchmark's job): the tests check that the
harness measures what it says (a known extra delay is seen, frames are counted
once each, the numbers agree with each other), that its report has its shape
with finite numbers, and that it leaves no process behind.
"""

from __future__ import annotations

import json
import math
import queue
import subprocess
import sys
import threading
import time

import psutil
import pytest
from helpers import REPO, one_line_error, run_steplab, wait_for

from steplab.benchmarks import bench_browser as bb

pytestmark = pytest.mark.browser


@pytest.fixture
def driver():
    d = bb.chrome_driver()
    yield d
    d.quit()


def check_quantiles(q: dict, n: int) -> None:
    assert q["n"] == n
    values = [q[k] for k in ("min", "p50", "p95", "max")]
    assert all(isinstance(v, float) and math.isfinite(v) for v in values), q
    assert values == sorted(values), q


def check_live(r: dict, *, interval_ms: float | None = None, every_arrival: bool = True) -> None:
    """A measured live report: its numbers finite and consistent with each other."""
    assert r["status"] == "measured", r
    assert r["window_s"] > 0 and r["frames"] > 0
    assert r["fps"] == pytest.approx(r["frames"] / r["window_s"], rel=0.01)
    # every stamp written while observing is counted once; the last one or two may still await their paint
    assert 0 <= r["stamped_frames"] - r["frames"] <= 2, r
    if every_arrival:
        assert r["frames_without_arrival"] == 0
    n = r["frames"] - r["frames_without_arrival"]
    check_quantiles(r["delay_ms"], n)
    check_quantiles(r["delay_dom_ms"], n)
    for k in ("min", "p50", "p95", "max"):  # each frame is painted after its stamp is written
        assert r["delay_dom_ms"][k] <= r["delay_ms"][k] + 1e-9, (k, r)
    assert abs(r["clock"]["offset_ms"]) <= r["clock"]["uncertainty_ms"] + 20.0, r["clock"]  # one machine, one clock
    if interval_ms is not None:  # a page that redraws every interval_ms cannot show more frames than that
        assert r["frames"] <= r["window_s"] * 1000.0 / interval_ms + 2, r
    assert r["goal_met"] == (r["fps"] >= bb.LIVE_FPS_GOAL and r["delay_ms"]["p95"] <= bb.LIVE_DELAY_P95_GOAL_MS)


def test_a_known_extra_delay_on_the_stand_in_page_is_measured(driver):
    extra_ms = 80.0
    r = bb.measure_stand_in(driver, 2.0, interval_ms=30.0, extra_delay_ms=extra_ms)
    check_live(r, interval_ms=30.0)
    assert r["source"] == "stand-in" and r["extra_delay_ms"] == extra_ms
    # the stamped arrival is at least extra_ms older than its fetch, which comes before its stamp and paint
    slack = abs(r["clock"]["offset_ms"]) + r["clock"]["uncertainty_ms"] + 1.0
    assert r["delay_dom_ms"]["min"] >= extra_ms - slack, r
    # and the same page without the extra delay is seen that much sooner (medians of ~60 frames each)
    r0 = bb.measure_stand_in(driver, 2.0, interval_ms=30.0, extra_delay_ms=0.0)
    check_live(r0, interval_ms=30.0)
    assert r["delay_dom_ms"]["p50"] - r0["delay_dom_ms"]["p50"] > extra_ms / 2, (r0, r)


def test_frames_stamped_without_an_arrival_time_are_counted_apart(driver):
    r = bb.measure_stand_in(driver, 2.0, interval_ms=30.0, blank_every_n=3)
    check_live(r, interval_ms=30.0, every_arrival=False)
    assert r["frames_without_arrival"] == pytest.approx(r["frames"] / 3, abs=2), r
    assert r["delay_ms"]["n"] == r["frames"] - r["frames_without_arrival"]


def test_a_page_without_the_stamp_is_reported_not_guessed(driver):
    with bb.stand_in_live() as url:
        driver.get(url)
        driver.execute_script("document.getElementById('live-frame-stamp').remove();")
        with pytest.raises(bb.BrowserBenchError, match="never"):
            bb._wait(driver, "return !!document.getElementById('live-frame-stamp');", 0.5, "the stamp never came")
        r = bb.measure_live_frames(driver, 0.5)
    assert r["status"] == "no-frames" and r["frames"] == 0 and r["goal_met"] is False


def finite_numbers(obj, path="") -> list[str]:
    """Paths of every number in ``obj`` that is not finite (empty: all finite)."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in finite_numbers(v, f"{path}.{k}")]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in finite_numbers(v, f"{path}[{i}]")]
    if isinstance(obj, float) and not math.isfinite(obj):
        return [path]
    return []


def test_the_tiny_benchmark_reports_every_figure_and_leaves_nothing_running(tmp_path):
    proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "bench_browser.py"), "--tiny", "--stand-in",
                             "--json", "--live-seconds", "2", "--repeats", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        stdout, stderr = proc.communicate(timeout=480)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the benchmark unwinds on SIGTERM: its app and browser are stopped
        stdout, stderr = proc.communicate(timeout=60)
        pytest.fail(f"the tiny benchmark took over 480 s: {stderr[-2000:]}")
    assert proc.returncode == 0, stderr
    r = json.loads(stdout)
    assert finite_numbers(r) == []
    m = r["machine"]
    assert isinstance(m["cpu_count"], int) and m["cpu_count"] >= 1 and m["python"] == sys.version.split()[0]
    assert r["browser"]["name"] in ("chrome", "chromium") and r["browser"]["version"]
    assert r["goals"] == {"live_fps": 25.0, "live_delay_p95_ms": 150.0, "page_load_ms": 1000.0}
    c = r["clinic"]
    assert c["size"]["patients"] == c["patients"] == bb.TINY_CLINIC["patients"]
    assert c["size"]["visits"] == c["patients"] * c["visits_per_patient"]
    assert c["size"]["trials"] == c["size"]["visits"] * c["trials_per_visit"]
    check_live(r["stand_in"], interval_ms=r["stand_in"]["interval_ms"])
    # the app's live view: measured once the session page stamps its redraws, else said so
    live = r["live"]
    assert live["source"] == "app"
    if live["status"] == "measured":
        check_live(live, every_arrival=False)
    else:
        assert live["status"] == "no-stamp" and "live-frame-stamp" in live["error"] and live["goal_met"] is False
    pages = r["pages"]
    assert pages["patient_code"] == f"P{bb.TINY_CLINIC['patients'] // 2 + 1:04d}"
    for name, real in (("patients", "table"), ("progress", "graph")):
        p = pages[name]
        assert p["status"] in (real, "placeholder"), p  # a page that renders nothing is a failure here
        for t in (p["load_ms"], p["in_app_ms"]):
            assert len(t["runs"]) == 2 and t["first"] == t["runs"][0] and t["max"] == max(t["runs"])
            assert 0 < min(t["runs"]) <= t["median"] <= t["max"]
        t = p["load_ms"]
        assert t["cold"] > 0  # the untimed first load, apart from the runs
        assert p["goal_met"] == (p["status"] == real and t["median"] < bb.PAGE_LOAD_GOAL_MS)
        assert p["in_app_goal_met"] == (p["status"] == real and p["in_app_ms"]["median"] < bb.PAGE_LOAD_GOAL_MS)
    # the dashboard it started is gone
    pid = r["app"]["pid"]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_terminated_benchmark_stops_the_app_it_started(tmp_path):
    proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "bench_browser.py"), "--tiny", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    lines: queue.Queue[str] = queue.Queue()
    stderr: list[str] = []

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr.append(line)
            lines.put(line)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    pid = None
    try:
        deadline = time.monotonic() + 400
        while pid is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                continue
            if "(pid " in line:  # its progress line once the app is serving
                pid = int(line.split("(pid ", 1)[1].split(")", 1)[0])
        assert pid is not None and psutil.pid_exists(pid), f"the app was never started: {''.join(stderr)}"
        children = psutil.Process(proc.pid).children(recursive=True)  # the app, chromium-driver, chromium
        assert pid in {c.pid for c in children} and len(children) >= 3, children
        proc.terminate()
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        reader.join(10)
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        proc.stdout.close()
        if proc.stderr is not None and not reader.is_alive():
            proc.stderr.close()
    assert proc.returncode == 130 and stdout == "", (proc.returncode, stdout, stderr)
    assert "interrupted" in stderr[-1]

    def alive(c: psutil.Process) -> bool:
        try:
            return c.is_running() and c.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    assert wait_for(lambda: not any(alive(c) for c in children), timeout_s=30), [c for c in children if alive(c)]


def test_bench_refuses_browser_with_quick():
    line = one_line_error(run_steplab("bench", "--quick", "--browser", "--json"))
    assert "--browser" in line and "--quick" in line


def test_the_script_refuses_absurd_options():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_browser.py"), "--repeats", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert one_line_error(out).startswith("bench_browser: ")
