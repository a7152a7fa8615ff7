"""Result records of the analysis: one ``RepResult`` per rep, one ``AnalysisResult`` per trial."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def clean_value(v):
    """A JSON-safe metric value: finite float, or None for missing / NaN / inf."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    return v


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)) or obj is None:
        return clean_value(obj)
    if isinstance(obj, str):
        return obj
    return str(obj)


@dataclass
class RepResult:
    """One rep: lead limb, its onset and contact times (s from trial start), metrics and flags.

    ``metrics`` uses the names of metrics.md; a metric that cannot be computed is
    ``None`` (NaN is never stored).
    """

    lead: str | None
    t_onset_s: float | None
    t_contact_s: float | None
    metrics: dict[str, float | None]
    flags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.t_onset_s = clean_value(self.t_onset_s)
        self.t_contact_s = clean_value(self.t_contact_s)
        self.metrics = {str(k): clean_value(v) for k, v in self.metrics.items()}

    def to_json_dict(self) -> dict:
        return {
            "lead": self.lead,
            "t_onset_s": clean_value(self.t_onset_s),
            "t_contact_s": clean_value(self.t_contact_s),
            "metrics": {k: clean_value(v) for k, v in self.metrics.items()},
            "flags": list(self.flags),
        }


@dataclass
class AnalysisResult:
    """A whole trial's analysis: body weight, reps, trial-level flags and provenance."""

    protocol: str
    sample_rate_hz: float
    body_weight_n: float
    body_mass_kg: float
    reps: list[RepResult]
    flags: list[str]
    provenance: dict

    def to_json_dict(self) -> dict:
        """The ``steplab analyze --json`` object of interfaces.md (JSON-safe: no NaN)."""
        return {
            "protocol": self.protocol,
            "sample_rate_hz": float(self.sample_rate_hz),
            "body_weight_n": clean_value(self.body_weight_n),
            "body_mass_kg": clean_value(self.body_mass_kg),
            "reps": [r.to_json_dict() for r in self.reps],
            "flags": list(self.flags),
            "provenance": _jsonable(self.provenance),
        }
