"""A visit as one ZIP bundle: per trial CSV, C3D and results JSON, the summary, progress, the report and a manifest.

Layout (rig_docs/exports.md)::

    manifest.json                 format, patient code, visit, files with SHA-256, software
    summary.json                  records.summary.visit_summary of the visit
    progress.json                 records.summary.progress up to the visit
    report.pdf                    the visit report (records.report_pdf)
    trials/<trial_id>.csv         raw counts and forces (records.export_csv)
    trials/<trial_id>.c3d         force platforms and events (records.export_c3d)
    trials/<trial_id>.results.json  every result version with its analysis parameters

Pseudonymised unless ``history.subject.identified`` (the writers it calls apply the
same rule).  Rejected trials are included (a trial is never dropped), marked as
rejected with their reason.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from steplab.records._export_io import ExportError, save_atomically
from steplab.records.export_c3d import write_trial_c3d
from steplab.records.export_csv import write_trial_csv
from steplab.records.export_model import ExportPatientHistory, ExportTrial, export_analysis
from steplab.records.report_pdf import write_visit_report
from steplab.records.summary import progress, visit_summary

__all__ = ["ExportError", "write_visit_bundle", "BUNDLE_FORMAT", "BUNDLE_FORMAT_VERSION"]

BUNDLE_FORMAT = "steplab-visit-bundle"
BUNDLE_FORMAT_VERSION = 1
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_name(s: str) -> str:
    return _SAFE.sub("_", s).strip("._") or "trial"


def _results_json(et: ExportTrial, history: ExportPatientHistory) -> dict[str, Any]:
    subj = history.subject
    versions = et.all_results or [{"version": et.result_version, "analysis": et.analysis, "params": et.analysis_params}]
    results = []
    for r in versions:
        item = {k: v for k, v in r.items() if k != "analysis"}
        item["analysis"] = export_analysis(r.get("analysis") or {}, subj)
        if not subj.identified:
            item.pop("created_at", None)
        results.append(item)
    return {"trial_id": et.trial_id, "protocol": et.protocol, "protocol_version": et.protocol_version, "lead": et.lead,
            "accepted": et.accepted, "reject_reason": et.reject_reason, "rep_accepted": et.rep_accepted,
            "pain_during": et.pain_during, "quality_score": et.quality_score, "chosen_version": et.result_version,
            "analysis_params": et.analysis_params, "results": results}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _NoBar:
    """Stands in for a tqdm bar when none is shown."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None


def write_visit_bundle(path: str | Path, history: ExportPatientHistory, visit_id: str, *,
                       progress_bar: bool = False, include_report: bool = True) -> Path:
    """Write the ZIP bundle of ``visit_id`` to ``path`` (atomic, never replaces a file); returns the path.

    ``progress_bar``: show a tqdm bar on stderr (one step per file written).
    """
    from tqdm import tqdm

    from steplab import __version__

    visit = history.visit(visit_id)
    subj = history.subject
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.exists():
        raise ExportError(f"{target} already exists; choose another name (exports never replace a file)")
    if not folder.is_dir():
        raise ExportError(f"cannot write {target}: folder {folder} does not exist")
    names: dict[str, str] = {}
    for et in visit.trials:
        base = _safe_name(et.trial_id)
        while base in names.values():
            base += "_"
        names[et.trial_id] = base
    steps = 3 * len(visit.trials) + 3 + (1 if include_report else 0)
    with tempfile.TemporaryDirectory(prefix=".steplab-bundle-", dir=folder) as work_s:
        work = Path(work_s)
        (work / "trials").mkdir()
        members: list[tuple[str, str, str | None]] = []  # (archive name, kind, trial id)
        bar_cm = (tqdm(total=steps, desc=f"export visit {visit.visit_id}", unit="file", file=sys.stderr, leave=False)
                  if progress_bar else _NoBar())  # no tqdm object when quiet: it would start a monitor thread
        with bar_cm as bar:
            for et in visit.trials:
                base = names[et.trial_id]
                if et.trial is not None:  # a trial imported from C3D / CSV has no raw recording to export
                    write_trial_csv(work / "trials" / f"{base}.csv", et, subj)
                    bar.update()
                    write_trial_c3d(work / "trials" / f"{base}.c3d", et, subj, visit.body_mass_kg)
                    bar.update()
                    members += [(f"trials/{base}.csv", "csv", et.trial_id), (f"trials/{base}.c3d", "c3d", et.trial_id)]
                else:
                    bar.update(2)
                res = work / "trials" / f"{base}.results.json"
                res.write_text(json.dumps(_results_json(et, history), indent=1, allow_nan=False), encoding="utf-8")
                bar.update()
                members.append((f"trials/{base}.results.json", "results", et.trial_id))
            summary = visit_summary(visit, subj.involved)
            (work / "summary.json").write_text(json.dumps(summary, indent=1, allow_nan=False), encoding="utf-8")
            bar.update()
            prog = progress(history, until_visit_id=visit_id)
            (work / "progress.json").write_text(json.dumps(prog, indent=1, allow_nan=False), encoding="utf-8")
            bar.update()
            members += [("summary.json", "summary", None), ("progress.json", "progress", None)]
            if include_report:
                write_visit_report(work / "report.pdf", history, visit_id)
                members.append(("report.pdf", "report", None))
                bar.update()
            visit_info: dict[str, Any] = {"id": visit.visit_id, "label": visit.date_label(subj),
                                          "body_mass_kg": visit.body_mass_kg, "battery": visit.battery,
                                          "pain_before": visit.pain_before, "pain_after": visit.pain_after,
                                          "pain_next_morning": visit.pain_next_morning}
            if subj.identified:
                visit_info["date"] = visit.date.isoformat() if visit.date else None
            manifest: dict[str, Any] = {
                "format": BUNDLE_FORMAT, "format_version": BUNDLE_FORMAT_VERSION, "software_version": __version__,
                "patient": subj.code, "identified": subj.identified, "involved": subj.involved,
                "visit": visit_info,
                "trials": [{"id": et.trial_id, "protocol": et.protocol, "protocol_version": et.protocol_version,
                            "accepted": et.accepted, "reject_reason": et.reject_reason, "raw_recording": et.trial is not None,
                            "result_version": et.result_version, "analysis_params": et.analysis_params,
                            "files": [m[0] for m in members if m[2] == et.trial_id]} for et in visit.trials],
                "files": [{"name": name, "kind": kind, "trial_id": tid, "bytes": (work / name).stat().st_size,
                           "sha256": _sha256(work / name)} for name, kind, tid in members],
            }
            if subj.identified:
                manifest["patient_name"] = subj.name
            (work / "manifest.json").write_text(json.dumps(manifest, indent=1, allow_nan=False), encoding="utf-8")
            bar.update()

        def write(tmp: Path) -> None:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.write(work / "manifest.json", "manifest.json")
                for name, _, _ in members:
                    zf.write(work / name, name)

        return save_atomically(target, write)
