"""Exports from the records database, with their audit entries (``steplab export`` and the dashboard's export page).

One call exports one scope (a stored trial, a visit, or a patient) in one format:

* csv, c3d: one trial file for a stored trial (``single_file``), else a new
  folder ``out`` with one file per trial (``CODE_trialID_PROTOCOL.EXT``);
* pdf, bundle: one visit (a patient's latest visit when only the patient is given).

Pseudonymised unless ``identified`` (the patient's code, day offsets instead of
dates, no device serials, no original file names).  Every export is written to
the audit log with ``actor`` (the logged-in user; default the operating-system
user); an identified export is on the record before its first byte is written
and again when it is done.  Bad input raises :class:`RecordsError` (one line) and
writes no file.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from steplab.records.db import Database
from steplab.records.patients import RecordsError

FORMATS = ("csv", "c3d", "pdf", "bundle")


@dataclass
class ExportRun:
    """What an export wrote: ``files``; the exported trial ids; trials skipped because they were imported
    from C3D/CSV files (no raw counts to export as csv/c3d); the patient code and visit."""

    files: list[Path]
    trials: list[str]
    code: str
    visit_id: str | None
    identified: bool
    skipped: list[str] = field(default_factory=list)


def stored_trial_of_file(db: Database, path: str | Path) -> int | None:
    """The id of the first stored trial whose raw recording has the file's content, else None."""
    from steplab.records.models import RawRecording, Trial

    sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    with db.read() as s:
        if s.get(RawRecording, sha) is None:
            return None
        found = s.query(Trial.id).filter(Trial.raw_sha256 == sha).order_by(Trial.id).first()
    return None if found is None else int(found[0])


def check_target(out: Path) -> None:
    """Refuse an ``out`` that exists or whose folder does not (exports never replace a file)."""
    if out.exists():
        raise RecordsError(f"{out} already exists; choose another name (exports never replace a file)")
    if not out.parent.is_dir():
        raise RecordsError(f"cannot write {out}: folder {out.parent} does not exist")


def write_trial_file(fmt: str, path: Path, et, subject, body_mass_kg: float | None) -> Path:
    """One trial as csv or c3d (a trial imported from a foreign file has no raw counts: refused)."""
    if et.trial is None:
        source = (et.analysis.get("provenance") or {}).get("source_format") or "foreign"
        raise RecordsError(f"trial {et.trial_id} was imported from a {source} file; {fmt} export needs a steplab "
                           f"trial recording")
    if fmt == "csv":
        from steplab.records.export_csv import write_trial_csv

        return write_trial_csv(path, et, subject)
    from steplab.records.export_c3d import write_trial_c3d

    return write_trial_c3d(path, et, subject, body_mass_kg)


def _scope(db: Database, fmt: str, trial_id: int | None, visit_id: int | None,
           patient_code: str | None) -> tuple[str, str | None, set[str] | None]:
    """(patient code, visit id or None, trial ids or None) of the export's scope."""
    from steplab.records.history import patient_code_of_visit
    from steplab.records.models import Trial
    from steplab.records.patients import patient_by_code

    if sum(x is not None for x in (trial_id, visit_id, patient_code)) != 1:
        raise RecordsError("export one trial, one visit or one patient")
    with db.read() as s:
        if trial_id is not None:
            if fmt in ("pdf", "bundle"):
                raise RecordsError(f"--format {fmt} exports a visit: use --visit ID or --patient CODE")
            t = s.get(Trial, int(trial_id))
            if t is None:
                raise RecordsError(f"there is no trial {trial_id}")
            return t.visit.patient.code, str(t.visit_id), {str(trial_id)}
        if visit_id is not None:
            return patient_code_of_visit(s, int(visit_id)), str(visit_id), None
        p = patient_by_code(s, patient_code or "")
        if fmt in ("pdf", "bundle"):
            if not p.visits:
                raise RecordsError(f"patient {p.code} has no visits to report")
            return p.code, str(p.visits[-1].id), None
        return p.code, None, None


