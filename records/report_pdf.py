"""The visit report a clinician hands over: a PDF drawn with reportlab (no browser, no matplotlib).

Page 1: the patient (code, or name if the export is identified), the visit (day
since the first visit, or its date if identified), body mass, pain, the trials; per
protocol a per-limb table (mean ± SD and n of each limb, LSI, Robinson's symmetry
index, the symmetry angle, the worse limb and flags), and the force traces of a
trial with its events marked (O onset, C contact, P peak, A arrest, S stabilisation),
with one rep of each lead limb enlarged.
Then: progress across visits (each limb's visit mean with its MDC95 band, the LSI),
the changes since the previous visit judged against the MDC, pain before / after /
next morning / during on the same time axis (days), and the analysis parameters.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import KeepTogether, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from steplab.records._export_events import rep_events
from steplab.records._export_io import ExportError, dense_counts, plate_forces, raw_trial, save_atomically, trial_calibration
from steplab.records._export_plot import BOX_COLOUR, LEFT_COLOUR, RIGHT_COLOUR, TOTAL_COLOUR, Plot, decimate, legend
from steplab.records.export_model import ExportPatientHistory, ExportTrial, ExportVisit
from steplab.records.summary import METRIC_INFO, metric_label, metric_unit, progress, summary_rows, visit_day, visit_summary

__all__ = ["ExportError", "write_visit_report"]

PAGE_W, PAGE_H = A4
MARGIN = 15 * mm
CONTENT_W = PAGE_W - 2 * MARGIN
PROTOCOL_TITLES = {"step-down": "Step-down", "forward-step-down": "Forward step-down", "drop-landing": "Drop landing",
                   "squat": "Bilateral squat", "balance": "Single-limb balance"}
EVENT_LETTERS = {"onset": "O", "contact": "C", "peak": "P", "arrest": "A", "stabilisation": "S"}
FLAG_TEXT = {"lsi_below_band": "LSI < {lo:g} %", "lsi_above_band": "LSI > {hi:g} %", "one_limb_only": "one limb only"}
VERDICT_TEXT = {"improved": "real improvement", "worsened": "real worsening", "changed": "real change",
                "within_noise": "within noise", "unknown": "not decidable"}

_styles = getSampleStyleSheet()
H1 = ParagraphStyle("h1", parent=_styles["Heading1"], fontSize=15, spaceAfter=4, leading=18)
H2 = ParagraphStyle("h2", parent=_styles["Heading2"], fontSize=11, spaceBefore=6, spaceAfter=3, leading=13)
BODY = ParagraphStyle("body", parent=_styles["BodyText"], fontSize=8.5, leading=11, alignment=TA_LEFT)
SMALL = ParagraphStyle("small", parent=BODY, fontSize=7, leading=9, textColor=colors.HexColor("#444444"))
CELL = ParagraphStyle("cell", parent=BODY, fontSize=7.5, leading=9)


def _esc(s: Any) -> str:
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    f = float(v)
    if f == 0:
        return "0"
    mag = math.floor(math.log10(abs(f)))
    dec = max(0, digits - 1 - mag)
    return f"{f:.{dec}f}"


def _decimals(v: float, digits: int = 3) -> int:
    return 0 if v == 0 or not math.isfinite(v) else max(0, digits - 1 - math.floor(math.log10(abs(v))))


def _limb_cell(s: dict[str, Any]) -> str:
    """'mean ± SD (n)' with the SD to the mean's decimals (at least one significant digit)."""
    if not s or not s.get("n") or s.get("mean") is None:
        return "–"
    mean = float(s["mean"])
    dec = _decimals(mean)
    sd = ""
    if s.get("sd") is not None:
        sd_v = float(s["sd"])
        sd = f" ± {sd_v:.{max(dec, _decimals(sd_v, 1))}f}"
    return f"{mean:.{dec}f}{sd} (n={s['n']})"


