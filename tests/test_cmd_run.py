"""`steplab run` as a process: a busy port, SIGTERM, a flood of local connections that costs no sample,
the first start's admin account, logins over HTTP, and the refusal of a reachable address."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
from conftest import steplab_cmd, wait_for
from helpers import WebClient, one_line_error, run_steplab

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ADMIN_PASSWORD = "the-admins-own-1"  # what the tests choose after the first start's one-time password


class Dashboard:
    """`steplab run` on the simulated rig; its stdout is read by a thread (never a blocking read here)."""

    def __init__(self, port: int, *extra: str) -> None:
        self.port = port
        self.proc = subprocess.Popen(steplab_cmd("run", "--port", str(port), *extra), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.client = WebClient(self.url)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def announced(self) -> bool:
        return any("log in at" in ln for ln in self.lines)  # printed right after "dashboard on"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def one_time_password(self) -> str | None:
        found = [m.group(1) for ln in self.lines if (m := re.search(r"one-time password: (\S+)", ln))]
        assert len(found) <= 1, self.lines
        return found[0] if found else None

    def first_login(self, new_password: str = ADMIN_PASSWORD) -> WebClient:
        """Log in as the first start's admin with the printed one-time password, then choose ``new_password``."""
        assert wait_for(self.announced, 120), self.lines
        one_time = self.one_time_password()
        assert one_time, self.lines
        self.client = WebClient(self.url)
        r = self.client.login("admin", one_time)
        assert r.status == 302 and r.location.startswith("/account/password"), (r.status, r.location)
        r = self.client.change_password(one_time, new_password)
        assert r.status == 302 and r.location == "/", (r.status, r.text[:300])
        return self.client

    def live(self) -> dict:
        r = self.client.get("/api/live")
        assert r.status == 200, (r.status, r.text[:200])
        return r.json()

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
        dash.first_login()
        assert wait_for(lambda: dash.live()["samples"] > 500, 20)
    finally:
        code, err = dash.stop()
    assert code == 0, err
    assert any("dashboard stopped" in ln for ln in dash.lines)


def test_a_flood_of_half_open_local_connections_loses_no_sample():
    dash = Dashboard(_free_port())
    socks: list[socket.socket] = []
    try:
        dash.first_login()
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


def _post_json(client: WebClient, path: str, body: dict) -> tuple[int, dict]:
    r = client.request("POST", path, body=body, csrf=True)
    return r.status, r.json()


def _get_json(client: WebClient, path: str) -> dict:
    r = client.get(path)
    assert r.status == 200, (path, r.status, r.text[:200])
    return r.json()


def test_sigterm_saves_the_recording_in_progress_and_a_restart_finds_it(data_dir):
    from steplab.acquisition.trial_file import read_trial

    dash = Dashboard(_free_port())
    try:
        client = dash.first_login()
        status, body = _post_json(client, "/api/recordings", {"seconds": 60})
        assert status == 201, body
        assert _post_json(client, "/api/recordings", {"seconds": 60})[0] == 409  # one at a time
        assert _post_json(client, "/api/recordings", {"seconds": -1})[0] == 400
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
        client.base = again.url  # the same session: the key that signs it is kept in STEPLAB_DATA_DIR
        listed = _get_json(client, "/api/recordings")
        assert listed["trials"] == [body["out"]] and listed["recording"] is None
    finally:
        code, err = again.stop()
    assert code == 0, err


