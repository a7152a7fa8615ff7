"""Shared test helpers, in one place: running `steplab`, the simulator as a process, ptys,
wire frames, the shared real data, one-line errors, waits with deadlines, and the dashboard
(in a browser, and over real HTTP against waitress).

Fixtures built on these live in conftest.py.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import tty
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from steplab.acquisition import protocol

REPO = Path(__file__).resolve().parents[1]


def shared_real_data() -> Path:
    """The real recordings from other labs (the shared folder beside the repository)."""
    for candidate in (REPO.parent / "shared" / "data" / "real", REPO / "shared" / "data" / "real"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the shared real-data folder (../shared/data/real beside the repository) is missing")


def steplab_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "steplab.cli", *args]


class SimProcess:
    """`steplab simulate --pty …` running as its own process.

    Its stdout and stderr are drained by two reader threads that end when the process's pipes
    close, so no read can block a test: every wait here has a deadline.
    """

    ANNOUNCE_TIMEOUT_S = 120.0  # a cold numba cache on a slow, busy machine

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(steplab_cmd("simulate", "--pty", *args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self._lines: queue.Queue[str] = queue.Queue()
        self.stderr_lines: list[str] = []
        self._drains = [threading.Thread(target=self._drain, args=(self.proc.stdout, self._lines.put), daemon=True),
                        threading.Thread(target=self._drain, args=(self.proc.stderr, self.stderr_lines.append), daemon=True)]
        for t in self._drains:
            t.start()
        line = self.next_line(self.ANNOUNCE_TIMEOUT_S)
        if not line.startswith("port: "):
            self.stop()
            raise RuntimeError(f"simulator did not announce a port: {line!r} {''.join(self.stderr_lines)}")
        self.port = line.split(":", 1)[1].strip()

    @staticmethod
    def _drain(stream, put) -> None:
        for line in stream:
            put(line)

    def next_line(self, timeout_s: float = 10.0) -> str:
        """The simulator's next stdout line, or "" when none came within ``timeout_s``."""
        try:
            return self._lines.get(timeout=timeout_s)
        except queue.Empty:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for t in self._drains:
            t.join(5)  # the pipes close with the process
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream and not any(t.is_alive() for t in self._drains):
                stream.close()


