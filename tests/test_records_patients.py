"""records.patients: editing a patient (audited, all-or-nothing) and the patient search, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from steplab.records.db import open_database
from steplab.records.models import AuditEntry
from steplab.records.patients import RecordsError, add_patient, add_visit, patient_facts, search, update_patient

NAME = "Ottilie Brandhuber"


@pytest.fixture
def db(db_url):
    d = open_database(db_url, auto_upgrade=True)
    yield d
    d.dispose()


def audit(db) -> list[AuditEntry]:
    with db.read() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def facts(db, code: str) -> dict:
    with db.read() as s:
        return patient_facts(s, code)


def test_update_changes_only_the_given_fields_and_audits_with_the_actor(db):
    add_patient(db, "PT-1", involved="left", birth_year=1970, height_cm=170.0, notes="ACL left", name=NAME,
                actor="clin")
    changed = update_patient(db, "PT-1", involved="right", notes="ACL right, 6 weeks", actor="clin")
    assert sorted(changed) == ["involved", "notes"]
    assert facts(db, "PT-1") == {"code": "PT-1", "involved": "right", "birth_year": 1970, "height_cm": 170.0,
                                 "notes": "ACL right, 6 weeks"}
    assert update_patient(db, "PT-1", involved="right", actor="clin") == []  # nothing new: nothing written
    update_patient(db, "PT-1", birth_year=None, height_cm=181.5, actor="boss")  # None clears a field
    f = facts(db, "PT-1")
    assert f["birth_year"] is None and f["height_cm"] == 181.5 and f["involved"] == "right"
    log = [(e.actor, e.action, e.subject, e.detail) for e in audit(db)]
    assert log == [("clin", "patient-add", "patient PT-1", {"involved": "left", "birth_year": 1970, "height_cm": 170.0}),
                   ("clin", "patient-edit", "patient PT-1", {"involved": "right", "notes": "changed"}),
                   ("boss", "patient-edit", "patient PT-1", {"birth_year": None, "height_cm": 181.5})]
    assert NAME not in json.dumps(log) and "ACL" not in json.dumps(log)  # free-text notes stay out of the log


@pytest.mark.parametrize("bad, words", [
    ({"involved": "both"}, "--involved"), ({"birth_year": 1850}, "--birth-year"), ({"birth_year": 1970.5}, "whole"),
    ({"birth_year": dt.date.today().year + 1}, "--birth-year"), ({"height_cm": 500.0}, "--height"),
    ({"height_cm": float("nan")}, "--height"), ({"notes": "x" * 5000}, "notes"),
])
def test_bad_input_changes_nothing(db, bad, words):
    add_patient(db, "PT-2", involved="left", birth_year=1980, height_cm=165.0)
    before = facts(db, "PT-2")
    with pytest.raises(RecordsError, match=words) as err:
        update_patient(db, "PT-2", **{"involved": "right", **bad}, actor="clin")  # the good field is not written either
    assert "\n" not in str(err.value)
    assert facts(db, "PT-2") == before and audit(db) == []


def test_unknown_patient(db):
    with pytest.raises(RecordsError, match="no patient"):
        update_patient(db, "NOPE", involved="left", actor="clin")


def test_add_patient_without_actor_writes_no_audit_entry(db):
    add_patient(db, "PT-3")
    assert audit(db) == []


def test_search_by_code_or_notes_with_visit_counts(db):
    add_patient(db, "KNEE-01", involved="left", notes="Meniscus repair")
    add_patient(db, "knee-02", involved="right")
    add_patient(db, "HIP_7", notes="hip; 100% weight bearing")
    add_patient(db, "HIPX7")
    days = [dt.date(2026, 1, 5), dt.date(2026, 3, 2), dt.date(2026, 2, 9)]
    for d in days:
        add_visit(db, "KNEE-01", date=d)
    with db.read() as s:
        every = search(s)
        assert [r["code"] for r in every] == sorted(["KNEE-01", "knee-02", "HIP_7", "HIPX7"])
        knee = {r["code"]: r for r in search(s, "Knee")}
        assert set(knee) == {"KNEE-01", "knee-02"}
        assert knee["KNEE-01"]["visits"] == 3 and knee["KNEE-01"]["last_visit"] == max(days).isoformat()
        assert knee["knee-02"]["visits"] == 0 and knee["knee-02"]["last_visit"] is None
        assert [r["code"] for r in search(s, "meniscus")] == ["KNEE-01"]  # found by its notes
        assert [r["code"] for r in search(s, "_")] == ["HIP_7"]  # LIKE wildcards are plain characters
        assert [r["code"] for r in search(s, "100%")] == ["HIP_7"]
        assert search(s, "zzz") == []
        assert len(search(s, "", limit=2)) == 2
        assert all("name" not in r for r in every)


def test_pain_entries_are_audited_with_the_actor_and_a_refused_one_changes_nothing(db):
    from steplab.records.patients import set_pain

    add_patient(db, "P-9")
    vid = add_visit(db, "P-9", pain_before=2.0)
    set_pain(db, vid, after=4.0, actor="clin")
    set_pain(db, vid, next_morning=1.0, actor="boss")
    with pytest.raises(RecordsError, match="0-10"):
        set_pain(db, vid, after=11.0, actor="clin")
    pains = [(e.actor, e.subject, e.detail) for e in audit(db) if e.action == "pain"]
    assert pains == [("clin", f"visit {vid}", {"after": [None, 4.0]}),
                     ("boss", f"visit {vid}", {"next_morning": [None, 1.0]})]
