"""The clinic workflow end to end in a real browser, against `steplab run` itself (waitress, the simulated rig,
a records database on disk): log in, create a patient, start a visit, record step-downs leading with each
limb, review a trial and reject one rep, read the visit summary, record a second visit, see the progress,
export C3D and a PDF.  Each page is saved as a screenshot (tests/artefacts/screenshots/)."""

from __future__ import annotations

import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    CLINICIAN,
    RunningDashboard,
    browser_login,
    choose_option,
    count_rows,
    make_dashboard_db,
    screenshot,
    wait_for,
    wait_text,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CODE = "PFP-017"
RECORD_S = 40  # a simulated step-down takes about 9 s (stance, step down, stand, step back up): 3 or more per trial


@pytest.fixture
def clinic(tmp_path):
    db_file = tmp_path / "clinic.sqlite"
    make_dashboard_db(db_file).dispose()
    server = RunningDashboard("--device", "sim", "--seed", "5", "--db", f"sqlite:///{db_file}")
    try:
        server.wait_announced()
        yield server, f"sqlite:///{db_file}"
    finally:
        server.stop()


def _go(br, url: str, ready: str, timeout_s: float = 30.0) -> None:
    br.driver.get(url)
    br.wait_for_element(ready, timeout=timeout_s)


def _click(br, selector: str) -> None:
    br.wait_for_element(selector, timeout=20).click()


def _type(br, selector: str, text: str) -> None:
    el = br.wait_for_element(selector, timeout=20)
    el.clear()
    el.send_keys(text)


def _record(br, lead: str, n_trials_before: int) -> None:
    choose_option(br, "#session-protocol", "Lateral step-down from a 20 cm box")
    br.driver.find_element("css selector", f"#session-lead input[value='{lead}']").click()
    _type(br, "#session-seconds", str(RECORD_S))
    _click(br, "#session-record")
    wait_text(br, "#session-recording-status", "recording", timeout_s=30)
    assert wait_for(lambda: count_rows(br, "tr.session-trial-row") == n_trials_before + 1, RECORD_S + 120.0), \
        br.find_element("#session-recording-status").text


def _visit_with_two_trials(br, base: str) -> str:
    """Start a visit for CODE on the session page, weigh in, record leading left then right; the visit id."""
    _go(br, f"{base}/session?patient={CODE}", "#session-start-visit")
    wait_text(br, "#session-patient", CODE)
    _click(br, "#session-start-visit")
    visit_text = wait_text(br, "#session-visit", "visit")
    deadline = time.monotonic() + 90
    while True:  # the weigh-in waits for a quiet stance: the simulated subject pauses between reps
        _click(br, "#session-weigh")
        try:
            wait_text(br, "#session-weight", "kg", timeout_s=15)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    _record(br, "left", 0)
    _record(br, "right", 1)
    _type(br, "#session-pain", "3")
    _type(br, "#session-quality", "2")
    _click(br, "#session-save-scores")
    wait_text(br, "#session-scores-message", "saved")
    link = br.driver.find_element("css selector", "#session-visit a").get_attribute("href")
    assert "/visits/" in link, visit_text
    return link.rsplit("/", 1)[1]


