"""``steplab patient add|list|show``: patients by their pseudonymous code.

``--name`` and ``--birth-date`` are identifying: they are stored apart and shown
only by ``patient show --identified`` (which is written to the audit log).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from steplab.cmd_db import add_db_option, open_records, records_errors
from steplab.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("patient", help="add, list and show patients", description="Patients (pseudonymous codes).")
    psub = p.add_subparsers(dest="patient_command", metavar="ACTION")

    add = psub.add_parser("add", help="add a patient")
    add.add_argument("code", metavar="CODE", help="pseudonymous code (letters, digits, . _ -)")
    add.add_argument("--involved", choices=("left", "right", "none"), default=None, help="the involved limb")
    add.add_argument("--birth-year", type=int, default=None, metavar="Y")
    add.add_argument("--height", type=float, default=None, metavar="CM", help="height in cm")
    add.add_argument("--notes", default=None)
    add.add_argument("--name", default=None, metavar="N", help="the patient's name (identifying; optional)")
    add.add_argument("--birth-date", default=None, metavar="YYYY-MM-DD", help="date of birth (identifying; optional)")
    add.add_argument("--json", action="store_true", help="print {code, id}")
    add_db_option(add)
    add.set_defaults(func=run_add)

    ls = psub.add_parser("list", help="list patients")
    ls.add_argument("--json", action="store_true", help="print a JSON list")
    add_db_option(ls)
    ls.set_defaults(func=run_list)

    show = psub.add_parser("show", help="a patient's visits, trials and progress")
    show.add_argument("code", metavar="CODE")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.add_argument("--identified", action="store_true", help="include name and date of birth (audited)")
    show.add_argument("--metrics", action="store_true", help="include every rep's metrics of each trial")
    add_db_option(show)
    show.set_defaults(func=run_show)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def parse_date(text: str | None, option: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{option} must be a date YYYY-MM-DD, got {text!r}") from None


def run_add(args: argparse.Namespace) -> int:
    from steplab.records.patients import add_patient

    birth_date = parse_date(args.birth_date, "--birth-date")
    db = open_records(args)
    try:
        with records_errors():
            pid = add_patient(db, args.code, involved=args.involved, birth_year=args.birth_year,
                              height_cm=args.height, notes=args.notes, name=args.name, birth_date=birth_date)
    finally:
        db.dispose()
    print(json.dumps({"code": args.code, "id": str(pid)}) if args.json else f"added patient {args.code}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from steplab.records.query import patient_list

    db = open_records(args)
    try:
        with records_errors(), db.read() as s:
            rows = patient_list(s)
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'code':<16} {'involved':<9} {'born':<5} {'visits':>6}  last visit")
    for r in rows:
        print(f"{r['code']:<16} {r['involved'] or '-':<9} {r['birth_year'] or '-'!s:<5} {r['visits']:>6}  "
              f"{r['last_visit'] or '-'}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from steplab.records.audit import add_entry
    from steplab.records.history import progress_json
    from steplab.records.query import patient_history

    db = open_records(args)
    try:
        with records_errors():
            with db.read() as s:
                d = patient_history(s, args.code, identified=args.identified, metrics=args.metrics)
                try:
                    d["progress"] = progress_json(s, args.code, history=d if args.metrics else None)
                except ValueError as exc:  # a summary that cannot be made must not hide the records
                    d["progress"] = None
                    print(f"steplab patient show: note: no progress summary ({exc})", file=sys.stderr)
            if args.identified:
                db.write(lambda s: add_entry(s, None, "view-identified", f"patient {args.code}", identified=True,
                                             detail={"command": "patient show"}))
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(d, allow_nan=False, default=str))
        return 0
    head = f"patient {d['code']}  involved {d['involved'] or '-'}  born {d['birth_year'] or '-'}"
    if args.identified:
        head += f"  name {d.get('name') or '-'}  date of birth {d.get('birth_date') or '-'}"
    print(head)
    for v in d["visits"]:
        pain = "/".join("-" if v[k] is None else f"{v[k]:g}" for k in ("pain_before", "pain_after", "pain_next_morning"))
        print(f"  visit {v['id']}  {v['date']}  body mass {v['body_mass_kg'] or '-'} kg  pain before/after/next {pain}")
        for t in v["trials"]:
            state = "accepted" if t["accepted"] else f"rejected ({t['reject_reason']})"
            print(f"    trial {t['id']}  {t['protocol']:<18} lead {t['lead'] or '-':<5}  {t['reps']} reps  {state}")
    return 0
