"""The export page in a real browser (dash_duo, Debian's chromium): a visit with real trials exported as C3D and
PDF, the downloaded files read back (ezc3d, pdftotext), the audit log with the user's name, and an identified export
refused on a stale login, then made after a fresh one."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
import zipfile
from pathlib import Path

import ezc3d
import numpy as np
import pytest
from helpers import CLINICIAN, browser_login, screenshot, wait_for
from sqlalchemy import select

from steplab.benchmarks.bench_records import synthetic_trial
from steplab.dashboard.app import create_app
from steplab.dashboard.context import DashboardSettings, DashContext
from steplab.records.models import AuditEntry
from steplab.records.patients import add_patient, add_visit
from steplab.records.trials import save_file

pytestmark = pytest.mark.browser

NAME, BIRTH = "Radegund Okafor-Lindstrom", dt.date(1971, 5, 17)
CODE = "ACL-0815"
FRESH_MINUTES = 0.5  # an identified export needs a login younger than 30 s
TIMEOUT_S = 60


def export_audit(db) -> list[tuple[str, str, bool, str | None, str | None]]:
    with db.read() as s:
        return [(e.actor, e.action, e.identified, e.subject, (e.detail or {}).get("format"))
                for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id)) if e.action.startswith("export")]


def downloaded(folder: Path, name: str) -> Path:
    f = folder / name
    assert wait_for(lambda: f.exists() and not list(folder.glob("*.crdownload")), timeout_s=TIMEOUT_S), \
        sorted(p.name for p in folder.iterdir()) if folder.exists() else "no download folder"
    return f


def pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, timeout=60, check=True).stdout


def export(dash_duo, fmt: str, identified: bool = False) -> str:
    """Choose ``fmt`` (and "identified"), press Export; the message line once it has changed."""
    before = dash_duo.find_element("#export-message").text
    dash_duo.find_element(f"#export-format input[value='{fmt}']").click()
    box = dash_duo.find_element("#export-identified input[type='checkbox']")
    if box.is_selected() != identified:
        box.click()
    dash_duo.find_element("#export-submit").click()
    assert wait_for(lambda: (t := dash_duo.find_element("#export-message").text) and t != before,
                    timeout_s=TIMEOUT_S), before
    return dash_duo.find_element("#export-message").text


def test_export_c3d_and_pdf_then_identified_needs_a_fresh_login(dash_duo, dashboard_db, tmp_path):
    db = dashboard_db
    add_patient(db, CODE, involved="left", birth_year=1971, name=NAME, birth_date=BIRTH)
    add_visit(db, CODE, date=dt.date(2026, 1, 5))  # an earlier visit without trials
    vid = add_visit(db, CODE, date=dt.date(2026, 2, 2), body_mass_kg=68.0)
    trials = [save_file(db, vid, synthetic_trial(tmp_path / f"{NAME.split()[0]}_{i}.steplab", leads=leads, seed=30 + i,
                                                 body_mass_kg=68.0), "step-down", allow_new_rig=True).trial_id
              for i, leads in enumerate((("left", "right"), ("right", "left")))]
    app = create_app(DashContext(db=db, settings=DashboardSettings(fresh_login_minutes=FRESH_MINUTES)))
    dash_duo.start_server(app, navigate=False)
    downloads = Path(dash_duo.download_path)
    base = dash_duo.server.url.rstrip("/")
    browser_login(dash_duo, base, next_path=f"/export?visit={vid}")
    logged_in = time.monotonic()
    dash_duo.wait_for_element("#export-page", timeout=TIMEOUT_S)
    dash_duo.wait_for_contains_text("#export-patient", CODE, timeout=TIMEOUT_S)
    assert "2026-02-02" in dash_duo.find_element("#export-visit").text  # ?visit= preselects patient and visit

    # C3D: a zip of one C3D per trial, pseudonymised
    msg = export(dash_duo, "c3d")
    assert f"Exported 2 C3D files of visit {vid} of {CODE} (pseudonymised)" in msg, msg
    zipped = downloaded(downloads, f"{CODE}_visit{vid}_c3d.zip")
    with zipfile.ZipFile(zipped) as z:
        assert sorted(z.namelist()) == sorted(f"{CODE}_trial{t}_step-down.c3d" for t in trials)
        z.extractall(tmp_path / "c3d")
    for f in sorted((tmp_path / "c3d").iterdir()):
        c = ezc3d.c3d(str(f))
        assert c["parameters"]["SUBJECTS"]["NAMES"]["value"] == [CODE]
        analogs = np.asarray(c["data"]["analogs"])
        assert analogs.shape[-1] > 5000 and np.isfinite(analogs).all()  # seconds of 1 kHz forces
        assert NAME.encode() not in f.read_bytes() and NAME.split()[0].encode() not in f.read_bytes()

    # PDF report of the visit
    msg = export(dash_duo, "pdf")
    assert "Exported the PDF report" in msg, msg
    pdf = downloaded(downloads, f"{CODE}_visit{vid}_report.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    text = pdf_text(pdf)
    assert CODE in text and NAME not in text and NAME.split()[0] not in text and "1971-05-17" not in text
    dash_duo.driver.set_window_size(1280, 1000)
    screenshot(dash_duo, "export")
    assert export_audit(db) == [("clin", "export", False, f"patient {CODE}", "c3d"),
                                ("clin", "export", False, f"patient {CODE}", "pdf")]

    # identified, with a login older than FRESH_MINUTES: refused, nothing exported, a link to log in again
    assert wait_for(lambda: time.monotonic() - logged_in > FRESH_MINUTES * 60 + 2, timeout_s=FRESH_MINUTES * 60 + 30)
    msg = export(dash_duo, "pdf", identified=True)
    assert "needs a recent login" in msg and "nothing was exported" in msg, msg
    link = dash_duo.find_element("#export-relogin")
    assert link.get_attribute("href").startswith(base + "/login?fresh=1&next=/export")
    assert len(export_audit(db)) == 2 and sorted(p.name for p in downloads.iterdir()) == sorted(
        [zipped.name, pdf.name])

    # the link: log in again, back on the export page of the visit, and the identified export is made
    link.click()
    dash_duo.wait_for_element("#login-name", timeout=TIMEOUT_S).send_keys(CLINICIAN[0])
    dash_duo.find_element("#login-password").send_keys(CLINICIAN[1])
    dash_duo.find_element("#login-submit").click()
    dash_duo.wait_for_contains_text("#export-patient", CODE, timeout=TIMEOUT_S)
    assert dash_duo.driver.current_url.endswith(f"/export?visit={vid}&format=pdf")
    msg = export(dash_duo, "pdf", identified=True)
    assert "(identified)" in msg, msg
    ident = downloaded(downloads, f"{CODE}_visit{vid}_identified_report.pdf")
    assert NAME in pdf_text(ident)
    assert export_audit(db)[2:] == [("clin", "export-identified-start", True, f"patient {CODE}", "pdf"),
                                    ("clin", "export-identified", True, f"patient {CODE}", "pdf")]


def test_a_visit_without_trials_says_so_and_sends_nothing(dash_duo, dashboard_db):
    db = dashboard_db
    add_patient(db, CODE, involved="right")
    vid = add_visit(db, CODE)
    dash_duo.start_server(create_app(DashContext(db=db)), navigate=False)
    browser_login(dash_duo, dash_duo.server.url, next_path=f"/export?patient={CODE}")  # ?patient=: its latest visit
    dash_duo.wait_for_contains_text("#export-visit", f"visit {vid}", timeout=TIMEOUT_S)
    for fmt in ("c3d", "bundle"):
        msg = export(dash_duo, fmt)
        assert msg.startswith("Not exported:") and "no trials" in msg and "\n" not in msg, msg
    assert export_audit(db) == []
    folder = Path(dash_duo.download_path)
    assert not folder.exists() or list(folder.iterdir()) == []