def _header(history: ExportPatientHistory, visit: ExportVisit) -> list[Any]:
    subj = history.subject
    protocols = list(dict.fromkeys(et.protocol for et in visit.trials))
    titles = ", ".join(PROTOCOL_TITLES.get(p, p) for p in protocols) or "no trials"
    out: list[Any] = [Paragraph(f"Visit report: {_esc(titles)}", H1)]
    accepted = [et for et in visit.trials if et.accepted]
    rejected = [et for et in visit.trials if not et.accepted]
    rej = "; ".join(f"{_esc(et.trial_id)}: {_esc(et.reject_reason or 'rejected')}" for et in rejected)
    versions = sorted({f"{PROTOCOL_TITLES.get(et.protocol, et.protocol)} v{et.protocol_version}" for et in visit.trials
                       if et.protocol_version is not None})
    rows = [
        ("Patient", _esc(subj.label)),
        ("Involved limb", _esc(subj.involved or "none on record (LSI = left / right)")),
        ("Visit", _esc(visit.date_label(subj)) + (f" (battery {_esc(visit.battery)})" if visit.battery else "")),
        ("Body mass", f"{visit.body_mass_kg:.1f} kg" if visit.body_mass_kg is not None else "not recorded"),
        ("Protocol", _esc(", ".join(versions) or titles)),
        ("Trials", f"{len(accepted)} accepted, {len(rejected)} rejected" + (f" ({rej})" if rej else "")),
        ("Pain (0-10)", f"before {_num(visit.pain_before, 2)}, after {_num(visit.pain_after, 2)}, "
                        f"next morning {_num(visit.pain_next_morning, 2)}"),
    ]
    if subj.identified and subj.birth_date is not None:
        rows.insert(2, ("Birth date", subj.birth_date.isoformat()))
    elif subj.birth_year is not None:
        rows.insert(2, ("Birth year", str(subj.birth_year)))
    t = Table([[Paragraph(f"<b>{k}</b>", CELL), Paragraph(v, CELL)] for k, v in rows],
              colWidths=[32 * mm, CONTENT_W - 32 * mm])
    t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
                           ("TOPPADDING", (0, 0), (-1, -1), 1)]))
    out.append(t)
    note = ("Identified export: contains the patient's name." if subj.identified else
            "Pseudonymised export: patient code only; visits as days since the first visit; no device serials.")
    out += [Spacer(1, 2), Paragraph(note, SMALL)]
    return out


def _whole_body_table(summary: dict[str, Any], protocol: str) -> list[Any]:
    wb = summary.get("protocols", {}).get(protocol, {}).get("whole_body") or {}
    if not wb:
        return []
    data: list[list[Any]] = [[Paragraph(f"<b>{h}</b>", CELL) for h in ("Weight-bearing", "Unit", "Mean ± SD (n)",
                                                                       "Right share")]]
    for m in wb.values():
        right = 100.0 - float(m["mean"])
        data.append([m["label"], m["unit"], _limb_cell(m), f"{right:.1f}"])
    t = Table(data, colWidths=[45 * mm, 15 * mm, 40 * mm, 25 * mm], hAlign="LEFT")
    t.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 7.5),
                           ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#bbbbbb")),
                           ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6ecf3")),
                           ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5)]))
    return [t, Spacer(1, 2), Paragraph("Share of the body weight on the left floor plate, mean over each rep "
                                       "(50 % = even weight bearing).", SMALL)]


