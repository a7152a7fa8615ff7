"""The session page's server side without a browser: `steplab run`'s simulated rig starts calibrated, the live
frame endpoint behind the login, a visit run through SessionControl into the records, and the live path losing
no sample while web clients hammer, stall and die."""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time

import numpy as np
import pytest
import requests
from helpers import CLINICIAN, wait_for

from steplab.acquisition.device import SimulatedStepBox
from steplab.acquisition.rig import default_rig
from steplab.acquisition.trial_file import read_trial
from steplab.calibration.records import list_records
from steplab.dashboard.app import create_app
from steplab.dashboard.context import DashContext
from steplab.dashboard.live_feed import LiveFeed
from steplab.dashboard.session_control import control_for
from steplab.records.audit import entries
from steplab.records.patients import add_patient
from steplab.records.session_trials import visit_brief, visit_trials

G = 9.80665


def test_steplab_runs_simulated_rig_starts_calibrated_and_a_first_look_shows_true_forces(data_dir, capsys):
    """No calibration yet: build_live runs the robot's calibration once, saves it, and the box reads the truth."""
    from steplab.cmd_run import build_live

    assert list_records(data_dir / "calibrations")[0] == []
    live = build_live("sim:quiet", None, seed=3)
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if "calibrat" in ln]
    assert len(lines) == 1 and "the simulated rig had no calibration: calibrated it by its robot" in lines[0]
    records, bad = list_records(data_dir / "calibrations")
    assert len(records) == 1 and not bad and records[0].calibration_id in lines[0]
    live.start()
    try:
        assert live.calibrated and live.calibration.calibration_id == records[0].calibration_id
        assert live.wait_for_samples(3000, 30)
        time.sleep(0.5)
        snap = live.snapshot()
        truth = live.device.model.truth
        true_box = float(np.mean(truth.fz("box")[-1000:]))
        assert true_box == pytest.approx(70 * G, rel=0.02)  # the simulator's subject stands on the box
        # the first look: the box reads the true load within 1 % (nominal gains read ~100 N high)
        assert snap.load_n["box"] == pytest.approx(true_box, abs=0.01 * true_box)
        for floor in ("floor_left", "floor_right"):
            assert abs(snap.load_n[floor]) < 5.0
        # (the loaded box is never re-tared automatically: its true reading comes from the calibration alone)
    finally:
        live.stop()
        live.close()
    # a later start reuses the record: nothing is calibrated again, nothing printed about it
    again = build_live("sim:quiet", None, seed=3)
    assert "calibrat" not in capsys.readouterr().out
    assert len(list_records(data_dir / "calibrations")[0]) == 1
    again.close()


def _serve(app):
    """The dashboard on waitress as `steplab run` serves it (bounded threads and connections); (server, url)."""
    from steplab.cmd_run import bind_server

    server = bind_server(app.server, "127.0.0.1", 0)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.run, name="test-waitress", daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{port}"


def _shut(server, thread) -> None:
    """Stop waitress cleanly: its workers first, then every socket closed by its own loop thread (so the loop
    never polls a closed descriptor), which then ends."""
    from waitress import wasyncore

    server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
    server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
    thread.join(10)
    assert not thread.is_alive(), "waitress did not stop"


def _login(url: str) -> requests.Session:
    s = requests.Session()
    page = s.get(url + "/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = s.post(url + "/login", data={"csrf_token": token, "name": CLINICIAN[0], "password": CLINICIAN[1],
                                     "next": "/"}, timeout=10, allow_redirects=False)
    assert r.status_code == 302, r.text
    return s


@pytest.fixture
def quiet_live():
    from steplab.calibration.robot import run_auto_calibration

    rig = default_rig()
    cal = run_auto_calibration(rig=rig, seed=0).record
    from steplab.calibration.records import arrays_for_rig

    box = SimulatedStepBox(rig, scenario="quiet", seed=4)
    live = LiveFeed(box, rig, calibration=arrays_for_rig(rig, [cal]))
    live.start()
    yield live
    live.stop()
    live.close()


