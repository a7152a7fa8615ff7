"""The session (live) page in a real browser (Debian's chromium via dash_duo) on the simulated rig, logged in:
a visit started, tare and weigh-in answered, a trial recorded into the visit with its reps, scores saved,
and the live view drawing the forces, the load bar, the quality line and the live reps."""

from __future__ import annotations

import re
import time

import pytest
from helpers import browser_login, screenshot
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.keys import Keys

from steplab.acquisition.device import SimulatedStepBox
from steplab.acquisition.rig import default_rig, split_box_rig
from steplab.dashboard.app import create_app
from steplab.dashboard.context import DashContext
from steplab.dashboard.live_feed import LiveFeed
from steplab.records.patients import add_patient
from steplab.records.session_trials import visit_trials

pytestmark = pytest.mark.browser


def _text(dash_duo, selector: str) -> str:
    """The element's text, read again when it is re-rendered while being read."""
    for _ in range(20):
        try:
            return dash_duo.find_element(selector).text
        except StaleElementReferenceException:
            time.sleep(0.1)
    return ""


def _wait_text(dash_duo, selector: str, pattern: str, timeout_s: float = 30.0) -> str:
    deadline = time.time() + timeout_s
    text = ""
    while time.time() < deadline:
        text = _text(dash_duo, selector)
        if re.search(pattern, text):
            return text
        time.sleep(0.2)
    raise AssertionError(f"{selector} never matched {pattern!r}: {text!r}")


def _stamp(dash_duo) -> tuple[int, float | None]:
    frame, arrival = dash_duo.driver.execute_script(
        "const s = document.getElementById('live-frame-stamp');"
        "return s ? [s.getAttribute('data-frame'), s.getAttribute('data-arrival-ms')] : [null, null];")
    return int(frame or 0), float(arrival) if arrival else None


@pytest.fixture
def live_sim(data_dir):
    """`steplab run`'s live source on the simulated step-downs (calibrated by its robot on first use),
    fast-forwarded 4x so a short recording holds several reps."""
    from steplab.cmd_run import build_live

    live = build_live("sim:step-down", None, seed=5)
    live.device.engine.time_scale = 4.0
    live.start()
    yield live
    live.stop()
    live.close()


