"""The records options of ``steplab record`` (``--patient CODE [--visit ID] --protocol NAME [--lead L]``).

Kept apart from ``cmd_record`` so the recorder's command changes only by three calls:
the options, the check before recording, and the save after the trial file is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from steplab.cmd_analyze import PROTOCOL_CHOICES
from steplab.cmd_db import open_records, records_errors
from steplab.errors import UserError


def add_record_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("records", "save the trial and its analysis into a patient's visit")
    g.add_argument("--patient", default=None, metavar="CODE", help="the patient (pseudonymous code)")
    g.add_argument("--visit", default=None, metavar="ID", help="the visit (default: today's, made if missing)")
    g.add_argument("--protocol", default=None, metavar="NAME", help=f"one of {', '.join(PROTOCOL_CHOICES)}")
    g.add_argument("--lead", default=None, metavar="left|right", help="the lead limb (default: detected)")
    g.add_argument("--pain", type=float, default=None, metavar="N", help="pain during the trial, 0-10 NRS")
    g.add_argument("--db", default=None, metavar="URL", help="records database (default: $STEPLAB_DB or the data dir)")


def _target(args: argparse.Namespace):
    from steplab.cmd_visit import visit_id
    from steplab.records.ingest import Target

    if args.patient is None:
        for opt in ("visit", "protocol", "lead", "pain"):
            if getattr(args, opt) is not None:
                raise UserError(f"--{opt} needs --patient (the trial is saved into that patient's visit)")
        return None
    if args.protocol is None:
        raise UserError("--patient needs --protocol NAME")
    if args.protocol not in PROTOCOL_CHOICES:
        raise UserError(f"--protocol must be one of {', '.join(PROTOCOL_CHOICES)}, got {args.protocol!r}")
    return Target(patient=args.patient, protocol=args.protocol, visit_id=visit_id(args.visit) if args.visit else None,
                  lead=args.lead, pain_during=args.pain)


def check_record_target(args: argparse.Namespace) -> None:
    from steplab.records.ingest import check_target

    target = _target(args)
    if target is None:
        return
    db = open_records(args)
    try:
        with records_errors():
            check_target(db, target)
    finally:
        db.dispose()


def save_recorded(args: argparse.Namespace, out: Path) -> None:
    from steplab.records.ingest import save_recording

    target = _target(args)
    if target is None:
        return
    db = open_records(args)
    try:
        with records_errors():
            saved = save_recording(db, out, target, allow_new_rig=True)  # the rig is the one connected here
    except UserError as exc:
        raise UserError(f"the trial is recorded in {out} but not saved to the records: {exc} "
                        f"(steplab import {out} --patient {args.patient} --protocol {args.protocol})") from None
    finally:
        db.dispose()
    print(f"saved trial {saved.trial_id} ({saved.reps} reps) into visit {saved.visit_id} of patient {args.patient}",
          file=sys.stderr if args.json else sys.stdout)
