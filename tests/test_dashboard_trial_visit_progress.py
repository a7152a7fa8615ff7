"""Trial review, visit summary and progress pages in a real browser, on a patient with two visits of
simulated step-downs saved with the records functions (tests/_export_helpers.make_trial_file: the
simulated rig's counts with a tared calibration)."""

from __future__ import annotations

import datetime as dt
import math
import shutil

import numpy as np
import pytest
from _export_helpers import make_trial_file
from helpers import browser_login, make_dashboard_db, screenshot, wait_for
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from steplab.dashboard.app import create_app
from steplab.dashboard.context import DashContext
from steplab.dashboard.pages.visit import symmetry_class
from steplab.records.audit import entries
from steplab.records.db import open_database
from steplab.records.history import visit_summary_json
from steplab.records.patients import add_patient, add_visit, set_pain
from steplab.records.query import patient_history
from steplab.records.reps import trial_review
from steplab.records.trials import save_file, set_scores

pytestmark = pytest.mark.browser

CODE = "PT-0107"
WAIT_S = 30.0


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    """A records database file: patient PT-0107 (involved left), two visits 14 days apart, two trials each."""
    d = tmp_path_factory.mktemp("review-clinic")
    db = make_dashboard_db(d / "clinic.sqlite")
    add_patient(db, CODE, involved="left", birth_year=1970)
    today = dt.date.today()
    ids: dict = {"visits": [], "trials": []}
    for k, (days_ago, asym) in enumerate(((14, 0.35), (0, 0.1))):
        vid = add_visit(db, CODE, date=today - dt.timedelta(days=days_ago), body_mass_kg=70.0, pain_before=2)
        ids["visits"].append(vid)
        for j in range(2):
            f = make_trial_file(d / f"v{k}t{j}.steplab", seconds=30.0, seed=11 + 2 * k + j, gap=None,
                                asymmetry=asym, involved="left")
            st = save_file(db, vid, f, "step-down", allow_new_rig=True)
            set_scores(db, st.trial_id, pain_during=3.0 + k + j, quality_score=4, actor="setup")
            ids["trials"].append(st.trial_id)
        set_pain(db, vid, after=4.0 - k, next_morning=3.0 - k)
    db.dispose()
    return d / "clinic.sqlite", ids


@pytest.fixture
def app_db(clinic, tmp_path):
    path = tmp_path / "clinic.sqlite"
    shutil.copy(clinic[0], path)
    db = open_database(f"sqlite:///{path}")
    yield db, clinic[1]
    db.dispose()


def _open(dash_duo, db, path: str, ready: str):
    app = create_app(DashContext(db=db))
    dash_duo.start_server(app, navigate=False)
    dash_duo.driver.set_window_size(1400, 1700)  # the screenshots show the whole page
    browser_login(dash_duo, dash_duo.server.url, next_path=path)
    dash_duo.wait_for_element(ready, timeout=WAIT_S)


def _js(dash_duo, script: str):
    return dash_duo.driver.execute_script(script)


def _shapes(dash_duo) -> list:
    return _js(dash_duo, "const g = document.querySelector('#trial-graph .js-plotly-plot');"
                         "return g && g.layout ? (g.layout.shapes || []).map(s => [s.name, s.x0]) : null;")


def _message(dash_duo, words: str) -> str:
    assert wait_for(lambda: words in dash_duo.find_element("#trial-message").text, WAIT_S), \
        dash_duo.find_element("#trial-message").text
    return dash_duo.find_element("#trial-message").text


def _peak_n(db, visit_id) -> dict:
    with db.read() as s:
        m = visit_summary_json(s, visit_id)["protocols"]["step-down"]["metrics"]["landing_peak_force_bw"]
    return {limb: m[limb]["n"] for limb in ("left", "right")}


def _stored_reps(db, trial_id) -> list[dict]:
    with db.read() as s:
        h = patient_history(s, CODE, metrics=True)
    for v in h["visits"]:
        for t in v["trials"]:
            if t["id"] == str(trial_id):
                return t["rep_results"]
    raise AssertionError(trial_id)


