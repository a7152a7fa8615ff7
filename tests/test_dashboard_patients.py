"""The patients list and the patient page: in a real browser (dash_duo, Debian's chromium) and, for the list's
queries with a clinic's 500 patients, straight through the page's layout."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pytest
from helpers import browser_login, click, read_stable, screenshot, wait_for
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from sqlalchemy import event, select

from steplab.dashboard.app import create_app
from steplab.dashboard.context import DashContext
from steplab.records.models import AuditEntry
from steplab.records.patients import add_patient, add_visit, patient_facts, search

NAME, BIRTH = "Hildegunde Vasquez-Lindqvist", dt.date(1962, 4, 9)
TIMEOUT_S = 20


def show_whole_page(dash_duo) -> None:
    """A window large enough for a readable screenshot of the page, scrolled to its top."""
    dash_duo.driver.set_window_size(1280, 1100)
    dash_duo.driver.execute_script("window.scrollTo(0, 0)")


def facts(db, code: str) -> dict | None:
    with db.read() as s:
        return patient_facts(s, code) if [r for r in search(s, code) if r["code"] == code] else None


def audit(db) -> list[tuple[str, str, str | None]]:
    with db.read() as s:
        return [(e.actor, e.action, e.subject) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))
                if e.action.startswith("patient")]


def row_codes(dash_duo) -> list[str] | None:
    """The codes of the list's rows (None while the table is being re-rendered under the reader)."""
    try:
        return [r.find_element(By.TAG_NAME, "a").text for r in dash_duo.find_elements("#patients-table tr.patient-row")]
    except StaleElementReferenceException:
        return None


def type_into(dash_duo, selector: str, text: str) -> None:
    """Replace a text box's content by ``text`` as a user would (select all, type), and check it took."""
    def typed() -> bool:
        el = dash_duo.find_element(selector)
        el.send_keys(Keys.CONTROL, "a")
        el.send_keys(Keys.BACKSPACE)
        if text:
            el.send_keys(text)
        return el.get_attribute("value") == text

    assert wait_for(typed, timeout_s=TIMEOUT_S, interval_s=0.3), (selector, text)


def submit_new(dash_duo, code: str, birth_year: str = "", height: str = "") -> None:
    for sel, text in (("#patient-new-code", code), ("#patient-new-birth-year", birth_year),
                      ("#patient-new-height", height)):
        type_into(dash_duo, sel, text)
    dash_duo.find_element("#patient-new-submit").click()


def wait_message(dash_duo, selector: str, words: str) -> str:
    dash_duo.wait_for_contains_text(selector, words, timeout=TIMEOUT_S)
    return dash_duo.find_element(selector).text


@pytest.mark.browser
def test_create_search_and_refuse_bad_input_on_the_list(dash_duo, dashboard_db):
    db = dashboard_db
    add_patient(db, "KNEE-001", involved="left", notes="meniscus repair", name=NAME, birth_date=BIRTH)
    for d in (dt.date(2026, 1, 12), dt.date(2026, 2, 2)):
        add_visit(db, "KNEE-001", date=d)
    add_patient(db, "ANKLE-7", involved="right")
    dash_duo.start_server(create_app(DashContext(db=db)), navigate=False)
    browser_login(dash_duo, dash_duo.server.url, next_path="/patients")
    dash_duo.wait_for_element("#patients-table tr.patient-row", timeout=TIMEOUT_S)
    assert row_codes(dash_duo) == ["ANKLE-7", "KNEE-001"]
    knee = dash_duo.find_elements("#patients-table tr.patient-row")[1].text
    assert "left" in knee and " 2 " in f" {knee} " and "2026-02-02" in knee  # visits counted, the last one's date

    dash_duo.select_dcc_dropdown("#patient-new-involved", "Right")
    submit_new(dash_duo, "HIP-042", "1962", "171,5")  # a decimal comma is a decimal
    assert "Added patient HIP-042" in wait_message(dash_duo, "#patient-new-message", "Added")
    assert facts(db, "HIP-042") == {"code": "HIP-042", "involved": "right", "birth_year": 1962, "height_cm": 171.5,
                                    "notes": None}
    dash_duo.wait_for_contains_text("#patients-table", "HIP-042", timeout=TIMEOUT_S)
    assert audit(db) == [("clin", "patient-add", "patient HIP-042")]

    # bad input: one line, nothing written
    for code, year, height, words in (("BAD-1", "1850", "", "Birth year must be between 1900"),
                                      ("BAD-2", "", "tall", "Height must be a number"),
                                      ("BAD-3", "", "900", "Height must be between 40 and 260 cm"),
                                      ("bad name!", "", "", "must be 1-64 letters"),
                                      ("HIP-042", "", "", "already a patient HIP-042"),
                                      ("", "1970", "", "Type the patient's code first")):
        submit_new(dash_duo, code, year, height)
        msg = wait_message(dash_duo, "#patient-new-message", words)
        assert "\n" not in msg and "error" in dash_duo.find_element("#patient-new-message").get_attribute("class")
        assert code == "HIP-042" or facts(db, code) is None
    assert facts(db, "HIP-042")["birth_year"] == 1962 and len(audit(db)) == 1

    type_into(dash_duo, "#patients-search", "hip")
    assert wait_for(lambda: row_codes(dash_duo) == ["HIP-042"], timeout_s=TIMEOUT_S), row_codes(dash_duo)
    assert "1 patient match" in dash_duo.find_element("#patients-count").text
    type_into(dash_duo, "#patients-search", "MENISC")  # notes are searched too, in any case
    assert wait_for(lambda: row_codes(dash_duo) == ["KNEE-001"], timeout_s=TIMEOUT_S), row_codes(dash_duo)
    type_into(dash_duo, "#patients-search", "nobody")
    dash_duo.wait_for_contains_text("#patients-table", "No patient found", timeout=TIMEOUT_S)
    type_into(dash_duo, "#patients-search", "")
    assert wait_for(lambda: len(row_codes(dash_duo) or []) == 3, timeout_s=TIMEOUT_S), row_codes(dash_duo)
    assert NAME not in dash_duo.driver.page_source and "Hildegunde" not in dash_duo.driver.page_source
    show_whole_page(dash_duo)
    screenshot(dash_duo, "patients")


