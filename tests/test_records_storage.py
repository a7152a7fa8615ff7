"""records storage on SQLite and on a real PostgreSQL server: saves, result versions, crashes, concurrency."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import wait_for
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from steplab.acquisition.rig import default_rig
from steplab.analysis_pipeline import analyze_counts
from steplab.benchmarks.bench_records import synthetic_trial
from steplab.dsp import AnalysisParams
from steplab.records.db import SchemaError, open_database
from steplab.records.importers import load_forces
from steplab.records.models import RawRecording, Rep, Result, RigRecord, Trial, Visit
from steplab.records.patients import add_patient, add_visit
from steplab.records.query import patient_history
from steplab.records.trials import TrialError, reanalyze, save_file, set_accepted

CHILD_TIMEOUT_S = 120


def counts(db) -> dict[str, int]:
    with db.read() as s:
        return {m.__tablename__: int(s.scalar(select(func.count()).select_from(m)))
                for m in (Visit, Trial, Result, Rep, RawRecording, RigRecord)}


@pytest.fixture
def db(db_url):
    d = open_database(db_url, auto_upgrade=True)
    yield d
    d.dispose()


@pytest.fixture
def trial_file(tmp_path) -> Path:
    return synthetic_trial(tmp_path / "sd.steplab", leads=("left", "right"), seed=3)


def test_save_keeps_raw_bytes_and_analysis(db, trial_file):
    add_patient(db, "P1", involved="left")
    vid = add_visit(db, "P1", body_mass_kg=70.0)
    saved = save_file(db, vid, trial_file, "step-down", allow_new_rig=True)
    raw = trial_file.read_bytes()
    assert saved.raw_sha256 == hashlib.sha256(raw).hexdigest()
    with db.read() as s:
        rec = s.get(RawRecording, saved.raw_sha256)
        assert rec is not None and bytes(rec.data) == raw  # lossless
        t = s.get(Trial, saved.trial_id)
        assert t.accepted and t.rig.serial == default_rig().serial and t.calibration_id == "nominal"
        assert t.data_quality["lost_samples"] == 0
        res = s.scalars(select(Result).where(Result.trial_id == t.id)).one()
        assert res.version == 1 and res.parameters == AnalysisParams().to_dict()
        stored = [r.metrics for r in res.reps]
    # independent: the core on the same file, with the visit's body mass
    loaded = load_forces(trial_file)
    ref = analyze_counts(loaded.counts, loaded.rate_hz, loaded.calibration, "step-down", body_mass_kg=70.0)
    assert len(stored) == len(ref.reps) == 2
    for got, exp in zip(stored, ref.reps):
        for name, v in exp.metrics.items():
            assert got[name] == (pytest.approx(v, rel=1e-9) if v is not None else None), name
    with db.read() as s:
        h = patient_history(s, "P1")
    assert h["visits"][0]["trials"][0]["reps"] == 2 and h["visits"][0]["trials"][0]["protocol"] == "step-down"


def test_raw_recording_is_stored_once(db, trial_file):
    add_patient(db, "P1")
    vid = add_visit(db, "P1")
    a = save_file(db, vid, trial_file, "step-down", allow_new_rig=True)
    b = save_file(db, vid, trial_file, "step-down", lead="right")
    assert a.trial_id != b.trial_id and a.raw_sha256 == b.raw_sha256
    assert a.same_recording_as == () and b.same_recording_as == (a.trial_id,)
    c = counts(db)
    assert c["trials"] == 2 and c["raw_recordings"] == 1 and c["rigs"] == 1


def test_reanalysis_adds_a_version_and_keeps_the_old(db, trial_file):
    add_patient(db, "P1")
    vid = add_visit(db, "P1")
    saved = save_file(db, vid, trial_file, "step-down", allow_new_rig=True)
    with db.read() as s:
        v1 = s.scalars(select(Result).where(Result.trial_id == saved.trial_id)).one()
        v1_metrics = [dict(r.metrics) for r in v1.reps]
    other = AnalysisParams(force_cutoff_hz=20.0)
    assert reanalyze(db, saved.trial_id, params=other, reason="lower cut-off") == 2
    assert reanalyze(db, saved.trial_id) == 3
    with db.read() as s:
        results = list(s.scalars(select(Result).where(Result.trial_id == saved.trial_id).order_by(Result.version)))
        assert [r.version for r in results] == [1, 2, 3]
        assert [dict(r.metrics) for r in results[0].reps] == v1_metrics  # never overwritten
        assert results[1].parameters["force_cutoff_hz"] == 20.0 and results[1].reason == "lower cut-off"
        peak = [r.metrics["landing_peak_force_bw"] for r in results[1].reps]
        assert peak != [m["landing_peak_force_bw"] for m in v1_metrics]  # 20 Hz smooths the landing peak
        assert [dict(r.metrics) for r in results[2].reps] == v1_metrics  # default parameters: same numbers
        h = patient_history(s, "P1")
    assert h["visits"][0]["trials"][0]["result_version"] == 3


def test_reject_needs_a_reason_and_keeps_the_trial(db, trial_file):
    add_patient(db, "P1")
    vid = add_visit(db, "P1")
    saved = save_file(db, vid, trial_file, "step-down", allow_new_rig=True)
    with pytest.raises(TrialError, match="reason"):
        set_accepted(db, saved.trial_id, False)
    set_accepted(db, saved.trial_id, False, reason="patient lost balance")
    with db.read() as s:
        t = s.get(Trial, saved.trial_id)
        assert not t.accepted and t.reject_reason == "patient lost balance"
    with db.write_engine.connect() as conn, pytest.raises(IntegrityError):  # the schema refuses it
        with conn.begin():
            conn.execute(text("UPDATE trials SET reject_reason = NULL"))


def test_unknown_rig_is_refused_and_nothing_changes(db, tmp_path):
    add_patient(db, "P1")
    vid = add_visit(db, "P1")
    f = synthetic_trial(tmp_path / "other.steplab", rig=default_rig(serial="CLINIC-B-7"))
    before = counts(db)
    with pytest.raises(TrialError, match="unknown rig.*CLINIC-B-7"):
        save_file(db, vid, f, "step-down")
    assert counts(db) == before


def test_bad_files_change_nothing(db, tmp_path):
    add_patient(db, "P1")
    vid = add_visit(db, "P1")
    bad = tmp_path / "bad.csv"
    bad.write_text("time\n0.0\n0.001\n")
    before = counts(db)
    with pytest.raises(ValueError):
        save_file(db, vid, bad, "step-down")
    with pytest.raises(TrialError, match="no visit"):
        save_file(db, vid + 99, synthetic_trial(tmp_path / "x.steplab"), "step-down", allow_new_rig=True)
    assert counts(db) == before


SAVE_CHILD = textwrap.dedent("""
    import sys
    from steplab.records.db import open_database
    from steplab.records.trials import save_file
    db = open_database(sys.argv[1])
    for path in sys.argv[3:]:
        save_file(db, int(sys.argv[2]), path, "step-down", allow_new_rig=True)
    print("saved", flush=True)