def wait_for(predicate, timeout_s: float = 10.0, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False


def real_file(*parts: str) -> Path:
    """A file of the shared real recordings; the test fails (never skips) when it is missing."""
    p = shared_real_data().joinpath(*parts)
    if not p.exists():
        pytest.fail(f"shared real data missing: {p} (the shared folder must sit beside the repository)")
    return p


def run_steplab(*args: str, timeout_s: float = 120.0, **kw) -> subprocess.CompletedProcess:
    """`steplab ARGS…` as a child process (this checkout's code), text output captured, with a deadline."""
    return subprocess.run(steplab_cmd(*args), capture_output=True, text=True, timeout=timeout_s, **kw)


def one_line_error(result: subprocess.CompletedProcess, exit_code: int | None = None) -> str:
    """The single stderr line of a refused command (non-zero exit, or ``exit_code``, and no traceback)."""
    if exit_code is None:
        assert result.returncode != 0, (result.returncode, result.stderr)
    else:
        assert result.returncode == exit_code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@contextmanager
def pty_pair() -> Iterator[tuple[int, int, str]]:
    """A raw pseudo-terminal: (master fd, slave fd, slave path); both ends closed afterwards."""
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        yield master, slave, os.ttyname(slave)
    finally:
        for fd in (master, slave):
            try:
                os.close(fd)
            except OSError:
                pass


def data_frames(n: int, *, boot_id: int = 77, first_frame: int = 0, samples_per_frame: int = 10, channels: int = 12,
                device_time_us_per_frame: int = 0, flags: int = 0) -> list[bytes]:
    """``n`` consecutive wire data frames; frame k's counts all equal k (easy to check on arrival)."""
    return [protocol.encode_data_frame(boot_id=boot_id, seq=first_frame + k, first_sample=(first_frame + k) * samples_per_frame,
                                       device_time_us=(first_frame + k) * device_time_us_per_frame,
                                       counts=np.full((samples_per_frame, channels), k, np.int32), flags=flags)
            for k in range(n)]


# -- simulated truth and real plate data for the dsp tests ----------------------------------------
_SIM: dict = {}


def sim_truth(scenario: str, seconds: float, seed: int, rate_hz: float = 1000.0):
    """The simulator's true plate forces (Subject(): 70 kg) and its truth events (cached per test run)."""
    from steplab.acquisition.rig import default_rig
    from steplab.acquisition.sim_rig import simulate_trial
    from steplab.acquisition.sim_subject import Subject

    key = (scenario, seconds, seed, rate_hz)
    if key not in _SIM:
        _, truth = simulate_trial(default_rig(sample_rate_hz=rate_hz), Subject(), scenario, seconds, rate_hz, seed=seed)
        _SIM[key] = truth
    return _SIM[key]


def plates_of(truth, roles, stop=None):
    """PlateForces (Fz only) of the simulator's truth for ``roles``, optionally cut at sample ``stop``."""
    from steplab.dsp import PlateForces

    return {r: PlateForces(truth.fz(r)[:stop].copy()) for r in roles}


def real_dual(name: str):
    """A real dual-plate jump (``Dual-{name}-Fz.txt``) as floor_left / floor_right PlateForces [N]."""
    from steplab.dsp import PlateForces

    data = np.loadtxt(real_file("dual_plate_jumps", f"Dual-{name}-Fz.txt"), skiprows=1, delimiter="\t")
    return {"floor_left": PlateForces(data[:, 0].copy()), "floor_right": PlateForces(data[:, 1].copy())}


# -- the dashboard in a real browser ------------------------------------------------------------------
CLINICIAN = ("clin", "clinician-pass-1")  # users of dashboard_db (name, password)
ADMIN = ("boss", "admin-pass-12")
SCREENSHOTS = REPO / "tests" / "artefacts" / "screenshots"  # saved by the browser tests; ignored by git


def make_dashboard_db(path: Path):
    """A fresh SQLite records database at ``path`` with the users CLINICIAN and ADMIN."""
    from steplab.records.db import open_database
    from steplab.records.users import add_user

    db = open_database(f"sqlite:///{path}", auto_upgrade=True)
    add_user(db, CLINICIAN[0], "clinician", CLINICIAN[1])
    add_user(db, ADMIN[0], "admin", ADMIN[1])
    return db


def browser_login(browser, base_url: str, user: tuple[str, str] = CLINICIAN, next_path: str = "/",
                  timeout_s: float = 20.0) -> None:
    """Log in through the login page (``browser``: dash_duo or dash_br) and wait for the navigation bar."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser.driver
    driver.get(base_url.rstrip("/") + "/login?next=" + next_path)
    wait = WebDriverWait(driver, timeout_s)
    wait.until(ec.presence_of_element_located((By.ID, "login-name"))).send_keys(user[0])
    driver.find_element(By.ID, "login-password").send_keys(user[1])
    driver.find_element(By.ID, "login-submit").click()
    wait.until(ec.presence_of_element_located((By.ID, "nav-user")))


def screenshot(browser, name: str) -> Path:
    """Save the browser's page as tests/artefacts/screenshots/NAME.png (a test artefact to look at)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = SCREENSHOTS / f"{name}.png"
    driver = browser.driver
    driver.set_window_size(1366, 900)  # a lab workstation's screen, then the whole page's height
    height = driver.execute_script("return document.documentElement.scrollHeight") or 900
    driver.set_window_size(1366, int(min(max(height + 40, 900), 2400)))
    time.sleep(0.5)  # let plots take the new size
    driver.save_screenshot(str(out))
    return out


def choose_option(browser, selector: str, label: str, timeout_s: float = 15.0) -> None:
    """Pick the option ``label`` (case-insensitive) of the dcc.Dropdown ``selector``, retrying until it is offered."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.keys import Keys

    deadline = time.monotonic() + timeout_s
    offered: list[str] = []
    def close_menu() -> None:
        if browser.driver.find_elements("css selector", ".dash-dropdown-options"):
            browser.driver.switch_to.active_element.send_keys(Keys.ESCAPE)

    while time.monotonic() < deadline:
        try:
            if browser.find_element(selector).text.strip().lower() == label.lower():
                close_menu()
                return  # already chosen
            browser.find_element(selector).click()
            menu = browser.wait_for_element(".dash-dropdown-options", timeout=5)
            options = menu.find_elements("css selector", ".dash-dropdown-option")
            offered = [o.text.strip() for o in options]
            for o in options:
                if o.text.strip().lower() == label.lower():
                    o.click()
                    close_menu()
                    return
            close_menu()
        except (NoSuchElementException, StaleElementReferenceException, AssertionError):
            pass
        except Exception as exc:  # selenium's TimeoutException from wait_for_element: the menu did not open
            if type(exc).__name__ != "TimeoutException":
                raise
        time.sleep(0.3)
    raise AssertionError(f"{selector} never offered {label!r} (offered: {offered})")


def wait_text(browser, selector: str, contains: str, timeout_s: float = 30.0) -> str:
    """The text of ``selector`` once it contains ``contains`` (re-found each time: no stale elements)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        try:
            text = browser.driver.find_element("css selector", selector).text
            if contains in text:
                return text
        except (NoSuchElementException, StaleElementReferenceException):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{selector} did not show {contains!r} within {timeout_s:g} s (last: {text!r})")


def count_rows(browser, selector: str) -> int:
    return len(browser.driver.find_elements("css selector", selector))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningDashboard:
    """`steplab run ARGS` as a process on a free port; its output is read by a thread (never a blocking read)."""

    def __init__(self, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(steplab_cmd("run", "--port", str(self.port), *args), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_announced(self, timeout_s: float = 180.0) -> None:
        if not wait_for(lambda: any("dashboard on" in ln for ln in self.lines) or self.proc.poll() is not None,
                        timeout_s):
            raise AssertionError(f"steplab run did not start within {timeout_s:g} s: {''.join(self.lines)[-2000:]}")
        if self.proc.poll() is not None:
            raise AssertionError(f"steplab run exited {self.proc.returncode}: {''.join(self.lines)[-2000:]}")

    def stop(self) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


# -- the dashboard over real HTTP (waitress, as steplab run serves it) --------------------------------
@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a redirect is an answer to look at, not to follow


class WebClient:
    """One browser's worth of cookies against ``base_url``; redirects are returned, never followed."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def request(self, method: str, path: str, *, form: dict | None = None, body: dict | None = None,
                csrf: bool = False, timeout_s: float = 20.0) -> Reply:
        headers = {}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if csrf:
            headers["X-CSRFToken"] = self.cookie("_csrf_token") or ""
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with self.opener.open(req, timeout=timeout_s) as r:
                return Reply(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return Reply(exc.code, dict(exc.headers), exc.read())

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def form_token(self, path: str) -> str:
        page = self.get(path)
        m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert m, (path, page.status, page.text[:300])
        return m.group(1)

    def login(self, name: str, password: str, next_path: str = "/") -> Reply:
        token = self.form_token("/login")
        return self.request("POST", "/login", form={"csrf_token": token, "name": name, "password": password,
                                                     "next": next_path})

    def change_password(self, current: str, new: str, again: str | None = None) -> Reply:
        token = self.form_token("/account/password")
        return self.request("POST", "/account/password", form={"csrf_token": token, "current": current, "new": new,
                                                                "again": new if again is None else again})

    def callback(self, outputs: list[tuple[str, str]], inputs: list[tuple[str, str, object]], changed: str,
                 state: list[tuple[str, str, object]] = (), csrf: bool = True) -> Reply:
        """One Dash callback request, as the renderer sends it."""
        out = ".." + "...".join(f"{i}.{p}" for i, p in outputs) + ".." if len(outputs) > 1 else \
            f"{outputs[0][0]}.{outputs[0][1]}"
        body = {"output": out, "outputs": [{"id": i, "property": p} for i, p in outputs]
                if len(outputs) > 1 else {"id": outputs[0][0], "property": outputs[0][1]},
                "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
                "changedPropIds": [changed], "state": [{"id": i, "property": p, "value": v} for i, p, v in state]}
        return self.request("POST", "/_dash-update-component", body=body, csrf=csrf)


@contextmanager
def serving(ctx, failed_logins_limit: int | None = None):
    """The dashboard for ``ctx`` served by waitress (steplab run's bind_server) on a free local port."""
    from steplab.cmd_run import bind_server
    from steplab.dashboard.app import create_app

    app = create_app(ctx)
    if failed_logins_limit is not None:
        app.server.extensions["steplab_login_throttle"].limit = failed_logins_limit
    server = bind_server(app.server, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, name="test-waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        def stop() -> None:  # runs on the server's own loop thread: close every connection, then the server
            for channel in list(server._map.values()):
                if channel is not server and channel is not server.trigger:
                    channel.close()
            server.close()

        server.trigger.pull_trigger(stop)
        thread.join(10)
        server.task_dispatcher.shutdown(timeout=5)
        assert not thread.is_alive()


def click(browser, selector: str, timeout_s: float = 30.0) -> None:
    """Click ``selector`` once it is there, finding it again when a re-render replaced it (no stale element)."""
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        NoSuchElementException,
        StaleElementReferenceException,
    )

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            browser.driver.find_element("css selector", selector).click()
            return
        except (NoSuchElementException, StaleElementReferenceException, ElementClickInterceptedException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def read_stable(read, timeout_s: float = 30.0):
    """``read()`` again when a re-render replaced an element it was reading (StaleElementReferenceException)."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return read()
        except StaleElementReferenceException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
