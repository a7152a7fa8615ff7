"""The records commands end to end (patient, visit, import, record, trial, user, db, export) on both databases."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_real_data, steplab_cmd
from sqlalchemy import func, select

from steplab.acquisition.rig import default_rig
from steplab.benchmarks.bench_records import synthetic_trial
from steplab.cli import main
from steplab.records.db import open_database
from steplab.records.models import AuditEntry, RawRecording, Rep, Result, Trial, Visit

NAME, BIRTH = "Zebediah Quux", "1961-02-03"
TIMEOUT_S = 180


def run(*args, db: str | None = None, stdin: str | None = None, ok: bool = True,
        subprocess_: bool = False) -> subprocess.CompletedProcess:
    """The steplab command: in this process through ``steplab.cli.main`` (fast), or as its own process."""
    argv = [*map(str, args), *(["--db", db] if db else [])]
    if subprocess_:
        r = subprocess.run(steplab_cmd(*argv), capture_output=True, text=True, input=stdin, timeout=TIMEOUT_S)
    else:
        out, err = io.StringIO(), io.StringIO()
        old_stdin = sys.stdin
        sys.stdin = io.StringIO(stdin or "")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(argv)
                except SystemExit as exc:  # argparse's usage errors
                    code = exc.code if isinstance(exc.code, int) else 2
        finally:
            sys.stdin = old_stdin
        r = subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
    if ok:
        assert r.returncode == 0, f"{args}: {r.stderr}"
    return r


def table_counts(url: str) -> dict[str, int]:
    db = open_database(url)
    try:
        with db.read() as s:
            return {m.__tablename__: int(s.scalar(select(func.count()).select_from(m)))
                    for m in (Visit, Trial, Result, Rep, RawRecording)}
    finally:
        db.dispose()


def one_line_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture
def url(db_url) -> str:
    if db_url.startswith("postgresql"):
        run("db", "upgrade", db=db_url)  # a server database is migrated explicitly
    return db_url


@pytest.fixture
def patient(url) -> str:
    r = run("patient", "add", "P001", "--involved", "left", "--birth-year", "1961", "--name", NAME,
            "--birth-date", BIRTH, "--json", db=url)
    assert json.loads(r.stdout)["code"] == "P001"
    return "P001"


def test_patient_visit_import_show_round_trip(url, patient, tmp_path):
    r = run("visit", "add", patient, "--date", "2026-03-02", "--body-mass", "70", "--pain-before", "4", "--json", db=url)
    vid = json.loads(r.stdout)["id"]
    f = synthetic_trial(tmp_path / "sd.steplab", leads=("left", "right", "left"))
    r = run("import", f, "--patient", patient, "--visit", vid, "--protocol", "step-down", "--new-rig", "--json", db=url)
    imp = json.loads(r.stdout)
    assert imp["failed"] == [] and imp["imported"][0]["visit"] == vid and imp["imported"][0]["reps"] == 3
    tsv = shared_real_data() / "dual_plate_jumps" / "Dual-DJ-Fz.txt"
    run("import", tsv, "--rate", "1000", "--patient", patient, "--visit", vid, "--protocol", "drop-landing", db=url)
    # imported exactly as `steplab analyze` analyses (with the visit's body mass)
    ref = json.loads(run("analyze", tsv, "--rate", "1000", "--protocol", "drop-landing", "--body-mass", "70",
                         "--json").stdout)
    show = json.loads(run("patient", "show", patient, "--json", "--metrics", db=url).stdout)
    assert show["code"] == patient and show["involved"] == "left"
    assert NAME not in json.dumps(show) and BIRTH not in json.dumps(show)
    assert "name" not in show and "birth_date" not in show
    (visit,) = show["visits"]
    assert visit["id"] == vid and visit["date"] == "2026-03-02"
    sd, dl = visit["trials"]
    assert sd["protocol"] == "step-down" and sd["accepted"] is True and sd["reps"] == 3
    assert dl["protocol"] == "drop-landing" and dl["reps"] == len(ref["reps"])
    for got, exp in zip(dl["rep_results"], ref["reps"]):
        assert got["metrics"] == exp["metrics"]  # the same numbers, to the last digit
    assert "progress" in show
    lst = json.loads(run("patient", "list", "--json", db=url).stdout)
    assert lst == [{"code": patient, "involved": "left", "birth_year": 1961, "visits": 1, "last_visit": "2026-03-02"}]
    visits = json.loads(run("visit", "list", patient, "--json", db=url).stdout)
    assert visits[0]["trials"] == 2 and visits[0]["pain_before"] == 4.0
    run("visit", "set-pain", vid, "--after", "5", "--next-morning", "2", db=url)
    visits = json.loads(run("visit", "list", patient, "--json", db=url).stdout)
    assert visits[0]["pain_after"] == 5.0 and visits[0]["pain_next_morning"] == 2.0
    ident = json.loads(run("patient", "show", patient, "--json", "--identified", db=url).stdout)
    assert ident["name"] == NAME and ident["birth_date"] == BIRTH


def test_trial_reject_and_reanalyze_commands(url, patient, tmp_path):
    f = synthetic_trial(tmp_path / "sd.steplab", leads=("left", "right"))
    tid = json.loads(run("import", f, "--patient", patient, "--protocol", "step-down", "--new-rig", "--json",
                         db=url).stdout)["imported"][0]["trial"]
    one_line_error(run("trial", "reject", tid, "--reason", " ", db=url, ok=False), "reason")
    run("trial", "reject", tid, "--reason", "stepped off the plate", db=url)
    r = run("trial", "reanalyze", tid, "--param", "force_cutoff_hz=40", "--reason", "noisy", "--json", db=url)
    assert json.loads(r.stdout) == {"trial": tid, "version": 2}
    one_line_error(run("trial", "reanalyze", tid, "--param", "cutoff=3", db=url, ok=False), "--param")
    one_line_error(run("trial", "reanalyze", tid, "--param", "force_cutoff_hz=-3", db=url, ok=False), "force_cutoff_hz")
    d = json.loads(run("trial", "show", tid, "--json", db=url).stdout)
    assert d["accepted"] is False and d["reject_reason"] == "stepped off the plate"
    assert [r["version"] for r in d["results"]] == [1, 2]
    assert d["results"][0]["parameters"]["force_cutoff_hz"] == 100.0
    assert d["results"][1]["parameters"]["force_cutoff_hz"] == 40.0
    assert d["raw_sha256"] and d["raw_format"] == "steplab-trial"


def test_bad_imports_change_nothing_and_say_so_in_one_line(url, patient, tmp_path):
    run("visit", "add", patient, db=url)
    good = synthetic_trial(tmp_path / "sd.steplab")
    c3d = shared_real_data() / "c3d_sample10" / "TYPE-2.C3D"
    truncated = tmp_path / "cut.c3d"
    truncated.write_bytes(c3d.read_bytes()[: c3d.stat().st_size // 3])
    missing_cols = tmp_path / "cols.csv"
    missing_cols.write_text("time_s\n" + "\n".join(f"{i / 1000:.3f}" for i in range(2000)) + "\n")
    unknown_rig = synthetic_trial(tmp_path / "other.steplab", rig=default_rig(serial="OTHER-CLINIC-9"))
    before = table_counts(url)
    for f, words in ((truncated, ("cut.c3d",)), (missing_cols, ("cols.csv",)),
                     (unknown_rig, ("unknown rig", "OTHER-CLINIC-9"))):
        r = run("import", f, "--patient", patient, "--protocol", "step-down", db=url, ok=False)
        one_line_error(r, *words)
        assert table_counts(url) == before, f
    r = run("import", good, "--patient", "NOBODY", "--protocol", "step-down", "--new-rig", db=url, ok=False)
    one_line_error(r, "NOBODY")
    one_line_error(run("import", good, "--patient", patient, "--protocol", "jump", db=url, ok=False), "--protocol")
    one_line_error(run("import", good, "--patient", patient, "--visit", "999", "--protocol", "step-down", db=url,
                       ok=False), "999")
    assert table_counts(url) == before
    # all or nothing per file: the good one is saved, the bad one not, exit status says so
    r = run("import", good, truncated, "--patient", patient, "--protocol", "step-down", "--new-rig", "--json",
            db=url, ok=False)
    assert r.returncode == 2
    d = json.loads(r.stdout)
    assert len(d["imported"]) == 1 and [x["file"] for x in d["failed"]] == [str(truncated)]
    after = table_counts(url)
    assert after["trials"] == before["trials"] + 1 and after["visits"] == before["visits"]


def test_a_failed_import_makes_no_visit(url, patient, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    one_line_error(run("import", bad, "--patient", patient, "--protocol", "step-down", "--rate", "1000", db=url,
                       ok=False), "bad.csv")
    assert table_counts(url)["visits"] == 0


def test_users(url):
    run("user", "add", "alice", "--role", "admin", db=url, stdin="correct horse battery\n")
    run("user", "add", "bob", "--role", "clinician", db=url, stdin="another long one\n")
    one_line_error(run("user", "add", "bob", "--role", "clinician", db=url, stdin="whatever123\n", ok=False), "bob")
    one_line_error(run("user", "add", "carol", "--role", "clinician", db=url, stdin="short\n", ok=False), "password")
    r = run("user", "list", "--json", db=url)
    users = json.loads(r.stdout)
    assert [(u["name"], u["role"]) for u in users] == [("alice", "admin"), ("bob", "clinician")]
    assert "correct horse" not in r.stdout
    from steplab.records.users import verify

    db = open_database(url)
    try:
        assert verify(db, "alice", "correct horse battery") == {"name": "alice", "role": "admin",
                                                              "must_change_password": False}
        assert verify(db, "alice", "wrong password") is None
        with db.read() as s:
            assert all(not h.startswith("correct") for h in s.scalars(select(__import__(
                "steplab.records.models", fromlist=["User"]).User.password_hash)))
    finally:
        db.dispose()


def test_export_is_pseudonymised_and_audited(url, patient, tmp_path):
    vid = json.loads(run("visit", "add", patient, "--body-mass", "70", "--json", db=url).stdout)["id"]
    f = synthetic_trial(tmp_path / f"{NAME.replace(' ', '_')}.steplab", leads=("left", "right"))
    tid = json.loads(run("import", f, "--patient", patient, "--protocol", "step-down", "--new-rig", "--json",
                         db=url).stdout)["imported"][0]["trial"]
    out = tmp_path / "t.csv"
    r = run("export", "--trial", tid, "--format", "csv", "--out", out, db=url)
    text = out.read_text()
    assert patient in text
    for secret in (NAME, BIRTH, NAME.replace(" ", "_"), default_rig().serial):
        assert secret not in text, secret
        assert secret not in r.stdout + r.stderr
    folder = tmp_path / "visit-csv"
    run("export", "--visit", vid, "--format", "csv", "--out", folder, db=url)
    assert [p.name for p in folder.iterdir()] == [f"{patient}_trial{tid}_step-down.csv"]
    ident = tmp_path / "ident.csv"
    run("export", "--trial", tid, "--format", "csv", "--out", ident, "--identified", db=url)
    assert NAME in ident.read_text()
    one_line_error(run("export", "--trial", tid, "--format", "csv", "--out", out, db=url, ok=False), "exists")
    db = open_database(url)
    try:
        with db.read() as s:
            log = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    finally:
        db.dispose()
    exports = [e for e in log if e.action.startswith("export")]
    assert [(e.action, e.identified) for e in exports] == [
        ("export", False), ("export", False), ("export-identified-start", True), ("export-identified", True)]
    assert all(e.subject == f"patient {patient}" for e in exports)
    for e in log:
        blob = json.dumps([e.actor, e.action, e.subject, e.detail])
        assert NAME not in blob and BIRTH not in blob


def test_no_name_or_birth_date_in_any_output(url, patient, tmp_path):
    """Every command's stdout and stderr (our log lines) without the identifying fields, unless --identified."""
    f = synthetic_trial(tmp_path / "sd.steplab")
    outputs = [run("visit", "add", patient, "--json", db=url, subprocess_=True),
               run("import", f, "--patient", patient, "--protocol", "step-down", "--new-rig", db=url, subprocess_=True),
               run("patient", "list", db=url), run("patient", "list", "--json", db=url),
               run("patient", "show", patient, db=url), run("patient", "show", patient, "--json", db=url),
               run("visit", "list", patient, db=url), run("trial", "show", "1", "--json", db=url),
               run("import", f, "--patient", patient, "--protocol", "nope", db=url, ok=False)]
    for r in outputs:
        for secret in (NAME, BIRTH, "Zebediah", "1961-02-03"):
            assert secret not in r.stdout and secret not in r.stderr


