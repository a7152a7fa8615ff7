"""Plain objects the exporters write from: one patient's subjects, visits and trials.

The records core fills these from the database and hands them to the writers
(``export_csv``, ``export_c3d``, ``export_bundle``, ``report_pdf``) and to
``summary``.  Identifying data (name, birth date) is carried only when the
export is explicitly identified: ``ExportSubject.pseudonymised`` /
``ExportSubject.identified_as`` refuse to build an object that carries a name or
a birth date without the flag, so a pseudonymised export cannot leak what it was
never given.  Device serials and device info inside a trial's meta are dropped by
the writers (``export_meta``) unless the subject is identified.
"""

from __future__ import annotations

import copy
import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from steplab.acquisition.trial_file import Trial

LIMBS = ("left", "right")

# meta.json keys (at any depth) that identify a device or a rig and are dropped from pseudonymised exports.
_DEVICE_KEYS = frozenset({"device", "device_info", "serial", "serial_number", "rig_serial", "device_serial",
                          "firmware_serial", "uid", "board_id", "port", "address", "journal",
                          "rig_hash", "foreign_device"})
# meta keys holding wall-clock times; pseudonymised exports drop them (only offsets on the trial timeline stay).
_TIME_KEYS = frozenset({"started_at", "ended_at", "recorded_at", "created_at", "imported_at", "saved_at"})


class ExportModelError(ValueError):
    """An export object that would break pseudonymisation or is inconsistent."""


@dataclass(frozen=True)
class ExportSubject:
    """The patient as an export may show them.

    code: pseudonymous patient code (always present); identified: True only for an
    explicit ``--identified`` export; name / birth_date: only when identified;
    involved: "left" | "right" | None (the injured or operated limb);
    birth_year: optional year (kept in pseudonymised exports, as the spec allows).
    """

    code: str
    identified: bool = False
    name: str | None = None
    birth_date: _dt.date | None = None
    involved: str | None = None
    birth_year: int | None = None

    def __post_init__(self) -> None:
        if not self.code:
            raise ExportModelError("a subject needs its pseudonymous code")
        if not self.identified and (self.name is not None or self.birth_date is not None):
            raise ExportModelError("a pseudonymised export subject cannot carry a name or birth date")
        if self.involved not in (None, "left", "right"):
            raise ExportModelError(f"involved limb must be left, right or None, got {self.involved!r}")

    @property
    def label(self) -> str:
        """What a report prints as the patient: the name (with code) if identified, else the code."""
        if self.identified and self.name:
            return f"{self.name} ({self.code})"
        return self.code

    @classmethod
    def pseudonymised(cls, code: str, involved: str | None = None, birth_year: int | None = None) -> ExportSubject:
        return cls(code=code, identified=False, involved=involved, birth_year=birth_year)

    @classmethod
    def identified_as(cls, code: str, name: str | None, birth_date: _dt.date | None = None,
                      involved: str | None = None, birth_year: int | None = None) -> ExportSubject:
        if birth_year is None and birth_date is not None:
            birth_year = birth_date.year
        return cls(code=code, identified=True, name=name, birth_date=birth_date, involved=involved,
                   birth_year=birth_year)


@dataclass
class ExportTrial:
    """One trial with its chosen analysis.

    trial_id: database id (opaque string); protocol / protocol_version: e.g.
    "step-down", 1; lead: "left" | "right" | None; trial: the raw recording
    (None for a trial imported from a C3D or CSV file: no CSV/C3D export, no trace);
    analysis: the ``steplab analyze --json`` dict of the chosen result version;
    result_version: that version's number; analysis_params: the parameters the
    analysis ran with; all_results: every stored result version as
    ``{"version": int, "analysis": dict, "params": dict, ...}`` (bundle only,
    optional); accepted / reject_reason: the trial-level decision; rep_accepted:
    one bool per rep in ``analysis["reps"]`` (None = all accepted);
    pain_during: 0-10 NRS or None; quality_score: movement quality 0-6 or None;
    offset_s: seconds from the visit start (optional, for ordering).
    """

    trial_id: str
    protocol: str
    trial: Trial | None
    analysis: dict[str, Any]
    protocol_version: int | None = None
    lead: str | None = None
    result_version: int = 1
    analysis_params: dict[str, Any] = field(default_factory=dict)
    all_results: list[dict[str, Any]] = field(default_factory=list)
    accepted: bool = True
    reject_reason: str | None = None
    rep_accepted: list[bool] | None = None
    pain_during: float | None = None
    quality_score: int | None = None
    offset_s: float | None = None

    def __post_init__(self) -> None:
        reps = self.analysis.get("reps") or []
        if self.rep_accepted is not None and len(self.rep_accepted) != len(reps):
            raise ExportModelError(f"trial {self.trial_id}: {len(self.rep_accepted)} rep decisions for {len(reps)} reps")
        if self.quality_score is not None and not 0 <= self.quality_score <= 6:
            raise ExportModelError(f"trial {self.trial_id}: movement quality {self.quality_score} is outside 0-6")

    def accepted_reps(self) -> list[dict[str, Any]]:
        """The reps that count: none if the trial is rejected, else those not rejected one by one."""
        if not self.accepted:
            return []
        reps = list(self.analysis.get("reps") or [])
        if self.rep_accepted is None:
            return reps
        return [r for r, ok in zip(reps, self.rep_accepted, strict=True) if ok]