""")


def _child(args, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SAVE_CHILD, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def test_sigkill_during_a_save_leaves_no_half_trial(db, db_url, trial_file, tmp_path):
    add_patient(db, "P1")
    vid = add_visit(db, "P1")
    marker = tmp_path / "paused"
    before = counts(db)
    proc = _child([db_url, vid, trial_file], env={"STEPLAB_FAULT_SAVE_PAUSE_S": "60",
                                                  "STEPLAB_FAULT_SAVE_MARKER": str(marker)})
    try:
        assert wait_for(marker.exists, timeout_s=CHILD_TIMEOUT_S), proc.stderr.read() if proc.poll() is not None else ""
        os.kill(proc.pid, signal.SIGKILL)  # trial and result inserted, reps not yet, nothing committed
        proc.wait(CHILD_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(CHILD_TIMEOUT_S)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert counts(db) == before  # none of it
    if db.is_sqlite:
        with db.read() as s:
            assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    saved = save_file(db, vid, trial_file, "step-down", allow_new_rig=True)  # the database still takes saves
    after = counts(db)
    assert after["trials"] == 1 and after["reps"] == saved.reps == 2 and after["raw_recordings"] == 1


def test_a_save_paused_but_not_killed_is_whole(db, db_url, trial_file, tmp_path):
    add_patient(db, "P1")
    vid = add_visit(db, "P1")
    proc = _child([db_url, vid, trial_file], env={"STEPLAB_FAULT_SAVE_PAUSE_S": "0.5"})
    out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
    assert proc.returncode == 0, err
    c = counts(db)
    assert c["trials"] == 1 and c["results"] == 1 and c["reps"] == 2


def test_two_processes_saving_at_once_lose_nothing(db, db_url, tmp_path):
    add_patient(db, "P1")
    vid = add_visit(db, "P1")
    files = [synthetic_trial(tmp_path / f"t{i}.steplab", leads=("left",), seed=20 + i) for i in range(6)]
    procs = [_child([db_url, vid, *files[:3]]), _child([db_url, vid, *files[3:]])]
    results = [p.communicate(timeout=CHILD_TIMEOUT_S) for p in procs]
    for p, (_out, err) in zip(procs, results):
        # SQLite may answer "database busy" after its retries; it never corrupts or half-saves
        assert p.returncode == 0 or "database busy" in err, err
    c = counts(db)
    saved_ok = sum(out.count("saved") for out, _ in results)
    assert saved_ok == 2 or db.is_sqlite
    assert c["trials"] == c["results"] == c["reps"]
    assert c["raw_recordings"] == c["trials"]
    if saved_ok == 2:
        assert c["trials"] == 6
    with db.read() as s:
        shas = set(s.scalars(select(Trial.raw_sha256)))
    assert shas <= {hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def test_migration_from_the_first_schema_keeps_every_row(db_url):
    from steplab.records.db import Database, make_engine
    from steplab.records.migrate import head_revision, upgrade

    raw = Database(db_url, make_engine(db_url))
    upgrade(raw, "0001")  # a database as the first release made it
    with raw.write_engine.begin() as c:
        c.execute(text("INSERT INTO patients (id, code, involved, created_at) VALUES (1, 'OLD1', 'left', '2025-01-02')"))
        c.execute(text("INSERT INTO patient_identities (patient_id, name) VALUES (1, 'Old Name')"))
        c.execute(text("INSERT INTO visits (id, patient_id, date, pain_next_morning, created_at) "
                       "VALUES (1, 1, '2025-01-02', 3, '2025-01-02')"))
        c.execute(text("INSERT INTO protocols (id, name, version, title, parameters, created_at) "
                       "VALUES (1, 'step-down', '1.0', 'sd', '{}', '2025-01-02')"))
        c.execute(text("INSERT INTO raw_recordings (sha256, source_format, suffix, size_bytes, data, created_at) "
                       "VALUES ('ab', 'csv', '.csv', 2, :d, '2025-01-02')"), {"d": b"\x00\x01"})
        c.execute(text("INSERT INTO trials (id, visit_id, protocol_id, raw_sha256, data_quality, load_options, "
                       "accepted, created_at) VALUES (1, 1, 1, 'ab', '{}', '{}', :t, '2025-01-02')"), {"t": True})
    with pytest.raises(SchemaError, match="0001.*db upgrade"):
        open_database(db_url)  # an older schema is named, and not touched
    with raw.engine.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    upgrade(raw)
    db = open_database(db_url)
    with db.read() as s:
        assert s.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision() != "0001"
        v = s.get(Visit, 1)
        assert v.pain_next_morning == 3 and v.pain_next_morning_at is None and v.patient.code == "OLD1"
        assert bytes(s.get(RawRecording, "ab").data) == b"\x00\x01"
        assert s.get(Trial, 1).accepted
        assert s.execute(text("SELECT name FROM patient_identities")).scalar() == "Old Name"
    raw.dispose()
    db.dispose()


def test_a_database_without_schema_is_named(db_url):
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).touch()  # exists, empty
    with pytest.raises(SchemaError, match="no steplab schema"):
        open_database(db_url, auto_upgrade=False)


def test_logins_are_audited(db):
    from steplab.records.audit import entries
    from steplab.records.users import add_user, verify

    add_user(db, "alice", "clinician", "a long password")
    assert verify(db, "alice", "a long password") == {"name": "alice", "role": "clinician", "must_change_password": False}
    assert verify(db, "alice", "wrong") is None
    assert verify(db, "nobody", "a long password") is None
    with db.read() as s:
        got = [(e.action, e.actor) for e in entries(s) if e.action.startswith("login")]
    assert got == [("login", "alice"), ("login-failed", "unknown"), ("login-failed", "unknown")]


def test_protocol_templates_are_the_dsp_protocols(db):
    from steplab.dsp.params import PROTOCOL_VERSIONS, PROTOCOLS
    from steplab.records.protocols import PROTOCOL_NAMES, analysis_params, get_protocol

    assert PROTOCOL_NAMES == PROTOCOLS

    def make(s):
        return [(p.name, p.version, analysis_params(p)) for p in (get_protocol(s, n) for n in PROTOCOLS)]

    rows = db.write(make)
    assert [(n, v) for n, v, _ in rows] == [(n, PROTOCOL_VERSIONS[n]) for n in PROTOCOLS]
    assert all(p == AnalysisParams() for _, _, p in rows)
    assert db.write(make) == rows  # made once


def test_the_default_database_is_made_in_a_new_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("STEPLAB_DATA_DIR", str(tmp_path / "new" / "dir"))
    monkeypatch.delenv("STEPLAB_DB", raising=False)
    d = open_database(None)
    try:
        assert d.is_sqlite and (tmp_path / "new" / "dir" / "steplab.sqlite").exists()
        with d.read() as s:
            assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert s.execute(text("PRAGMA busy_timeout")).scalar() > 0
    finally:
        d.dispose()


def test_backup_while_another_process_saves_is_consistent(db, db_url, tmp_path, request):
    """`steplab db backup` during saves: the copy holds whole trials only, and restores."""
    from steplab.benchmarks.pg_server import find_bin_dir
    from steplab.cli import main

    add_patient(db, "P1")
    vid = add_visit(db, "P1")
    files = [synthetic_trial(tmp_path / f"b{i}.steplab", leads=("left",), seed=40 + i) for i in range(4)]
    proc = _child([db_url, vid, *files], env={"STEPLAB_FAULT_SAVE_PAUSE_S": "0.3"})
    backups = []
    try:
        for k in range(3):
            out = tmp_path / f"backup{k}"
            assert main(["db", "backup", str(out), "--db", db_url]) == 0
            backups.append(out)
        _, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(CHILD_TIMEOUT_S)
    assert proc.returncode == 0, err
    for k, out in enumerate(backups):
        if db.is_sqlite:
            url = f"sqlite:///{out}"
        else:
            url = request.getfixturevalue("pg_server").create_database(f"restored_{k}")
            r = subprocess.run([str(find_bin_dir() / "pg_restore"), "--no-owner", "--dbname",
                                url.replace("postgresql+psycopg", "postgresql").replace("@/", "@localhost/"), str(out)],
                               capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
            assert r.returncode == 0, r.stderr
        copy = open_database(url)
        try:
            c = counts(copy)
        finally:
            copy.dispose()
        assert c["trials"] == c["results"] == c["reps"] == c["raw_recordings"] <= 4  # whole trials only
        assert c["visits"] == 1
