"""Test fixtures; the helpers they are built on (and that tests import) live in tests/helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import REPO, SimProcess, shared_real_data, steplab_cmd, wait_for

__all__ = ["REPO", "SimProcess", "shared_real_data", "steplab_cmd", "wait_for"]

# Child processes (`python -m steplab.cli …`) import this checkout's code, whatever is installed.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


@pytest.fixture
def real_data() -> Path:
    return shared_real_data()


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


# -- the dashboard ------------------------------------------------------------------------------------
@pytest.fixture
def dashboard_db(tmp_path):
    """A records database with a clinician and an admin (tests/helpers.py CLINICIAN, ADMIN)."""
    from helpers import make_dashboard_db

    db = make_dashboard_db(tmp_path / "dashboard.sqlite")
    yield db
    db.dispose()