def test_older_schema_is_named_and_untouched(tmp_path):
    from steplab.records.db import Database, make_engine
    from steplab.records.migrate import head_revision, upgrade

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    raw = Database(url, make_engine(url))
    upgrade(raw, "0001")
    raw.dispose()
    r = run("patient", "list", db=url, ok=False, subprocess_=True)
    one_line_error(r, "0001", "db upgrade")
    assert sqlite3.connect(tmp_path / "old.sqlite").execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)
    r = run("db", "upgrade", "--json", db=url)
    assert json.loads(r.stdout) == {"revision_before": "0001", "revision": head_revision()}
    run("patient", "list", db=url)


def test_server_database_needs_db_upgrade(pg_server):
    db_url = pg_server.create_database()  # a server database: never migrated behind the admin's back
    one_line_error(run("patient", "list", db=db_url, ok=False), "no steplab schema", "db upgrade")
    run("db", "upgrade", db=db_url)
    assert json.loads(run("patient", "list", "--json", db=db_url).stdout) == []


def test_default_database_is_made_in_the_data_dir(data_dir, monkeypatch):
    monkeypatch.delenv("STEPLAB_DB", raising=False)
    run("patient", "add", "D1", subprocess_=True)
    assert (data_dir / "steplab.sqlite").exists()
    assert json.loads(run("patient", "list", "--json", subprocess_=True).stdout)[0]["code"] == "D1"