@dataclass
class ExportVisit:
    """One visit.

    visit_id: database id; date: the real date (printed only when identified);
    day_offset: days since the patient's first visit (printed when pseudonymised);
    body_mass_kg; pain_before / pain_after / pain_next_morning: 0-10 NRS or None;
    battery: the protocol battery's name; trials: in recording order.
    """

    visit_id: str
    trials: list[ExportTrial] = field(default_factory=list)
    date: _dt.date | None = None
    day_offset: int | None = None
    body_mass_kg: float | None = None
    pain_before: float | None = None
    pain_after: float | None = None
    pain_next_morning: float | None = None
    battery: str | None = None

    def date_label(self, subject: ExportSubject) -> str:
        """The visit's date as an export may print it: the date if identified, else 'day N' (or the year)."""
        if subject.identified and self.date is not None:
            return self.date.isoformat()
        if self.day_offset is not None:
            return f"day {self.day_offset}"
        if self.date is not None:
            return str(self.date.year)
        return "undated"


@dataclass
class ExportPatientHistory:
    """A patient and their visits in date order (what ``--visit`` and ``--patient`` exports receive)."""

    subject: ExportSubject
    visits: list[ExportVisit] = field(default_factory=list)

    def visit(self, visit_id: str) -> ExportVisit:
        for v in self.visits:
            if v.visit_id == visit_id:
                return v
        raise ExportModelError(f"visit {visit_id} is not in patient {self.subject.code}'s history")

    def visits_until(self, visit_id: str) -> list[ExportVisit]:
        """Visits up to and including ``visit_id`` (the progress a report of that visit can show)."""
        out = []
        for v in self.visits:
            out.append(v)
            if v.visit_id == visit_id:
                return out
        raise ExportModelError(f"visit {visit_id} is not in patient {self.subject.code}'s history")


def _strip(obj: Any, drop_times: bool) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v, drop_times) for k, v in obj.items()
                if k not in _DEVICE_KEYS and not (drop_times and k in _TIME_KEYS)}
    if isinstance(obj, list):
        return [_strip(v, drop_times) for v in obj]
    return copy.deepcopy(obj)


def export_meta(trial: Trial, subject: ExportSubject) -> dict[str, Any]:
    """The trial's meta as an export may show it.

    Identified: a deep copy of everything.  Pseudonymised: device info, serials
    (device, rig, board), port and journal paths and wall-clock times are removed
    at any depth; timeline offsets, quality counters, gaps and calibration
    coefficients stay.
    """
    if subject.identified:
        return copy.deepcopy(trial.meta)
    return _strip(trial.meta, drop_times=True)


def export_analysis(analysis: dict[str, Any], subject: ExportSubject) -> dict[str, Any]:
    """An analysis JSON as an export may show it: pseudonymised, its provenance loses the source
    file name (which may carry a name or a machine path), device serials and wall-clock times."""
    if subject.identified:
        return copy.deepcopy(analysis)
    out = _strip(analysis, drop_times=True)
    prov = out.get("provenance")
    if isinstance(prov, dict):
        prov.pop("source_file", None)
    return out


def export_rig_dict(trial: Trial, subject: ExportSubject) -> dict[str, Any]:
    """The rig description as an export may show it (serials removed unless identified)."""
    d = trial.rig.to_dict()
    return d if subject.identified else _strip(d, drop_times=True)
