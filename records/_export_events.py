"""The detected events of a trial's reps, from its analysis JSON (for C3D EVENT and the report's traces).

Each rep of ``steplab analyze --json`` gives ``t_onset_s`` and ``t_contact_s``; the
other events follow from its metrics (metrics.md § Step-down, § Drop landing), all
measured from the contact:

* peak: ``t_contact_s + time_to_peak_s``.  A drop landing reports per-plate
  ``time_to_peak_s_left`` / ``_right``, each from that plate's own contact, but only
  the first contact (``t_contact_s``, the lead plate's) is in the JSON: the lead
  plate's peak is exported, the other plate's is not (its contact time is unknown);
  a rep flagged ``lead_override_contradicted`` (the named lead touched second) exports
  no per-plate peak;
* arrest: ``t_contact_s + landing_phase_duration_s`` (first v >= 0 after contact);
* stabilisation: ``t_contact_s + time_to_stabilization_s``.

Times are seconds from the first sample of the analysed timeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

EVENT_LABELS = {"onset": "Onset", "contact": "Foot Strike", "peak": "Peak Force", "arrest": "Arrest",
                "stabilisation": "Stabilisation"}
EVENT_DESCRIPTIONS = {
    "onset": "movement onset (centre-of-mass speed leaves quiet stance)",
    "contact": "lead foot contact on its floor plate (Fz >= contact threshold)",
    "peak": "peak vertical force of the landing",
    "arrest": "descent arrested (centre-of-mass velocity back to >= 0)",
    "stabilisation": "total force within 5 % BW for the next 1 s",
}


@dataclass(frozen=True)
class RepEvent:
    """One event: kind (onset/contact/peak/arrest/stabilisation), time [s], limb context, rep number (1-based)."""

    kind: str
    time_s: float
    limb: str | None
    rep: int

    @property
    def label(self) -> str:
        return EVENT_LABELS[self.kind]

    @property
    def context(self) -> str:
        """C3D EVENT:CONTEXTS value: Left, Right or General."""
        return self.limb.capitalize() if self.limb in ("left", "right") else "General"

    @property
    def description(self) -> str:
        lead = f", lead {self.limb}" if self.limb else ""
        return f"rep {self.rep}{lead}: {EVENT_DESCRIPTIONS[self.kind]}"


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def rep_events(analysis: dict[str, Any], rep_accepted: list[bool] | None = None) -> list[RepEvent]:
    """Every event of every (accepted) rep, sorted by time."""
    out: list[RepEvent] = []
    for k, rep in enumerate(analysis.get("reps") or []):
        if rep_accepted is not None and not rep_accepted[k]:
            continue
        lead = rep.get("lead") if rep.get("lead") in ("left", "right") else None
        m = rep.get("metrics") or {}
        onset, contact = _num(rep.get("t_onset_s")), _num(rep.get("t_contact_s"))
        if onset is not None:
            out.append(RepEvent("onset", onset, lead, k + 1))
        if contact is None:
            continue
        out.append(RepEvent("contact", contact, lead, k + 1))
        ttp = _num(m.get("time_to_peak_s"))
        if ttp is not None:
            out.append(RepEvent("peak", contact + ttp, lead, k + 1))
        if lead is not None and "lead_override_contradicted" not in (rep.get("flags") or []):
            ttp_lead = _num(m.get(f"time_to_peak_s_{lead}"))
            if ttp_lead is not None:
                out.append(RepEvent("peak", contact + ttp_lead, lead, k + 1))
        arrest = _num(m.get("landing_phase_duration_s"))
        if arrest is not None:
            out.append(RepEvent("arrest", contact + arrest, lead, k + 1))
        stab = _num(m.get("time_to_stabilization_s"))
        if stab is not None:
            out.append(RepEvent("stabilisation", contact + stab, lead, k + 1))
    out.sort(key=lambda e: (e.time_s, e.rep))
    return out
