"""Visit bundle: a ZIP of per-trial CSV, C3D and results JSON (all versions, parameters), summary, progress, report."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
import zipfile

import ezc3d
import pytest
from _export_helpers import BIRTH, DEVICE_SERIAL, NAME, RIG_SERIAL, make_export_trial, subjects

from steplab.records.export_bundle import BUNDLE_FORMAT, write_visit_bundle
from steplab.records.export_csv import ExportError
from steplab.records.export_model import ExportPatientHistory, ExportVisit


def _history(d, subject) -> ExportPatientHistory:
    t1 = make_export_trial(d / "a.npz", "T1", seed=3)
    t2 = make_export_trial(d / "b.npz", "T2/rejected", seed=4)
    t2.accepted, t2.reject_reason = False, "patient stopped"
    # T1 was re-analysed: two result versions, version 2 chosen, each with its parameters
    v1 = dict(t1.analysis)
    t1.all_results = [{"version": 1, "analysis": v1, "params": {"force_cutoff_hz": 50.0}, "created_at": "2026-03-02T10:00"},
                      {"version": 2, "analysis": t1.analysis, "params": {"force_cutoff_hz": 100.0}}]
    t1.result_version, t1.analysis_params = 2, {"force_cutoff_hz": 100.0}
    visit = ExportVisit("v1", [t1, t2], date=dt.date(2026, 3, 2), day_offset=0, body_mass_kg=70.0, pain_before=2)
    return ExportPatientHistory(subject, [visit])


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    d = tmp_path_factory.mktemp("bundle")
    pseudo, identified = subjects()
    h = _history(d, pseudo)
    b = write_visit_bundle(d / "visit.zip", h, "v1")
    b_id = write_visit_bundle(d / "visit-id.zip", ExportPatientHistory(identified, h.visits), "v1")
    return d, b, b_id, h


def test_bundle_holds_every_trials_files_and_a_manifest_with_hashes(bundles, tmp_path):
    _, b, _, _ = bundles
    with zipfile.ZipFile(b) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["format"] == BUNDLE_FORMAT and manifest["patient"] == "PT-0042"
        assert manifest["identified"] is False and manifest["visit"]["label"] == "day 0"
        for f in manifest["files"]:
            assert f["name"] in names
            assert hashlib.sha256(zf.read(f["name"])).hexdigest() == f["sha256"]
        expected = {"manifest.json", "summary.json", "progress.json", "report.pdf"}
        for base in ("T1", "T2_rejected"):
            expected |= {f"trials/{base}.csv", f"trials/{base}.c3d", f"trials/{base}.results.json"}
        assert names == expected
        assert [t["accepted"] for t in manifest["trials"]] == [True, False]
        assert manifest["trials"][1]["reject_reason"] == "patient stopped"
        res = json.loads(zf.read("trials/T1.results.json"))
        assert res["chosen_version"] == 2 and [r["version"] for r in res["results"]] == [1, 2]
        assert [r["params"]["force_cutoff_hz"] for r in res["results"]] == [50.0, 100.0]
        assert res["results"][1]["analysis"]["reps"] and "source_file" not in res["results"][1]["analysis"]["provenance"]
        summary = json.loads(zf.read("summary.json"))
        assert summary["protocols"]["step-down"]["trials"] == 1 and summary["protocols"]["step-down"]["trials_rejected"] == 1
        zf.extract("trials/T1.c3d", tmp_path)
    c = ezc3d.c3d(str(tmp_path / "trials" / "T1.c3d"), extract_forceplat_data=True)
    assert len(c["data"]["platform"]) == 3


def test_pseudonymised_bundle_leaks_nothing_identified_bundle_does_carry_the_name(bundles, tmp_path):
    _, b, b_id, _ = bundles
    secrets = (NAME, BIRTH.isoformat(), RIG_SERIAL, DEVICE_SERIAL, "2026-03-02", "2026-03-04", "/dev/pts")
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.fail("pdftotext (poppler-utils) is required")
    with zipfile.ZipFile(b) as zf:
        for name in zf.namelist():
            blob = zf.read(name)
            for s in secrets:
                assert s.encode() not in blob, (name, s)
        zf.extract("report.pdf", tmp_path)
    text = subprocess.run([pdftotext, str(tmp_path / "report.pdf"), "-"], capture_output=True, text=True,
                          timeout=60).stdout
    assert "PT-0042" in text and NAME not in text and BIRTH.isoformat() not in text
    with zipfile.ZipFile(b_id) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["identified"] is True and manifest["patient_name"] == NAME
        assert NAME.encode() in zf.read("trials/T1.csv")


def test_an_existing_bundle_is_never_replaced_and_nothing_is_left_behind(bundles):
    d, b, _, h = bundles
    before = b.read_bytes()
    listing = sorted(p.name for p in d.iterdir())
    with pytest.raises(ExportError, match="already exists"):
        write_visit_bundle(b, h, "v1")
    assert b.read_bytes() == before and sorted(p.name for p in d.iterdir()) == listing


def test_a_progress_bar_can_be_shown(bundles, capsys):
    d, _, _, h = bundles
    out = write_visit_bundle(d / "with-bar.zip", h, "v1", progress_bar=True, include_report=False)
    assert zipfile.ZipFile(out).testzip() is None
    err = capsys.readouterr().err
    assert "export visit v1" in err


def test_an_imported_trial_without_a_raw_recording_keeps_its_results(bundles):
    from steplab.records.export_model import ExportTrial

    d, _, _, h = bundles
    t1 = h.visits[0].trials[0]
    imported = ExportTrial(trial_id="imported-c3d", protocol="step-down", trial=None, analysis=t1.analysis)
    visit = ExportVisit("v9", [imported], day_offset=3)
    hist = ExportPatientHistory(h.subject, [*h.visits, visit])
    out = write_visit_bundle(d / "imported.zip", hist, "v9")
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert "trials/imported-c3d.results.json" in names and not any(n.endswith((".csv", ".c3d")) for n in names)
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["trials"][0]["raw_recording"] is False
    with pytest.raises(ExportError, match="no steplab raw recording"):
        from steplab.records.export_c3d import write_trial_c3d

        write_trial_c3d(d / "imported.c3d", imported, h.subject)