def test_a_visit_is_run_on_the_session_page_with_the_live_view(dash_duo, dashboard_db, live_sim):
    from steplab.dashboard.session_control import control_for

    live = live_sim
    add_patient(dashboard_db, "P-0042", involved="left")
    ctx = DashContext(db=dashboard_db, live=live)
    app = create_app(ctx)
    dash_duo.start_server(app, navigate=False)
    browser_login(dash_duo, dash_duo.server.url, next_path="/session?patient=P-0042")
    dash_duo.wait_for_element("#session-page", timeout=20)
    # the live view runs: readouts, the quality line and frames drawn by live.js
    _wait_text(dash_duo, "#live-status", r"connected · sim:step-down · 1000 Hz .* calibrated")
    _wait_text(dash_duo, "#live-quality", r"^0 lost samples · 0 CRC errors · 0 saturated frames")
    _wait_text(dash_duo, "#plate-box-n", r"^-?\d+ N$")
    assert "P-0042" in _text(dash_duo, "#session-patient")  # ?patient= preselects
    frame0, _ = _stamp(dash_duo)
    deadline = time.time() + 20
    while time.time() < deadline and _stamp(dash_duo)[0] < frame0 + 20:
        time.sleep(0.2)
    frame1, arrival_ms = _stamp(dash_duo)
    assert frame1 >= frame0 + 20, "live.js does not draw new frames"
    assert arrival_ms is not None and abs(arrival_ms / 1000 - time.time()) < 60  # a host wall-clock time
    # the canvas shows exactly the feed's display values, block by block, over the 10 s window at most
    def read_drawn():
        return dash_duo.driver.execute_script(
            "const T = window.steplabLiveState.traces;"
            "return {names: T.names, blocks: T.blocks, y: T.y,"
            " points: document.getElementById('live-forces-canvas').getAttribute('data-points')};")

    drawn = read_drawn()
    deadline = time.time() + 15
    while int(drawn["points"]) != len(drawn["blocks"]) and time.time() < deadline:
        time.sleep(0.05)  # a frame fetched but not yet painted (a busy machine): read when both agree
        drawn = read_drawn()
    assert drawn["names"] == ["box", "floor_left", "floor_right"]
    assert 50 < len(drawn["blocks"]) <= 1000 and int(drawn["points"]) == len(drawn["blocks"])
    snap = live.snapshot()
    at = {int(round(t * 100 - 0.9)): k for k, t in enumerate(snap.time_s)}  # block number → index (10 samples)
    common = [(i, at[b]) for i, b in enumerate(drawn["blocks"]) if b in at]
    assert len(common) > 20
    for p, name in enumerate(drawn["names"]):
        for i, k in common:
            got, want = drawn["y"][p][i], snap.fz_n[name][k]
            assert (got is None) if want != want else got == pytest.approx(want, abs=0.051)
    lo = min(v for row in drawn["y"] for v in row if v is not None)
    hi = max(v for row in drawn["y"] for v in row if v is not None)
    y_range = dash_duo.driver.execute_script("return window.steplabLiveState.traces.yr;")
    assert y_range[0] <= min(lo, 0) and hi <= y_range[1] <= 3000  # the force axis covers the forces drawn
    assert [e.text for e in dash_duo.find_elements(".forces-legend .legend-item")] == ["box", "floor left",
                                                                                     "floor right"]
    # start the visit (battery defaults), then tare (someone is on the box: refused) and weigh
    dash_duo.find_element("#session-start-visit").click()
    visit_text = _wait_text(dash_duo, "#session-visit", r"Visit \d+ of P-0042")
    visit_id = int(re.search(r"Visit (\d+)", visit_text).group(1))
    assert dash_duo.find_element("#session-visit a").get_attribute("href").endswith(f"/visits/{visit_id}")
    dash_duo.find_element("#session-tare").click()
    tare = _wait_text(dash_duo, "#session-tare-message", r"\S")
    assert tare.startswith(("Tared", "Not tared:"))
    dash_duo.find_element("#session-weigh").click()
    weight = _wait_text(dash_duo, "#session-weight", r"\S")
    assert re.match(r"(\d+\.\d kg \(\d+ N, sway .* SD over 2.5 s\), stored in visit \d+\.|Not weighed: .+)$",
                    weight), weight
    # the target band follows the slider (its number boxes), and the bar is coloured against it
    handle = dash_duo.find_element("#session-target-band [role=slider]")  # the lower handle, by keyboard
    for _ in range(5):
        handle.send_keys(Keys.ARROW_LEFT)
    deadline = time.time() + 15
    while time.time() < deadline and "left: 40%" not in (dash_duo.find_element("#live-loadbar-band")
                                                         .get_attribute("style") or ""):
        time.sleep(0.2)
    assert "left: 40%" in dash_duo.find_element("#live-loadbar-band").get_attribute("style")
    assert dash_duo.driver.execute_script("return window.steplabLiveState.band;") == [40, 55]
    # record 20 s of step-downs leading left (5 s of wall time at 4x)
    seconds = dash_duo.find_element("#session-seconds")
    seconds.clear()
    seconds.send_keys("20")
    dash_duo.find_element("#session-record").click()
    _wait_text(dash_duo, "#session-recording-status", r"recording 20 s of step-down leading left|saved trial")
    _wait_text(dash_duo, "#session-recording-status", r"saved trial \d+: step-down, \d+ reps, 0 lost samples", 120)
    rows = visit_trials(dashboard_db, visit_id)
    assert len(rows) == 1 and rows[0]["protocol"] == "step-down" and rows[0]["lead"] == "left"
    assert rows[0]["lost_samples"] == 0
    dash_duo.wait_for_element("#session-trials tr.session-trial-row", timeout=20)
    link = dash_duo.find_element("#session-trials tr.session-trial-row a").get_attribute("href")
    assert link.endswith(f"/trials/{rows[0]['id']}")
    assert control_for(ctx).wait_saved(30)
    # pain and movement quality of the last trial
    dash_duo.find_element("#session-pain").send_keys("3")
    dash_duo.find_element("#session-quality").send_keys("2")
    dash_duo.find_element("#session-save-scores").click()
    _wait_text(dash_duo, "#session-scores-message", rf"Scores saved for trial {rows[0]['id']}\.")
    rows = visit_trials(dashboard_db, visit_id)
    assert rows[0]["pain_during"] == 3.0 and rows[0]["quality_score"] == 2
    # live reps of the trial stay on screen with their headline metrics; the count matches the feed
    _wait_text(dash_duo, "#live-rep-count", r"^[1-9]\d* reps?$", 60)
    dash_duo.wait_for_element("#live-reps-table tr.live-rep", timeout=20)
    n_shown = int(_text(dash_duo, "#live-rep-count").split()[0])
    assert n_shown <= len(live.reps)
    header = _text(dash_duo, "#live-reps-table thead")
    assert "landing peak force (BW)" in header and "time to stabilization (s)" in header
    lo, hi, y_range = dash_duo.driver.execute_script(
        "const T = window.steplabLiveState.traces; const v = T.y.flat().filter(x => x !== null);"
        "return [Math.min(...v), Math.max(...v), T.yr];")
    assert y_range[0] <= lo and hi <= y_range[1] <= 3000, (lo, hi, y_range)  # fits, never blown up frame by frame
    bar = dash_duo.find_element("#live-loadbar").get_attribute("class")
    assert bar.split()[-1] in ("in-band", "out-of-band", "no-load")
    dash_duo.driver.set_window_size(1600, 1400)
    dash_duo.driver.execute_script("window.scrollTo(0, 0);")
    time.sleep(1.0)  # a few frames at the new size
    screenshot(dash_duo, "live-session")
    logs = [e for e in dash_duo.get_logs() or [] if e["level"] == "SEVERE"]
    assert not logs, logs


def test_the_session_page_says_when_the_device_does_not_fit_the_rig(dash_duo, dashboard_db):
    src = LiveFeed(SimulatedStepBox(split_box_rig(), scenario="quiet", seed=1), default_rig())
    src.start()
    try:
        app = create_app(DashContext(db=dashboard_db, live=src))
        dash_duo.start_server(app, navigate=False)
        browser_login(dash_duo, dash_duo.server.url, next_path="/session")
        _wait_text(dash_duo, "#live-status", "device streams 16 channels, the rig has 12")
        assert _text(dash_duo, "#plate-box-n") == "—"  # nothing plausible-looking is shown
    finally:
        src.stop()
