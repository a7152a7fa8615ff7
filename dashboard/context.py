"""What every page of the dashboard is built from: the records database, the live feed and the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from steplab.records.db import Database

from .live_feed import LiveFeed


@dataclass
class DashboardSettings:
    """Settings of one dashboard server.

    Attributes
    ----------
    session_idle_minutes : float
        A session with no request for this long ends (log in again).
    session_max_hours : float
        A session ends this long after its login, active or not.
    fresh_login_minutes : float
        Administration and identified exports need a login at most this old.
    lsi_threshold_pct : float
        Default limb symmetry index below which a limb difference is shown as a deficit [%]
        (each page can change it; the MDC decides whether a change is real).
    secret_key : bytes or None
        Signs the session cookies; None: a random key per server (``steplab run`` keeps one in STEPLAB_DATA_DIR).
    """

    session_idle_minutes: float = 30.0
    session_max_hours: float = 12.0
    fresh_login_minutes: float = 10.0
    lsi_threshold_pct: float = 90.0
    secret_key: bytes | None = field(default=None, repr=False)


@dataclass
class DashContext:
    """The dashboard's parts: ``db`` (records), ``live`` (None: no rig attached), settings, trial-file folder."""

    db: Database
    live: LiveFeed | None = None
    settings: DashboardSettings = field(default_factory=DashboardSettings)
    trials_dir: Path | None = None
