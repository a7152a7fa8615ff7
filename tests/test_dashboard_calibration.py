"""The calibration page and its runner (dashboard/calibration_run.py) on the simulated rig.

In a real browser: a clinician calibrates a plate by the simulated rig's robot from the page to the end,
and the report matches the saved record; a robot that misplaces the verification weights is refused and
nothing is saved.  Without a browser: the operator's path (prompt, Continue, a step that stops and is
retried, Stop) on the live feed's own device, and no start during a recording.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from helpers import ADMIN, CLINICIAN, browser_login, screenshot, wait_for

from steplab.acquisition.device import SimulatedStepBox
from steplab.acquisition.frame_decoder import warm_up
from steplab.acquisition.rig import default_rig
from steplab.calibration.active import active_calibration
from steplab.calibration.geometry import plate_geometry
from steplab.calibration.procedure import CalibrationPlan, ProcedureSettings
from steplab.calibration.records import calibrations_dir, list_records
from steplab.calibration.report import VERIFY_COP_RMS_MAX_MM, VERIFY_FZ_MAX_PCT_FS
from steplab.dashboard.app import create_app
from steplab.dashboard.calibration_run import CalibrationBusy, CalibrationRun, default_sim_model
from steplab.dashboard.context import DashContext
from steplab.dashboard.live_feed import LiveFeed
from steplab.dashboard.pages.calibration import FIGURES, RUNNER_KEY, prompt_words
from steplab.records.audit import entries, entry_dict

G = 9.80665  # standard gravity [m/s²]: the test's own truth
RUN_DEADLINE_S = 300.0  # a calibration of one plate by the in-process robot (seconds on an idle machine)


def _calibration_for(rig):
    active = active_calibration(rig)
    return active.arrays if active is not None else None


@pytest.fixture
def sim_live():
    """The dashboard's live feed on the in-process simulated rig, as `steplab run` builds it (rig from the device)."""
    warm_up()
    live = LiveFeed(SimulatedStepBox(seed=1), None, calibration_for=_calibration_for, info_timeout_s=30.0)
    live.start()
    yield live
    live.stop()
    live.close()


def _audit(db) -> list[dict]:
    with db.read() as s:
        return [entry_dict(e) for e in entries(s) if e.action.startswith("calibration")]


def _open_page(dash_duo, app, user=CLINICIAN):
    dash_duo.start_server(app, navigate=False)
    browser_login(dash_duo, dash_duo.server.url, user=user, next_path="/calibration")
    dash_duo.wait_for_element("#calibration-page", timeout=20)


@pytest.mark.browser
def test_a_clinician_calibrates_a_plate_by_the_robot_and_the_report_is_the_saved_record(dash_duo, dashboard_db, sim_live):
    app = create_app(DashContext(db=dashboard_db, live=sim_live))
    _open_page(dash_duo, app)
    assert dash_duo.find_element("#calibration-mode").get_attribute("data-mode") == "robot-sim"
    dash_duo.select_dcc_dropdown("#calibration-plate", value="Plate floor_left")
    dash_duo.find_element("#calibration-start").click()
    dash_duo.wait_for_contains_text("#calibration-message", "started", timeout=20)
    dash_duo.wait_for_contains_text("#calibration-progress", "step", timeout=30)
    dash_duo.wait_for_contains_text("#calibration-result", "Saved as calibration record", timeout=RUN_DEADLINE_S)
    dash_duo.driver.set_window_size(1280, 1100)
    screenshot(dash_duo, "calibration")

    records, bad = list_records(calibrations_dir(), rig=sim_live.rig)
    assert not bad and len(records) == 1
    rec = records[0]
    assert rec.plate_names == ("floor_left",)
    assert dash_duo.find_element("#calibration-saved-id").text == f"Saved as calibration record {rec.calibration_id}."
    assert rec.operator == "sim-robot (clin)"
    verification = rec.plate("floor_left").statistics["verification"]
    for key, _label, digits in FIGURES:
        cell = dash_duo.find_element(f"#calibration-figure-floor_left-{key}")
        shown = float(cell.text)
        assert float(cell.get_attribute("data-value")) == verification[key]  # the page shows the record's figure
        assert abs(shown - verification[key]) <= 0.5 * 10 ** -digits + 1e-12  # rounded as displayed
        assert "figure-ok" in cell.get_attribute("class")
    # the targets of rig.md (verification set): met, and the calibration clearly beats nominal gains
    assert verification["fz_error_pct_fs"] <= VERIFY_FZ_MAX_PCT_FS
    assert verification["cop_rms_mm"] <= VERIFY_COP_RMS_MAX_MM
    nominal = rec.plate("floor_left").statistics["verification_nominal"]
    assert nominal["fz_error_max_n"] > 5 * verification["fz_error_max_n"]
    assert dash_duo.find_element("#calibration-progress-text").text.endswith("step 262 of 262")
    # only one plate of three has a record: the live view says it keeps nominal gains, and it streams again
    assert "keeps nominal gains until every plate" in dash_duo.find_element("#calibration-result").text
    assert sim_live.session.state == "running" and not sim_live.calibrated
    n = sim_live.samples
    assert wait_for(lambda: sim_live.samples > n + 100, 20)
    log = _audit(dashboard_db)
    assert [(e["actor"], e["action"]) for e in log] == [("clin", "calibration-start"), ("clin", "calibration-saved")]
    assert log[1]["detail"]["calibration_id"] == rec.calibration_id


