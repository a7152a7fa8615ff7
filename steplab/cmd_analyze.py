"""``steplab analyze FILE``: analyse a trial file, a C3D file or a CSV/TSV of forces.

With ``--json`` prints the one JSON object of interfaces.md
(``AnalysisResult.to_json_dict()``); otherwise a readable table.  Bad input is a
one-line error (``UserError``), exit status 2, nothing written.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from steplab.errors import UserError

PROTOCOL_CHOICES = ("step-down", "forward-step-down", "drop-landing", "squat", "balance")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="analyse a recording (trial file, C3D or CSV/TSV of forces)",
        description="Analyse a recording: a steplab trial file, a C3D file with force platforms, or a "
                    "CSV/TSV of forces (one column per plate or per cell). Plate roles default by plate "
                    "count: 1 -> floor_left; 2 -> floor_left,floor_right; 3 -> box,floor_left,floor_right.",
    )
    p.add_argument("file", metavar="FILE", help="the recording")
    p.add_argument("--protocol", default="step-down", metavar="NAME",
                   help=f"one of {', '.join(PROTOCOL_CHOICES)} (default step-down)")
    p.add_argument("--lead", metavar="left|right", default=None, help="override the detected lead limb")
    p.add_argument("--rate", metavar="HZ", default=None, help="sample rate (required for CSV/TSV without a time column)")
    p.add_argument("--plates", metavar="ROLE,ROLE,...", default=None,
                   help="role of each plate in file order (box, floor_left, floor_right)")
    p.add_argument("--body-mass", metavar="KG", default=None, help="the visit's body mass instead of weighing")
    p.add_argument("--calibration", metavar="latest|FILE", default=None,
                   help="re-analyse a steplab trial with the rig's current calibration ('latest') or a calibration "
                        "record FILE instead of the one it was recorded with")
    p.add_argument("--json", action="store_true", help="print one JSON object (the documented result)")
    p.set_defaults(func=run)


def _number(text: str | None, option: str, lo: float, hi: float, unit: str) -> float | None:
    if text is None:
        return None
    try:
        v = float(text)
    except ValueError:
        raise UserError(f"{option} must be a number, got {text!r}") from None
    if not math.isfinite(v) or not (lo <= v <= hi):
        raise UserError(f"{option} {text} is outside {lo:g}..{hi:g} {unit}")
    return v


def _calibration_notes(loaded, override: str | None) -> tuple[object | None, list[str]]:
    """(replacement CalibrationArrays or None, warnings) for a steplab trial.

    Warns when a plate was recalibrated after the trial (re-analysis is offered,
    never done silently); ``override`` ('latest' or a record file) re-analyses.
    """
    from datetime import datetime

    from steplab.calibration.active import active_calibration
    from steplab.calibration.records import list_records, recalibrated_since

    trial = loaded.trial
    if trial is None:
        if override:
            raise ValueError("--calibration applies to steplab trial files only")
        return None, []
    notes: list[str] = []
    if override:
        active = active_calibration(trial.rig, files=None if override == "latest" else [override])
        if active is None:
            raise ValueError(f"no calibration for every plate of rig {trial.rig.serial}: run steplab calibrate")
        return active.arrays, [f"re-analysed with calibration {active.arrays.calibration_id}"] + active.warnings
    ref = trial.meta.get("calibration") or {}
    started = trial.meta.get("started_at")
    if ref.get("calibration_id") and started:
        records, _ = list_records(rig=trial.rig)
        notes += recalibrated_since(ref["calibration_id"], datetime.fromisoformat(started), records)
        if notes:
            notes.append("run again with --calibration latest to re-analyse")
    return None, notes


def analyze_file(path: str, *, protocol: str = "step-down", lead: str | None = None, rate_hz: float | None = None,
                 plates: str | None = None, body_mass_kg: float | None = None, calibration: str | None = None,
                 warn=None):
    """Load and analyse one recording; returns an AnalysisResult (raises ValueError on bad input)."""
    from steplab.analysis_pipeline import analyze_counts
    from steplab.dsp import ROLES, analyze_forces
    from steplab.records.importers import load_forces

    loaded = load_forces(path, rate_hz=rate_hz, plates=plates)
    prov = dict(loaded.provenance_extra)
    replacement, notes = _calibration_notes(loaded, calibration)
    if replacement is not None:
        loaded.calibration = replacement
        prov.update(calibration_id=replacement.calibration_id, calibration_hash=replacement.calibration_hash)
        prov["flags"] = [f for f in prov.get("flags", []) if f != "uncalibrated"]
    if notes:
        prov["calibration_notes"] = notes
        for n in notes:
            if warn is not None:
                warn(n)
    if loaded.counts is not None and loaded.calibration is not None and all(
            r in ROLES for r in loaded.calibration.plate_roles):
        return analyze_counts(loaded.counts, loaded.rate_hz, loaded.calibration, protocol, lead=lead,
                              body_mass_kg=body_mass_kg, provenance=prov)
    plates_ok = {r: pf for r, pf in loaded.plates.items() if r in ROLES}
    if not plates_ok:
        raise ValueError(f"{path}: no plate has a role steplab analyses ({', '.join(ROLES)})")
    return analyze_forces(plates_ok, loaded.rate_hz, protocol, lead=lead, body_mass_kg=body_mass_kg,
                          provenance=prov)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _table(d: dict) -> str:
    lines = [
        f"protocol        {d['protocol']}",
        f"sample rate     {d['sample_rate_hz']:g} Hz",
        f"body weight     {_fmt(d['body_weight_n'])} N ({_fmt(d['body_mass_kg'])} kg)",
        f"reps            {len(d['reps'])}",
        f"flags           {', '.join(d.get('flags') or []) or '-'}",
    ]
    reps = d["reps"]
    if reps:
        names = list(dict.fromkeys(k for r in reps for k in r["metrics"]))
        width = max(len(n) for n in names + ["t_contact_s"])
        header = " " * width + "".join(f"  {'rep ' + str(i + 1):>10}" for i in range(len(reps)))
        lines += ["", header]
        rows = [("lead", [r["lead"] for r in reps]), ("t_onset_s", [r["t_onset_s"] for r in reps]),
                ("t_contact_s", [r["t_contact_s"] for r in reps])]
        rows += [(n, [r["metrics"].get(n) for r in reps]) for n in names]
        rows += [("flags", [",".join(r["flags"]) or "-" for r in reps])]
        for name, vals in rows:
            lines.append(f"{name:<{width}}" + "".join(f"  {_fmt(v):>10}" for v in vals))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.protocol not in PROTOCOL_CHOICES:
        raise UserError(f"--protocol must be one of {', '.join(PROTOCOL_CHOICES)}, got {args.protocol!r}")
    if args.lead not in (None, "left", "right"):
        raise UserError(f"--lead must be left or right, got {args.lead!r}")
    rate = _number(args.rate, "--rate", 1.0, 100_000.0, "Hz")
    mass = _number(args.body_mass, "--body-mass", 5.0, 500.0, "kg")
    try:
        result = analyze_file(args.file, protocol=args.protocol, lead=args.lead, rate_hz=rate,
                              plates=args.plates, body_mass_kg=mass, calibration=args.calibration,
                              warn=lambda n: print(f"steplab analyze: note: {n}", file=sys.stderr))
    except ValueError as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(msg) from None
    d = result.to_json_dict()
    if args.json:
        sys.stdout.write(json.dumps(d, allow_nan=False) + "\n")
    else:
        sys.stdout.write(_table(d) + "\n")
    return 0