def _symmetry_table(summary: dict[str, Any], protocol: str, involved: str | None) -> list[Any]:
    rows = summary_rows(summary, protocol)
    if not rows:
        wb = _whole_body_table(summary, protocol)
        return wb or [Paragraph("No accepted reps with limb metrics at this visit.", BODY)]
    left_h = "Left" + (" (involved)" if involved == "left" else "")
    right_h = "Right" + (" (involved)" if involved == "right" else "")
    head = ["Metric", "Unit", left_h, right_h, "LSI %", "SI %", "Angle %", "Worse", "Flags"]
    data: list[list[Any]] = [[Paragraph(f"<b>{h}</b>", CELL) for h in head]]
    flagged = []
    lo, hi = summary.get("lsi_band_pct", [90.0, 110.0])
    for i, r in enumerate(rows, start=1):
        flags = [FLAG_TEXT.get(f, f).format(lo=lo, hi=hi) for f in r.get("flags") or []]
        worse = r.get("worse_limb")
        data.append([Paragraph(_esc(r["label"]), CELL), Paragraph(_esc(r["unit"]), CELL),
                     _limb_cell(r["left"]), _limb_cell(r["right"]), _num(r.get("lsi_pct")),
                     _num(r.get("symmetry_index_pct")), _num(r.get("symmetry_angle_pct")),
                     (worse or "–").capitalize() if worse else "–", Paragraph(_esc(", ".join(flags)) or "–", CELL)])
        if any(f in (r.get("flags") or []) for f in ("lsi_below_band", "lsi_above_band")):
            flagged.append(i)
    widths = [35 * mm, 12 * mm, 31 * mm, 31 * mm, 12 * mm, 12 * mm, 14 * mm, 13 * mm]
    widths.append(CONTENT_W - sum(widths))
    t = Table(data, colWidths=widths, repeatRows=1)
    style = [("FONT", (0, 0), (-1, -1), "Helvetica", 7.5), ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#bbbbbb")),
             ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6ecf3")), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
             ("ALIGN", (4, 1), (6, -1), "RIGHT"), ("TOPPADDING", (0, 0), (-1, -1), 1.5),
             ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5)]
    for i in flagged:
        style.append(("BACKGROUND", (0, i), (-1, i), colors.HexColor("#fbe3e0")))
    t.setStyle(TableStyle(style))
    legend_text = (f"Mean ± SD over accepted reps (n). LSI = involved / uninvolved × 100 (left / right with no involved "
                   f"limb); shaded rows are outside {lo:g}-{hi:g} %. SI = (R − L) / mean(R, L) × 100 (Robinson); "
                   "Angle = symmetry angle (Zifchock), 0 = symmetric. Worse = the limb on the worse side by the "
                   "metric's better direction. Landing metrics belong to the lead limb, lowering metrics to the trail limb.")
    return [t, Spacer(1, 2), Paragraph(legend_text, SMALL)] + _whole_body_table(summary, protocol)


def _trace_data(et: ExportTrial) -> tuple[np.ndarray, dict[str, np.ndarray], float, str]:
    """(time s, plate role → force, scale used, unit) of a trial, forces in ×BW when BW is known."""
    raw = raw_trial(et, "the report")
    cal, _ = trial_calibration(raw)
    counts, _ = dense_counts(raw)
    forces = plate_forces(counts, cal)
    bw = et.analysis.get("body_weight_n")
    scale, unit = (1.0 / float(bw), "×BW") if bw else (1.0, "N")
    t = np.arange(counts.shape[0]) / float(raw.sample_rate_hz)
    traces = {role: np.asarray(pf.fz_n) * scale for role, pf in forces.items()}
    traces["total"] = sum((v for k, v in traces.items()), np.zeros_like(t))
    return t, traces, scale, unit


def _role_colour(role: str):
    if role.endswith("left"):
        return LEFT_COLOUR
    if role.endswith("right"):
        return RIGHT_COLOUR
    return TOTAL_COLOUR if role == "total" else BOX_COLOUR


def _draw_traces(p: Plot, t: np.ndarray, traces: dict[str, np.ndarray], i0: int, i1: int, max_points: int) -> None:
    for role, y in traces.items():
        xs, ys = decimate(t[i0:i1], y[i0:i1], max_points)
        p.line(xs, ys, _role_colour(role), width=1.0 if role == "total" else 0.7)