def _misplacing_robot(plate: str, shift_mm: float):
    """A simulated robot that puts the verification weights (masses the fit never sees) ``shift_mm`` off in x."""
    def factory(rig, device):
        model = default_sim_model(rig, device)
        plan = CalibrationPlan.default(plate_geometry(rig, plate))
        verify = set(plan.verify_masses_kg) - set(plan.fit_masses_kg)
        real_place = model.place_mass

        def place(name, x_mm, y_mm, mass_kg):
            return real_place(name, x_mm + (shift_mm if mass_kg in verify else 0.0), y_mm, mass_kg)

        model.place_mass = place
        return model
    return factory


@pytest.mark.browser
def test_a_calibration_that_misses_a_target_is_refused_and_nothing_is_saved(dash_duo, dashboard_db, sim_live):
    app = create_app(DashContext(db=dashboard_db, live=sim_live))
    app.server.extensions[RUNNER_KEY].sim_model_factory = _misplacing_robot("box", 25.0)
    _open_page(dash_duo, app, user=ADMIN)
    dash_duo.select_dcc_dropdown("#calibration-plate", value="Plate box")
    dash_duo.find_element("#calibration-start").click()
    dash_duo.wait_for_contains_text("#calibration-result", "Not saved", timeout=RUN_DEADLINE_S)
    result = dash_duo.find_element("#calibration-result").text
    assert "COP RMS error" in result and "target <= 2.0 mm" in result
    cop = dash_duo.find_element("#calibration-figure-box-cop_rms_mm")
    assert float(cop.text) > VERIFY_COP_RMS_MAX_MM and "figure-missed" in cop.get_attribute("class")
    dash_duo.driver.set_window_size(1280, 1100)
    screenshot(dash_duo, "calibration-refused")
    assert not calibrations_dir().exists() or not list(calibrations_dir().glob("*.json"))
    assert [e["action"] for e in _audit(dashboard_db)] == ["calibration-start", "calibration-refused"]
    assert _audit(dashboard_db)[1]["actor"] == ADMIN[0]
    assert dash_duo.find_element("#calibration-start").is_enabled()  # another try is possible
    assert sim_live.session.state == "running"


# -- the operator's path, without a browser -----------------------------------------------------------
def _wait_state(runner: CalibrationRun, state: str, step: int | None = None, timeout_s: float = 60.0):
    ok = wait_for(lambda: runner.status().state == state and (step is None or runner.status().step == step),
                  timeout_s, 0.02)
    st = runner.status()
    assert ok, f"waited for {state} (step {step}), have {st.state} step {st.step}: {st.message}"
    return st


