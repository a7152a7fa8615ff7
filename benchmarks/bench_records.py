"""Records benchmark: a clinic's year of data in SQLite and PostgreSQL, and the reads and save that matter.

The clinic: ``patients`` patients with ``visits_per_patient`` visits each and
``trials_per_visit`` trials per visit, each with one result of three reps (the
full year: 500 × 10 × 10 = 50 000 trials).  It is built with bulk inserts; raw
recordings are shared between trials (a few distinct synthetic step-down
recordings) to save disk.  Measured, as the median of a few runs:

* ``patient_list_ms``: the patient list;
* ``patient_progress_ms``: one patient's history with every visit, trial and metric;
* ``visit_summary_ms``: one visit's data and its summary;
* ``save_trial_ms``: saving one new 20 s trial with its analysis (the insert
  transaction); ``analyse_and_save_trial_ms`` adds reading and analysing the file.

Goal: each read under 300 ms, the save under 200 ms.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

READ_GOAL_MS = 300.0
SAVE_GOAL_MS = 200.0


def synthetic_trial(path: Path, *, leads=("left", "right", "left"), seed: int = 1, body_mass_kg: float = 70.0,
                    rig=None) -> Path:
    """Write a steplab trial file of a synthetic step-down (about 7 s per rep, 1 kHz, nominal calibration)."""
    from steplab.acquisition.rig import default_rig
    from steplab.acquisition.trial_file import Trial, write_trial
    from steplab.dsp.streaming import synthetic_step_down

    rig = rig or default_rig()
    rec = synthetic_step_down(1000.0, tuple(leads), body_mass_kg=body_mass_kg, seed=seed)
    n = rec["box"].fz_n.shape[0]
    counts = np.zeros((n, rig.channels), dtype=np.int32)
    for plate in rig.plates:
        pf = rec[plate.role]
        fz = pf.fz_n
        x = np.zeros(n) if pf.my_nm is None else -pf.my_nm / np.where(np.abs(fz) > 1e-9, fz, 1.0) * 1000.0
        for cell in plate.cells:
            share = 0.25 * (1.0 + x * np.sign(cell.x_mm) / abs(cell.x_mm))  # lever rule on the rectangle
            counts[:, cell.channel] = np.rint(fz * share * cell.nominal_counts_per_n).astype(np.int32)
    trial = Trial(counts, np.arange(n, dtype=np.int64), 1000.0, rig,
                  {"quality": {"lost_samples": 0, "crc_errors": 0, "gaps": []}, "calibration": None,
                   "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    write_trial(path, trial)
    return path


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return round(statistics.median(times), 2)


def build_clinic(db, *, patients: int, visits_per_patient: int, trials_per_visit: int, raw_variants: int = 4,
                 seed: int = 7, workdir: Path) -> dict:
    """Fill ``db`` (migrated, empty) with a synthetic clinic by bulk inserts; returns its size."""
    from sqlalchemy import insert

    from steplab.records.analysis import analyse_file
    from steplab.records.models import Patient, RawRecording, RigRecord, utcnow
    from steplab.records.protocols import analysis_params, get_protocol

    rng = random.Random(seed)
    variants = []
    for k in range(raw_variants):
        leads = ("left", "right", "left") if k % 2 == 0 else ("right", "left", "right")
        p = synthetic_trial(workdir / f"variant{k}.steplab", leads=leads, seed=100 + k)
        variants.append(analyse_file(p, "step-down"))
    now = utcnow()
    with db.write_engine.begin() as conn:
        from sqlalchemy.orm import Session

        with Session(bind=conn) as s:
            proto = get_protocol(s, "step-down")
            params = analysis_params(proto).to_dict()
            first_trial: Any = variants[0].loaded.trial
            rig = first_trial.rig
            s.add(RigRecord(rig_hash=rig.hash(), serial=rig.serial, name=rig.name, description=rig.to_dict(),
                            created_at=now))
            for a in variants:
                s.add(RawRecording(sha256=a.sha256, source_format="steplab-trial", suffix=a.suffix,
                                   size_bytes=len(a.raw), data=a.raw, created_at=now))
            s.flush()
            rig_id = s.query(RigRecord.id).scalar()
            proto_id, proto_version = proto.id, proto.version
        conn.execute(insert(Patient), [
            {"id": i + 1, "code": f"P{i + 1:04d}", "involved": rng.choice(("left", "right")),
             "birth_year": rng.randint(1950, 2008), "height_cm": rng.uniform(150, 195), "created_at": now}
            for i in range(patients)])
        start = dt.date(2025, 1, 6)
        visit_rows, trial_rows, result_rows, rep_rows = [], [], [], []
        vid = tid = rep_id = 0
        for pi in range(patients):
            first = start + dt.timedelta(days=rng.randint(0, 300))
            for vi in range(visits_per_patient):
                vid += 1
                visit_rows.append({"id": vid, "patient_id": pi + 1, "date": first + dt.timedelta(days=7 * vi),
                                   "body_mass_kg": 70.0, "pain_before": rng.randint(0, 8),
                                   "pain_after": rng.randint(0, 8), "battery": ["step-down"], "created_at": now})
                for ti in range(trials_per_visit):
                    tid += 1
                    a = variants[(pi + vi + ti) % len(variants)]
                    d = a.result.to_json_dict()
                    trial_rows.append({"id": tid, "visit_id": vid, "protocol_id": proto_id,
                                       "lead": "left" if ti % 2 == 0 else "right", "raw_sha256": a.sha256,
                                       "rig_id": rig_id, "calibration_id": "nominal",
                                       "data_quality": {"lost_samples": 0, "crc_errors": 0}, "load_options": {},
                                       "accepted": True, "created_at": now})
                    result_rows.append({"id": tid, "trial_id": tid, "version": 1, "protocol_version": proto_version,
                                        "parameters": params, "software_version": "bench",
                                        "sample_rate_hz": d["sample_rate_hz"], "body_weight_n": d["body_weight_n"],
                                        "body_mass_kg": d["body_mass_kg"], "flags": d["flags"],
                                        "provenance": d["provenance"], "created_at": now})
                    for ri, rep in enumerate(d["reps"]):
                        rep_id += 1
                        jitter = 1.0 + rng.gauss(0, 0.05)
                        metrics = {k: (None if v is None else v * jitter) for k, v in rep["metrics"].items()}
                        rep_rows.append({"id": rep_id, "result_id": tid, "rep_index": ri, "lead": rep["lead"],
                                         "t_onset_s": rep["t_onset_s"], "t_contact_s": rep["t_contact_s"],
                                         "metrics": metrics, "flags": rep["flags"]})
                if len(rep_rows) > 20_000:
                    _flush(conn, visit_rows, trial_rows, result_rows, rep_rows)
        _flush(conn, visit_rows, trial_rows, result_rows, rep_rows)
        if db.engine.dialect.name == "postgresql":
            from sqlalchemy import text

            for table in ("patients", "visits", "trials", "results", "reps"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy import text

        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("ANALYZE"))
    else:
        from sqlalchemy import text

        with db.write_engine.begin() as c:
            c.execute(text("ANALYZE"))
    return {"patients": patients, "visits": vid, "trials": tid, "reps": rep_id, "raw_recordings": len(variants)}


def _flush(conn, visits, trials, results, reps) -> None:
    from sqlalchemy import insert

    from steplab.records.models import Rep, Result, Trial, Visit

    for model, rows in ((Visit, visits), (Trial, trials), (Result, results), (Rep, reps)):
        if rows:
            conn.execute(insert(model), rows)
            rows.clear()


def measure_database(url: str, *, patients: int, visits_per_patient: int, trials_per_visit: int,
                     repeats: int = 5) -> dict:
    """Build the clinic in the (empty) database at ``url`` and time the reads and the save."""
    from steplab.records.analysis import analyse_file
    from steplab.records.db import open_database
    from steplab.records.history import progress_json, visit_summary_json
    from steplab.records.query import patient_history, patient_list
    from steplab.records.trials import save_analysed

    db = open_database(url, auto_upgrade=True)
    try:
        with tempfile.TemporaryDirectory(prefix="steplab-bench-") as tmp:
            work = Path(tmp)
            t0 = time.perf_counter()
            size = build_clinic(db, patients=patients, visits_per_patient=visits_per_patient,
                                trials_per_visit=trials_per_visit, workdir=work)
            build_s = time.perf_counter() - t0
            code = f"P{patients // 2 + 1:04d}"
            with db.read() as s:
                hist = patient_history(s, code, metrics=False)
            visit_id = int(hist["visits"][-1]["id"])

            def read_list():
                with db.read() as s:
                    assert len(patient_list(s)) == patients

            def read_progress():
                with db.read() as s:
                    h = patient_history(s, code, metrics=True)  # what `patient show --json --metrics` prints
                    assert len(h["visits"]) == visits_per_patient
                    progress_json(s, code, history=h)

            def read_visit():
                with db.read() as s:
                    visit_summary_json(s, visit_id)

            out: dict = {"size": size, "build_s": round(build_s, 1),
                   "patient_list_ms": _median_ms(read_list, repeats),
                   "patient_progress_ms": _median_ms(read_progress, repeats),
                   "visit_summary_ms": _median_ms(read_visit, repeats)}
            p20 = synthetic_trial(work / "save.steplab", leads=("left", "right", "left"), seed=5)
            t0 = time.perf_counter()
            analysed = analyse_file(p20, "step-down", body_mass_kg=70.0)
            out["analyse_trial_ms"] = round((time.perf_counter() - t0) * 1000.0, 1)
            out["trial_seconds"] = round(analysed.loaded.duration_s, 1)
            saves, whole = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                a = analyse_file(p20, "step-down", body_mass_kg=70.0)
                t1 = time.perf_counter()
                save_analysed(db, visit_id, "step-down", a, allow_new_rig=True)
                t2 = time.perf_counter()
                saves.append((t2 - t1) * 1000.0)
                whole.append((t2 - t0) * 1000.0)
            out["save_trial_ms"] = round(statistics.median(saves), 2)
            out["analyse_and_save_trial_ms"] = round(statistics.median(whole), 2)
            out["goals_met"] = bool(max(out["patient_list_ms"], out["patient_progress_ms"],
                                        out["visit_summary_ms"]) < READ_GOAL_MS and out["save_trial_ms"] < SAVE_GOAL_MS)
            return out
    finally:
        db.dispose()


def measure_records(quick: bool) -> dict:
    """The records section of ``steplab bench``: the same clinic in SQLite and in a throwaway PostgreSQL."""
    from steplab.benchmarks.pg_server import PgServer, PgServerError

    shape = dict(patients=10, visits_per_patient=4, trials_per_visit=3) if quick else \
        dict(patients=500, visits_per_patient=10, trials_per_visit=10)
    repeats = 2 if quick else 5
    out: dict = {"clinic": shape}
    with tempfile.TemporaryDirectory(prefix="steplab-bench-db-") as tmp:
        out["sqlite"] = measure_database(f"sqlite:///{Path(tmp) / 'clinic.sqlite'}", repeats=repeats, **shape)
    if quick:  # `bench --quick` stays under 30 s: a throwaway PostgreSQL server takes seconds to start
        out["postgresql"] = {"skipped": "with --quick (run `steplab bench` for PostgreSQL)"}
        return out
    try:
        with PgServer(fsync=True) as pg:
            out["postgresql"] = measure_database(pg.create_database("bench"), repeats=repeats, **shape)
    except PgServerError as exc:
        out["postgresql"] = {"error": str(exc)}
    return out