def _traces(et: ExportTrial) -> list[Any]:
    t, traces, _, unit = _trace_data(et)
    events = rep_events(et.analysis, et.rep_accepted)
    ymax = max(float(np.nanmax(v)) for v in traces.values())
    ymin = min(0.0, min(float(np.nanmin(v)) for v in traces.values()))
    top = ymax * 1.08
    d = Drawing(CONTENT_W, 150)
    whole = Plot(d, 30, 30, CONTENT_W - 40, 100, (0.0, float(t[-1])), (ymin, top),
                 title=f"Trial {et.trial_id}: vertical force per plate, all reps (C = contact)", xlabel="time [s]",
                 ylabel=f"force [{unit}]")
    _draw_traces(whole, t, traces, 0, t.size, 1400)
    for e in events:
        colour = _role_colour(e.limb or "")
        whole.vline(e.time_s, colour, f"C{e.rep}" if e.kind == "contact" else "",
                    dash=None if e.kind == "contact" else (1.5, 1.5))
    legend(d, 0, 134, [(k.replace("_", " "), _role_colour(k)) for k in traces], right_edge=CONTENT_W - 10)
    out: list[Any] = [d]
    # one rep of each lead limb, enlarged
    zoom = Drawing(CONTENT_W, 160)
    picked: list[tuple[int, str]] = []
    for e in events:
        if e.kind == "contact" and e.limb and e.limb not in {lm for _, lm in picked}:
            picked.append((e.rep, e.limb))
    w = (CONTENT_W - 80) / 2
    for k, (rep, limb) in enumerate(picked[:2]):
        evs = [e for e in events if e.rep == rep]
        lo = min(e.time_s for e in evs) - 0.5
        hi = max(e.time_s for e in evs) + 0.8
        lo, hi = max(0.0, lo), min(float(t[-1]), hi)
        rate = float(et.analysis.get("sample_rate_hz") or (et.trial.sample_rate_hz if et.trial else 1000.0))
        i0, i1 = int(lo * rate), int(hi * rate) + 1
        p = Plot(zoom, 30 + k * (w + 45), 30, w, 110, (lo, hi), (ymin, top),
                 title=f"Rep {rep}: {limb} lead", xlabel="time [s]", ylabel=f"force [{unit}]")
        _draw_traces(p, t, traces, i0, i1, 900)
        for j, e in enumerate(evs):
            p.vline(e.time_s, _role_colour(limb), EVENT_LETTERS[e.kind], row=j % 2)
        p.hline(1.0 if unit == "×BW" else 0.0, colors.HexColor("#888888"))
    if picked:
        out += [zoom, Paragraph("Events: O movement onset, C contact of the lead foot, P peak landing force, A descent "
                                "arrested (velocity back to zero), S stabilised (within 5 % BW for 1 s). Dashed grey line: "
                                "body weight.", SMALL)]
    return out


