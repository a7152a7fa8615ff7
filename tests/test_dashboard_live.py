"""The live page in a real browser (Debian's chromium via dash_duo) on the simulated rig: filtered forces,
each plate's load, the left/right share and the live reps."""

from __future__ import annotations

import re
import time

import pytest
from selenium.common.exceptions import StaleElementReferenceException

from steplab.acquisition.device import SimulatedStepBox
from steplab.acquisition.rig import default_rig
from steplab.dashboard.app import create_app
from steplab.dashboard.live_feed import LiveFeed

pytestmark = pytest.mark.browser


@pytest.fixture
def live():
    rig = default_rig()
    src = LiveFeed(SimulatedStepBox(rig, scenario="quiet", seed=1), rig)
    src.start()
    yield src
    src.stop()


def _newtons(text: str) -> float:
    m = re.fullmatch(r"(-?\d+) N", text.strip())
    assert m, text
    return float(m.group(1))


def test_live_page_shows_the_three_plate_forces(dash_duo, live):
    assert live.wait_for_samples(500, 10)
    app = create_app(live, interval_ms=200)
    dash_duo.start_server(app)
    dash_duo.wait_for_contains_text("#live-status", "Hz", timeout=15)
    # the virtual subject stands quietly on the box: the box carries (about) body weight
    dash_duo.wait_for_element("#plate-box-n", timeout=10)
    deadline = time.time() + 15
    box = None
    while time.time() < deadline:
        text = dash_duo.find_element("#plate-box-n").text
        if text.endswith(" N"):
            box = _newtons(text)
            break
        time.sleep(0.2)
    assert box is not None, "the box force never appeared"
    assert 400 < box < 1000  # 70 kg subject ≈ 687 N, nominal gains (untared): within ~±25 %
    script = ("const gd = document.querySelector('#live-forces .js-plotly-plot');"
              "return (gd && gd._fullData) ? gd._fullData.map(t => [t.name, (t.y && t.y.length) || 0]) : null;")
    traces = None
    deadline = time.time() + 15
    while time.time() < deadline:
        traces = dash_duo.driver.execute_script(script)
        if traces and all(n > 10 for _, n in traces):
            break
        time.sleep(0.2)
    assert traces, "the live graph never rendered"
    names = [t[0] for t in traces]
    assert names == ["box", "floor_left", "floor_right"]
    assert "filtered" in dash_duo.driver.execute_script(
        "return document.querySelector('#live-forces .js-plotly-plot').layout.yaxis.title.text;")
    assert all(n > 10 for _, n in traces)
    # the unloaded floor plates are re-tared automatically once steady: they read zero
    deadline = time.time() + 15
    floors = None
    while time.time() < deadline:
        floors = [dash_duo.find_element(f"#plate-{p}-n").text for p in ("floor_left", "floor_right")]
        if all(t.endswith(" N") and abs(_newtons(t)) <= 3 for t in floors):
            break
        time.sleep(0.3)
    assert all(abs(_newtons(t)) <= 3 for t in floors), floors
    assert live.retares >= 1
    status = dash_duo.find_element("#live-status").text
    assert "1000 Hz" in status and "0 lost" in status
    # the subject stands on the box: the floor carries nothing, so there is no left/right share to show
    assert dash_duo.find_element("#live-share").text == "—"
    assert dash_duo.find_element("#live-reps").text == "no reps yet"
    dash_duo.wait_for_contains_text("#live-phase", "analysis:", timeout=10)
    assert dash_duo.get_logs() == [] or all(entry["level"] != "SEVERE" for entry in dash_duo.get_logs())


def test_live_page_says_when_the_device_does_not_fit_the_rig(dash_duo):
    from steplab.acquisition.rig import split_box_rig

    src = LiveFeed(SimulatedStepBox(split_box_rig(), scenario="quiet", seed=1), default_rig())
    src.start()
    try:
        app = create_app(src, interval_ms=200)
        dash_duo.start_server(app)
        dash_duo.wait_for_contains_text("#live-status", "device streams 16 channels, the rig has 12", timeout=15)
        assert dash_duo.find_element("#plate-box-n").text == "—"  # nothing plausible-looking is shown
    finally:
        src.stop()


