"""``steplab analyze FILE...``: analyse trial files, C3D files or CSV/TSV of forces.

One FILE: with ``--json`` prints the one JSON object of interfaces.md
(``AnalysisResult.to_json_dict()``); otherwise a readable table.  Bad input is a
one-line error (``UserError``), exit status 2, nothing written.

Several FILEs, or a directory (its recordings, by name, not recursing): each file is
analysed in turn in this one process.  With ``--json`` stdout holds one JSON object
per line (JSON Lines), in the order given: the single-file object with a ``"file"``
key first, or ``{"file": ..., "error": "..."}`` for a file that cannot be analysed;
without ``--json`` a table per file under a ``== FILE ==`` line.  A file that fails
also gets its one line on stderr and does not stop the batch; the exit status is 2
when any file failed, else 0.  A progress bar (tqdm) goes to stderr when stderr is a
terminal or with ``--progress`` (never with ``--no-progress``); stdout never holds it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

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
    p.add_argument("files", metavar="FILE", nargs="+",
                   help="the recording; several files or a directory analyse each (one JSON line per file)")
    p.add_argument("--protocol", default="step-down", metavar="NAME",
                   help=f"one of {', '.join(PROTOCOL_CHOICES)} (default step-down)")
    p.add_argument("--lead", metavar="left|right", default=None, help="override the detected lead limb")
    p.add_argument("--rate", metavar="HZ", default=None, help="sample rate (required for CSV/TSV without a time column)")
    p.add_argument("--plates", metavar="ROLE,ROLE,...", default=None,
                   help="role of each plate in file order (box, floor_left, floor_right; - leaves a plate out)")
    p.add_argument("--body-mass", metavar="KG", default=None, help="the visit's body mass instead of weighing")
    p.add_argument("--calibration", metavar="latest|FILE", default=None,
                   help="re-analyse a steplab trial with the rig's current calibration ('latest') or a calibration "
                        "record FILE instead of the one it was recorded with")
    p.add_argument("--force-cutoff", metavar="HZ", default=None,
                   help="low-pass cut-off of the force filter (default 100 Hz; below half the sample rate)")
    p.add_argument("--cop-cutoff", metavar="HZ", default=None,
                   help="low-pass cut-off of the COP filter (default 10 Hz; below half the sample rate)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (the documented result); one per line for several files")
    prog = p.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None,
                      help="show a progress bar on stderr for several files (default: when stderr is a terminal)")
    prog.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")
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


def _calibration_notes(loaded, override: str | None) -> tuple[Any, list[str]]:
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


def _params(rate_hz: float, path: str, force_cutoff_hz: float | None, cop_cutoff_hz: float | None):
    """AnalysisParams with the given cut-offs; a cut-off at or above Nyquist names the file and the option."""
    from steplab.dsp.params import AnalysisParams

    params = AnalysisParams()
    if force_cutoff_hz is not None:
        params = dataclasses.replace(params, force_cutoff_hz=float(force_cutoff_hz))
    if cop_cutoff_hz is not None:
        params = dataclasses.replace(params, cop_cutoff_hz=float(cop_cutoff_hz))
    nyq = 0.5 * rate_hz
    for name, option, value in (("force", "--force-cutoff", params.force_cutoff_hz),
                                ("COP", "--cop-cutoff", params.cop_cutoff_hz)):
        if value >= nyq:
            raise ValueError(f"{Path(path).name}: sampled at {rate_hz:g} Hz, its Nyquist frequency {nyq:g} Hz lies "
                             f"below the {name} filter's cut-off {value:g} Hz: give {option} HZ below {nyq:g}")
    return params


def analyze_file(path: str, *, protocol: str = "step-down", lead: str | None = None, rate_hz: float | None = None,
                 plates: str | None = None, body_mass_kg: float | None = None, calibration: str | None = None,
                 warn=None, force_cutoff_hz: float | None = None, cop_cutoff_hz: float | None = None):
    """Load and analyse one recording; returns an AnalysisResult (raises ValueError on bad input).

    A body weight outside a human range is flagged ``body_weight_implausible``
    (decision 0012), in the result's flags and its provenance.
    """
    from steplab.analysis_pipeline import analyze_counts
    from steplab.dsp import ROLES, analyze_forces
    from steplab.records.importers import body_weight_flags, load_forces

    loaded = load_forces(path, rate_hz=rate_hz, plates=plates)
    params = _params(loaded.rate_hz, path, force_cutoff_hz, cop_cutoff_hz)
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
        result = analyze_counts(loaded.counts, loaded.rate_hz, loaded.calibration, protocol, lead=lead,
                                body_mass_kg=body_mass_kg, params=params, provenance=prov)
    else:
        plates_ok = {r: pf for r, pf in loaded.plates.items() if r in ROLES}
        if not plates_ok:
            raise ValueError(f"{path}: no plate has a role steplab analyses ({', '.join(ROLES)})")
        result = analyze_forces(plates_ok, loaded.rate_hz, protocol, lead=lead, body_mass_kg=body_mass_kg,
                                params=params, provenance=prov)
    for f in body_weight_flags(result.body_weight_n):
        if f not in result.flags:
            result.flags.append(f)
        pflags = result.provenance.setdefault("flags", [])
        if f not in pflags:
            pflags.append(f)
    return result


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


RECORDING_SUFFIXES = (".c3d", ".csv", ".tsv", ".txt", ".steplab", ".trial", ".npz", ".zip", ".stp")


def expand_paths(paths: list[str]) -> tuple[list[str], bool]:
    """(the files to analyse, whether this is a batch): a directory stands for its recordings, by name."""
    out: list[str] = []
    batch = len(paths) > 1
    for a in paths:
        d = Path(a)
        if d.is_dir():
            batch = True
            found = sorted((f for f in d.iterdir() if f.is_file() and not f.name.startswith(".")
                            and f.suffix.lower() in RECORDING_SUFFIXES), key=lambda f: f.name)
            if not found:
                raise UserError(f"{a}: directory holds no recordings ({', '.join(RECORDING_SUFFIXES)})")
            out += [str(f) for f in found]
        else:
            out.append(a)
    return out, batch


def _one_line(exc: BaseException, path: str) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, ValueError):
        msg = f"could not be analysed ({type(exc).__name__}: {msg})"
    name = Path(path).name
    return msg if (name in msg or path in msg) else f"{path}: {msg}"


def run(args: argparse.Namespace) -> int:
    if args.protocol not in PROTOCOL_CHOICES:
        raise UserError(f"--protocol must be one of {', '.join(PROTOCOL_CHOICES)}, got {args.protocol!r}")
    if args.lead not in (None, "left", "right"):
        raise UserError(f"--lead must be left or right, got {args.lead!r}")
    rate = _number(args.rate, "--rate", 1.0, 100_000.0, "Hz")
    mass = _number(args.body_mass, "--body-mass", 5.0, 500.0, "kg")
    fc = _number(args.force_cutoff, "--force-cutoff", 0.1, 50_000.0, "Hz")
    cc = _number(args.cop_cutoff, "--cop-cutoff", 0.1, 50_000.0, "Hz")
    files, batch = expand_paths(list(args.files))
    if args.calibration and batch:
        raise UserError("--calibration re-analyses one steplab trial at a time; give one FILE")

    def analyse(path: str, warn) -> dict:
        return analyze_file(path, protocol=args.protocol, lead=args.lead, rate_hz=rate, plates=args.plates,
                            body_mass_kg=mass, calibration=args.calibration, warn=warn,
                            force_cutoff_hz=fc, cop_cutoff_hz=cc).to_json_dict()

    if not batch:
        try:
            d = analyse(files[0], lambda n: print(f"steplab analyze: note: {n}", file=sys.stderr))
        except Exception as exc:  # a file from outside never takes the command down: one line
            raise UserError(_one_line(exc, files[0])) from None
        sys.stdout.write((json.dumps(d, allow_nan=False) if args.json else _table(d)) + "\n")
        return 0
    return _run_batch(files, args, analyse)


def _run_batch(files: list[str], args: argparse.Namespace, analyse) -> int:
    from tqdm import tqdm

    show = args.progress if args.progress is not None else sys.stderr.isatty()
    failed = 0
    with tqdm(total=len(files), file=sys.stderr, disable=not show, unit="file", desc="steplab analyze",
              leave=False, dynamic_ncols=True) as bar:
        def say(line: str) -> None:
            tqdm.write(line, file=sys.stderr)

        for path in files:
            bar.set_postfix_str(Path(path).name, refresh=False)
            try:
                d = analyse(path, lambda n, path=path: say(f"steplab analyze: note: {Path(path).name}: {n}"))
            except Exception as exc:  # one file's failure is its own line; the batch goes on
                failed += 1
                msg = _one_line(exc, path)
                say(f"steplab analyze: error: {msg}")
                if args.json:
                    sys.stdout.write(json.dumps({"file": path, "error": msg}) + "\n")
            else:
                if args.json:
                    sys.stdout.write(json.dumps({"file": path, **d}, allow_nan=False) + "\n")
                else:
                    sys.stdout.write(f"== {path} ==\n{_table(d)}\n\n")
            sys.stdout.flush()
            bar.update(1)
    if failed:
        say(f"steplab analyze: {failed} of {len(files)} files failed")
        return UserError.exit_code
    return 0
