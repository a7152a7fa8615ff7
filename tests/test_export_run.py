"""records.export_run: exports from the database with their audit entries (the user as actor), on both databases."""

from __future__ import annotations

import datetime as dt
import subprocess

import ezc3d
import numpy as np
import pytest
from sqlalchemy import select

from steplab.benchmarks.bench_records import synthetic_trial
from steplab.records.db import open_database
from steplab.records.export_run import export_records
from steplab.records.models import AuditEntry
from steplab.records.patients import RecordsError, add_patient, add_visit
from steplab.records.trials import save_file

NAME, BIRTH = "Wendelin Okonkwo-Frisch", dt.date(1958, 11, 2)


@pytest.fixture
def db(db_url):
    d = open_database(db_url, auto_upgrade=True)
    yield d
    d.dispose()


@pytest.fixture
def visit(db, tmp_path) -> tuple[int, list[int]]:
    add_patient(db, "EXP-1", involved="left", birth_year=1958, name=NAME, birth_date=BIRTH)
    vid = add_visit(db, "EXP-1", body_mass_kg=72.0)
    tids = [save_file(db, vid, synthetic_trial(tmp_path / f"{NAME.split()[0]}-{i}.steplab", leads=lead, seed=5 + i),
                      "step-down", allow_new_rig=True).trial_id for i, lead in enumerate((("left", "right"), ("right",)))]
    return vid, tids


def exports(db) -> list[tuple[str, str, bool, str | None]]:
    with db.read() as s:
        return [(e.actor, e.action, e.identified, e.subject) for e in
                s.scalars(select(AuditEntry).where(AuditEntry.action.like("export%")).order_by(AuditEntry.id))]


def test_visit_as_c3d_folder_and_pdf_audited_with_the_actor(db, visit, tmp_path):
    vid, tids = visit
    run = export_records(db, "c3d", tmp_path / "c3d", visit_id=vid, actor="clin")
    assert sorted(f.name for f in run.files) == sorted(f"EXP-1_trial{t}_step-down.c3d" for t in tids)
    assert run.trials == sorted(str(t) for t in tids) and run.code == "EXP-1" and not run.identified
    for f in run.files:
        c = ezc3d.c3d(str(f))
        assert c["parameters"]["SUBJECTS"]["NAMES"]["value"] == ["EXP-1"]
        assert np.asarray(c["data"]["analogs"]).shape[-1] > 1000  # the samples are there
        assert NAME.encode() not in f.read_bytes()
    pdf = export_records(db, "pdf", tmp_path / "r.pdf", patient_code="EXP-1", actor="clin").files[0]
    assert pdf.read_bytes()[:5] == b"%PDF-"
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, timeout=60).stdout
    assert "EXP-1" in text and NAME not in text
    ident = export_records(db, "pdf", tmp_path / "i.pdf", visit_id=vid, identified=True, actor="boss").files[0]
    text = subprocess.run(["pdftotext", str(ident), "-"], capture_output=True, text=True, timeout=60).stdout
    assert NAME in text
    assert exports(db) == [("clin", "export", False, "patient EXP-1"), ("clin", "export", False, "patient EXP-1"),
                           ("boss", "export-identified-start", True, "patient EXP-1"),
                           ("boss", "export-identified", True, "patient EXP-1")]


def test_one_trial_as_one_csv_file(db, visit, tmp_path):
    _, tids = visit
    run = export_records(db, "csv", tmp_path / "t.csv", trial_id=tids[1], actor="clin")
    assert run.files == [tmp_path / "t.csv"] and run.trials == [str(tids[1])]
    assert "EXP-1" in run.files[0].read_text() and NAME not in run.files[0].read_text()


@pytest.mark.parametrize("fmt", ["c3d", "pdf", "bundle"])
def test_a_visit_without_trials_writes_nothing(db, visit, tmp_path, fmt):
    empty = add_visit(db, "EXP-1")
    out = tmp_path / f"empty.{fmt}"
    with pytest.raises(RecordsError, match="no trials"):
        export_records(db, fmt, out, visit_id=empty, actor="clin")
    assert not out.exists() and list(tmp_path.glob("empty*")) == [] and exports(db) == []


def test_bad_scope_and_existing_target(db, visit, tmp_path):
    vid, _ = visit
    with pytest.raises(RecordsError, match="no visit 999"):
        export_records(db, "pdf", tmp_path / "x.pdf", visit_id=999, actor="clin")
    (tmp_path / "there.pdf").write_bytes(b"keep")
    with pytest.raises(RecordsError, match="already exists"):
        export_records(db, "pdf", tmp_path / "there.pdf", visit_id=vid, actor="clin")
    assert (tmp_path / "there.pdf").read_bytes() == b"keep"
    with pytest.raises(RecordsError, match="format"):
        export_records(db, "xlsx", tmp_path / "x.xlsx", visit_id=vid, actor="clin")
    assert exports(db) == []
