"""``steplab db upgrade|backup|status``, and the ``--db`` option and error handling of every records command.

``db upgrade`` migrates a database (SQLite or PostgreSQL) to this steplab's schema.
``db backup OUT`` writes a consistent copy while the dashboard keeps running:
SQLite through its online backup API into a new SQLite file; PostgreSQL through
``pg_dump`` (custom format, one snapshot) into OUT.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from steplab.errors import UserError

BACKUP_TIMEOUT_S = 3600


def add_db_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="URL", default=None,
                   help="SQLAlchemy URL of the records database (default: $STEPLAB_DB, else the SQLite file in "
                        "$STEPLAB_DATA_DIR)")


@contextmanager
def records_errors() -> Iterator[None]:
    """Bad input, a busy or unreachable database, an older schema: one line, exit status 2."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except UserError:
        raise
    except ValueError as exc:  # RecordsError, TrialError, DatabaseError, ForceImportError, …
        raise UserError(" ".join(str(exc).split()) or type(exc).__name__) from None
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        raise UserError(f"database error: {first}") from None


def open_records(args: argparse.Namespace, **kw):
    """The records database of ``--db`` / $STEPLAB_DB / the data dir (a one-line error when unusable)."""
    from steplab.records.db import open_database

    with records_errors():
        return open_database(getattr(args, "db", None), **kw)


def register(sub) -> None:
    p = sub.add_parser("db", help="migrate or back up the records database",
                       description="Records database administration.")
    dsub = p.add_subparsers(dest="db_command", metavar="ACTION")
    up = dsub.add_parser("upgrade", help="migrate the database to this steplab's schema")
    add_db_option(up)
    up.add_argument("--json", action="store_true", help="print {revision_before, revision}")
    up.set_defaults(func=run_upgrade)
    bk = dsub.add_parser("backup", help="write a consistent copy of the database (safe while the dashboard runs)")
    bk.add_argument("out", metavar="OUT", help="the backup file to write (must not exist)")
    add_db_option(bk)
    bk.add_argument("--json", action="store_true", help="print {out, bytes, format}")
    bk.set_defaults(func=run_backup)
    st = dsub.add_parser("status", help="which database, and its schema revision")
    add_db_option(st)
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.set_defaults(func=run_status)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def run_upgrade(args: argparse.Namespace) -> int:
    from steplab.records.db import current_revision, redacted
    from steplab.records.migrate import head_revision, upgrade

    db = open_records(args, auto_upgrade=False, check_schema=False)
    try:
        with records_errors():
            before = current_revision(db.engine)
            upgrade(db)
            after = current_revision(db.engine)
    finally:
        db.dispose()
    assert after == head_revision()
    if args.json:
        print(json.dumps({"revision_before": before, "revision": after}))
    else:
        print(f"{redacted(db.url)}: schema {before or '(none)'} -> {after}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from steplab.records.db import current_revision, redacted
    from steplab.records.migrate import head_revision

    db = open_records(args, auto_upgrade=False, check_schema=False)
    try:
        with records_errors():
            rev = current_revision(db.engine)
    finally:
        db.dispose()
    d = {"database": redacted(db.url), "backend": db.engine.dialect.name, "revision": rev, "head": head_revision(),
         "up_to_date": rev == head_revision()}
    print(json.dumps(d) if args.json else "\n".join(f"{k:<11} {v}" for k, v in d.items()))
    return 0


def _pg_dump_args(url) -> tuple[list[str], dict]:
    import os

    args = ["--format=custom", "--no-owner"]
    env = dict(os.environ)
    if url.host:
        args += ["--host", url.host]
    elif url.query.get("host"):
        args += ["--host", str(url.query["host"])]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    if url.password:
        env["PGPASSWORD"] = url.password
    args += ["--dbname", url.database or "postgres"]
    return args, env


def _find_pg_dump() -> str:
    from steplab.benchmarks.pg_server import PgServerError, find_bin_dir

    try:
        candidate = find_bin_dir() / "pg_dump"
        if candidate.exists():
            return str(candidate)
    except PgServerError:
        pass
    found = shutil.which("pg_dump")
    if not found:
        raise UserError("pg_dump is not installed (Debian: postgresql-client); it makes PostgreSQL backups")
    return found


def run_backup(args: argparse.Namespace) -> int:
    from steplab.records.db import current_revision

    out = Path(args.out)
    if out.exists():
        raise UserError(f"{out} already exists; refusing to overwrite")
    if not out.parent.is_dir():
        raise UserError(f"the folder of {out} does not exist")
    db = open_records(args, auto_upgrade=False, check_schema=False)
    tmp = out.with_name(out.name + ".partial")
    try:
        with records_errors():
            if current_revision(db.engine) is None:
                raise UserError("the database has no steplab schema; nothing to back up")
            if db.is_sqlite:
                src = sqlite3.connect(db.engine.url.database, timeout=30)
                dst = sqlite3.connect(tmp)
                try:
                    src.backup(dst)  # SQLite's online backup: one consistent snapshot, writers keep going
                    dst.execute("PRAGMA journal_mode = DELETE")
                    ok = dst.execute("PRAGMA integrity_check").fetchone()[0]
                finally:
                    dst.close()
                    src.close()
                if ok != "ok":
                    raise UserError(f"the backup failed its integrity check: {ok}")
                fmt = "sqlite"
            else:
                dump_args, env = _pg_dump_args(db.engine.url)
                try:
                    r = subprocess.run([_find_pg_dump(), *dump_args, "--file", str(tmp)], capture_output=True,
                                       text=True, env=env, timeout=BACKUP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    raise UserError(f"pg_dump did not finish within {BACKUP_TIMEOUT_S} s") from None
                if r.returncode != 0:
                    raise UserError(f"pg_dump failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
                fmt = "pg_dump-custom"
            tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
        db.dispose()
    size = out.stat().st_size
    if args.json:
        print(json.dumps({"out": str(out), "bytes": size, "format": fmt}))
    else:
        print(f"backed up the records database into {out} ({size} bytes, {fmt})")
    return 0