def test_the_operator_places_weights_and_presses_continue_a_stopped_step_is_retried(data_dir):
    warm_up()
    rig = default_rig()
    device = SimulatedStepBox(rig, scenario="empty", seed=2)
    live = LiveFeed(device, rig, info_timeout_s=30.0)
    live.start()
    events: list[tuple] = []
    settings = dataclasses.replace(ProcedureSettings.fast(), settle_timeout_s=3.0)
    runner = CalibrationRun(live, mode="operator", settings=settings,
                            on_event=lambda *e: events.append(e))
    try:
        with pytest.raises(CalibrationBusy, match="one plate"):
            runner.start("__all__", "clin")
        runner.start("box", "clin")
        st = _wait_state(runner, "waiting", 1)
        assert live.session.state != "running"  # the live feed gave the device up
        assert st.prompt.kind == "warmup" and prompt_words(st) == ("Leave plate box empty, then press Continue: the warm-up and "
                                                             "channel check take 0.5 s")
        with pytest.raises(CalibrationBusy, match="already running"):
            runner.start("box", "someone-else")
        assert runner.confirm()
        st = _wait_state(runner, "waiting", 2)
        assert st.prompt.kind == "tare"
        assert runner.confirm()
        st = _wait_state(runner, "waiting", 3)
        p = st.prompt
        assert (p.kind, p.mass_kg) == ("load", 10.0) and abs(p.x_mm) < 1 and abs(p.y_mm) < 1
        assert prompt_words(st) == "Place 10 kg in total at the centre of plate box, then press Continue"
        device.model.place_mass("box", p.x_mm, p.y_mm, 10.0)  # the clinician's hands
        runner.confirm()
        st = _wait_state(runner, "waiting", 4)
        assert st.prompt.mass_kg == 20.0
        runner.confirm()  # Continue without adding the weight: the step stops and says what it read
        st = _wait_state(runner, "stopped", 4)
        assert "expected" in st.message and f"{20 * G:.1f} N" in st.message
        assert prompt_words(st).startswith("The step stopped:")
        device.model.place_mass("box", p.x_mm, p.y_mm, 10.0)  # now 20 kg in total
        assert runner.confirm()
        st = _wait_state(runner, "waiting", 5)
        assert st.prompt.mass_kg == 40.0
        assert runner.cancel()
        assert runner.join(30)
        st = runner.status()
        assert st.state == "cancelled" and "nothing saved" in st.message
        assert not calibrations_dir().exists() or not list(calibrations_dir().glob("*.json"))
        assert live.session.state == "running"
        assert [e[1] for e in events] == ["calibration-start", "calibration-cancelled"]
    finally:
        runner.cancel()
        runner.join(30)
        live.stop()
        live.close()


def test_no_calibration_starts_during_a_recording_or_unaudited(tmp_path: Path, data_dir):
    warm_up()
    rig = default_rig()
    live = LiveFeed(SimulatedStepBox(rig, scenario="quiet", seed=3), rig, info_timeout_s=30.0)
    live.start()
    runner = CalibrationRun(live)
    try:
        def broken_audit(*_event):
            raise OSError("disk full")

        unaudited = CalibrationRun(live, on_event=broken_audit)
        with pytest.raises(CalibrationBusy, match=r"audit log cannot be written \(disk full\)"):
            unaudited.start("box", "clin")
        assert unaudited.status().state == "idle" and live.session.state == "running"
        live.start_recording(30.0, tmp_path)
        with pytest.raises(CalibrationBusy, match="recording is in progress"):
            runner.start("box", "clin")
        assert live.recording is not None and runner.status().state == "idle"
        time.sleep(0.2)
        assert live.recording is not None  # the recording goes on untouched
    finally:
        live.stop()
        live.close()


@pytest.mark.slow
def test_the_robot_of_a_simulated_rig_on_a_port_calibrates_over_the_wire(sim_process, data_dir):
    """`steplab simulate --pty` as the dashboard's device: the page's runner sees a simulated rig and commands
    its robot over the wire; the saved record's figures meet the targets and the live feed picks it up again."""
    from steplab.acquisition.device import open_device

    warm_up()
    sim = sim_process("--scenario", "empty", "--time-scale", "10", "--seconds", "600")
    live = LiveFeed(open_device(sim.port), None, calibration_for=_calibration_for, info_timeout_s=30.0)
    live.start()
    events: list[tuple] = []
    runner = CalibrationRun(live, on_event=lambda *e: events.append(e))
    try:
        assert runner.current_mode() == "robot-wire"
        runner.start("floor_right", "clin")
        assert runner.join(RUN_DEADLINE_S)
        st = runner.status()
        assert st.state == "saved", st.message
        records, _ = list_records(calibrations_dir(), rig=live.rig)
        assert [r.calibration_id for r in records] == [st.calibration_id]
        verification = records[0].plate("floor_right").statistics["verification"]
        assert st.reports["floor_right"] == {k: verification[k] for k in st.reports["floor_right"]}
        assert verification["fz_error_pct_fs"] <= VERIFY_FZ_MAX_PCT_FS
        assert verification["cop_rms_mm"] <= VERIFY_COP_RMS_MAX_MM
        assert live.session.state == "running"
        assert [e[1] for e in events] == ["calibration-start", "calibration-saved"]
    finally:
        runner.cancel()
        runner.join(30)
        live.stop()
        live.close()


