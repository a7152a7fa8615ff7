"""`steplab recover`: rebuild a trial file from the raw journal after a crash."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from steplab.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("recover", help="rebuild a trial from its raw journal",
                       description="Rebuild a trial file from the raw journal a recording left behind "
                       "(everything up to the journal's last flush, at most 100 ms before a crash).")
    p.add_argument("journal", metavar="JOURNAL", help="the .journal file")
    p.add_argument("--out", required=True, metavar="FILE", help="trial file to write")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from steplab.acquisition.journal import JournalError
    from steplab.acquisition.recorder import RecordingError, recover
    from steplab.acquisition.rig import RigError
    from steplab.acquisition.trial_file import TrialFileError

    out = Path(args.out)
    if os.path.lexists(out):  # checked again, atomically, when the trial is linked into place
        raise UserError(f"{out} already exists; refusing to overwrite it")
    if not out.parent.is_dir():
        raise UserError(f"the folder of {out} does not exist")
    try:
        _trial, summary = recover(args.journal, out)
    except (JournalError, RecordingError, RigError, TrialFileError) as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"recovered {summary['samples']} samples into {out}; {summary['lost_samples']} lost in {len(summary['gaps'])} gaps")
    return 0
