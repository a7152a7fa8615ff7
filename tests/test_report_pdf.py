"""The PDF visit report: it opens, page 1 renders (pdftoppm) with a table and force plots, no identifying data leaks."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess

import numpy as np
import pytest
from _export_helpers import BIRTH, DEVICE_SERIAL, NAME, RIG_SERIAL, make_export_trial, subjects
from PIL import Image

from steplab.records.export_csv import ExportError
from steplab.records.export_model import ExportPatientHistory, ExportVisit
from steplab.records.report_pdf import write_visit_report

LEFT_RGB = (0x1F, 0x5F, 0xA8)
RIGHT_RGB = (0xD0, 0x64, 0x1B)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} (poppler-utils) is required for this test")
    return path


def _history(tmp, subject) -> ExportPatientHistory:
    t1 = make_export_trial(tmp / "a.npz", "T1", seed=3, asymmetry=0.3, involved="left")
    t1.pain_during = 3
    t2 = make_export_trial(tmp / "b.npz", "T2", seed=5, asymmetry=0.1, involved="left", seconds=30.0)
    t3 = make_export_trial(tmp / "c.npz", "T3", seed=6, asymmetry=0.1, involved="left", seconds=30.0)
    t3.accepted, t3.reject_reason = False, "lost balance"
    v1 = ExportVisit("v1", [t1], date=dt.date(2026, 3, 2), day_offset=0, body_mass_kg=70.0, pain_before=2,
                     pain_after=4, pain_next_morning=3)
    v2 = ExportVisit("v2", [t2, t3], date=dt.date(2026, 4, 13), day_offset=42, body_mass_kg=70.4, pain_before=1,
                     pain_after=2, pain_next_morning=1)
    return ExportPatientHistory(subject, [v1, v2])


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    d = tmp_path_factory.mktemp("pdf")
    pseudo, identified = subjects()
    h = _history(d, pseudo)
    pdf = write_visit_report(d / "report.pdf", h, "v2")
    h_id = ExportPatientHistory(identified, h.visits)
    pdf_id = write_visit_report(d / "report-identified.pdf", h_id, "v2")
    return d, pdf, pdf_id, h


def _text(pdf) -> str:
    r = subprocess.run([_tool("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _page1(pdf, out_dir) -> np.ndarray:
    prefix = out_dir / "page"
    r = subprocess.run([_tool("pdftoppm"), "-r", "60", "-f", "1", "-l", "1", "-png", str(pdf), str(prefix)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    pngs = sorted(out_dir.glob("page*.png"))
    assert len(pngs) == 1
    return np.asarray(Image.open(pngs[0]).convert("RGB")).astype(np.int32)


def _near(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> np.ndarray:
    return np.all(np.abs(img - np.array(rgb)) <= tol, axis=2)


def test_page_one_renders_with_a_table_and_force_plots(reports, tmp_path):
    _, pdf, _, _ = reports
    img = _page1(pdf, tmp_path)
    h, w, _ = img.shape
    assert h > w > 400  # A4 portrait at 60 dpi: 496 × 702
    ink = img.sum(axis=2) < 600  # not white
    assert ink.mean() > 0.03, "page 1 is (nearly) blank"
    rows = ink.mean(axis=1)
    # table: the upper half holds many ruled, texted rows (ink in most pixel rows between 25 % and 50 %)
    table = rows[int(0.25 * h):int(0.5 * h)]
    assert (table > 0.05).mean() > 0.5
    assert img[int(0.25 * h):int(0.5 * h)].std() > 30
    # plots: the lower part has the left and right plate traces in their colours
    lower = img[int(0.5 * h):int(0.92 * h)]
    assert _near(lower, LEFT_RGB).sum() > 150
    assert _near(lower, RIGHT_RGB).sum() > 150
    assert lower.std() > 20
    # the upper part (header + table) has no trace colours: the plots are where they should be
    assert _near(img[:int(0.2 * h)], LEFT_RGB, 20).sum() < 20


def test_text_holds_the_table_headings_metrics_progress_and_pain(reports):
    _, pdf, _, _ = reports
    text = _text(pdf)
    for heading in ("Visit report: Step-down", "Patient", "PT-0042", "day 42", "Metric", "Left (involved)", "Right",
                    "LSI %", "SI %", "Angle", "Worse", "Flags", "Landing peak force", "Lowering duration",
                    "progress across visits", "MDC95", "Changes since the previous visit", "Pain (0-10 NRS)",
                    "Analysis parameters", "lost balance"):
        assert heading in text, heading
    assert any(v in text for v in ("within noise", "real improvement", "real worsening"))
    pages = subprocess.run([_tool("pdfinfo"), str(pdf)], capture_output=True, text=True, timeout=60).stdout
    assert "Pages:" in pages and int(pages.split("Pages:")[1].split()[0]) >= 2


def test_pseudonymised_report_has_no_name_birth_date_dates_or_serials(reports):
    _, pdf, pdf_id, _ = reports
    text = _text(pdf)
    blob = pdf.read_bytes()
    secrets = (NAME, *NAME.split(), BIRTH.isoformat(), BIRTH.strftime("%d.%m.%Y"), RIG_SERIAL, DEVICE_SERIAL,
               "2026-03-02", "2026-04-13", "2026-03-04")
    for s in secrets:
        assert s not in text, s
        assert s.encode() not in blob, s
    info = subprocess.run([_tool("pdfinfo"), str(pdf)], capture_output=True, text=True, timeout=60).stdout
    assert NAME not in info and "PT-0042" in info
    text_id = _text(pdf_id)
    assert NAME in text_id and "2026-04-13" in text_id and BIRTH.isoformat() in text_id


def test_a_report_never_replaces_a_file(reports):
    d, pdf, _, h = reports
    before = pdf.read_bytes()
    with pytest.raises(ExportError, match="already exists"):
        write_visit_report(pdf, h, "v2")
    assert pdf.read_bytes() == before
    with pytest.raises(ValueError, match="not in patient"):
        write_visit_report(d / "other.pdf", h, "no-such-visit")
    assert not (d / "other.pdf").exists()


def test_every_protocol_gets_its_section(tmp_path):
    trials = [make_export_trial(tmp_path / f"{p}.npz", f"T{i}", protocol=p, seed=7, gap=None)
              for i, p in enumerate(("forward-step-down", "drop-landing", "squat", "balance"))]
    h = ExportPatientHistory(subjects()[0], [ExportVisit("v1", trials, day_offset=0, body_mass_kg=70.0)])
    text = _text(write_visit_report(tmp_path / "all.pdf", h, "v1"))
    for s in ("Forward step-down: limb symmetry", "Tap force", "Drop landing: limb symmetry", "Landing peak force",
              "Bilateral squat: limb symmetry", "Left share of weight", "Single-limb balance: limb symmetry",
              "COP 95 % ellipse", "First visit of this protocol"):
        assert s in text, s