def _progress_section(prog: dict[str, Any], visit: ExportVisit, protocol: str, with_pain: bool = True) -> list[Any]:
    metrics = prog.get("protocols", {}).get(protocol, {})
    if not metrics:
        return []
    days = [v["day"] for v in prog["visits"]]
    lo_d, hi_d = (min(days), max(days)) if days else (0.0, 1.0)
    pad = max(1.0, 0.08 * (hi_d - lo_d))
    xlim = (lo_d - pad, hi_d + pad)
    clinical = list(METRIC_INFO)
    order = [n for n in metrics if metrics[n]["series"]]
    order.sort(key=lambda n: (clinical.index(n) if n in clinical else len(clinical), n))
    out: list[Any] = [Paragraph(f"{PROTOCOL_TITLES.get(protocol, protocol)}: progress across visits", H2),
                      Paragraph("Each limb's visit mean (dot) with its MDC95 band (shaded): a later visit mean outside "
                                "the band of an earlier one is a real change, inside it is measurement noise.", SMALL)]
    cols, cell_w, cell_h = 3, (CONTENT_W - 20) / 3, 106
    for start in range(0, len(order), cols):
        d = Drawing(CONTENT_W, cell_h)
        for k, name in enumerate(order[start:start + cols]):
            m = metrics[name]
            ser = m["series"]
            x = [pt["day"] for pt in ser]
            vals = [v for pt in ser for limb in ("left", "right")
                    for v in (pt[limb]["band_low"], pt[limb]["band_high"], pt[limb]["mean"]) if v is not None]
            if not vals:
                continue
            ylo, yhi = min(vals), max(vals)
            span = (yhi - ylo) or abs(yhi) * 0.1 or 1.0
            p = Plot(d, 32 + k * (cell_w + 6), 28, cell_w - 36, cell_h - 50, xlim, (ylo - 0.1 * span, yhi + 0.1 * span),
                     title=f"{metric_label(name)} [{metric_unit(name)}]", xlabel="days since first visit",
                     xticks=days, xticklabels=[str(int(dd)) for dd in days])
            for limb, colour in (("left", LEFT_COLOUR), ("right", RIGHT_COLOUR)):
                p.band(x, [pt[limb]["band_low"] for pt in ser], [pt[limb]["band_high"] for pt in ser], colour)
                p.line(x, [pt[limb]["mean"] for pt in ser], colour, 0.9)
                p.points(x, [pt[limb]["mean"] for pt in ser], colour)
            lsi = ser[-1].get("lsi_pct")
            d.add(String(p.x0 + 2, p.y0 + p.h - 8, f"LSI {_num(lsi)} %", fontName="Helvetica", fontSize=6.5))
        out.append(d)
    legend_d = Drawing(CONTENT_W, 12)
    legend(legend_d, 32, 2, [("left", LEFT_COLOUR), ("right", RIGHT_COLOUR)])
    out.append(legend_d)
    if with_pain:
        out.append(KeepTogether(_pain_chart(prog)))
    # changes since the previous visit
    rows: list[list[Any]] = [[Paragraph(f"<b>{h}</b>", CELL) for h in
                              ("Metric", "Limb", "Previous", "This visit", "Change", "MDC95", "Verdict")]]
    for name in order:
        ch = [c for c in metrics[name]["changes"] if c["to_visit"] == visit.visit_id]
        if not ch:
            continue
        for limb in ("left", "right"):
            c = ch[-1][limb]
            rows.append([Paragraph(_esc(metric_label(name)), CELL), limb, _num(c["before_mean"]), _num(c["after_mean"]),
                         _num(c["change"]), _num(c["mdc95"]), VERDICT_TEXT.get(c["verdict"], c["verdict"])])
    if len(rows) > 1:
        t = Table(rows, colWidths=[40 * mm, 14 * mm, 20 * mm, 20 * mm, 20 * mm, 20 * mm, CONTENT_W - 134 * mm],
                  repeatRows=1)
        style = [("FONT", (0, 0), (-1, -1), "Helvetica", 7.5), ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#bbbbbb")),
                 ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6ecf3")), ("ALIGN", (2, 1), (5, -1), "RIGHT"),
                 ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5)]
        for i, r in enumerate(rows[1:], start=1):
            if r[-1] in ("real improvement", "real worsening", "real change"):
                style.append(("FONT", (6, i), (6, i), "Helvetica-Bold", 7.5))
                tint = {"real improvement": "#2e7d32", "real worsening": "#c62828"}.get(r[-1], "#333333")
                style.append(("TEXTCOLOR", (6, i), (6, i), colors.HexColor(tint)))
        t.setStyle(TableStyle(style))
        out += [Paragraph("Changes since the previous visit", H2), t]
    else:
        out.append(Paragraph("First visit of this protocol: it is the baseline for later visits.", SMALL))
    return out


