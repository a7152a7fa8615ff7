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


def _export_standalone(db, path: Path, fmt: str, out: Path, args: argparse.Namespace) -> list[Path]:
    """A trial file that is not in the database: analysed like ``steplab analyze``, exported on its own, audited."""
    from steplab.records.analysis import analyse_file
    from steplab.records.audit import add_entry
    from steplab.records.export_model import ExportSubject, ExportTrial
    from steplab.records.export_run import write_trial_file
    from steplab.records.history import pseudonymised_analysis

    if fmt not in ("csv", "c3d"):
        raise UserError(f"--format {fmt} needs a visit (--visit or --patient); a trial file exports as csv or c3d")
    a = analyse_file(path, args.protocol)
    if a.loaded.trial is None:
        raise UserError(f"{path} is not a steplab trial file")
    analysis = a.result.to_json_dict()
    subject = ExportSubject.pseudonymised("unassigned")
    et = ExportTrial(trial_id="file", protocol=args.protocol, trial=a.loaded.trial,  # type: ignore[arg-type]
                     analysis=analysis if args.identified else pseudonymised_analysis(analysis))
    audit_subject = f"file {a.sha256[:16]}"
    action = "export-identified" if args.identified else "export"
    if args.identified:
        db.write(lambda s: add_entry(s, None, "export-identified-start", audit_subject, identified=True,
                                     detail={"format": fmt}))
    files = [write_trial_file(fmt, out, et, subject, None)]
    detail = {"format": fmt, "files": 1, "trials": ["file"], "visit": None}
    db.write(lambda s: add_entry(s, None, action, audit_subject, identified=args.identified, detail=detail))
    return files


def _report(args: argparse.Namespace, files: list[Path]) -> int:
    if args.json:
        print(json.dumps({"files": [str(f) for f in files], "identified": bool(args.identified)}))
    else:
        for f in files:
            print(f"wrote {f}{' (identified)' if args.identified else ' (pseudonymised)'}")
    return 0


def run(args: argparse.Namespace) -> int:
    from steplab.cmd_analyze import PROTOCOL_CHOICES
    from steplab.records.export_run import check_target, export_records, stored_trial_of_file

    fmt, out = args.format, Path(args.out)
    if args.protocol not in PROTOCOL_CHOICES:
        raise UserError(f"--protocol must be one of {', '.join(PROTOCOL_CHOICES)}, got {args.protocol!r}")
    with records_errors():
        check_target(out)
    db = open_records(args)
    try:
        with records_errors():
            trial_id: int | None = None
            if args.trial is not None:
                tpath = Path(args.trial)
                if tpath.is_file():
                    trial_id = stored_trial_of_file(db, tpath)
                    if trial_id is None:
                        return _report(args, _export_standalone(db, tpath, fmt, out, args))
                elif not args.trial.isdigit():
                    raise UserError(f"--trial {args.trial}: no such file, and not a stored trial's id")
                else:
                    trial_id = _positive_int(args.trial, "--trial")
                if fmt in ("pdf", "bundle"):
                    raise UserError(f"--format {fmt} exports a visit: use --visit ID or --patient CODE")
            visit_id = _positive_int(args.visit, "--visit") if args.visit is not None else None
            done = export_records(db, fmt, out, trial_id=trial_id, visit_id=visit_id, patient_code=args.patient,
                                  identified=args.identified,
                                  progress_bar=None if fmt in ("csv", "c3d") else sys.stderr.isatty())
        if done.skipped:
            print(f"steplab export: note: trials {', '.join(done.skipped)} were imported from C3D/CSV files "
                  f"and have no raw counts to export as {fmt}", file=sys.stderr)
    except ModuleNotFoundError as exc:
        raise UserError(f"--format {fmt} is not available in this steplab ({exc.name} missing)") from None
    finally:
        db.dispose()
    return _report(args, done.files)