def test_trial_review_marks_events_rejects_a_rep_and_reanalyses(dash_duo, app_db):
    db, ids = app_db
    trial_id, visit_id = ids["trials"][0], ids["visits"][0]
    _open(dash_duo, db, f"/trials/{trial_id}", "#trial-graph .js-plotly-plot")
    assert wait_for(lambda: _shapes(dash_duo), WAIT_S)
    reps = _stored_reps(db, trial_id)
    assert len(reps) == 3
    shapes = dict((name, x) for name, x in _shapes(dash_duo))
    for i, r in enumerate(reps, start=1):  # every rep's stored times are drawn where they are
        assert shapes[f"rep {i} contact"] == pytest.approx(r["t_contact_s"], abs=1e-9)
        assert shapes[f"rep {i} onset"] == pytest.approx(r["t_onset_s"], abs=1e-9)
        assert shapes[f"rep {i} peak"] == pytest.approx(r["t_contact_s"] + r["metrics"]["time_to_peak_s"], abs=1e-9)
        assert shapes[f"rep {i} arrest"] == pytest.approx(
            r["t_contact_s"] + r["metrics"]["landing_phase_duration_s"], abs=1e-9)
    names = _js(dash_duo, "return document.querySelector('#trial-graph .js-plotly-plot').data.map(d => d.name);")
    assert {"Box (N)", "Floor left (N)", "Floor right (N)", "foot contact", "movement onset"} <= set(names)
    rows = dash_duo.driver.find_elements(By.CSS_SELECTOR, "#trial-reps-table tr.trial-rep-row")
    assert len(rows) == 3 and not dash_duo.driver.find_elements(By.CSS_SELECTOR, "tr.rep-rejected")

    # bad input: no reason -> one line, nothing changed
    before_n = _peak_n(db, visit_id)
    dash_duo.select_dcc_dropdown("#trial-rep-select", index=1)
    dash_duo.find_element("#trial-rep-reject").click()
    _message(dash_duo, "Give a reason")
    assert _peak_n(db, visit_id) == before_n
    # reject rep 2 with a reason: the row is marked, the summary's n of that limb drops by one
    dash_duo.find_element("#trial-rep-reason").send_keys("hand on the rail")
    dash_duo.find_element("#trial-rep-reject").click()
    _message(dash_duo, "Rep 2 of version 1 rejected")
    assert wait_for(lambda: len(dash_duo.driver.find_elements(By.CSS_SELECTOR, "tr.rep-rejected")) == 1, WAIT_S)
    assert dash_duo.find_element("#trial-rep-2").get_attribute("class").split() == ["trial-rep-row", "rep-rejected"]
    limb = reps[1]["lead"]
    after_n = _peak_n(db, visit_id)
    assert after_n[limb] == before_n[limb] - 1
    # independent count: accepted reps of that limb over the visit's trials
    own = sum(1 for t in ids["trials"][:2] for i, r in enumerate(_stored_reps(db, t))
              if r["lead"] == limb and r["metrics"].get("landing_peak_force_bw") is not None
              and not (t == trial_id and i == 1))
    assert after_n[limb] == own
    assert "rejected: hand on the rail" in dash_duo.find_element("#trial-rep-2").text
    assert any(n == "rep 2 rejected" for n, _ in _shapes(dash_duo))
    with db.read() as s:
        log = [(e.actor, e.action, e.detail) for e in entries(s) if e.action == "reject-rep"]
    assert log == [("clin", "reject-rep", {"rep": 2, "version": 1, "reason": "hand on the rail"})]

    # bad re-analysis input: a value that is not a number
    dash_duo.find_element("#trial-param-value").send_keys("fast")
    dash_duo.find_element("#trial-reanalyze-reason").send_keys("noisy forces")
    dash_duo.find_element("#trial-reanalyze").click()
    _message(dash_duo, "is not a number")
    assert len(dash_duo.driver.find_elements(By.CSS_SELECTOR, "tr.trial-version-row")) == 1
    # re-analysis with force_cutoff_hz changed (the dropdown's default): version 2, version 1 kept
    dash_duo.clear_input("#trial-param-value")
    dash_duo.find_element("#trial-param-value").send_keys("40")
    dash_duo.find_element("#trial-reanalyze").click()
    _message(dash_duo, "Version 2 made")
    assert wait_for(lambda: len(dash_duo.driver.find_elements(By.CSS_SELECTOR, "tr.trial-version-row")) == 2, WAIT_S)
    text = dash_duo.find_element("#trial-versions").text
    assert "40" in text and "noisy forces" in text and "clin" in text
    with db.read() as s:
        review = trial_review(s, trial_id)
    assert [v["version"] for v in review["versions"]] == [1, 2]
    assert review["versions"][1]["parameters"]["force_cutoff_hz"] == 40.0
    assert not review["versions"][1]["reps"][1]["accepted"]  # the rejection stays with the same movement
    assert wait_for(lambda: any(n == "rep 2 rejected" for n, _ in _shapes(dash_duo)), WAIT_S)
    screenshot(dash_duo, "trial-review")
    # version 1 is still selectable and shown
    dash_duo.select_dcc_dropdown("#trial-version-select", index=0)
    assert wait_for(lambda: "version 1" in dash_duo.find_element("#trial-version-note").text, WAIT_S)
    v1_contacts = [r["t_contact_s"] for r in review["versions"][0]["reps"]]
    assert wait_for(lambda: sorted(x for n, x in _shapes(dash_duo) if n.endswith("contact")) ==
                    pytest.approx(sorted(v1_contacts)), WAIT_S)
    # the whole trial: a reason is needed; rejected, it leaves the visit summary but is kept
    dash_duo.find_element("#trial-reject").click()
    _message(dash_duo, "Give a reason for rejecting the trial")
    dash_duo.find_element("#trial-reason").send_keys("patient held the rail throughout")
    dash_duo.find_element("#trial-reject").click()
    _message(dash_duo, f"Trial {trial_id} rejected")
    dash_duo.wait_for_contains_text("#trial-status", "rejected: patient held the rail throughout", timeout=WAIT_S)
    with db.read() as s:
        sd = visit_summary_json(s, visit_id)["protocols"]["step-down"]
    assert sd["trials"] == 1 and sd["trials_rejected"] == 1
    # unknown trial
    dash_duo.driver.get(dash_duo.server.url + "/trials/99999")
    dash_duo.wait_for_contains_text("#trial-page", "There is no trial 99999", timeout=WAIT_S)