@pytest.mark.browser
def test_patient_page_edits_and_lists_visits(dash_duo, dashboard_db):
    db = dashboard_db
    add_patient(db, "KNEE-001", involved="left", birth_year=1962, height_cm=168.0, notes="ACL reconstruction",
                name=NAME, birth_date=BIRTH)
    v1 = add_visit(db, "KNEE-001", date=dt.date(2026, 1, 12), body_mass_kg=71.5, pain_before=3)
    v2 = add_visit(db, "KNEE-001", date=dt.date(2026, 2, 2), body_mass_kg=70.0, pain_before=1)
    dash_duo.start_server(create_app(DashContext(db=db)), navigate=False)
    browser_login(dash_duo, dash_duo.server.url, next_path="/patients")
    dash_duo.wait_for_element("#patients-table a.patient-link", timeout=TIMEOUT_S)
    click(dash_duo, "#patients-table a.patient-link")  # the list's link (the list may re-render meanwhile)
    dash_duo.wait_for_element("#patient-page #patient-visits tr.visit-row", timeout=TIMEOUT_S)

    def visit_rows():
        rows = dash_duo.find_elements("#patient-visits tr.visit-row")
        return ([r.find_element(By.TAG_NAME, "a").get_attribute("href").rsplit("/", 2)[-2:] for r in rows],
                rows[1].text)

    links, second = read_stable(visit_rows)
    assert links == [["visits", str(v2)], ["visits", str(v1)]]  # newest first
    assert "71.5" in second and "2026-01-12" in second
    base = dash_duo.server.url.rstrip("/")
    assert dash_duo.find_element("#patient-progress-link").get_attribute("href") == base + "/patients/KNEE-001/progress"
    assert dash_duo.find_element("#patient-start-session").get_attribute("href") == base + "/session?patient=KNEE-001"
    assert dash_duo.find_element("#patient-edit-notes").get_attribute("value") == "ACL reconstruction"

    dash_duo.select_dcc_dropdown("#patient-edit-involved", "Right")
    dash_duo.find_element("#patient-edit-save").click()
    assert wait_message(dash_duo, "#patient-edit-message", "Saved") == "Saved involved limb."
    assert facts(db, "KNEE-001")["involved"] == "right"
    assert "involved limb: right" in dash_duo.find_element("#patient-facts").text
    assert audit(db) == [("clin", "patient-edit", "patient KNEE-001")]

    type_into(dash_duo, "#patient-edit-height", "1.68")  # metres, not cm: refused, and nothing else of the form is written
    notes = dash_duo.find_element("#patient-edit-notes")
    notes.send_keys(" - 6 weeks")
    dash_duo.find_element("#patient-edit-save").click()
    assert "Height must be between 40 and 260 cm" in wait_message(dash_duo, "#patient-edit-message", "Height")
    assert facts(db, "KNEE-001") == {"code": "KNEE-001", "involved": "right", "birth_year": 1962, "height_cm": 168.0,
                                     "notes": "ACL reconstruction"}
    assert NAME not in dash_duo.driver.page_source
    show_whole_page(dash_duo)
    screenshot(dash_duo, "patient")

    dash_duo.driver.get(base + "/patients/NO-SUCH")
    assert "no patient" in wait_message(dash_duo, "#patient-not-found", "NO-SUCH").lower()


def test_the_list_of_a_clinic_year_is_one_query(tmp_path):
    """The page's list with the records benchmark's 500 patients × 10 visits: every patient, a single SELECT."""
    from steplab.benchmarks.bench_records import build_clinic
    from steplab.dashboard.pages import patients
    from steplab.records.db import open_database

    db = open_database(f"sqlite:///{tmp_path / 'clinic.sqlite'}", auto_upgrade=True)
    try:
        with tempfile.TemporaryDirectory() as work:
            build_clinic(db, patients=500, visits_per_patient=10, trials_per_visit=1, raw_variants=1,
                         workdir=Path(work))
        statements: list[str] = []
        listener = lambda *a: statements.append(a[2])  # noqa: E731  (conn, cursor, statement, …)
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            page = patients.layout(DashContext(db=db), {}, {})
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 1, statements
        body = json.loads(json.dumps(page.to_plotly_json(), default=lambda o: o.to_plotly_json()))
        text = json.dumps(body)
        assert text.count('class=\\"patient-row') == 500 and "P0001" in text and "P0500" in text
    finally:
        db.dispose()
