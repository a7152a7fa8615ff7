"""``steplab import FILE… --patient CODE --protocol NAME``: recordings from anywhere into a visit.

Takes steplab trial files, C3D and CSV/TSV of forces, analysed as ``steplab
analyze`` analyses them (with the visit's body mass).  All or nothing per file: a
file that cannot be read, analysed or saved changes nothing and gets one line on
stderr; the others are imported.  Exit status 2 when any file failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from steplab.cmd_analyze import PROTOCOL_CHOICES, _number
from steplab.cmd_db import add_db_option, open_records, records_errors
from steplab.cmd_visit import visit_id
from steplab.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("import", help="import trial files, C3D or CSV/TSV into a patient's visit",
                       description="Import recordings into a visit (today's, made if missing, unless --visit) and "
                                   "analyse them; all or nothing per file.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--patient", required=True, metavar="CODE")
    p.add_argument("--visit", default=None, metavar="ID")
    p.add_argument("--protocol", required=True, metavar="NAME", help=f"one of {', '.join(PROTOCOL_CHOICES)}")
    p.add_argument("--lead", default=None, metavar="left|right")
    p.add_argument("--plates", default=None, metavar="ROLE,ROLE,...", help="plate roles in file order (C3D, CSV)")
    p.add_argument("--rate", default=None, metavar="HZ", help="sample rate of a CSV/TSV without a time column")
    p.add_argument("--pain", type=float, default=None, metavar="N", help="pain during the trial, 0-10 NRS")
    p.add_argument("--quality-score", type=int, default=None, metavar="0-6", help="movement-quality score")
    p.add_argument("--new-rig", action="store_true",
                   help="accept steplab trial files from a rig this database does not know yet (and register it)")
    p.add_argument("--json", action="store_true", help="print {imported: [...], failed: [...]}")
    add_db_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from steplab.records.ingest import Target, check_target, save_recording

    if args.protocol not in PROTOCOL_CHOICES:
        raise UserError(f"--protocol must be one of {', '.join(PROTOCOL_CHOICES)}, got {args.protocol!r}")
    rate = _number(args.rate, "--rate", 1.0, 100_000.0, "Hz")
    target = Target(patient=args.patient, protocol=args.protocol, visit_id=visit_id(args.visit) if args.visit else None,
                    lead=args.lead, pain_during=args.pain, quality_score=args.quality_score)
    db = open_records(args)
    imported, failed = [], []
    try:
        with records_errors():
            check_target(db, target)  # an unknown patient or visit: one line, before any file is read
        bar = tqdm(args.files, unit="file", file=sys.stderr, disable=len(args.files) < 2 or None, leave=False)
        for path in bar:
            try:
                with records_errors():
                    saved = save_recording(db, path, target, rate_hz=rate, plates=args.plates,
                                           allow_new_rig=args.new_rig)
            except UserError as exc:
                msg = str(exc) if Path(path).name in str(exc) else f"{path}: {exc}"
                failed.append({"file": path, "error": msg})
                tqdm.write(f"steplab import: error: {msg}", file=sys.stderr)
                continue
            if saved.same_recording_as:
                tqdm.write(f"steplab import: note: {path} is the same recording as trial "
                           f"{', '.join(map(str, saved.same_recording_as))}; saved again as trial {saved.trial_id}",
                           file=sys.stderr)
            imported.append({"file": path, "trial": str(saved.trial_id), "visit": str(saved.visit_id),
                             "reps": saved.reps, "raw_sha256": saved.raw_sha256,
                             "same_recording_as": [str(t) for t in saved.same_recording_as]})
        bar.close()
    finally:
        db.dispose()
    if args.json:
        print(json.dumps({"imported": imported, "failed": failed}))
    else:
        for r in imported:
            print(f"{r['file']}: trial {r['trial']} in visit {r['visit']}, {r['reps']} reps")
    return 2 if failed else 0
