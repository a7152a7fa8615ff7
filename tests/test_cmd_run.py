"""`steplab run` as a process: a busy port, SIGTERM, and a flood of local connections that costs no sample."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from conftest import steplab_cmd, wait_for

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dashboard:
    """`steplab run` on the simulated rig; its stdout is read by a thread (never a blocking read here)."""

    def __init__(self, port: int, *extra: str) -> None:
        self.port = port
        self.proc = subprocess.Popen(steplab_cmd("run", "--port", str(port), *extra), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def announced(self) -> bool:
        return any("dashboard on" in ln for ln in self.lines)

    def live(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/live", timeout=10) as r:
            return json.loads(r.read())

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode, err


def test_a_busy_port_is_a_one_line_error_before_anything_is_announced():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = subprocess.run(steplab_cmd("run", "--port", str(port)), capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use" in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert "dashboard on" not in r.stdout


def test_sigterm_stops_the_dashboard_cleanly():
    dash = Dashboard(_free_port())
    try:
        assert wait_for(dash.announced, 120), dash.lines
        assert wait_for(lambda: dash.live()["samples"] > 500, 20)
    finally:
        code, err = dash.stop()
    assert code == 0, err
    assert any("dashboard stopped" in ln for ln in dash.lines)


def test_a_flood_of_half_open_local_connections_loses_no_sample():
    dash = Dashboard(_free_port())
    socks: list[socket.socket] = []
    try:
        assert wait_for(dash.announced, 120), dash.lines
        assert wait_for(lambda: dash.live()["samples"] > 500, 20)
        before = dash.live()
        for _ in range(600):  # bounded, loopback only: connections that never finish their request
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", dash.port))
                s.sendall(b"GET /api/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            except OSError:
                s.close()
                continue
            socks.append(s)
        time.sleep(3.0)  # the flood stands while the rig streams
        for s in socks:
            s.close()
        socks.clear()
        assert wait_for(lambda: dash.live()["samples"] > before["samples"] + 2000, 30)
        after = dash.live()
    finally:
        for s in socks:
            s.close()
        code, err = dash.stop()
    assert after["lost_samples"] == 0 and after["queue_dropped_samples"] == 0 and after["behind_samples"] == 0, after
    assert after["state"] == "streaming"
    assert code == 0, err


def _post_json(port: int, path: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _get_json(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def test_sigterm_saves_the_recording_in_progress_and_a_restart_finds_it(data_dir):
    from steplab.acquisition.trial_file import read_trial

    dash = Dashboard(_free_port())
    try:
        assert wait_for(dash.announced, 120), dash.lines
        status, body = _post_json(dash.port, "/api/recordings", {"seconds": 60})
        assert status == 201, body
        assert _post_json(dash.port, "/api/recordings", {"seconds": 60})[0] == 409  # one at a time
        assert _post_json(dash.port, "/api/recordings", {"seconds": -1})[0] == 400
        assert wait_for(lambda: (dash.live()["recording"] or {}).get("samples", 0) > 1500, 30)
    finally:
        code, err = dash.stop()  # SIGTERM while recording
    assert code == 0, err
    trials = list((data_dir / "trials").glob("*.npz"))
    assert [t.name for t in trials] == [body["out"]]
    trial = read_trial(trials[0])
    assert trial.meta["ended"] == "terminated" and trial.quality["lost_samples"] == 0
    assert 1.5 <= trial.duration_s < 60
    assert any("saved trial" in ln for ln in dash.lines)
    again = Dashboard(_free_port())  # a restart finds the trial
    try:
        assert wait_for(again.announced, 120), again.lines
        listed = _get_json(again.port, "/api/recordings")
        assert listed["trials"] == [body["out"]] and listed["recording"] is None
    finally:
        code, err = again.stop()
    assert code == 0, err