@pytest.mark.timeout(1800)  # four recordings of RECORD_S seconds and their analyses, on a slow, busy machine
def test_the_clinic_workflow_in_the_browser(dash_br, clinic):
    server, db_url = clinic
    base = server.url
    br = dash_br

    # 1. log in (unauthenticated, the dashboard opens on the login page)
    br.driver.get(base + "/")
    br.wait_for_element("#login-form", timeout=30)
    screenshot(br, "workflow-login")
    browser_login(br, base, CLINICIAN)

    # 2. create a patient
    _go(br, f"{base}/patients", "#patient-new-code")
    _type(br, "#patient-new-code", CODE)
    choose_option(br, "#patient-new-involved", "left")
    _type(br, "#patient-new-birth-year", "1994")
    _click(br, "#patient-new-submit")
    wait_text(br, "#patients-table", CODE)
    screenshot(br, "workflow-patients")

    # 3.-4. a visit with step-downs leading with each limb
    visit1 = _visit_with_two_trials(br, base)
    assert wait_for(lambda: int(br.find_element("#live-rep-count").text.split()[0]) >= 3, 30)
    screenshot(br, "workflow-live-session")

    # 5. review the first trial and reject one rep
    _go(br, f"{base}/visits/{visit1}", "#visit-trials")
    wait_for(lambda: count_rows(br, "tr.visit-trial-row") == 2, 30)
    first_trial = br.driver.find_element("css selector", "tr.visit-trial-row a").get_attribute("href")
    _go(br, first_trial, "#trial-reps-table", timeout_s=60)
    n_reps = count_rows(br, "tr.trial-rep-row")
    assert n_reps >= 3, f"only {n_reps} reps detected in a {RECORD_S} s step-down trial"
    assert wait_for(lambda: br.driver.execute_script(  # the forces with the events of every rep marked
        "const g = document.querySelector('#trial-graph .js-plotly-plot');"
        "return g && g.data && g.data.length > 0 && (g.layout.shapes || []).length >= 3"), 60)
    br.select_dcc_dropdown("#trial-rep-select", index=0)
    wait_text(br, "#trial-rep-select", "rep 1")
    _type(br, "#trial-rep-reason", "lost balance")
    _click(br, "#trial-rep-reject")
    wait_text(br, "#trial-message", "rejected")
    assert wait_for(lambda: count_rows(br, "tr.trial-rep-row.rep-rejected") == 1, 20)
    screenshot(br, "workflow-trial-review")

    # 6. the visit summary: per-limb table with LSI, coloured by threshold and MDC
    _go(br, f"{base}/visits/{visit1}", "#visit-summary-table", timeout_s=60)
    assert count_rows(br, "tr.visit-metric-row") > 0
    classes = br.driver.execute_script(
        "return Array.from(document.querySelectorAll('#visit-summary-table td')).map(td => td.className).join(' ')")
    assert any(c in classes for c in ("sym-ok", "sym-deficit", "sym-within-mdc"))
    assert br.find_element("#visit-worse-limb").text.strip()
    screenshot(br, "workflow-visit-summary")

    # 7. a second visit, then the progress across both
    visit2 = _visit_with_two_trials(br, base)
    assert visit2 != visit1
    _go(br, f"{base}/patients/{CODE}/progress", "#progress-graph", timeout_s=60)
    assert wait_for(lambda: br.driver.execute_script(
        "const g = document.querySelector('#progress-graph .js-plotly-plot');"
        "return g && g.data.some(t => t.x && t.x.length >= 2)"), 30)
    screenshot(br, "workflow-progress")

    # 8. export C3D and a PDF of the first visit
    downloads = Path(br.download_path)
    for fmt in ("c3d", "pdf"):
        _go(br, f"{base}/export?visit={visit1}", "#export-submit")
        br.driver.find_element("css selector", f"#export-format input[value='{fmt}']").click()
        before = set(downloads.iterdir())
        _click(br, "#export-submit")
        assert wait_for(lambda before=before: any(p.suffix in (".c3d", ".pdf", ".zip") and not p.name.endswith(".crdownload")
                                                  for p in set(downloads.iterdir()) - before), 60), fmt
        wait_text(br, "#export-message", "Exported")
    screenshot(br, "workflow-export")
    files = sorted(downloads.iterdir())
    pdf = next(p for p in files if p.suffix == ".pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, timeout=60).stdout
    assert CODE in text
    c3ds = [p for p in files if p.suffix == ".c3d"]
    if not c3ds:  # a visit's C3D export is a zip of one file per trial
        z = next(p for p in files if p.suffix == ".zip")
        with zipfile.ZipFile(z) as zf:
            names = [n for n in zf.namelist() if n.endswith(".c3d")]
            assert len(names) == 2
            zf.extract(names[0], downloads)
            c3ds = [downloads / names[0]]
    import ezc3d

    c = ezc3d.c3d(str(c3ds[0]))
    assert c["parameters"]["FORCE_PLATFORM"]["USED"]["value"][0] >= 1
    assert np.isfinite(c["data"]["analogs"]).all()