def test_the_live_frame_endpoint_is_behind_the_login_get_only_and_incremental(dashboard_db, quiet_live):
    live = quiet_live
    server, thread, url = _serve(create_app(DashContext(db=dashboard_db, live=live)))
    try:
        r = requests.get(url + "/api/live/frame", timeout=10)
        assert r.status_code == 401 and r.json()["error"] == "login required"
        s = _login(url)
        assert s.post(url + "/api/live/frame", timeout=10).status_code in (400, 405)  # GET only
        assert s.get(url + "/api/live/frame?after=x", timeout=10).status_code == 400
        assert live.wait_for_samples(2000, 20)
        first = s.get(url + "/api/live/frame", timeout=10).json()
        assert first["reset"] and first["names"] == ["box", "floor_left", "floor_right"]
        assert first["calibrated"] and first["rate_hz"] == 1000.0 and first["block_samples"] == 10
        n = len(first["fz"][0])
        assert n == first["last_block"] - first["first_block"] + 1 and 100 < n <= 1000
        assert first["rep_count"] == len(first["reps"])
        time.sleep(0.3)
        nxt = s.get(url + "/api/live/frame", params={"after": first["last_block"], "gen": first["generation"],
                                                     "reps": first["rep_count"]}, timeout=10).json()
        assert not nxt["reset"] and nxt["first_block"] == first["last_block"] + 1  # only the new blocks
        assert 0 < len(nxt["fz"][0]) < n and "reps" not in nxt  # the reps come only when their number changed
        assert nxt["arrival_ms"] >= first["arrival_ms"]
        # the new blocks are the feed's own display values (rounded to 0.1 N)
        snap = live.snapshot()
        blocks = np.round(snap.time_s * 1000 / 10 - 0.9).astype(int)
        at = {int(b): v for b, v in zip(blocks, snap.fz_n["box"])}
        for k, v in enumerate(nxt["fz"][0]):
            b = nxt["first_block"] + k
            if b in at:
                assert v == pytest.approx(at[b], abs=0.051)
        stale = s.get(url + "/api/live/frame", params={"after": first["last_block"], "gen": first["generation"] + 7},
                      timeout=10).json()
        assert stale["reset"]  # another timeline: the whole window again
    finally:
        _shut(server, thread)


def test_the_live_poll_of_an_open_session_page_does_not_keep_an_idle_session_alive(dashboard_db, quiet_live):
    from steplab.dashboard.context import DashboardSettings

    settings = DashboardSettings(session_idle_minutes=1.5 / 60)
    server, thread, url = _serve(create_app(DashContext(db=dashboard_db, live=quiet_live, settings=settings)))
    try:
        s = _login(url)
        assert s.get(url + "/api/live/frame", timeout=10).status_code == 200
        # polled every 0.2 s (as the page's script does, faster), yet nobody is at the screen: the session ends
        assert wait_for(lambda: s.get(url + "/api/live/frame", timeout=10).status_code == 401, 60, 0.2)
        assert s.get(url + "/patients", timeout=10, allow_redirects=False).status_code == 302
    finally:
        _shut(server, thread)


def test_a_visit_runs_through_the_session_control_into_the_records(dashboard_db, quiet_live):
    """Start a visit, weigh in (quiet standing: ~70 kg), record a trial: it is saved into the visit with the
    clinician as actor, analysed with the weighed body mass; scores are saved to that trial."""
    live = quiet_live
    add_patient(dashboard_db, "P-7")
    ctx = DashContext(db=dashboard_db, live=live)
    control = control_for(ctx)
    assert control_for(ctx) is control
    vid = control.start_visit("P-7", ["squat", "balance"], None)
    assert visit_brief(dashboard_db, vid)["battery"] == ["squat", "balance"]
    assert wait_for(lambda: live.samples > 4000, 30)
    w = live.weigh_in()
    assert w.mass_kg == pytest.approx(70.0, rel=0.01)  # the simulator's subject: 70 kg
    control.save_body_mass(w.mass_kg, "clin")
    assert visit_brief(dashboard_db, vid)["body_mass_kg"] == pytest.approx(w.mass_kg, abs=0.01)
    out = control.record("balance", "left", 2.0, "clin")
    assert wait_for(lambda: control.last_trial_id is not None or "could not" in control.message, 60), control.message
    assert control.wait_saved(60)
    rows = visit_trials(dashboard_db, vid)
    assert len(rows) == 1 and rows[0]["protocol"] == "balance" and rows[0]["lead"] == "left"
    assert rows[0]["lost_samples"] == 0 and rows[0]["id"] == control.last_trial_id
    assert control.message.startswith(f"saved trial {rows[0]['id']}: balance")
    assert read_trial(out).sample_index.size == 2000
    control.save_scores(4.0, 5, "clin")
    rows = visit_trials(dashboard_db, vid)
    assert rows[0]["pain_during"] == 4.0 and rows[0]["quality_score"] == 5
    with dashboard_db.read() as s:
        acts = {(e.action, e.actor, e.subject) for e in entries(s)}
        from steplab.records.trials import latest_result

        res = latest_result(s, rows[0]["id"])
        assert res is not None
        assert res.body_mass_kg == pytest.approx(w.mass_kg, abs=0.01)  # the weigh-in's mass, not a re-weighing
        assert res.provenance["body_weight_source"] == "body_mass_kg"
    assert ("visit-body-mass", "clin", f"visit {vid}") in acts
    assert ("trial-recorded", "clin", f"visit {vid}") in acts
    assert ("scores", "clin", f"trial {rows[0]['id']}") in acts