def test_live_page_shows_the_left_right_share_and_live_reps(dash_duo):
    """A squatting subject: both floor plates loaded (a share near 50 %), reps detected live."""
    rig = default_rig()
    src = LiveFeed(SimulatedStepBox(rig, scenario="squat", seed=2), rig, protocol="squat")
    src.start()
    try:
        app = create_app(src, interval_ms=200)
        dash_duo.start_server(app)
        deadline = time.time() + 30
        share = None
        while time.time() < deadline:
            m = re.fullmatch(r"(\d+) % / (\d+) %", dash_duo.find_element("#live-share").text.strip())
            if m:
                share = (int(m.group(1)), int(m.group(2)))
                break
            time.sleep(0.3)
        assert share is not None, "the left/right share never appeared"
        assert share[0] + share[1] == 100 and 20 <= share[0] <= 80
        snap = src.snapshot()
        assert snap.left_share_pct is not None
        assert abs(round(snap.left_share_pct) - share[0]) <= 10  # the page shows the feed's value (it moves)
        if not src.reps:  # reps are slow to come in real time; what the page shows is what the feed found
            assert dash_duo.find_element("#live-reps").text == "no reps yet"
        else:
            dash_duo.wait_for_element("#live-reps-table", timeout=10)
    finally:
        src.stop()


def test_live_page_lists_the_reps_detected_live_with_their_headline_metrics(dash_duo):
    """Step-downs (the simulated rig fast-forwarded 4x): each rep appears in the table as the feed reports it."""
    import dataclasses

    import numpy as np

    from steplab.acquisition.sim_rig import SimulatedRigModel
    from steplab.acquisition.sim_subject import Subject
    from steplab.calibration.arrays import nominal_calibration

    rig = default_rig()
    empty = SimulatedRigModel(rig, Subject(), scenario="empty", seed=0).read_counts(2000).mean(axis=0)
    cal = nominal_calibration(rig)
    offsets = np.array(cal.offsets_counts, dtype=np.float64)
    for p in range(cal.n_plates):
        used = cal.channel_index[p] >= 0
        offsets[p, used] = empty[cal.channel_index[p, used]]
    box = SimulatedStepBox(rig, scenario="step-down", seed=5)
    box.engine.time_scale = 4.0
    src = LiveFeed(box, rig, calibration=dataclasses.replace(cal, offsets_counts=offsets), auto_tare=False)
    src.start()
    try:
        app = create_app(src, interval_ms=200)
        dash_duo.start_server(app)
        dash_duo.wait_for_element("#live-reps-table", timeout=90)
        deadline = time.time() + 15
        rows = []
        while time.time() < deadline:
            try:  # the table re-renders every update: a row found may be gone when it is read
                rows = [r.text for r in dash_duo.find_elements("#live-reps-table tbody tr")]
            except StaleElementReferenceException:
                rows = []
            if rows:
                break
            time.sleep(0.2)
        assert rows, "no rep row"
        first = src.reps[0]
        newest_first = rows[-1]  # the table lists the newest rep first: the last row is rep 1
        assert newest_first.split()[0] == "1" and newest_first.split()[1] == first.lead
        shown = newest_first.split()[2:]
        assert len(shown) == len(first.headline) >= 3
        for text, value in zip(shown, first.headline.values()):
            if value is None:
                assert text == "—"
            else:  # three significant digits on the page
                assert float(text) == pytest.approx(value, rel=6e-3, abs=1e-12)
        assert "analysis: " in dash_duo.find_element("#live-phase").text
        assert "body weight" in dash_duo.find_element("#live-phase").text
    finally:
        src.stop()