def export_records(db: Database, fmt: str, out: str | Path, *, trial_id: int | None = None,
                   visit_id: int | None = None, patient_code: str | None = None, identified: bool = False,
                   actor: str | None = None, single_file: bool | None = None, progress_bar: bool | None = False,
                   lsi_low_pct: float = 90.0) -> ExportRun:
    """Export one trial, visit or patient as ``fmt`` to ``out`` (a new file, or a new folder of trial files).

    ``single_file`` (csv/c3d): write the one trial to the file ``out`` (default: when ``trial_id`` is given).
    ``progress_bar``: a tqdm bar on stderr over the trials (None: when stderr is a terminal).
    ``lsi_low_pct``: the report's symmetry threshold (the upper one mirrors it around 100 %).
    """
    from tqdm import tqdm

    from steplab.records.audit import add_entry
    from steplab.records.history import history_from_db

    if fmt not in FORMATS:
        raise RecordsError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    check_target(out)
    code, vid, trial_ids = _scope(db, fmt, trial_id, visit_id, patient_code)
    audit_subject = f"patient {code}"
    if identified:  # an identified export is on the record before a byte of it is written
        db.write(lambda s: add_entry(s, actor, "export-identified-start", audit_subject, identified=True,
                                     detail={"format": fmt}))
    with db.read() as s:
        history = history_from_db(s, code, identified=identified, with_raw=True, visit_ids={vid} if vid else None)
    subject = history.subject
    masses = {t.trial_id: v.body_mass_kg for v in history.visits for t in v.trials}
    trials = [t for v in history.visits for t in v.trials
              if (trial_ids is None or t.trial_id in trial_ids)
              and (vid is None or trial_ids is not None or v.visit_id == vid)]
    files: list[Path] = []
    skipped: list[str] = []
    if fmt in ("csv", "c3d"):
        if not trials:
            raise RecordsError("there are no trials to export")
        if single_file is None:
            single_file = trial_id is not None
        if single_file and len(trials) == 1:
            files.append(write_trial_file(fmt, out, trials[0], subject, masses.get(trials[0].trial_id)))
        else:
            out.mkdir()
            quiet = len(trials) < 2 or progress_bar is False
            # no tqdm object at all when quiet: even a disabled bar starts tqdm's monitor thread
            bar = None if quiet else tqdm(trials, unit="trial", file=sys.stderr,
                                          disable=None if progress_bar is None else False, leave=False)
            try:
                for et in trials if bar is None else bar:
                    if et.trial is None:  # a C3D/CSV import: said (``skipped``), not silently dropped
                        skipped.append(et.trial_id)
                        continue
                    name = f"{subject.code}_trial{et.trial_id}_{et.protocol}.{fmt}"
                    files.append(write_trial_file(fmt, out / name, et, subject, masses.get(et.trial_id)))
            except BaseException:
                for f in files:
                    f.unlink(missing_ok=True)
                out.rmdir()
                raise
            finally:
                if bar is not None:
                    bar.close()
            if not files:
                out.rmdir()
                raise RecordsError(f"none of the trials has a steplab recording to export as {fmt}")
    elif fmt == "pdf":
        from steplab.records.report_pdf import write_visit_report

        assert vid is not None
        if not history.visit(vid).trials:
            raise RecordsError(f"visit {vid} has no trials to report")
        files.append(write_visit_report(out, history, vid, lsi_low_pct=lsi_low_pct, lsi_high_pct=200.0 - lsi_low_pct))
    else:
        from steplab.records.export_bundle import write_visit_bundle

        assert vid is not None
        if not history.visit(vid).trials:
            raise RecordsError(f"visit {vid} has no trials to export")
        files.append(write_visit_bundle(out, history, vid, progress_bar=bool(progress_bar)))
    exported = sorted(t.trial_id for t in trials)
    detail = {"format": fmt, "files": len(files), "trials": exported[:1000], "visit": vid}
    db.write(lambda s: add_entry(s, actor, "export-identified" if identified else "export", audit_subject,
                                 identified=identified, detail=detail))
    return ExportRun(files=files, trials=exported, code=code, visit_id=vid, identified=identified, skipped=skipped)
