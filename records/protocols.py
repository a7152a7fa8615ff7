"""Protocol templates: the five movements of a visit, each versioned with its analysis parameters.

A template's version is the dsp's ``PROTOCOL_VERSIONS`` (the meaning of its metrics)
joined with the parameter set: the same name and version always means the same
parameters.  A re-analysis with other parameters is a new result version of the
trial, not a new protocol (``records.trials.reanalyze``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from steplab.records.models import Protocol

if TYPE_CHECKING:
    from steplab.dsp.params import AnalysisParams


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    box_height_mm: float | None
    leads: tuple[str, ...]


TEMPLATES: dict[str, Template] = {
    "step-down": Template("step-down", "Lateral step-down from a 20 cm box", 200.0, ("left", "right")),
    "forward-step-down": Template("forward-step-down", "Forward step-down from a 20 cm box", 200.0, ("left", "right")),
    "drop-landing": Template("drop-landing", "Drop landing from a 30 cm box", 300.0, ("left", "right")),
    "squat": Template("squat", "Bilateral squat", None, ()),
    "balance": Template("balance", "Single-limb balance, eyes open, 30 s", None, ("left", "right")),
}
#: The protocol names, in the dsp's order (tests check they are the dsp's PROTOCOLS).
PROTOCOL_NAMES: tuple[str, ...] = tuple(TEMPLATES)

#: The default battery of a visit (protocol names, in order).
DEFAULT_BATTERY: tuple[str, ...] = ("step-down", "drop-landing", "squat", "balance")


def check_protocol(name: str) -> str:
    if name not in TEMPLATES:
        raise ValueError(f"unknown protocol {name!r}; expected one of {', '.join(PROTOCOL_NAMES)}")
    return name


def template_parameters(name: str, params: AnalysisParams | None = None) -> dict:
    """The stored parameter set of a template: its analysis parameters and set-up."""
    from steplab.dsp.params import AnalysisParams

    t = TEMPLATES[check_protocol(name)]
    return {"analysis": (params or AnalysisParams()).to_dict(), "box_height_mm": t.box_height_mm,
            "leads": list(t.leads)}


def current_version(name: str) -> str:
    from steplab.dsp.params import PROTOCOL_VERSIONS

    return PROTOCOL_VERSIONS[check_protocol(name)]


def get_protocol(session: Session, name: str, version: str | None = None) -> Protocol:
    """The protocol row of ``name`` at ``version`` (default: the current one), made if missing.

    Made with INSERT … ON CONFLICT DO NOTHING, so two workstations creating it at once
    both end with the same row.
    """
    version = version or current_version(name)
    row = session.scalars(select(Protocol).where(Protocol.name == name, Protocol.version == version)).first()
    if row is not None:
        return row
    from steplab.records.upsert import insert_ignore

    insert_ignore(session, Protocol, {"name": name, "version": version, "title": TEMPLATES[name].title,
                                      "parameters": template_parameters(name)}, ("name", "version"))
    return session.scalars(select(Protocol).where(Protocol.name == name, Protocol.version == version)).one()


def analysis_params(protocol: Protocol) -> AnalysisParams:
    from steplab.dsp.params import AnalysisParams

    return AnalysisParams(**dict(protocol.parameters.get("analysis") or {}))
