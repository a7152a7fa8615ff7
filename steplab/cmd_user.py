"""``steplab user add NAME --role admin|clinician`` (password from stdin), ``steplab user list`` and
``steplab user reset-password NAME`` (a new one-time password, printed once: the way back in for a locked-out admin)."""

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
    reset = usub.add_parser("reset-password", help="give a user a new one-time password (printed once); "
                            "they choose their own at the next login")
    reset.add_argument("name", metavar="NAME")
    reset.add_argument("--json", action="store_true")
    add_db_option(reset)
    reset.set_defaults(func=run_reset)
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


def run_reset(args: argparse.Namespace) -> int:
    from steplab.records.users import reset_password

    db = open_records(args)
    try:
        with records_errors():
            password = reset_password(db, args.name)  # audited with the operating-system user as actor
    finally:
        db.dispose()
    if args.json:
        print(json.dumps({"name": args.name, "one_time_password": password}))
    else:
        print(f"new one-time password for {args.name}: {password}\n"
              "(shown only now; a new password is chosen at the next login)")
    return 0
