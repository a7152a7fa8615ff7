"""``steplab export (--trial FILE|ID | --visit ID | --patient CODE) --format csv|c3d|pdf|bundle --out PATH``.

Loads the trials from the records database, pseudonymises them (the patient's
code instead of a name, day offsets from the first visit instead of dates, no
device serials, no original file names) unless ``--identified``, and calls the
writers of ``records.export_*`` / ``records.report_pdf``.  Every export is
written to the audit log (an identified one before and after writing).

* csv, c3d: one trial file; for a visit or patient, OUT is a new folder with one
  file per trial.  ``--trial FILE`` takes a trial file (found in the database by
  its content hash when it was saved there, else exported on its own).
* pdf, bundle: one visit (``--visit``; ``--patient`` takes the latest visit).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from steplab.cmd_db import add_db_option, open_records, records_errors
from steplab.errors import UserError

FORMATS = ("csv", "c3d", "pdf", "bundle")


def register(sub) -> None:
    p = sub.add_parser("export", help="export trials or visits (CSV, C3D, PDF report, visit bundle)",
                       description="Export records. Pseudonymised unless --identified (audited).")
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("--trial", metavar="FILE|ID", help="a trial file, or a stored trial's id")
    scope.add_argument("--visit", metavar="ID", help="a visit")
    scope.add_argument("--patient", metavar="CODE", help="a patient (every trial; pdf/bundle: the latest visit)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, metavar="PATH", help="file to write (a new folder for several trials)")
    p.add_argument("--identified", action="store_true",
                   help="include the patient's name, date of birth, real dates and device serials (audited)")
    p.add_argument("--protocol", default="step-down", metavar="NAME",
                   help="how to analyse a --trial FILE that is not in the database (default step-down)")
    p.add_argument("--json", action="store_true", help="print {files: [...], identified}")
    add_db_option(p)
    p.set_defaults(func=run)


def _positive_int(text: str, what: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise UserError(f"{what} must be a number, got {text!r}") from None
    if v <= 0:
        raise UserError(f"{what} must be a positive number, got {text!r}")
    return v


def _write_trial(fmt: str, path: Path, et, subject, body_mass_kg) -> Path:
    if et.trial is None:
        source = (et.analysis.get("provenance") or {}).get("source_format") or "foreign"
        raise UserError(f"trial {et.trial_id} was imported from a {source} file; {fmt} export needs a steplab trial "
                        f"recording")
    if fmt == "csv":
        from steplab.records.export_csv import write_trial_csv

        return write_trial_csv(path, et, subject)
    from steplab.records.export_c3d import write_trial_c3d

    return write_trial_c3d(path, et, subject, body_mass_kg)


def _standalone(path: Path, fmt: str, identified: bool, protocol: str) -> tuple[list, dict]:
    """A trial file that is not in the database: analysed like ``steplab analyze``, exported on its own."""
    from steplab.records.analysis import analyse_file
    from steplab.records.export_model import ExportSubject, ExportTrial
    from steplab.records.history import pseudonymised_analysis

    if fmt not in ("csv", "c3d"):
        raise UserError(f"--format {fmt} needs a visit (--visit or --patient); a trial file exports as csv or c3d")
    with records_errors():
        a = analyse_file(path, protocol)
    if a.loaded.trial is None:
        raise UserError(f"{path} is not a steplab trial file")
    analysis = a.result.to_json_dict()
    subject = ExportSubject.pseudonymised("unassigned")
    et = ExportTrial(trial_id="file", protocol=protocol, trial=a.loaded.trial,  # type: ignore[arg-type]
                     analysis=analysis if identified else pseudonymised_analysis(analysis))
    return [et], {"subject": subject, "body_mass_kg": None, "sha256": a.sha256}


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from steplab.cmd_analyze import PROTOCOL_CHOICES
    from steplab.records.audit import add_entry
    from steplab.records.history import history_from_db, patient_code_of_visit
    from steplab.records.models import RawRecording, Trial
    from steplab.records.patients import patient_by_code

    fmt, out = args.format, Path(args.out)
    if args.protocol not in PROTOCOL_CHOICES:
        raise UserError(f"--protocol must be one of {', '.join(PROTOCOL_CHOICES)}, got {args.protocol!r}")
    if out.exists():
        raise UserError(f"{out} already exists; choose another name (exports never replace a file)")
    if not out.parent.is_dir():
        raise UserError(f"cannot write {out}: folder {out.parent} does not exist")
    db = open_records(args)
    try:
        with records_errors():
            standalone = None
            trial_ids: set[str] | None = None
            visit_id: str | None = None
            if args.trial is not None:
                tpath = Path(args.trial)
                if tpath.is_file():
                    sha = hashlib.sha256(tpath.read_bytes()).hexdigest()
                    with db.read() as s:
                        found = s.query(Trial.id).filter(Trial.raw_sha256 == sha).order_by(Trial.id).first() \
                            if s.get(RawRecording, sha) is not None else None
                    if found is None:
                        standalone = _standalone(tpath, fmt, args.identified, args.protocol)
                    else:
                        trial_ids = {str(found[0])}
                else:
                    if not args.trial.isdigit():
                        raise UserError(f"--trial {args.trial}: no such file, and not a stored trial's id")
                    trial_ids = {str(_positive_int(args.trial, "--trial"))}
                if fmt in ("pdf", "bundle"):
                    raise UserError(f"--format {fmt} exports a visit: use --visit ID or --patient CODE")
            trials: list
            if standalone is not None:
                trials, ctx = standalone
                subject, code = ctx["subject"], None
                masses: dict[str, float | None] = {"file": None}
                audit_subject = f"file {ctx['sha256'][:16]}"
            else:
                with db.read() as s:
                    if trial_ids is not None:
                        t = s.get(Trial, int(next(iter(trial_ids))))
                        if t is None:
                            raise UserError(f"there is no trial {next(iter(trial_ids))}")
                        code, visit_id = t.visit.patient.code, str(t.visit_id)
                    elif args.visit is not None:
                        visit_id = str(_positive_int(args.visit, "--visit"))
                        code = patient_code_of_visit(s, int(visit_id))
                    else:
                        p = patient_by_code(s, args.patient)
                        code = p.code
                        if fmt in ("pdf", "bundle"):
                            if not p.visits:
                                raise UserError(f"patient {code} has no visits to report")
                            visit_id = str(p.visits[-1].id)
                audit_subject = f"patient {code}"
                if args.identified:  # an identified export is on the record before a byte of it is written
                    db.write(lambda s: add_entry(s, None, "export-identified-start", audit_subject, identified=True,
                                                 detail={"format": fmt}))
                with db.read() as s:
                    history = history_from_db(s, code, identified=args.identified, with_raw=True,
                                              visit_ids={visit_id} if visit_id else None)
                subject = history.subject
                masses = {t.trial_id: v.body_mass_kg for v in history.visits for t in v.trials}
                trials = [t for v in history.visits for t in v.trials
                          if (trial_ids is None or t.trial_id in trial_ids)
                          and (visit_id is None or trial_ids is not None or v.visit_id == visit_id)]
            files: list[Path] = []
            if fmt in ("csv", "c3d"):
                if not trials:
                    raise UserError("there are no trials to export")
                if len(trials) == 1 and (args.trial is not None):
                    files.append(_write_trial(fmt, out, trials[0], subject, masses.get(trials[0].trial_id)))
                else:
                    out.mkdir()
                    bar = tqdm(trials, unit="trial", file=sys.stderr, disable=len(trials) < 2 or None, leave=False)
                    skipped = []
                    for et in bar:
                        if et.trial is None:  # a C3D/CSV import: said, not silently dropped
                            skipped.append(et.trial_id)
                            continue
                        name = f"{subject.code}_trial{et.trial_id}_{et.protocol}.{fmt}"
                        files.append(_write_trial(fmt, out / name, et, subject, masses.get(et.trial_id)))
                    bar.close()
                    if skipped:
                        print(f"steplab export: note: trials {', '.join(skipped)} were imported from C3D/CSV files "
                              f"and have no raw counts to export as {fmt}", file=sys.stderr)
                    if not files:
                        out.rmdir()
                        raise UserError(f"none of the trials has a steplab recording to export as {fmt}")
            elif fmt == "pdf":
                from steplab.records.report_pdf import write_visit_report

                assert visit_id is not None
                files.append(write_visit_report(out, history, visit_id))
            else:
                from steplab.records.export_bundle import write_visit_bundle

                assert visit_id is not None
                files.append(write_visit_bundle(out, history, visit_id, progress_bar=sys.stderr.isatty()))
            detail = {"format": fmt, "files": len(files), "trials": sorted(t.trial_id for t in trials)[:1000],
                      "visit": visit_id}
            db.write(lambda s: add_entry(s, None, "export-identified" if args.identified else "export", audit_subject,
                                         identified=args.identified, detail=detail))
    except ModuleNotFoundError as exc:
        raise UserError(f"--format {fmt} is not available in this steplab ({exc.name} missing)") from None
    finally:
        db.dispose()
    if args.json:
        print(json.dumps({"files": [str(f) for f in files], "identified": bool(args.identified)}))
    else:
        for f in files:
            print(f"wrote {f}{' (identified)' if args.identified else ' (pseudonymised)'}")
    return 0
