"""Shared test helpers: the shared real-data folder and the simulated rig as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Child processes (`python -m steplab.cli …`) import this checkout's code, whatever is installed.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


def shared_real_data() -> Path:
    """The real recordings from other labs (the shared folder beside the repository)."""
    for candidate in (REPO.parent / "shared" / "data" / "real", REPO / "shared" / "data" / "real"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the shared real-data folder (../shared/data/real beside the repository) is missing")


@pytest.fixture
def real_data() -> Path:
    return shared_real_data()


def steplab_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "steplab.cli", *args]


class SimProcess:
    """`steplab simulate --pty …` running as its own process."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(steplab_cmd("simulate", "--pty", *args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline()
        if not line.startswith("port: "):
            self.proc.kill()
            raise RuntimeError(f"simulator did not announce a port: {line!r} {self.proc.stderr.read()}")
        self.port = line.split(":", 1)[1].strip()

    def next_line(self, timeout_s: float = 10.0) -> str:
        return self.proc.stdout.readline()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def sim_process():
    started: list[SimProcess] = []

    def start(*args: str) -> SimProcess:
        sp = SimProcess(*args)
        started.append(sp)
        return sp

    yield start
    for sp in started:
        sp.stop()


def wait_for(predicate, timeout_s: float = 10.0, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    """Every test gets its own STEPLAB_DATA_DIR (calibrations, database): nothing leaks between tests."""
    d = tmp_path / "steplab-data"
    d.mkdir()
    monkeypatch.setenv("STEPLAB_DATA_DIR", str(d))
    return d




# -- records: every storage test runs on SQLite and on a real PostgreSQL server (tests/pg_server.py) --
@pytest.fixture(scope="session")
def pg_server():
    from pg_server import start_session_server

    server = start_session_server()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """An empty database (no schema yet) on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.sqlite'}"
    return request.getfixturevalue("pg_server").create_database()
