"""``steplab user add NAME --role admin|clinician`` (password from stdin) and ``steplab user list``."""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from steplab.cmd_db import add_db_option, open_records, records_errors
from steplab.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("user", help="add and list users (admins, clinicians)", description="Dashboard users.")
    usub = p.add_subparsers(dest="user_command", metavar="ACTION")
    add = usub.add_parser("add", help="add a user; the password is read from stdin (first line)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", required=True, choices=("admin", "clinician"))
    add.add_argument("--json", action="store_true")
    add_db_option(add)
    add.set_defaults(func=run_add)
    ls = usub.add_parser("list", help="list users (never their passwords)")
    ls.add_argument("--json", action="store_true")
    add_db_option(ls)
    ls.set_defaults(func=run_list)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _read_password() -> str:
    if sys.stdin is None:
        raise UserError("the password is read from stdin, and there is none")
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise UserError("the two passwords differ")
        return first
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def run_add(args: argparse.Namespace) -> int:
    from steplab.records.users import add_user

    password = _read_password()
    db = open_records(args)
    try:
        with records_errors():
            add_user(db, args.name, args.role, password)
    finally:
        db.dispose()
    print(json.dumps({"name": args.name, "role": args.role}) if args.json else f"added {args.role} {args.name}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from steplab.records.users import list_users

    db = open_records(args)
    try:
        with records_errors():
            rows = list_users(db)
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            print(f"{r['name']:<24} {r['role']:<10} {'active' if r['active'] else 'disabled'}")
    return 0