def test_without_a_rig_the_page_says_so_and_nothing_can_start(dashboard_db):
    from steplab.dashboard.pages import calibration as page

    ctx = DashContext(db=dashboard_db)
    app = create_app(ctx)
    runner = app.server.extensions[RUNNER_KEY]
    with pytest.raises(CalibrationBusy, match="no rig is connected"):
        runner.start("box", "clin")
    with app.server.test_request_context("/calibration"):
        tree = page.layout(ctx, {}, {})

    def find(node, wanted):
        if getattr(node, "id", None) == wanted:
            return node
        children = getattr(node, "children", None)
        for child in children if isinstance(children, list) else [children]:
            hit = find(child, wanted) if child is not None and not isinstance(child, str) else None
            if hit is not None:
                return hit
        return None

    assert find(tree, "calibration-no-rig") is not None
    assert find(tree, "calibration-start").disabled is True
    assert find(tree, "calibration-plate").options == []
    assert _audit(dashboard_db) == []


@pytest.mark.browser
def test_the_operator_is_prompted_in_plain_words_and_uses_continue_and_stop(dash_duo, dashboard_db):
    """A real rig's path in the browser (the in-process rig, empty, played as a rig without a robot)."""
    warm_up()
    rig = default_rig()
    device = SimulatedStepBox(rig, scenario="empty", seed=4)
    live = LiveFeed(device, rig, info_timeout_s=30.0)
    live.start()
    try:
        app = create_app(DashContext(db=dashboard_db, live=live))
        runner = app.server.extensions[RUNNER_KEY]
        runner.mode = "operator"
        runner.settings = dataclasses.replace(ProcedureSettings.fast(), settle_timeout_s=30.0)
        _open_page(dash_duo, app)
        assert dash_duo.find_element("#calibration-mode").get_attribute("data-mode") == "operator"
        assert dash_duo.find_element("#calibration-warmed-up").is_displayed()
        dash_duo.find_element("#calibration-start").click()  # the first plate is chosen already
        dash_duo.wait_for_contains_text("#calibration-prompt", "Leave plate box empty, then press Continue",
                                        timeout=30)
        dash_duo.find_element("#calibration-continue").click()
        dash_duo.wait_for_contains_text("#calibration-prompt", "Keep plate box empty and still, then press Continue",
                                        timeout=30)
        dash_duo.wait_for_contains_text("#calibration-progress", "step 2 of 262", timeout=10)
        dash_duo.find_element("#calibration-continue").click()
        dash_duo.wait_for_contains_text("#calibration-prompt",
                                        "Place 10 kg in total at the centre of plate box, then press Continue",
                                        timeout=30)
        dash_duo.driver.set_window_size(1280, 900)
        screenshot(dash_duo, "calibration-operator")
        p = runner.status().prompt
        device.model.place_mass("box", p.x_mm, p.y_mm, 10.0)
        dash_duo.find_element("#calibration-continue").click()
        dash_duo.wait_for_contains_text("#calibration-prompt", "Place 20 kg in total", timeout=30)
        dash_duo.wait_for_contains_text("#calibration-progress", "step 4 of 262", timeout=10)
        dash_duo.find_element("#calibration-cancel").click()
        dash_duo.wait_for_contains_text("#calibration-result", "stopped by the user: nothing saved", timeout=30)
        assert not calibrations_dir().exists() or not list(calibrations_dir().glob("*.json"))
        assert [e["action"] for e in _audit(dashboard_db)] == ["calibration-start", "calibration-cancelled"]
        assert wait_for(lambda: live.session.state == "running", 10)
    finally:
        runner.cancel()
        runner.join(30)
        live.stop()
        live.close()


def test_prompt_words_name_the_load_and_its_place_as_the_patient_faces():
    from steplab.calibration.procedure import Prompt
    from steplab.dashboard.calibration_run import RunStatus

    def words(state, mode, x_mm, y_mm, mass_kg=40.0):
        return prompt_words(RunStatus(state=state, mode=mode, prompt=Prompt(5, 262, "load", "fit", "box", mass_kg,
                                                                            x_mm, y_mm, "")))

    assert words("waiting", "operator", 150.0, -120.0) == (
        "Place 40 kg in total 150 mm right and 120 mm back of the centre of plate box "
        "(as the patient faces; x +150 mm, y -120 mm), then press Continue")
    assert words("waiting", "operator", -150.0, 0.2).startswith("Place 40 kg in total 150 mm left of the centre")
    assert words("running", "operator", 0.0, 0.0).endswith("keep clear until the load is steady")
    assert words("running", "robot-sim", 0.0, 120.0) == (
        "The robot places 40 kg 120 mm forward of the centre of plate box (as the patient faces; x +0 mm, y +120 mm)")
    assert words("waiting", "operator", 0.0, 0.0, mass_kg=0.0) == "Remove every weight from plate box, then press Continue"
    assert words("saved", "operator", 0.0, 0.0) == "Finished: remove every weight from plate box."