def test_backup_is_a_consistent_copy(url, patient, tmp_path):
    f = synthetic_trial(tmp_path / "sd.steplab")
    run("import", f, "--patient", patient, "--protocol", "step-down", "--new-rig", db=url)
    out = tmp_path / "backup.bin"
    d = json.loads(run("db", "backup", out, "--json", db=url).stdout)
    assert d["bytes"] == out.stat().st_size > 0
    one_line_error(run("db", "backup", out, db=url, ok=False), "exists")
    if url.startswith("sqlite"):
        restored = f"sqlite:///{out}"
        assert table_counts(restored) == table_counts(url)
        db = open_database(restored)
        try:
            with db.read() as s:
                assert bytes(s.get(RawRecording, d_sha(f)).data) == f.read_bytes()
        finally:
            db.dispose()
    else:
        assert out.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format (restore with pg_restore)


def d_sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_record_into_a_visit(sim_process, data_dir, tmp_path):
    run("patient", "add", "R1", "--involved", "right")
    one_line_error(run("record", "--device", "sim", "--seconds", "1", "--out", tmp_path / "x.steplab",
                       "--patient", "NOPE", "--protocol", "step-down", ok=False), "NOPE")
    assert not (tmp_path / "x.steplab").exists()  # refused before recording
    sim = sim_process("--seconds", "60", "--seed", "4", "--scenario", "step-down")
    out = tmp_path / "r.steplab"
    r = run("record", "--device", sim.port, "--seconds", "4", "--out", out, "--json", "--patient", "R1",
            "--protocol", "step-down", subprocess_=True)
    summary = json.loads(r.stdout)  # stdout stays the one documented JSON object
    assert summary["out"] == str(out)
    show = json.loads(run("patient", "show", "R1", "--json").stdout)
    (visit,) = show["visits"]
    (trial,) = visit["trials"]
    assert trial["protocol"] == "step-down"
    db = open_database(None)
    try:
        with db.read() as s:
            t = s.get(Trial, int(trial["id"]))
            assert bytes(t.raw.data) == out.read_bytes()
            assert t.data_quality["lost_samples"] == summary["lost_samples"]
            assert int(np.asarray(t.raw.size_bytes)) == out.stat().st_size
    finally:
        db.dispose()


