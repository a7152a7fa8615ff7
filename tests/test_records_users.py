"""records.users on SQLite and a real PostgreSQL server: one-time passwords, password changes, deactivation
(never of the last admin), the first start's admin, and an audit log that names the actor and holds no password."""

from __future__ import annotations

import json
import threading

import pytest

from steplab.records import users
from steplab.records.audit import entries, entry_dict
from steplab.records.db import open_database


@pytest.fixture
def db(db_url):
    d = open_database(db_url, auto_upgrade=True)
    yield d
    d.dispose()


def _log(db) -> list[dict]:
    with db.read() as s:
        return [entry_dict(e) for e in entries(s)]


def test_one_time_passwords_are_random_readable_and_long_enough():
    seen = {users.one_time_password() for _ in range(200)}
    assert len(seen) == 200
    for p in seen:
        assert len(p.replace("-", "")) == users.ONE_TIME_GROUPS * users.ONE_TIME_GROUP_CHARS >= 12
        assert set(p.replace("-", "")) <= set(users.ONE_TIME_ALPHABET) and not set(p) & set("0O1lI")


def test_a_new_user_with_a_one_time_password_must_change_it(db):
    one_time = users.add_user_with_one_time_password(db, "anna", "clinician", actor="boss")
    found = users.verify(db, "anna", one_time)
    assert found == {"name": "anna", "role": "clinician", "must_change_password": True}
    with pytest.raises(users.AccountError, match="wrong"):
        users.change_password(db, "anna", "not-the-password", "annas-pass-1")
    with pytest.raises(users.AccountError, match="at least 8"):
        users.change_password(db, "anna", one_time, "short")
    with pytest.raises(users.AccountError, match="differ"):
        users.change_password(db, "anna", one_time, one_time)
    assert users.get_user(db, "anna")["must_change_password"] is True  # refusals change nothing
    users.change_password(db, "anna", one_time, "annas-pass-1")
    assert users.verify(db, "anna", one_time) is None
    assert users.verify(db, "anna", "annas-pass-1")["must_change_password"] is False
    log = _log(db)
    assert [(e["action"], e["actor"]) for e in log if e["action"].startswith("user-")] == [
        ("user-add", "boss"), ("user-password-change", "anna")]
    assert one_time not in json.dumps(log) and "annas-pass-1" not in json.dumps(log)


def test_reset_gives_a_new_one_time_password_and_the_old_one_stops_working(db):
    users.add_user(db, "anna", "clinician", "annas-pass-1")
    fresh = users.reset_password(db, "anna", actor="boss")
    assert users.verify(db, "anna", "annas-pass-1") is None
    assert users.verify(db, "anna", fresh)["must_change_password"] is True
    with pytest.raises(users.AccountError, match="no user"):
        users.reset_password(db, "nobody", actor="boss")
    assert [e["actor"] for e in _log(db) if e["action"] == "user-password-reset"] == ["boss"]
    assert fresh not in json.dumps(_log(db))


def test_deactivation_stops_logins_and_never_removes_the_last_admin(db):
    users.add_user(db, "boss", "admin", "boss-pass-12")
    users.add_user(db, "anna", "clinician", "annas-pass-1")
    with pytest.raises(users.AccountError, match="last active admin"):
        users.set_active(db, "boss", False, actor="boss")
    users.set_active(db, "anna", False, actor="boss")
    assert users.verify(db, "anna", "annas-pass-1") is None and users.get_user(db, "anna")["active"] is False
    with pytest.raises(users.AccountError, match="already deactivated"):
        users.set_active(db, "anna", False, actor="boss")
    users.add_user(db, "second", "admin", "second-pass-1")
    users.set_active(db, "boss", False, actor="second")  # another admin remains: allowed
    with pytest.raises(users.AccountError, match="last active admin"):
        users.set_active(db, "second", False, actor="second")
    users.set_active(db, "anna", True, actor="second")
    assert users.verify(db, "anna", "annas-pass-1") is not None
    actions = [(e["action"], e["actor"], e["subject"]) for e in _log(db) if e["action"].endswith("activate")]
    assert actions == [("user-deactivate", "boss", "user anna"), ("user-deactivate", "second", "user boss"),
                       ("user-reactivate", "second", "user anna")]
    assert [u["name"] for u in users.list_users(db) if u["active"]] == ["anna", "second"]


def test_the_first_admin_is_made_once_even_by_two_servers_at_once(db):
    assert users.count_users(db) == 0
    results: list[str | None] = []
    threads = [threading.Thread(target=lambda: results.append(users.ensure_first_admin(db))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    made = [r for r in results if r is not None]
    assert len(results) == 2 and len(made) == 1, results
    assert users.list_users(db)[0] | {"created_at": None} == {"name": "admin", "role": "admin", "active": True,
                                                              "must_change_password": True, "created_at": None}
    assert users.verify(db, "admin", made[0])["must_change_password"] is True
    assert users.ensure_first_admin(db) is None and users.count_users(db) == 1
    first = [e for e in _log(db) if e["action"] == "user-add"]
    assert len(first) == 1 and first[0]["detail"]["first_run"] is True and made[0] not in json.dumps(first)


def test_a_failed_login_never_writes_down_a_name_that_is_no_user(db):
    users.add_user(db, "anna", "clinician", "annas-pass-1")
    assert users.verify(db, "annas-pass-1", "annas-pass-1") is None  # the password typed into the name field
    assert users.verify(db, "anna", "wrong-pass-99") is None
    users.set_active(db, "anna", False, actor="boss")
    assert users.verify(db, "anna", "annas-pass-1") is None  # deactivated: refused even with the right password
    failed = [(e["actor"], e["subject"]) for e in _log(db) if e["action"] == "login-failed"]
    assert failed == [("unknown", "user (not a known name)"), ("unknown", "user anna"), ("unknown", "user anna")]
    assert "annas-pass-1" not in json.dumps(_log(db))


def test_two_admins_deactivating_each_other_at_once_leave_one_admin(db):
    users.add_user(db, "boss", "admin", "boss-pass-12")
    users.add_user(db, "second", "admin", "second-pass-1")
    start = threading.Barrier(2, timeout=30)
    outcome: dict[str, str] = {}

    def deactivate(name: str, actor: str) -> None:
        start.wait()
        try:
            users.set_active(db, name, False, actor=actor)
            outcome[name] = "deactivated"
        except users.AccountError as exc:
            outcome[name] = str(exc)

    threads = [threading.Thread(target=deactivate, args=("boss", "second")),
               threading.Thread(target=deactivate, args=("second", "boss"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(v == "deactivated" for v in outcome.values()) == [False, True], outcome
    assert "last active admin" in next(v for v in outcome.values() if v != "deactivated")
    assert len([u for u in users.list_users(db) if u["active"] and u["role"] == "admin"]) == 1
