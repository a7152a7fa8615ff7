"""The records database: engine from a URL, the environment or the data directory; schema version.

Where the database is (first that is set wins):

1. an explicit SQLAlchemy URL (``--db``),
2. ``$STEPLAB_DB``,
3. ``$STEPLAB_DATA_DIR/steplab.sqlite`` (the embedded default; the data dir
   defaults to the user's data directory).

SQLite connections run in WAL mode with foreign keys on and a busy timeout;
write transactions start with ``BEGIN IMMEDIATE`` so two writers queue for the
write lock instead of failing half-way.  PostgreSQL is reached with
``postgresql+psycopg://…``.

The schema belongs to the Alembic migrations in ``records/migrations``.  The
SQLite default is created and migrated on first use (:func:`open_database` with
``auto_upgrade``); any other database must be at the head revision, otherwise
:class:`SchemaError` says so and nothing is changed (``steplab db upgrade``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_FILE = "steplab.sqlite"
SQLITE_BUSY_TIMEOUT_MS = 15_000
#: How often a write transaction that met a busy database is tried again before "database busy".
BUSY_RETRIES = 5

T = TypeVar("T")


class DatabaseError(ValueError):
    """The database cannot be used (unreachable, wrong URL, busy, wrong schema): one line."""


class SchemaError(DatabaseError):
    """The database's schema is not the one this steplab uses (run ``steplab db upgrade``)."""


class DatabaseBusy(DatabaseError):
    """Another process held the write lock for longer than the busy timeout."""


def data_dir() -> Path:
    """``$STEPLAB_DATA_DIR`` or the user's data directory for steplab."""
    env = os.environ.get("STEPLAB_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("steplab"))


def default_url() -> str:
    """The SQLite file in the data directory, as an SQLAlchemy URL."""
    return f"sqlite:///{data_dir() / SQLITE_FILE}"


def resolve_url(url: str | None = None) -> tuple[str, bool]:
    """(URL, is_default): ``url``, else ``$STEPLAB_DB``, else the SQLite default."""
    if url:
        return url, False
    env = os.environ.get("STEPLAB_DB")
    if env:
        return env, False
    return default_url(), True


def redacted(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.close()


def _sqlite_begin(conn) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("steplab_write") else "BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with steplab's connection settings (SQLite pragmas, pool pre-ping)."""
    try:
        u = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"not a database URL: {url!r} (expected sqlite:///FILE or postgresql+psycopg://...)") from None
    backend = u.get_backend_name()
    if backend == "sqlite":
        db = u.database
        if db and db != ":memory:":
            folder = Path(db).expanduser().resolve().parent
            if not folder.is_dir():
                raise DatabaseError(f"the folder of the SQLite database {db} does not exist")
        engine = create_engine(u, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000.0})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        if u.get_driver_name() not in ("psycopg", "psycopg2"):
            u = u.set(drivername="postgresql+psycopg")
        return create_engine(u, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    raise DatabaseError(f"unsupported database {backend!r}: use sqlite:///FILE or postgresql+psycopg://...")


@dataclass
class Database:
    """An open records database: the engine and session factories for reads and writes."""

    url: str
    engine: Engine

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def write_engine(self) -> Engine:
        return self.engine.execution_options(steplab_write=True)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (its transaction is ended, never committed, at the end)."""
        with _translated(self.url):
            with sessionmaker(self.engine, expire_on_commit=False)() as s:
                yield s  # closing ends the transaction; loaded objects stay readable (detached, not expired)

    def write(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in ONE transaction and commit it; a busy database is tried again.

        Everything ``work`` adds is committed together or not at all (a crash or an
        exception leaves nothing).  ``work`` must not commit itself.
        """
        delay_s = 0.2
        for attempt in range(BUSY_RETRIES + 1):
            try:
                with _translated(self.url):
                    with sessionmaker(self.write_engine, expire_on_commit=False)() as s:
                        with s.begin():
                            return work(s)
            except DatabaseBusy:
                if attempt == BUSY_RETRIES:
                    raise
                time.sleep(delay_s)
                delay_s *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def dispose(self) -> None:
        self.engine.dispose()


def _is_busy(exc: BaseException) -> bool:
    msg = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in msg or "database is busy" in msg or "deadlock detected" in msg \
        or "could not serialize" in msg


@contextmanager
def _translated(url: str) -> Iterator[None]:
    """Driver errors as one-line DatabaseErrors (busy, unreachable)."""
    try:
        yield
    except DBAPIError as exc:
        if _is_busy(exc):
            raise DatabaseBusy("database busy: another steplab held the write lock too long; try again") from None
        if isinstance(exc, OperationalError) and exc.connection_invalidated is False and "connect" in str(exc.orig).lower():
            first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
            raise DatabaseError(f"cannot reach the database {redacted(url)}: {first}") from None
        raise


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision stamped in the database, or None for a database without steplab's schema."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return row[0] if row else None


def open_database(url: str | None = None, *, auto_upgrade: bool | None = None, check_schema: bool = True) -> Database:
    """Open the records database (see the module doc for which one).

    ``auto_upgrade``: migrate to head first (default: only the SQLite default file,
    and any SQLite file that does not exist yet).  Otherwise a schema that is not the
    head revision raises :class:`SchemaError` naming both revisions.
    """
    from steplab.records.migrate import head_revision, upgrade

    resolved, is_default = resolve_url(url)
    if is_default:
        try:
            data_dir().mkdir(parents=True, exist_ok=True)  # a fresh machine: the data directory is made here
        except OSError as exc:
            raise DatabaseError(f"cannot make the data directory {data_dir()}: {exc.strerror or exc}") from None
    engine = make_engine(resolved)
    if auto_upgrade is None:
        auto_upgrade = is_default
        if engine.dialect.name == "sqlite" and engine.url.database and not Path(engine.url.database).exists():
            auto_upgrade = True
    db = Database(resolved, engine)
    try:
        with _translated(resolved):
            current = current_revision(engine)
            head = head_revision()
            if current != head and auto_upgrade:
                upgrade(db)
                current = current_revision(engine)
    except DatabaseError:
        engine.dispose()
        raise
    except DBAPIError as exc:
        engine.dispose()
        first = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
        raise DatabaseError(f"cannot open the database {redacted(resolved)}: {first}") from None
    if check_schema and current != head:
        engine.dispose()
        if current is None:
            raise SchemaError(f"the database {redacted(resolved)} has no steplab schema; run: steplab db upgrade --db URL")
        raise SchemaError(f"the database {redacted(resolved)} has schema {current}, this steplab needs {head}; "
                          f"run: steplab db upgrade")
    return db
