"""Browser benchmark: the dashboard's speed as a clinician sees it, in a real headless Chromium.

Drives Debian's chromium through chromium-driver (selenium), against the real
``steplab run --device sim`` started as a child process on a free port with a
records database holding the clinic's year of the records benchmark
(``bench_records.build_clinic``: 500 patients, 5 000 visits, 50 000 trials).

* **Live view** (``/session``): frames per second of the live redraw over a
  window of about 10 s, and the delay from a sample's arrival at the host to
  its appearance on screen (p50, p95, max).  The session page stamps every
  redraw on ``#live-frame-stamp``: ``data-arrival-ms`` (host wall clock, ms,
  when the newest drawn sample arrived from the device) and ``data-frame``
  (incremented right after drawing).  A MutationObserver in the page takes,
  for each stamp, the browser's wall clock (``performance.timeOrigin +
  performance.now()``) once the frame has been painted (a
  ``requestAnimationFrame`` then a zero timeout) and subtracts the arrival.
  Goals: >= 25 frames/s, p95 <= 150 ms.  A page without the stamp is reported
  as ``{"status": "no-stamp"}``, not guessed.
* **Page loads** (``/patients`` and ``/patients/<code>/progress``): from the
  navigation's start (``performance.now()`` of the new document) until the
  page's content is rendered and painted: rows ``#patients-table
  tr.patient-row``; a ``#progress-graph`` plot holding data.  A page still
  showing its "coming soon" placeholder is timed and marked ``placeholder``;
  one not rendered within 60 s is a ``timeout``.  The median of a few full
  loads, after one untimed first load (reported as ``cold``), is judged
  against the goal (< 1 s each); the same page reached from
  inside the app (as a link does: ``history.pushState``) is reported beside it.

``--stand-in`` adds the same live measurement on a minimal page served from
this process (a known extra delay, a known redraw interval): the harness's
self-check.  Runnable as ``python benchmarks/bench_browser.py [--json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

LIVE_FPS_GOAL = 25.0
LIVE_DELAY_P95_GOAL_MS = 150.0
PAGE_LOAD_GOAL_MS = 1000.0

FULL_CLINIC = {"patients": 500, "visits_per_patient": 10, "trials_per_visit": 10}
TINY_CLINIC = {"patients": 4, "visits_per_patient": 2, "trials_per_visit": 2}
BENCH_USER = ("bench-clinician", "bench-clinician-pass")  # created in the benchmark's own throwaway database
BENCH_ADMIN = ("bench-admin", "bench-admin-password")

APP_START_TIMEOUT_S = 300.0  # a cold numba cache on a slow, busy machine
APP_STOP_TIMEOUT_S = 20.0
PAGE_TIMEOUT_S = 60.0  # a page not rendered by then is reported as a timeout (a busy renderer can overshoot it)
STAMP_TIMEOUT_S = 30.0


class BrowserBenchError(Exception):
    """The benchmark could not run (no browser, the app did not start, …): one line, no traceback."""


class PageTimeout(BrowserBenchError):
    """A page did not render within its deadline (the figure is then "more than the deadline")."""


def repo_root() -> Path:
    import steplab

    return Path(steplab.__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine_facts() -> dict:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu_count": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform(), "load_average_1min": None if load is None else round(load[0], 2)}


# -- the browser ----------------------------------------------------------------------------------------
def chrome_driver(headless: bool = True):
    """Headless Chromium through chromium-driver, with the options dash.testing uses."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver") or shutil.which("chromium-driver")
    if driver_path is None:
        raise BrowserBenchError("chromium-driver is not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    for arg in (["--headless"] if headless else []) + ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                                                       "--disable-notifications", "--window-size=1280,900"]:
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
    except WebDriverException as exc:
        raise BrowserBenchError(f"cannot start chromium: {str(exc.msg or exc).strip().splitlines()[0]}") from None
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    driver.set_script_timeout(PAGE_TIMEOUT_S)
    return driver


def clock_offset_ms(driver, tries: int = 5) -> dict:
    """The browser's wall clock minus the host's (ms), from the quickest of a few round trips."""
    best: tuple[float, float] | None = None
    for _ in range(tries):
        t0 = time.time() * 1000.0
        b = float(driver.execute_script("return performance.timeOrigin + performance.now();"))
        t1 = time.time() * 1000.0
        if best is None or (t1 - t0) < 2 * best[1]:
            best = (b - (t0 + t1) / 2.0, (t1 - t0) / 2.0)
    assert best is not None
    return {"offset_ms": round(best[0], 3), "uncertainty_ms": round(best[1], 3)}


# -- the live view ---------------------------------------------------------------------------------------
_LIVE_OBSERVER_JS = """
const stampId = arguments[0];
if (window.__steplabFrames) { window.__steplabFrames.observer.disconnect(); }
const out = {frames: [], started_ms: performance.timeOrigin + performance.now(), stopped_ms: null,
             first_frame: null, observer: null};
function stamp(el) {
  const frame = parseInt(el.getAttribute('data-frame'), 10);
  const arrival = parseFloat(el.getAttribute('data-arrival-ms'));
  const dom = performance.timeOrigin + performance.now();
  requestAnimationFrame(() => setTimeout(() => {
    if (out.stopped_ms === null) out.frames.push([frame, arrival, dom, performance.timeOrigin + performance.now()]);
  }, 0));
}
const el0 = document.getElementById(stampId);
out.first_frame = el0 ? parseInt(el0.getAttribute('data-frame'), 10) : null;
out.observer = new MutationObserver((records) => {
  for (const r of records) {
    if (r.type === 'attributes' && r.target.id === stampId && r.attributeName === 'data-frame') stamp(r.target);
    if (r.type === 'childList') {
      for (const n of r.addedNodes) {
        if (n.nodeType !== 1) continue;
        const el = n.id === stampId ? n : n.querySelector('#' + stampId);
        if (el) stamp(el);
      }
    }
  }
});
out.observer.observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['data-frame']});
window.__steplabFrames = out;
return out.started_ms;
"""

_LIVE_COLLECT_JS = """
const out = window.__steplabFrames;
if (!out) return null;
out.stopped_ms = performance.timeOrigin + performance.now();
out.observer.disconnect();
const el = document.getElementById(arguments[0]);
return {frames: out.frames, started_ms: out.started_ms, stopped_ms: out.stopped_ms, first_frame: out.first_frame,
        last_frame: el ? parseInt(el.getAttribute('data-frame'), 10) : null};
"""


def _quantiles_ms(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    return {"n": int(a.size), "p50": round(float(np.percentile(a, 50)), 1), "p95": round(float(np.percentile(a, 95)), 1),
            "max": round(float(a.max()), 1), "min": round(float(a.min()), 1)}


def measure_live_frames(driver, window_s: float, stamp_id: str = "live-frame-stamp") -> dict:
    """Frames per second and arrival-to-screen delays of the page open in ``driver`` (its stamp must exist)."""
    clock = clock_offset_ms(driver)
    driver.execute_script(_LIVE_OBSERVER_JS, stamp_id)
    time.sleep(window_s)
    got = driver.execute_script(_LIVE_COLLECT_JS, stamp_id)
    if got is None:
        raise BrowserBenchError("the page was replaced while the live view was measured")

    def number(v) -> float:  # JSON brings a JavaScript NaN (an empty or bad stamp) back as null
        return float(v) if isinstance(v, (int, float)) else float("nan")

    frames = [[number(v) for v in f] for f in got["frames"]]
    window_ms = float(got["stopped_ms"]) - float(got["started_ms"])
    out: dict = {"status": "measured", "window_s": round(window_ms / 1000.0, 3), "frames": len(frames),
                 "fps": round(len(frames) / (window_ms / 1000.0), 2) if window_ms > 0 else None,
                 "clock": clock}
    first, last = got.get("first_frame"), got.get("last_frame")
    if isinstance(first, int) and isinstance(last, int):
        out["stamped_frames"] = last - first  # what the page counted; frames = stamped - the few still unpainted
    if not frames:
        out.update(status="no-frames", delay_ms=None, delay_dom_ms=None, goal_met=False)
        return out
    bad = ~np.isfinite(np.array([f[1] for f in frames])) | ~np.isfinite(np.array([f[3] for f in frames]))
    out["frames_without_arrival"] = int(bad.sum())
    ok = [f for f, b in zip(frames, bad, strict=True) if not b]
    if not ok:
        out.update(status="no-arrival-stamps", delay_ms=None, delay_dom_ms=None, goal_met=False)
        return out
    out["delay_ms"] = _quantiles_ms([f[3] - f[1] for f in ok])  # painted minus arrival
    out["delay_dom_ms"] = _quantiles_ms([f[2] - f[1] for f in ok])  # stamp written (before the paint) minus arrival
    out["goal_met"] = bool(out["fps"] >= LIVE_FPS_GOAL and out["delay_ms"]["p95"] <= LIVE_DELAY_P95_GOAL_MS)
    return out


def _stand_in_page(interval_ms: float) -> bytes:
    return f"""<!doctype html><html><head><title>steplab live stand-in</title></head><body>
<div id="live-frame-stamp" data-frame="0" data-arrival-ms=""></div>
<canvas id="trace" width="800" height="200"></canvas><div id="value"></div>
<script>
const el = document.getElementById('live-frame-stamp');
const ctx = document.getElementById('trace').getContext('2d');
let frame = 0, busy = false;
setInterval(async () => {{
  if (busy) return;
  busy = true;
  try {{
    const j = await (await fetch('/newest')).json();
    ctx.clearRect(0, 0, 800, 200); ctx.beginPath();
    for (let i = 0; i < j.trace.length; i++) ctx.lineTo(i * 800 / j.trace.length, 100 - j.trace[i]);
    ctx.stroke();
    document.getElementById('value').textContent = j.trace[j.trace.length - 1].toFixed(1) + ' N';
    el.setAttribute('data-arrival-ms', j.arrival_ms === null ? '' : String(j.arrival_ms));
    el.setAttribute('data-frame', String(++frame));
  }} finally {{ busy = false; }}
}}, {interval_ms:g});
</script></body></html>""".encode()


@contextlib.contextmanager
def stand_in_live(interval_ms: float = 30.0, extra_delay_ms: float = 0.0, block_ms: float = 10.0,
                  blank_every_n: int = 0) -> Iterator[str]:
    """A minimal live page served from this process (the harness's self-check); yields its URL.

    The host side plays a device whose samples arrive in ``block_ms`` blocks; ``/newest`` answers with the
    newest block's arrival time, made ``extra_delay_ms`` older, and a short trace that the page draws.
    With ``blank_every_n`` every n-th answer has no arrival time (the page stamps an empty one).
    """
    page = _stand_in_page(interval_ms)
    answers = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            if self.path == "/":
                body, kind = page, "text/html"
            elif self.path == "/newest":
                now_ms = time.time() * 1000.0
                answers[0] += 1
                arrival: float | None = (now_ms // block_ms) * block_ms - extra_delay_ms
                if blank_every_n and answers[0] % blank_every_n == 0:
                    arrival = None
                trace = [50.0 * np.sin(2 * np.pi * (now_ms / 1000.0 + k / 200.0)) for k in range(200)]
                body, kind = json.dumps({"arrival_ms": arrival, "trace": trace}).encode(), "application/json"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # noqa: A002 (the http.server API): quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="stand-in", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def measure_stand_in(driver, window_s: float, interval_ms: float = 30.0, extra_delay_ms: float = 0.0,
                     blank_every_n: int = 0) -> dict:
    """The live measurement on the stand-in page (known redraw interval and extra delay)."""
    with stand_in_live(interval_ms, extra_delay_ms, blank_every_n=blank_every_n) as url:
        driver.get(url)
        _wait(driver, "return !!document.getElementById('live-frame-stamp') && "
                      "parseInt(document.getElementById('live-frame-stamp').getAttribute('data-frame'), 10) > 0;",
              STAMP_TIMEOUT_S, "the stand-in page never drew a frame")
        out = measure_live_frames(driver, window_s)
    out.update(source="stand-in", interval_ms=interval_ms, extra_delay_ms=extra_delay_ms)
    return out


def _wait(driver, script: str, timeout_s: float, what: str, *args) -> Any:
    """Poll ``script`` in the page until it returns something truthy; BrowserBenchError(what) at the deadline."""
    from selenium.common.exceptions import WebDriverException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            got = driver.execute_script(script, *args)
        except WebDriverException:
            got = None  # the page is being replaced: try again
        if got:
            return got
        if time.monotonic() > deadline:
            raise BrowserBenchError(f"{what} (after {timeout_s:g} s)")
        time.sleep(0.05)


# -- the app as a child process --------------------------------------------------------------------------
def _parent_death_signal():
    """A function for the child (before exec) that asks for SIGTERM when the benchmark dies, even by SIGKILL.

    Linux ``prctl(PR_SET_PDEATHSIG)``, looked up here in the parent so that the child only calls it; None
    where there is no such call.
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)


class AppProcess:
    """``steplab run --device sim`` on a free port, as a child process; every wait has a deadline."""

    ANNOUNCE = "dashboard on http://"

    def __init__(self, db_url: str, data_dir: Path, *, start_timeout_s: float = APP_START_TIMEOUT_S):
        self.lines: list[str] = []
        self._stdout: queue.Queue[str] = queue.Queue()
        self.proc: subprocess.Popen[str] | None = None
        self._drains: list[threading.Thread] = []
        env = dict(os.environ, STEPLAB_DATA_DIR=str(data_dir))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo_root()), env.get("PYTHONPATH", "")) if p)
        die_with_parent = _parent_death_signal()
        for _attempt in range(3):  # a free port can be taken between asking and binding
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "steplab.cli", "run", "--device", "sim", "--port", str(self.port),
                 "--db", db_url], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, bufsize=1, env=env, preexec_fn=die_with_parent)
            self._drains = [threading.Thread(target=self._drain, args=(self.proc.stdout, True), daemon=True),
                            threading.Thread(target=self._drain, args=(self.proc.stderr, False), daemon=True)]
            for t in self._drains:
                t.start()
            if self._wait_announce(start_timeout_s):
                return
            busy = any("in use" in line for line in self.lines)
            self.stop()
            if not busy:
                break
        tail = " | ".join(line.strip() for line in self.lines[-3:])
        raise BrowserBenchError(f"steplab run did not start: {tail or 'no output'}")

    def _drain(self, stream, is_stdout: bool) -> None:
        for line in stream:
            self.lines.append(line)
            if is_stdout:
                self._stdout.put(line)

    def _wait_announce(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        assert self.proc is not None
        while time.monotonic() < deadline:
            try:
                line = self._stdout.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    return False
                continue
            if self.ANNOUNCE in line:
                return True
        return False

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(APP_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for t in self._drains:
            t.join(5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None and not any(t.is_alive() for t in self._drains):
                stream.close()

    def __enter__(self) -> AppProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def build_clinic_db(path: Path, shape: dict, workdir: Path) -> dict:
    """The records benchmark's clinic in a new SQLite file, with the benchmark's own two users."""
    from steplab.benchmarks.bench_records import build_clinic
    from steplab.records.db import open_database
    from steplab.records.users import add_user

    db = open_database(f"sqlite:///{path}", auto_upgrade=True)
    try:
        t0 = time.perf_counter()
        size = build_clinic(db, workdir=workdir, **shape)
        build_s = time.perf_counter() - t0
        add_user(db, BENCH_ADMIN[0], "admin", BENCH_ADMIN[1])
        add_user(db, BENCH_USER[0], "clinician", BENCH_USER[1])
    finally:
        db.dispose()
    return {"size": size, "build_s": round(build_s, 1)}


def login(driver, base_url: str, user: tuple[str, str] = BENCH_USER, timeout_s: float = PAGE_TIMEOUT_S) -> None:
    """Log in through the login form and wait for the navigation bar.

    It lands on a path no page has (the dashboard answers "not found"): nothing heavy is left rendering
    when the first page load is timed.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base_url + "/login?next=/benchmark-start")
    wait = WebDriverWait(driver, timeout_s)
    wait.until(ec.presence_of_element_located((By.ID, "login-name"))).send_keys(user[0])
    driver.find_element(By.ID, "login-password").send_keys(user[1])
    driver.find_element(By.ID, "login-submit").click()
    try:
        wait.until(ec.presence_of_element_located((By.ID, "nav-user")))
    except Exception:
        raise BrowserBenchError(f"logging in as {user[0]} did not open the dashboard") from None


# -- page loads ------------------------------------------------------------------------------------------
# Installed into every new document (CDP): ``__steplabWatch(pathname, t0)`` checks, on each DOM change and
# every 10 ms, whether the page of that path has rendered its content, then waits for the paint and keeps
# the times in ``window.__steplabLoad`` (ms since ``t0``: 0 is the navigation's start).  A full load watches
# its own path at once; an in-app navigation (what a dcc.Link does) calls it with its own start.
_LOAD_PROBE_JS = """
(() => {
  const placeholder = (id) => {
    const p = document.getElementById(id);
    return !!p && (!!p.querySelector('.placeholder') || /coming soon/i.test(p.textContent || ''));
  };
  const plotHasData = (id) => {
    const g = document.querySelector('#' + id + ' .js-plotly-plot');
    return !!g && Array.isArray(g.data) && g.data.some(t => (t.x && t.x.length) || (t.y && t.y.length));
  };
  const checks = [
    [/^\\/patients\\/[^/]+\\/progress\\/?$/, () => plotHasData('progress-graph') ? 'graph'
                                          : (placeholder('progress-page') ? 'placeholder' : null)],
    [/^\\/patients\\/?$/, () => document.querySelector('#patients-table tr.patient-row') ? 'table'
                             : (placeholder('patients-page') ? 'placeholder' : null)],
    [/^\\/benchmark-start$/, () => document.getElementById('not-found') ? 'start' : null],
  ];
  window.__steplabWatch = (pathname, t0) => {
    const found = checks.find(([re]) => re.test(pathname));
    window.__steplabLoad = null;
    if (!found) return false;
    const check = found[1];
    let done = false, observer = null, timer = null;
    const test = () => {
      if (done) return;
      const kind = check();
      if (!kind) return;
      done = true;
      const dom = performance.now() - t0;
      if (observer) observer.disconnect();
      clearInterval(timer);
      requestAnimationFrame(() => setTimeout(() => {
        window.__steplabLoad = {kind: kind, dom_ms: dom, painted_ms: performance.now() - t0};
      }, 0));
    };
    observer = new MutationObserver(test);
    observer.observe(document, {subtree: true, childList: true, attributes: true});
    timer = setInterval(test, 10);
    return true;
  };
  window.__steplabWatch(location.pathname, 0);
})();
"""

# An in-app navigation as dcc.Link makes it (history.pushState, then the event dcc.Location listens to).
_IN_APP_NAVIGATE_JS = """
const t0 = performance.now();
if (!window.__steplabWatch) return false;
window.history.pushState({}, '', arguments[0]);
const watching = window.__steplabWatch(window.location.pathname, t0);
window.dispatchEvent(new CustomEvent('_dashprivate_pushstate'));
return watching;
"""


def _timing(runs: list[float], cold: float | None = None) -> dict:
    out = {"median": round(statistics.median(runs), 1), "max": max(runs), "first": runs[0], "runs": runs}
    if cold is not None:
        out["cold"] = cold
    return out


def measure_page_load(driver, url: str, repeats: int, timeout_s: float = PAGE_TIMEOUT_S) -> dict:
    """``url`` loaded ``repeats`` times, then reached as often from inside the app (probe installed).

    ``load_ms``: from a full load's navigation start to the content painted, after one untimed load
    (``cold``: the browser compiles the page's scripts, plotly.js above all, and keeps them in its code
    cache, as a clinic's browser has after the first visit); ``in_app_ms``: from a navigation inside the
    app (a light page first, then a pushState as a link makes) to the same.
    """
    from selenium.common.exceptions import WebDriverException

    base, path = url.split("/", 3)[:3], "/" + url.split("/", 3)[-1]
    start = "/".join(base) + "/benchmark-start"
    loads, in_app, kinds = [], [], set()
    cold: float | None = None

    def wait_loaded(what: str) -> dict:
        return _wait(driver, "return window.__steplabLoad || null;", timeout_s, what)

    try:
        for k in range(repeats + 1):
            driver.get("about:blank")
            driver.get(url)
            got = wait_loaded(f"{path} never rendered its content")
            if k == 0:
                cold = round(float(got["painted_ms"]), 1)
            else:
                loads.append(round(float(got["painted_ms"]), 1))
            kinds.add(str(got["kind"]))
        for _ in range(repeats):
            driver.get(start)
            wait_loaded("the dashboard's not-found page never rendered")
            if not driver.execute_script(_IN_APP_NAVIGATE_JS, path):
                raise BrowserBenchError(f"no probe for {path}")
            got = wait_loaded(f"{path} never rendered its content (in-app navigation)")
            in_app.append(round(float(got["painted_ms"]), 1))
            kinds.add(str(got["kind"]))
    except WebDriverException as exc:
        first = str(exc.msg or exc).strip().splitlines()
        raise PageTimeout(f"{path} did not load ({first[0] if first else type(exc).__name__})") from None
    except BrowserBenchError as exc:
        raise PageTimeout(str(exc)) from None
    status = kinds.pop() if len(kinds) == 1 else "mixed"
    load = _timing(loads, cold)
    nav = _timing(in_app)
    real = status in ("table", "graph")
    return {"status": status, "load_ms": load, "in_app_ms": nav,
            "goal_met": bool(real and load["median"] < PAGE_LOAD_GOAL_MS),
            "in_app_goal_met": bool(real and nav["median"] < PAGE_LOAD_GOAL_MS)}


# -- the whole benchmark ---------------------------------------------------------------------------------
def measure_browser(*, live_seconds: float = 10.0, clinic: dict | None = None, repeats: int = 3,
                    stand_in: bool = False, stand_in_delay_ms: float = 0.0, progress: bool = False) -> dict:
    """The browser benchmark's figures (see the module's docstring); raises BrowserBenchError if it cannot run.

    ``progress``: say on stderr what it is doing (one line per step).
    """
    from selenium.common.exceptions import WebDriverException

    def say(line: str) -> None:
        if progress:
            print(f"bench_browser: {line}", file=sys.stderr, flush=True)

    shape = dict(FULL_CLINIC if clinic is None else clinic)
    out: dict = {"machine": machine_facts(),
                 "goals": {"live_fps": LIVE_FPS_GOAL, "live_delay_p95_ms": LIVE_DELAY_P95_GOAL_MS,
                           "page_load_ms": PAGE_LOAD_GOAL_MS}}
    driver = chrome_driver()  # before the slow clinic: no browser, no wait
    try:
        out["browser"] = {"name": driver.capabilities.get("browserName"),
                          "version": driver.capabilities.get("browserVersion")}
        if stand_in:
            out["stand_in"] = measure_stand_in(driver, live_seconds, extra_delay_ms=stand_in_delay_ms)
        with tempfile.TemporaryDirectory(prefix="steplab-bench-browser-") as tmp:
            work = Path(tmp)
            (work / "data").mkdir()
            say(f"building the clinic ({shape['patients']} patients)…")
            out["clinic"] = {**shape, **build_clinic_db(work / "clinic.sqlite", shape, work)}
            say("starting steplab run…")
            with AppProcess(f"sqlite:///{work / 'clinic.sqlite'}", work / "data") as app:
                assert app.proc is not None
                out["app"] = {"url": app.url, "pid": app.proc.pid}
                say(f"steplab run on {app.url} (pid {app.proc.pid}); timing the pages…")
                login(driver, app.url)
                code = f"P{shape['patients'] // 2 + 1:04d}"  # the patient the records benchmark reads
                driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _LOAD_PROBE_JS})
                out["pages"] = {"patient_code": code}
                for name, path in (("patients", "/patients"), ("progress", f"/patients/{code}/progress")):
                    try:
                        out["pages"][name] = measure_page_load(driver, app.url + path, repeats)
                    except PageTimeout as exc:
                        out["pages"][name] = {"status": "timeout", "timeout_s": PAGE_TIMEOUT_S, "error": str(exc),
                                              "goal_met": False}
                        driver.quit()  # its renderer may still be busy with that page: start afresh
                        driver = chrome_driver()
                        login(driver, app.url)
                        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _LOAD_PROBE_JS})
                say("measuring the live view…")
                out["live"] = _measure_app_live(driver, app.url, live_seconds)
    except WebDriverException as exc:
        first = str(exc.msg or exc).strip().splitlines()
        raise BrowserBenchError(f"the browser failed: {first[0] if first else type(exc).__name__}") from None
    finally:
        with contextlib.suppress(Exception):  # a browser that already died has nothing left to stop
            driver.quit()
    out["machine"]["load_average_1min_end"] = machine_facts()["load_average_1min"]
    return out