def _pain_chart(prog: dict[str, Any]) -> list[Any]:
    pain = prog.get("pain") or []
    if not any(p.get(k) is not None for p in pain for k in ("before", "after", "next_morning", "during_max")):
        return [Paragraph("No pain scores recorded.", SMALL)]
    days = [p["day"] for p in pain]
    lo_d, hi_d = min(days), max(days)
    pad = max(1.0, 0.08 * (hi_d - lo_d))
    d = Drawing(CONTENT_W, 130)
    p = Plot(d, 32, 30, CONTENT_W - 42, 78, (lo_d - pad, hi_d + pad), (0.0, 10.0),
             title="Pain (0-10 NRS) on the same time axis", xlabel="days since first visit", ylabel="pain",
             xticks=days, xticklabels=[str(int(x)) for x in days])
    series = (("before", "before", colors.HexColor("#555555")), ("after", "after", colors.HexColor("#b22222")),
              ("next_morning", "next morning", colors.HexColor("#7b3fa0")), ("during_max", "during (max)",
                                                                             colors.HexColor("#2e8b57")))
    for key, _, colour in series:
        ys = [q.get(key) for q in pain]
        p.line(days, ys, colour, 0.9)
        p.points(days, ys, colour, 1.8)
    legend(d, 0, 112, [(label, colour) for _, label, colour in series], right_edge=CONTENT_W - 10)
    return [d]


def _parameters(visit: ExportVisit) -> list[Any]:
    out: list[Any] = [Paragraph("Analysis parameters", H2)]
    for et in visit.trials:
        prov = et.analysis.get("provenance") or {}
        params = et.analysis_params or prov.get("params") or {}
        flat = ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if not isinstance(v, (dict, list)))
        out.append(Paragraph(
            f"<b>{_esc(et.trial_id)}</b> ({_esc(et.protocol)}, result version {et.result_version}, software "
            f"{_esc(prov.get('software_version', '?'))}, calibration {_esc(prov.get('calibration_id', '?'))}, "
            f"lost samples {_esc(prov.get('lost_samples', 0))}): {_esc(flat) or 'defaults'}", SMALL))
    return out


def write_visit_report(path: str | Path, history: ExportPatientHistory, visit_id: str, *, lsi_low_pct: float = 90.0,
                       lsi_high_pct: float = 110.0) -> Path:
    """Write the PDF report of ``visit_id`` (atomic, never replaces a file); returns the path.

    Pseudonymised unless ``history.subject.identified``.
    """
    visit = history.visit(visit_id)
    summary = visit_summary(visit, history.subject.involved, lsi_low_pct=lsi_low_pct, lsi_high_pct=lsi_high_pct)
    prog = progress(history, until_visit_id=visit_id, lsi_low_pct=lsi_low_pct, lsi_high_pct=lsi_high_pct)
    story: list[Any] = _header(history, visit)
    protocols = list(dict.fromkeys(et.protocol for et in visit.trials))
    for protocol in protocols:
        story.append(Paragraph(f"{PROTOCOL_TITLES.get(protocol, protocol)}: limb symmetry at this visit", H2))
        story += _symmetry_table(summary, protocol, history.subject.involved)
        shown = next((et for et in visit.trials if et.protocol == protocol and et.accepted and et.trial is not None), None)
        if shown is not None:
            story.append(KeepTogether(_traces(shown)))
    story.append(PageBreak())
    shown_pain = False
    for protocol in protocols:
        part = _progress_section(prog, visit, protocol, with_pain=not shown_pain)
        shown_pain = shown_pain or bool(part)
        story += part
    if not shown_pain:
        story.append(KeepTogether(_pain_chart(prog)))
    story += _parameters(visit)
    title = f"steplab visit report {history.subject.code} {visit.date_label(history.subject)}"
    day = visit_day(history, visit)

    def footer(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.HexColor("#666666"))
        canvas.drawString(MARGIN, 8 * mm, f"{history.subject.code} · {visit.date_label(history.subject)} · steplab")
        canvas.drawRightString(PAGE_W - MARGIN, 8 * mm, f"page {doc.page}")
        canvas.restoreState()

    def write(tmp: Path) -> None:
        doc = SimpleDocTemplate(str(tmp), pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
                                bottomMargin=14 * mm, title=title, author="steplab", subject=f"visit day {day:g}",
                                creator="steplab export")
        doc.build(story, onFirstPage=footer, onLaterPages=footer)

    return save_atomically(path, write)