def _stalled_client(url: str, cookie: str) -> socket.socket:
    """A client that asks for frames and never reads the answers (a frozen browser tab)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    req = (f"GET /api/live/frame HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n").encode()
    sock.sendall(req * 50)  # pipelined: the answers pile up unread
    return sock


def _killed_client(url: str, cookie: str) -> None:
    """A client that sends a request and dies mid-stream (the connection reset, not closed)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(f"GET /api/live/frame HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n".encode())
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_the_live_path_loses_no_sample_while_clients_hammer_stall_and_die(dashboard_db, tmp_path):
    rig = default_rig()
    box = SimulatedStepBox(rig, scenario="step-down", seed=8)
    box.engine.time_scale = 2.0  # 2000 samples/s through the whole path
    live = LiveFeed(box, rig)
    live.start()
    server, thread, url = _serve(create_app(DashContext(db=dashboard_db, live=live)))
    stop = threading.Event()
    answered = [0]
    errors: list[str] = []
    stalled: list[socket.socket] = []
    hammers: list[threading.Thread] = []
    try:
        s = _login(url)
        cookie = "; ".join(f"{k}={v}" for k, v in s.cookies.items())

        def hammer() -> None:
            h = requests.Session()
            h.cookies.update(s.cookies)
            while not stop.is_set():
                try:
                    r = h.get(url + "/api/live/frame", timeout=10)  # the whole window every time
                    if r.status_code == 200:
                        answered[0] += 1
                    else:
                        errors.append(f"{r.status_code}")
                except requests.RequestException as exc:
                    errors.append(type(exc).__name__)

        hammers.extend(threading.Thread(target=hammer, daemon=True) for _ in range(6))
        for h in hammers:
            h.start()
        stalled.extend(_stalled_client(url, cookie) for _ in range(8))
        assert live.wait_for_samples(1000, 30)
        saved: list[tuple] = []
        out = live.start_recording(10.0, tmp_path / "trials", on_saved=lambda p, t, summ: saved.append((p, summ)))
        deadline = time.monotonic() + 60
        while not saved and time.monotonic() < deadline:
            _killed_client(url, cookie)  # browsers dying mid-stream all along the recording
            time.sleep(0.05)
        assert saved, "the recording never finished"
        answered_during = answered[0]
    finally:
        stop.set()
        for h in hammers:
            h.join(15)
        for sock in stalled:
            sock.close()
        _shut(server, thread)
        live.stop()
        live.close()
    path, summary = saved[0]
    assert path == out
    trial = read_trial(out)
    # every sample the simulator sent for those 10 s is in the trial, in order, none lost or dropped
    assert summary["lost_samples"] == 0 and trial.quality["lost_samples"] == 0 and trial.quality["gaps"] == []
    np.testing.assert_array_equal(trial.sample_index, np.arange(10_000))
    assert live.session.stats.queue_dropped_samples == 0
    assert box.engine.overruns == 0  # the device never had to drop a sample either
    assert answered_during > 20, f"the hammering clients were not served ({answered_during}; {errors[:5]})"
    json.dumps(live.frame())  # the feed still answers after all that