def _measure_app_live(driver, base_url: str, window_s: float) -> dict:
    driver.get(base_url + "/session")
    try:
        _wait(driver, "const e = document.getElementById('live-frame-stamp');"
                      "return !!e && parseInt(e.getAttribute('data-frame'), 10) > 0;",
              STAMP_TIMEOUT_S, "no #live-frame-stamp drawing on /session")
    except BrowserBenchError as exc:
        return {"status": "no-stamp", "source": "app", "error": str(exc), "goal_met": False}
    out = measure_live_frames(driver, window_s)
    out["source"] = "app"
    return out


def summary_lines(result: dict) -> list[str]:
    lines = []
    m = result["machine"]
    lines.append(f"machine: {m['cpu_count']} x {m['cpu_model']}, Python {m['python']}, load {m['load_average_1min']}"
                 f" -> {m.get('load_average_1min_end')}; "
                 f"{result.get('browser', {}).get('name')} {result.get('browser', {}).get('version')}")
    for key, label in (("stand_in", "stand-in page"), ("live", "app")):
        r = result.get(key)
        if not r:
            continue
        if r.get("status") != "measured":
            lines.append(f"live ({label}): {r.get('status')}: {r.get('error', '')}".rstrip(": "))
        else:
            d = r["delay_ms"]
            lines.append(f"live ({label}): {r['fps']} frames/s (goal >= {LIVE_FPS_GOAL:g}), arrival to screen p50 "
                         f"{d['p50']} ms, p95 {d['p95']} ms (goal <= {LIVE_DELAY_P95_GOAL_MS:g}), max {d['max']} ms")
    c = result.get("clinic", {})
    for name in ("patients", "progress"):
        r = result.get("pages", {}).get(name)
        if r is None:
            continue
        if r.get("load_ms"):
            lines.append(f"{name} page ({c.get('size', {}).get('trials')} trials): {r['status']}, load median "
                         f"{r['load_ms']['median']} ms, max {r['load_ms']['max']} ms (goal < {PAGE_LOAD_GOAL_MS:g}), "
                         f"first ever {r['load_ms'].get('cold')} ms; "
                         f"from inside the app median {r['in_app_ms']['median']} ms")
        else:
            lines.append(f"{name} page: {r['status']}: {r.get('error')}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="The dashboard's speed in headless Chromium: live frames per second and "
                                "delay, patient list and progress page loads in the clinic's year of data.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--live-seconds", type=float, default=10.0, metavar="S", help="live measurement window (default 10)")
    p.add_argument("--repeats", type=int, default=3, help="loads per page (default 3; the median is judged)")
    p.add_argument("--tiny", action="store_true", help="a 4-patient clinic, short windows (the harness's self-test)")
    p.add_argument("--stand-in", action="store_true", help="also measure a minimal stand-in live page (self-check)")
    args = p.parse_args(argv)
    if args.live_seconds <= 0 or args.repeats < 1:
        print("bench_browser: --live-seconds must be positive and --repeats at least 1", file=sys.stderr)
        return 2

    def on_term(signum, _frame):  # `kill`/`timeout`: unwind, so that the app and the browser are stopped
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        result = measure_browser(live_seconds=args.live_seconds, clinic=TINY_CLINIC if args.tiny else None,
                                 repeats=args.repeats, stand_in=args.stand_in, progress=True)
    except BrowserBenchError as exc:
        print(f"bench_browser: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench_browser: interrupted (the app and the browser were stopped)", file=sys.stderr)
        return 130
    print(json.dumps(result) if args.json else "\n".join(summary_lines(result)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's steplab, run as a script
    sys.exit(main())
