"""``steplab visit add|list|set-pain|summary``: a patient's visits (weigh-in, pain, battery)."""

from __future__ import annotations

import argparse
import json

from steplab.cmd_db import add_db_option, open_records, records_errors
from steplab.cmd_patient import parse_date
from steplab.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("visit", help="add and list visits", description="Visits of a patient.")
    vsub = p.add_subparsers(dest="visit_command", metavar="ACTION")

    add = vsub.add_parser("add", help="add a visit; prints its id")
    add.add_argument("code", metavar="CODE", help="the patient's code")
    add.add_argument("--date", default=None, metavar="YYYY-MM-DD", help="default today")
    add.add_argument("--body-mass", type=float, default=None, metavar="KG", help="the weigh-in, kg")
    add.add_argument("--pain-before", type=float, default=None, metavar="N", help="pain before, 0-10 NRS")
    add.add_argument("--battery", default=None, metavar="NAME,NAME,...", help="the protocols planned")
    add.add_argument("--notes", default=None)
    add.add_argument("--json", action="store_true", help="print {id, code, date}")
    add_db_option(add)
    add.set_defaults(func=run_add)

    ls = vsub.add_parser("list", help="a patient's visits")
    ls.add_argument("code", metavar="CODE")
    ls.add_argument("--json", action="store_true")
    add_db_option(ls)
    ls.set_defaults(func=run_list)

    sp = vsub.add_parser("set-pain", help="enter pain after the visit or the next morning (0-10 NRS)")
    sp.add_argument("visit", metavar="ID")
    sp.add_argument("--before", type=float, default=None, metavar="N")
    sp.add_argument("--after", type=float, default=None, metavar="N")
    sp.add_argument("--next-morning", type=float, default=None, metavar="N")
    add_db_option(sp)
    sp.set_defaults(func=run_set_pain)

    sm = vsub.add_parser("summary", help="a visit's per-limb statistics, symmetry and change since last time")
    sm.add_argument("visit", metavar="ID")
    sm.add_argument("--json", action="store_true")
    add_db_option(sm)
    sm.set_defaults(func=run_summary)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def visit_id(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise UserError(f"a visit id is a number, got {text!r}") from None
    if v <= 0:
        raise UserError(f"a visit id is a positive number, got {text!r}")
    return v


def run_add(args: argparse.Namespace) -> int:
    from steplab.records.patients import add_visit

    date = parse_date(args.date, "--date")
    battery = [b.strip() for b in args.battery.split(",") if b.strip()] if args.battery else None
    db = open_records(args)
    try:
        with records_errors():
            vid = add_visit(db, args.code, date=date, body_mass_kg=args.body_mass, pain_before=args.pain_before,
                            battery=battery, notes=args.notes)
    finally:
        db.dispose()
    if args.json:
        print(json.dumps({"id": str(vid), "code": args.code, "date": (date.isoformat() if date else None) or
                          __import__("datetime").date.today().isoformat()}))
    else:
        print(vid)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from steplab.records.query import visit_list

    db = open_records(args)
    try:
        with records_errors(), db.read() as s:
            rows = visit_list(s, args.code)
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(rows))
        return 0
    for r in rows:
        print(f"{r['id']:>6}  {r['date']}  {r['trials']} trials  body mass {r['body_mass_kg'] or '-'} kg")
    return 0


def run_set_pain(args: argparse.Namespace) -> int:
    from steplab.records.audit import current_actor
    from steplab.records.patients import set_pain

    if args.before is None and args.after is None and args.next_morning is None:
        raise UserError("give --before, --after and/or --next-morning")
    vid = visit_id(args.visit)
    db = open_records(args)
    try:
        with records_errors():
            set_pain(db, vid, before=args.before, after=args.after, next_morning=args.next_morning,
                     actor=current_actor())
    finally:
        db.dispose()
    print(f"visit {vid}: pain entered")
    return 0


def run_summary(args: argparse.Namespace) -> int:
    from steplab.records.history import visit_summary_json

    vid = visit_id(args.visit)
    db = open_records(args)
    try:
        with records_errors(), db.read() as s:
            d = visit_summary_json(s, vid)
    finally:
        db.dispose()
    if d is None:
        raise UserError("visit summaries are not available in this steplab (records.summary missing)")
    print(json.dumps(d, allow_nan=False, default=str) if args.json else json.dumps(d, indent=1, default=str))
    return 0