def _own_lsi(db, visit_id, trial_ids) -> tuple[float, float, dict, dict]:
    """LSI of the landing peak force (a lead-limb metric) from the stored rep values: involved (left) / right."""
    vals: dict[str, list[float]] = {"left": [], "right": []}
    for t in trial_ids:
        for r in _stored_reps(db, t):
            v = r["metrics"].get("landing_peak_force_bw")
            if v is not None and "saturated" not in r["flags"]:
                vals[r["lead"]].append(v)
    stats = {limb: {"n": len(v), "mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1))} for limb, v in vals.items()}
    lsi = stats["left"]["mean"] / stats["right"]["mean"] * 100.0
    noise = 1.96 * math.sqrt(sum(s["sd"] ** 2 / s["n"] for s in stats.values()))
    return lsi, noise, stats["left"], stats["right"]


def _own_class(lsi: float, noise: float, left: dict, right: dict, threshold: float) -> str:
    if threshold <= lsi <= 200 - threshold:
        return "sym-ok"
    return "sym-deficit" if abs(left["mean"] - right["mean"]) > noise else "sym-within-mdc"


def _lsi_cells(dash_duo) -> dict[str, tuple[str, list[str]]]:
    """metric → (LSI text, classes) of every summary row, read in one go (a table being redrawn is never half-read)."""
    rows = _js(dash_duo, "return Array.from(document.querySelectorAll('tr.visit-metric-row')).map(r => "
                         "[r.dataset.metric, r.querySelector('td.visit-lsi').textContent, "
                         "r.querySelector('td.visit-lsi').className]);")
    return {m: (text, cls.split()) for m, text, cls in rows or []}


def test_visit_summary_colours_follow_the_threshold_and_pain_is_saved(dash_duo, app_db):
    db, ids = app_db
    visit_id = ids["visits"][0]
    lsi, noise, left, right = _own_lsi(db, visit_id, ids["trials"][:2])
    _open(dash_duo, db, f"/visits/{visit_id}", "#visit-summary-table")
    assert _lsi_cells(dash_duo)["landing_peak_force_bw"][0] == f"{lsi:.3g}"
    assert left["n"] >= 2 and right["n"] >= 2
    with db.read() as s:
        metrics = visit_summary_json(s, visit_id)["protocols"]["step-down"]["metrics"]
    # thresholds chosen around our own LSI: inside the band, just outside it, far outside it
    dist = min(lsi, 200 - lsi)
    for threshold in (max(50.0, math.floor(dist) - 5.0), min(100.0, math.ceil(dist) + 1.0), 100.0):
        dash_duo.clear_input("#visit-threshold")
        dash_duo.find_element("#visit-threshold").send_keys(f"{threshold:g}")
        dash_duo.wait_for_text_to_equal("#visit-band", f"band {threshold:g}-{200 - threshold:g} %", timeout=WAIT_S)
        want = _own_class(lsi, noise, left, right, threshold)
        assert wait_for(lambda w=want: w in _lsi_cells(dash_duo)["landing_peak_force_bw"][1], WAIT_S), \
            (threshold, lsi, noise, want, _lsi_cells(dash_duo)["landing_peak_force_bw"])
        # every row follows the same rule, row by row, from the summary's own numbers
        cells = _lsi_cells(dash_duo)
        assert set(cells) == set(metrics)
        for name, (_, cls) in cells.items():
            assert symmetry_class(metrics[name], threshold) in cls, name
    classes = {c for e in dash_duo.driver.find_elements(By.CSS_SELECTOR, "td.visit-lsi")
               for c in e.get_attribute("class").split() if c.startswith("sym-")}
    assert classes - {"sym-ok"}, classes  # at 100 % a threshold every asymmetry shows
    assert "involved" in dash_duo.find_element("#visit-worse-limb").text.lower()
    assert dash_duo.find_element("#visit-legend").text.startswith("Colours of the LSI")
    assert len(dash_duo.driver.find_elements(By.CSS_SELECTOR, "#visit-trials tr.visit-trial-row")) == 2
    assert dash_duo.find_element("#visit-export-link").get_attribute("href").endswith(f"/export?visit={visit_id}")
    assert dash_duo.find_element("#visit-progress-link").get_attribute("href").endswith(f"/patients/{CODE}/progress")
    dash_duo.clear_input("#visit-threshold")
    dash_duo.find_element("#visit-threshold").send_keys("90")
    dash_duo.wait_for_text_to_equal("#visit-band", "band 90-110 %", timeout=WAIT_S)
    screenshot(dash_duo, "visit-summary")
    # pain: a bad value changes nothing; a good one is saved
    after, morning = dash_duo.find_element("#visit-pain-after"), dash_duo.find_element("#visit-pain-next-morning")
    dash_duo.clear_input(after)
    after.send_keys("2")
    dash_duo.clear_input(morning)
    morning.send_keys("lots")
    dash_duo.find_element("#visit-pain-save").click()
    dash_duo.wait_for_contains_text("#visit-pain-message", "not a number", timeout=WAIT_S)
    with db.read() as s:
        assert patient_history(s, CODE)["visits"][0]["pain_after"] == 4.0
    dash_duo.clear_input(morning)
    morning.send_keys("1.5")
    dash_duo.find_element("#visit-pain-save").click()
    dash_duo.wait_for_contains_text("#visit-pain-message", "Pain saved", timeout=WAIT_S)
    with db.read() as s:
        v = patient_history(s, CODE)["visits"][0]
    assert (v["pain_after"], v["pain_next_morning"]) == (2.0, 1.5)


def test_progress_shows_both_visits_with_noise_bands_and_pain(dash_duo, app_db):
    db, ids = app_db
    _open(dash_duo, db, f"/patients/{CODE}/progress", "#progress-graph .js-plotly-plot")
    get = ("const g = document.querySelector('#progress-graph .js-plotly-plot');"
           "return g && g.data ? g.data.map(d => [d.name, d.x, d.y, d.xaxis || 'x', d.yaxis || 'y']) : null;")
    assert wait_for(lambda: _js(dash_duo, get), WAIT_S)
    traces = {name: (x, y, xa, ya) for name, x, y, xa, ya in _js(dash_duo, get)}
    left = traces["left mean (×BW)"]
    assert left[0] == [0, 14]
    l1, _, _, _ = _own_lsi(db, ids["visits"][0], ids["trials"][:2])
    l2, _, _, _ = _own_lsi(db, ids["visits"][1], ids["trials"][2:])
    assert traces["LSI (%)"][1] == pytest.approx([l1, l2], rel=1e-9)
    assert traces["pain after the visit"][1] == [4.0, 3.0] and traces["pain next morning"][1] == [3.0, 2.0]
    assert traces["pain during trials (mean)"][1] == pytest.approx([3.5, 4.5])
    assert "left: mean ± MDC95 (noise band)" in traces
    # three rows, one shared x axis (plotly names the rows' y axes y, y2, y3; all x axes match the first)
    assert {traces["LSI (%)"][3], traces["pain after the visit"][3]} == {"y2", "y3"}
    matches = _js(dash_duo, "const l = document.querySelector('#progress-graph .js-plotly-plot').layout;"
                            "return [l.xaxis2.matches, l.xaxis3.matches];")
    assert matches == ["x3", "x3"] or matches.count("x") == 2 or "x" in str(matches)
    rows = dash_duo.driver.find_elements(By.CSS_SELECTOR, "#progress-table tr.progress-change-row")
    assert len(rows) == 2  # one change (visit 1 -> 2), per limb
    verdicts = {r.find_elements(By.TAG_NAME, "td")[-1].text for r in rows}
    assert verdicts <= {"real change: better", "real change: worse", "real change", "within noise",
                        "too few reps to tell"}
    screenshot(dash_duo, "progress")
    # another metric redraws the graph and the table
    dash_duo.find_element("#progress-metric").click()
    search = dash_duo.wait_for_element("input.dash-dropdown-search", timeout=WAIT_S)
    search.send_keys("Lowering duration")
    search.send_keys(Keys.ENTER)
    assert wait_for(lambda: any("Lowering duration" in str(n) or n == "left mean (s)"
                                for n, *_ in (_js(dash_duo, get) or [])), WAIT_S)


def _row(lsi, lmean, lsd, ln, rmean, rsd, rn):
    return {"lsi_pct": lsi, "left": {"mean": lmean, "sd": lsd, "n": ln}, "right": {"mean": rmean, "sd": rsd, "n": rn}}


def test_symmetry_class_rule():
    # 1.0 vs 1.2, SD 0.05 with 5 reps each: noise 1.96*sqrt(2*0.0025/5) = 0.062 < 0.2 difference
    real = _row(1.0 / 1.2 * 100, 1.0, 0.05, 5, 1.2, 0.05, 5)
    assert symmetry_class(real, 90.0) == "sym-deficit"
    assert symmetry_class(real, 80.0) == "sym-ok"  # 83.3 % is inside 80-120 %
    noisy = _row(1.0 / 1.2 * 100, 1.0, 0.3, 3, 1.2, 0.3, 3)  # noise 1.96*sqrt(2*0.09/3) = 0.48 > 0.2
    assert symmetry_class(noisy, 90.0) == "sym-within-mdc"
    above = _row(1.2 / 1.0 * 100, 1.2, 0.05, 5, 1.0, 0.05, 5)  # above 200 - T counts too (lower-is-better metrics)
    assert symmetry_class(above, 90.0) == "sym-deficit"
    assert symmetry_class(_row(80.0, 0.8, None, 1, 1.0, 0.1, 4), 90.0) == "sym-within-mdc"  # noise unknown
    assert symmetry_class(_row(None, None, None, 0, 1.0, 0.1, 4), 90.0) == "sym-unknown"
    assert math.isclose(1.96 * math.sqrt(2 * 0.0025 / 5), 0.06198, rel_tol=1e-3)
