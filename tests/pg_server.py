"""The test suite's PostgreSQL: one throwaway server per test session (steplab.benchmarks.pg_server).

Missing PostgreSQL is a failure with a clear message, never a skip: ``make test``
installs Debian's postgresql.
"""

from __future__ import annotations

import pytest

from steplab.benchmarks.pg_server import PgServer, PgServerError


def start_session_server() -> PgServer:
    try:
        return PgServer(fsync=False).start()
    except PgServerError as exc:
        pytest.fail(f"the database tests need a PostgreSQL server and could not start one: {exc}", pytrace=False)