def test_export_report_bundle_and_trial_files(url, patient, tmp_path):
    import zipfile

    vid = json.loads(run("visit", "add", patient, "--body-mass", "70", "--json", db=url).stdout)["id"]
    f = synthetic_trial(tmp_path / "sd.steplab", leads=("left", "right", "left", "right"))
    run("import", f, "--patient", patient, "--protocol", "step-down", "--new-rig", db=url)
    pdf = tmp_path / "report.pdf"
    run("export", "--patient", patient, "--format", "pdf", "--out", pdf, db=url)  # the latest visit
    assert pdf.read_bytes()[:5] == b"%PDF-"
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, timeout=60).stdout
    assert patient in text and NAME not in text and BIRTH not in text
    bundle = tmp_path / "visit.zip"
    run("export", "--visit", vid, "--format", "bundle", "--out", bundle, db=url)
    with zipfile.ZipFile(bundle) as z:
        names = z.namelist()
        blob = b"".join(z.read(n) for n in names)
    assert names and NAME.encode() not in blob and BIRTH.encode() not in blob
    one_line_error(run("export", "--trial", "1", "--format", "pdf", "--out", tmp_path / "x.pdf", db=url, ok=False),
                   "--visit")
    # a trial file that is in the database is found by its content
    by_file = tmp_path / "by-file.csv"
    run("export", "--trial", f, "--format", "csv", "--out", by_file, db=url)
    assert patient in by_file.read_text()
    # a trial file that is not: exported on its own, with no patient
    lone = synthetic_trial(tmp_path / "lone.steplab", seed=9)
    lone_csv = tmp_path / "lone.csv"
    run("export", "--trial", lone, "--format", "c3d", "--out", lone_csv.with_suffix(".c3d"), db=url)
    assert lone_csv.with_suffix(".c3d").stat().st_size > 0
    db = open_database(url)
    try:
        with db.read() as s:
            actions = [(e.action, e.subject) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    finally:
        db.dispose()
    assert [a for a, _ in actions if a.startswith("export")] == ["export"] * 4
    assert actions[-1][1].startswith("file ")


def test_visit_summary_uses_the_stored_reps(url, patient, tmp_path):
    vid = json.loads(run("visit", "add", patient, "--body-mass", "70", "--json", db=url).stdout)["id"]
    f = synthetic_trial(tmp_path / "sd.steplab", leads=("left", "right", "left", "right"))
    run("import", f, "--patient", patient, "--visit", vid, "--protocol", "step-down", "--new-rig", db=url)
    show = json.loads(run("patient", "show", patient, "--json", "--metrics", db=url).stdout)
    reps = show["visits"][0]["trials"][0]["rep_results"]
    d = json.loads(run("visit", "summary", vid, "--json", db=url).stdout)
    peak = d["protocols"]["step-down"]["metrics"]["landing_peak_force_bw"]  # a landing metric: the lead limb's
    for limb in ("left", "right"):
        values = [r["metrics"]["landing_peak_force_bw"] for r in reps if r["lead"] == limb]
        assert len(values) == 2
        assert peak[limb]["n"] == 2
        assert peak[limb]["mean"] == pytest.approx(np.mean(values), rel=1e-12)
        assert peak[limb]["sd"] == pytest.approx(np.std(values, ddof=1), rel=1e-9)
