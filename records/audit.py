"""The audit log: exports (identified or not), result changes, accept/reject, user changes.

Entries name patients by their pseudonymous code only; :func:`add_entry` refuses
a detail that carries a name or birth date field.
"""

from __future__ import annotations

import getpass
import os

from sqlalchemy import select
from sqlalchemy.orm import Session

from steplab.records.models import AuditEntry, utcnow

FORBIDDEN_KEYS = frozenset({"name", "patient_name", "birth_date", "date_of_birth", "dob"})


def current_actor() -> str:
    """Who is acting: ``$STEPLAB_USER``, else the operating-system user."""
    env = os.environ.get("STEPLAB_USER")
    if env:
        return env[:80]
    try:
        return getpass.getuser()[:80]
    except (KeyError, OSError):
        return "unknown"


def add_entry(session: Session, actor: str | None, action: str, subject: str | None, *, identified: bool = False,
              detail: dict | None = None) -> AuditEntry:
    detail = dict(detail or {})
    bad = FORBIDDEN_KEYS & set(detail)
    if bad:
        raise ValueError(f"audit entries must not hold identifying fields ({', '.join(sorted(bad))})")
    row = AuditEntry(at=utcnow(), actor=actor or current_actor(), action=action, subject=subject,
                     identified=identified, detail=detail)
    session.add(row)
    session.flush()
    return row


def entries(session: Session, action: str | None = None) -> list[AuditEntry]:
    q = select(AuditEntry).order_by(AuditEntry.id)
    if action:
        q = q.where(AuditEntry.action == action)
    return list(session.scalars(q))


def entry_dict(e: AuditEntry) -> dict:
    return {"id": e.id, "at": e.at.isoformat(timespec="seconds"), "actor": e.actor, "action": e.action,
            "subject": e.subject, "identified": e.identified, "detail": e.detail}
