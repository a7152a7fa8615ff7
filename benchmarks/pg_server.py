"""A throwaway PostgreSQL server for the tests and the benchmark.

``PgServer().start()`` runs ``initdb`` into a new temporary folder, starts the
server with ``pg_ctl`` on a Unix socket in that folder (no TCP port), and gives
SQLAlchemy URLs for databases it creates; ``stop()`` stops it and removes the
folder.  PostgreSQL refuses to run as root, so as root every server command runs
as the ``postgres`` user (``runuser``) on a folder owned by that user; otherwise
as the current user.  Every wait has a deadline.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
COMMAND_TIMEOUT_S = 120


class PgServerError(RuntimeError):
    """PostgreSQL is missing or would not start (the message says what to install or read)."""


def find_bin_dir() -> Path:
    """The folder with initdb/pg_ctl: the newest /usr/lib/postgresql/*/bin, else the PATH."""
    def version(p: str) -> tuple[int, ...]:
        m = re.search(r"/postgresql/([\d.]+)/bin", p)
        return tuple(int(x) for x in m.group(1).split(".")) if m else (0,)

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PgServerError("PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or on PATH): "
                        "install Debian's postgresql package (make test does)")


class PgServer:
    """One temporary PostgreSQL cluster; use as a context manager or start()/stop()."""

    def __init__(self, *, fsync: bool = False, superuser: str = "steplab"):
        self.bin_dir = find_bin_dir()
        self.fsync = fsync
        self.superuser = superuser
        self.root: Path | None = None
        self.as_postgres = os.geteuid() == 0
        self._started = False
        self._n_db = 0

    # -- running the server's commands as the right user -----------------------------------
    def _cmd(self, *args: str) -> list[str]:
        if self.as_postgres:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def _run(self, *args: str, timeout_s: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
        try:
            r = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise PgServerError(f"{Path(args[0]).name} did not finish within {timeout_s:g} s") from None
        if r.returncode != 0:
            raise PgServerError(f"{Path(args[0]).name} failed: {(r.stderr or r.stdout).strip()[-800:]}")
        return r

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None
        return self.root

    def start(self) -> PgServer:
        self.root = Path(tempfile.mkdtemp(prefix="steplab-pg-"))
        try:
            if self.as_postgres:
                try:
                    pw = pwd.getpwnam("postgres")
                except KeyError:
                    raise PgServerError("running as root but there is no 'postgres' user to run PostgreSQL as "
                                        "(install Debian's postgresql package)") from None
                os.chown(self.root, pw.pw_uid, pw.pw_gid)
            os.chmod(self.root, 0o700)
            self._run(str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", self.superuser,
                      "-E", "UTF8", "--locale=C", "--no-sync")
            opts = (f"-c listen_addresses='' -c unix_socket_directories='{self.socket_dir}' "
                    f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=60 -c shared_buffers=64MB")
            if not self.fsync:
                opts += " -c synchronous_commit=off -c full_page_writes=off"
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.root / "server.log"),
                      "-o", opts, "-w", "-t", str(START_TIMEOUT_S), "start", timeout_s=START_TIMEOUT_S + 15)
            self._started = True
        except BaseException:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            self.stop()
            if tail:
                raise PgServerError(f"PostgreSQL did not start: {tail}") from None
            raise
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.superuser}@/{database}?host={self.socket_dir}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        self._n_db += 1
        name = name or f"steplab_{self._n_db}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"bad database name {name!r}")
        with psycopg.connect(host=str(self.socket_dir), user=self.superuser, dbname="postgres", autocommit=True,
                             connect_timeout=10) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.root is None:
            return
        if self._started:
            try:
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t",
                          str(STOP_TIMEOUT_S), "stop", timeout_s=STOP_TIMEOUT_S + 15)
            except PgServerError:
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "-t",
                          str(STOP_TIMEOUT_S), "stop", timeout_s=STOP_TIMEOUT_S + 15)
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
