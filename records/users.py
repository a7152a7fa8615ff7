"""Users: admins and clinicians; passwords stored only as werkzeug (scrypt) hashes.

Every change (add, deactivate, reactivate, password reset or change) is written
to the audit log with its actor; a password, one-time or chosen, never is.  A
one-time password (first run, new user, reset by an admin) sets
``must_change_password``: the dashboard lets that user do nothing before
choosing a new one.  The last active admin can not be deactivated.
"""

from __future__ import annotations

import functools
import re
import secrets

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from steplab.records.db import Database
from steplab.records.models import ROLES, User, utcnow

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,79}$")
MIN_PASSWORD_CHARS = 8
FIRST_ADMIN = "admin"  # the account the first start of the dashboard creates
#: one-time passwords: no look-alike characters (0/O, 1/l/I), easy to read off a terminal and type
ONE_TIME_ALPHABET = "abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXYZ2345679"
ONE_TIME_GROUPS, ONE_TIME_GROUP_CHARS = 3, 4  # "xxxx-xxxx-xxxx": about 68 bits


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password, made on first need: an unknown name's login costs the same check."""
    return generate_password_hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A user that cannot be added or changed (name taken, weak password, last admin…): one line."""


def one_time_password() -> str:
    """A new random one-time password such as ``"k7Qm-Tz3p-Wc9e"`` (from :mod:`secrets`)."""
    return "-".join("".join(secrets.choice(ONE_TIME_ALPHABET) for _ in range(ONE_TIME_GROUP_CHARS))
                    for _ in range(ONE_TIME_GROUPS))


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")


def _audit(s: Session, actor: str | None, action: str, name: str, detail: dict | None = None) -> None:
    from steplab.records.audit import add_entry

    add_entry(s, actor, action, f"user {name}", detail=detail)


def add_user(db: Database, name: str, role: str, password: str, actor: str | None = None, *,
             must_change_password: bool = False) -> int:
    if not NAME_RE.match(name or ""):
        raise AccountError(f"user name {name!r} must be 1-80 letters, digits or . _ @ -")
    if role not in ROLES:
        raise AccountError(f"--role must be admin or clinician, got {role!r}")
    check_new_password(password)

    def work(s: Session) -> int:
        if s.scalars(select(User).where(User.name == name)).first() is not None:
            raise AccountError(f"there is already a user {name!r}")
        u = User(name=name, role=role, password_hash=generate_password_hash(password), active=True,
                 created_at=utcnow(), must_change_password=must_change_password)
        s.add(u)
        s.flush()
        _audit(s, actor, "user-add", name, {"role": role, "one_time": must_change_password})
        return u.id

    try:
        return db.write(work)
    except IntegrityError:
        raise AccountError(f"there is already a user {name!r}") from None


def add_user_with_one_time_password(db: Database, name: str, role: str, actor: str | None = None) -> str:
    """Add ``name`` with a new one-time password and return it (shown once; only its hash is kept)."""
    password = one_time_password()
    add_user(db, name, role, password, actor, must_change_password=True)
    return password


def count_users(db: Database) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(User)) or 0)


def ensure_first_admin(db: Database) -> str | None:
    """With no user at all, add the admin ``FIRST_ADMIN`` and return its one-time password; else None.

    Two servers starting at once on an empty database: one adds the admin, the other gets None.
    """
    password = one_time_password()

    def work(s: Session) -> bool:
        if s.scalar(select(func.count()).select_from(User)):
            return False
        s.add(User(name=FIRST_ADMIN, role="admin", password_hash=generate_password_hash(password), active=True,
                   created_at=utcnow(), must_change_password=True))
        s.flush()
        _audit(s, "steplab", "user-add", FIRST_ADMIN, {"role": "admin", "one_time": True,
                                                         "first_run": True})
        return True

    try:
        return password if db.write(work) else None
    except IntegrityError:
        return None


def list_users(db: Database) -> list[dict]:
    with db.read() as s:
        return [{"name": u.name, "role": u.role, "active": bool(u.active),
                 "must_change_password": bool(u.must_change_password),
                 "created_at": u.created_at.isoformat(timespec="seconds")}
                for u in s.scalars(select(User).order_by(User.name))]


def verify(db: Database, name: str, password: str, *, audit: bool = True) -> dict | None:
    """The user's name, role and must_change_password when the password is right, else None (the login).

    With ``audit`` every attempt is written to the audit log (``login`` / ``login-failed``).
    """
    from steplab.records.audit import add_entry

    with db.read() as s:
        u = s.scalars(select(User).where(User.name == name)).first()
        # an unknown name costs a hash check too, so the answer's delay does not tell which names exist
        ok = check_password_hash(u.password_hash if u is not None else _dummy_hash(), password)
        found = ({"name": u.name, "role": u.role, "must_change_password": bool(u.must_change_password)}
                 if ok and u is not None and u.active else None)
        known = u is not None
    if audit:
        # a name that is no user is not written down: it may be a password typed into the wrong field
        subject = f"user {name}" if known else "user (not a known name)"
        db.write(lambda s: add_entry(s, name if found else "unknown", "login" if found else "login-failed", subject))
    return found


def get_user(db: Database, name: str) -> dict | None:
    """The user ``name`` (name, role, active, must_change_password), or None."""
    with db.read() as s:
        u = s.scalars(select(User).where(User.name == name)).first()
        if u is None:
            return None
        return {"name": u.name, "role": u.role, "active": bool(u.active),
                "must_change_password": bool(u.must_change_password)}


def _one(s: Session, name: str) -> User:
    u = s.scalars(select(User).where(User.name == name)).first()
    if u is None:
        raise AccountError(f"there is no user {name!r}")
    return u


def set_active(db: Database, name: str, active: bool, actor: str | None = None) -> None:
    """Deactivate (``active=False``: no more logins, open sessions end) or reactivate ``name``.

    Refused for the last active admin, so the clinic always keeps one.
    """
    def work(s: Session) -> None:
        u = _one(s, name)
        if bool(u.active) == active:
            raise AccountError(f"user {name!r} is already {'active' if active else 'deactivated'}")
        if not active and u.role == "admin":
            # the active admins' rows stay locked to the end of this transaction (PostgreSQL; SQLite writes one at
            # a time anyway): two admins deactivating each other at once can not leave the clinic with none
            admins = s.scalars(select(User.id).where(User.role == "admin", User.active.is_(True))
                               .with_for_update()).all()
            if len(admins) <= 1:
                raise AccountError(f"{name!r} is the last active admin: add or reactivate another admin first")
        u.active = active
        _audit(s, actor, "user-reactivate" if active else "user-deactivate", name)

    db.write(work)


def reset_password(db: Database, name: str, actor: str | None = None) -> str:
    """Give ``name`` a new one-time password (returned, shown once): a new password is chosen at the next login."""
    password = one_time_password()

    def work(s: Session) -> None:
        u = _one(s, name)
        u.password_hash = generate_password_hash(password)
        u.must_change_password = True
        _audit(s, actor, "user-password-reset", name)

    db.write(work)
    return password


def change_password(db: Database, name: str, current: str, new: str) -> None:
    """``name`` replaces its (one-time or own) password ``current`` by ``new``; audited, never logged.

    Refused (AccountError, nothing changed) when ``current`` is wrong, ``new`` is too short or equals ``current``.
    """
    check_new_password(new)
    if new == current:
        raise AccountError("the new password must differ from the old one")

    def work(s: Session) -> None:
        u = _one(s, name)
        if not u.active or not check_password_hash(u.password_hash, current):
            raise AccountError("the current password is wrong")
        u.password_hash = generate_password_hash(new)
        u.must_change_password = False
        _audit(s, name, "user-password-change", name)

    db.write(work)