def test_the_first_start_explains_the_admin_account_and_the_login_works_over_http(tmp_path):
    url = f"sqlite:///{tmp_path / 'clinic.sqlite'}"
    dash = Dashboard(_free_port(), "--db", url)
    try:
        assert wait_for(dash.announced, 120), dash.lines
        text = "".join(dash.lines)
        assert text.index("dashboard on") < text.index(f"log in at {dash.url}/login") < text.index("user name: admin")
        assert "choose your own password" in text
        one_time = dash.one_time_password()
        anonymous = WebClient(dash.url)
        assert anonymous.get("/").location.startswith("/login")  # the dashboard opens on the login page
        assert "First start: log in as admin with the one-time password shown in the terminal" in \
            anonymous.get("/login").text
        assert anonymous.get("/api/live").status == 401
        r = anonymous.request("POST", "/api/recordings", body={"seconds": 2}, csrf=True)
        assert r.status == 401
        c = dash.first_login("a-new-admin-pass")
        page = c.get("/")
        assert page.status == 200 and "_dash-config" in page.text  # the Dash page itself
        assert c.get("/_dash-layout").status == 200 and c.get("/api/live").status == 200
        assert c.get("/patients?search=Jane+Doe-Smith").status == 200 and anonymous.get("/?q=Jane+Doe-Smith").status == 302
        assert WebClient(dash.url).login("admin", one_time).status == 401  # the one-time password is spent
        assert "First start" not in WebClient(dash.url).get("/login").text
    finally:
        code, err = dash.stop()
    assert code == 0, err
    everything = "".join(dash.lines) + err
    assert "a-new-admin-pass" not in everything  # no access log, no password anywhere in the output
    assert "Doe-Smith" not in everything
    again = Dashboard(_free_port(), "--db", url)
    try:
        assert wait_for(again.announced, 120), again.lines
        assert again.one_time_password() is None and not any("user name:" in ln for ln in again.lines)
        assert any(f"log in at {again.url}/login" in ln for ln in again.lines)
        assert WebClient(again.url).login("admin", "a-new-admin-pass").location == "/"
    finally:
        code, err = again.stop()
    assert code == 0, err
    from steplab.records.audit import entries, entry_dict
    from steplab.records.db import open_database

    db = open_database(url)
    try:
        with db.read() as s:
            log = json.dumps([entry_dict(e) for e in entries(s)])
    finally:
        db.dispose()
    assert '"first_run": true' in log and '"action": "user-password-change"' in log
    assert one_time not in log and "a-new-admin-pass" not in log


@pytest.mark.parametrize("host", ["192.0.2.7", "0.0.0.0", "::"])
def test_a_host_other_computers_can_reach_is_refused_without_allow_remote(host):
    r = run_steplab("run", "--host", host, "--port", str(_free_port()))
    line = one_line_error(r)
    assert "--allow-remote" in line and host in line and "dashboard on" not in r.stdout


def test_allow_remote_warns_that_other_computers_can_reach_the_login():
    r = run_steplab("run", "--host", "0.0.0.0", "--allow-remote", "--device", "/dev/steplab-no-such-port",
                    "--port", str(_free_port()))  # fails at the device, after the warning, before listening
    assert r.returncode != 0 and "Traceback" not in r.stderr
    warning = [ln for ln in r.stderr.splitlines() if "warning" in ln]
    assert len(warning) == 1 and "other computers" in warning[0] and "login" in warning[0]
    assert "no login yet" not in r.stderr


def test_user_reset_password_prints_a_new_one_time_password(tmp_path):
    url = f"sqlite:///{tmp_path / 'clinic.sqlite'}"
    assert run_steplab("user", "add", "boss", "--role", "admin", "--db", url, input="boss-pass-123\n").returncode == 0
    r = run_steplab("user", "reset-password", "boss", "--db", url, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    from steplab.records.db import open_database
    from steplab.records.users import get_user, verify

    db = open_database(url)
    try:
        assert verify(db, "boss", "boss-pass-123", audit=False) is None
        assert verify(db, "boss", out["one_time_password"], audit=False)["must_change_password"] is True
        assert get_user(db, "boss")["must_change_password"] is True
    finally:
        db.dispose()
    assert "no user 'nobody'" in one_line_error(run_steplab("user", "reset-password", "nobody", "--db", url))


def test_the_login_lines_say_where_to_log_in_and_how_to_recover_a_lost_one_time_password():
    from steplab.cmd_run import login_lines

    first = login_lines("http://127.0.0.1:8050/", "abcd-efgh-jkmn", [])
    assert first[1:4] == ["steplab:   log in at http://127.0.0.1:8050/login", "steplab:   user name: admin",
                          "steplab:   one-time password: abcd-efgh-jkmn"]
    admin = {"name": "admin", "role": "admin", "active": True, "must_change_password": False}
    assert login_lines("http://h:1/", None, [admin]) == ["steplab: log in at http://h:1/login"]
    pending = login_lines("http://h:1/", None, [admin | {"must_change_password": True}])
    assert len(pending) == 2 and "steplab user reset-password admin" in pending[1]
