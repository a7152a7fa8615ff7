"""Users: admins and clinicians; passwords stored only as werkzeug (scrypt) hashes."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from steplab.records.db import Database
from steplab.records.models import ROLES, User, utcnow

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,79}$")
MIN_PASSWORD_CHARS = 8


class AccountError(ValueError):
    """A user that cannot be added (name taken, weak password…): one line."""


def add_user(db: Database, name: str, role: str, password: str, actor: str | None = None) -> int:
    from steplab.records.audit import add_entry

    if not NAME_RE.match(name or ""):
        raise AccountError(f"user name {name!r} must be 1-80 letters, digits or . _ @ -")
    if role not in ROLES:
        raise AccountError(f"--role must be admin or clinician, got {role!r}")
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")

    def work(s: Session) -> int:
        if s.scalars(select(User).where(User.name == name)).first() is not None:
            raise AccountError(f"there is already a user {name!r}")
        u = User(name=name, role=role, password_hash=generate_password_hash(password), active=True,
                 created_at=utcnow())
        s.add(u)
        s.flush()
        add_entry(s, actor, "user-add", f"user {name}", detail={"role": role})
        return u.id

    try:
        return db.write(work)
    except IntegrityError:
        raise AccountError(f"there is already a user {name!r}") from None


def list_users(db: Database) -> list[dict]:
    with db.read() as s:
        return [{"name": u.name, "role": u.role, "active": u.active,
                 "created_at": u.created_at.isoformat(timespec="seconds")}
                for u in s.scalars(select(User).order_by(User.name))]


def verify(db: Database, name: str, password: str, *, audit: bool = True) -> dict | None:
    """The user's name and role when the password is right, else None (for the dashboard's login).

    With ``audit`` every attempt is written to the audit log (``login`` / ``login-failed``).
    """
    from steplab.records.audit import add_entry

    with db.read() as s:
        u = s.scalars(select(User).where(User.name == name, User.active.is_(True))).first()
        ok = u is not None and check_password_hash(u.password_hash, password)
        found = {"name": u.name, "role": u.role} if ok and u is not None else None
    if audit:
        db.write(lambda s: add_entry(s, name[:80] if found else "unknown", "login" if found else "login-failed",
                                     f"user {name[:60]}"))
    return found


def get_user(db: Database, name: str) -> dict | None:
    """The user ``name`` (name, role, active, must_change_password), or None."""
    with db.read() as s:
        u = s.scalars(select(User).where(User.name == name)).first()
        if u is None:
            return None
        return {"name": u.name, "role": u.role, "active": bool(u.active),
                "must_change_password": bool(u.must_change_password)}
