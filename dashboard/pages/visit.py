"""Visit summary: per protocol and metric, each limb's mean (SD, n), the LSI, Robinson's symmetry index,
the symmetry angle, the worse limb and flags; pain after the visit and the next morning; the visit's trials.

Colours (decision 0017): an LSI outside the band [T, 200 − T] % (T: the threshold
field, default ``settings.lsi_threshold_pct``) is a deficit only when the two limbs'
means differ by more than the measurement noise of that difference,
``1.96·√(SD_L²/n_L + SD_R²/n_R)`` (the MDC95 of the limb difference, built like
``dsp.symmetry``'s MDC95); otherwise it is shown as within noise.
"""

from __future__ import annotations

import math
from typing import Any

from dash import Input, Output, State, dcc, html, no_update

from steplab.records.history import visit_overview
from steplab.records.patients import RecordsError, set_pain
from steplab.records.summary import summary_rows

from .. import auth
from . import Page
from .trial import fmt

LEGEND = ("Colours of the LSI: red = asymmetry beyond the threshold and larger than the measurement noise "
          "(a real deficit); amber = beyond the threshold but within the noise (could be chance); green = within "
          "the threshold; grey = cannot be judged (one limb only).")


def limb_noise(left: dict, right: dict) -> float | None:
    """The 95 % noise limit of the difference of the two limb means: 1.96·√(SD_L²/n_L + SD_R²/n_R)."""
    sl, sr, nl, nr = left.get("sd"), right.get("sd"), left.get("n") or 0, right.get("n") or 0
    if sl is None or sr is None or nl < 2 or nr < 2:
        return None
    return 1.96 * math.sqrt(sl * sl / nl + sr * sr / nr)


def symmetry_class(row: dict, threshold_pct: float) -> str:
    """``sym-ok`` / ``sym-deficit`` / ``sym-within-mdc`` / ``sym-unknown`` for one metric row of a visit summary."""
    lsi = row.get("lsi_pct")
    left, right = row.get("left") or {}, row.get("right") or {}
    if lsi is None or left.get("mean") is None or right.get("mean") is None:
        return "sym-unknown"
    low, high = threshold_pct, 200.0 - threshold_pct
    if low <= lsi <= high:
        return "sym-ok"
    noise = limb_noise(left, right)
    if noise is not None and abs(left["mean"] - right["mean"]) > noise:
        return "sym-deficit"
    return "sym-within-mdc"


def shown_flags(row: dict) -> list[str]:
    """A row's flags without the summary's fixed-band LSI flags (the colour shows the LSI against the chosen threshold)."""
    return [f for f in row.get("flags") or [] if not f.startswith("lsi_")]


def _limb_cell(d: dict) -> str:
    if not d or not d.get("n"):
        return "—"
    return f"{fmt(d.get('mean'))} ({fmt(d.get('sd'), 2)}, n={d['n']})"


def summary_table(summary: dict | None, threshold_pct: float) -> html.Table | html.P:
    if not summary or not summary.get("protocols"):
        return html.P("No accepted reps at this visit yet.", id="visit-summary-table")
    titles = ("Metric", "Left: mean (SD, n)", "Right: mean (SD, n)", "LSI (%)", "Robinson SI (%)",
              "Symmetry angle (%)", "Limb difference / noise", "Worse limb", "Flags")
    head = html.Tr([html.Th(h) for h in titles])
    rows = []
    for protocol in sorted(summary["protocols"]):
        p = summary["protocols"][protocol]
        rows.append(html.Tr(html.Th(f"{protocol}: {p['reps']} reps counted from {p['trials']} trials",
                                    colSpan=len(titles)), className="visit-protocol-row"))
        for row in summary_rows(summary, protocol):
            cls = symmetry_class(row, threshold_pct)
            unit = row.get("unit") or ""
            left, right = row.get("left") or {}, row.get("right") or {}
            noise = limb_noise(left, right)
            diff = abs(left["mean"] - right["mean"]) if left.get("mean") is not None and right.get("mean") is not None \
                else None
            rows.append(html.Tr([
                html.Td(f"{row['label']} ({unit})" if unit else row["label"]),
                html.Td(_limb_cell(left), className="visit-left"), html.Td(_limb_cell(right), className="visit-right"),
                html.Td(fmt(row.get("lsi_pct")), className=f"visit-lsi {cls}"),
                html.Td(fmt(row.get("symmetry_index_pct")), className="visit-si"),
                html.Td(fmt(row.get("symmetry_angle_pct")), className="visit-angle"),
                html.Td(f"{fmt(diff)} / {fmt(noise)}", className="visit-noise"),
                html.Td(row.get("worse_limb") or "—", className="visit-worse"),
                html.Td(", ".join(f.replace("_", " ") for f in shown_flags(row)) or "—", className="visit-flag"),
            ], className=f"visit-metric-row {cls}", **{"data-metric": row["metric"], "data-protocol": protocol}))
    return html.Table([html.Thead(head), html.Tbody(rows)], id="visit-summary-table", className="visit-table")


def whole_body_table(summary: dict | None) -> html.Table | None:
    """The weight-bearing share of each protocol that has one (squat): it belongs to no limb, so it has no LSI."""
    rows = []
    for protocol, p in sorted(((summary or {}).get("protocols") or {}).items()):
        for _name, d in sorted((p.get("whole_body") or {}).items()):
            unit = d.get("unit") or ""
            rows.append(html.Tr([html.Td(protocol), html.Td(f"{d['label']} ({unit})" if unit else d["label"]),
                                 html.Td(f"{fmt(d.get('mean'))} ({fmt(d.get('sd'), 2)}, n={d.get('n')})")],
                                className="visit-whole-body-row"))
    if not rows:
        return None
    head = html.Tr([html.Th("Protocol"), html.Th("Both limbs together"), html.Th("Mean (SD, n)")])
    return html.Table([html.Thead(head), html.Tbody(rows)], id="visit-whole-body", className="visit-table")


def worse_line(summary: dict | None) -> str:
    if not summary or not summary.get("protocols"):
        return "Worse limb: not known yet."
    counts = {"left": 0, "right": 0}
    total = 0
    for protocol in summary["protocols"]:
        for row in summary_rows(summary, protocol):
            if row.get("worse_limb") in counts:
                counts[row["worse_limb"]] += 1
                total += 1
    involved = summary.get("involved")
    lsi = "LSI = involved / uninvolved limb × 100" if involved else "LSI = left / right × 100 (no involved limb set)"
    return (f"Worse limb: left in {counts['left']}, right in {counts['right']} of {total} metrics. "
            f"Involved limb: {involved or 'none'}. {lsi}.")


def flags_block(overview: dict) -> html.Div:
    summary = overview.get("summary") or {}
    items = []
    for protocol, p in sorted((summary.get("protocols") or {}).items()):
        flagged = [row["label"] for row in summary_rows(summary, protocol) if shown_flags(row)]
        items.append(html.Li(f"{protocol}: {p['trials']} trials counted, {p['trials_rejected']} rejected; "
                             f"{p['reps']} reps counted, {p['reps_rejected']} left out"
                             + (f"; flagged: {', '.join(flagged)}" if flagged else "")))
    return html.Div([html.Ul(items)] if items else "No flags.", id="visit-flags")


def trials_table(overview: dict) -> html.Table | html.P:
    if not overview["trials"]:
        return html.P("No trials at this visit yet.", id="visit-trials")
    head = html.Tr([html.Th(h) for h in ("Trial", "Protocol", "Lead", "Status", "Reps counted", "Analysis version",
                                         "Pain during (0-10)", "Quality (0-6)")])
    rows = [html.Tr([html.Td(dcc.Link(f"trial {t['id']}", href=f"/trials/{t['id']}")), html.Td(t["protocol"]),
                     html.Td(t["lead"] or "both"),
                     html.Td("accepted" if t["accepted"] else f"rejected: {t['reject_reason']}"),
                     html.Td(f"{t['reps'] - t['reps_rejected']} of {t['reps']}" if t["accepted"] else f"0 of {t['reps']}"),
                     html.Td(fmt(t["result_version"])), html.Td(fmt(t["pain_during"])),
                     html.Td(fmt(t["quality_score"]))], className="visit-trial-row") for t in overview["trials"]]
    return html.Table([html.Thead(head), html.Tbody(rows)], id="visit-trials", className="visit-table")


def _visit_id(params) -> int | None:
    try:
        return int(params.get("visit_id", ""))
    except (TypeError, ValueError):
        return None


def layout(ctx, params, query):
    vid = _visit_id(params)
    overview = None
    if vid is not None:
        with ctx.db.read() as s:
            overview = visit_overview(s, vid)
    if overview is None:
        return html.Div([html.H2("Visit summary"), html.P(f"There is no visit {params.get('visit_id')}."),
                         dcc.Link("Patients", href="/patients")], id="visit-page")
    threshold = float(ctx.settings.lsi_threshold_pct)
    summary = overview["summary"]
    code = overview["patient"]
    return html.Div([
        dcc.Store(id="visit-id", data=vid),
        dcc.Store(id="visit-summary-data", data=summary),
        html.H2(f"Visit summary: {code}, {overview['date']}"),
        html.Div([dcc.Link(f"Patient {code}", href=f"/patients/{code}"),
                  dcc.Link("Progress across visits", href=f"/patients/{code}/progress", id="visit-progress-link"),
                  dcc.Link("Export this visit", href=f"/export?visit={vid}", id="visit-export-link"),
                  html.Span(f"Body mass {fmt(overview['body_mass_kg'])} kg"),
                  html.Span(f"Pain before {fmt(overview['pain_before'])} / 10")], className="visit-links"),
        html.Div([html.Label("Symmetry threshold, LSI (%)", htmlFor="visit-threshold"),
                  dcc.Input(id="visit-threshold", type="number", value=threshold, min=50, max=100, step=1,
                            debounce=False, style={"width": "6em"}),
                  html.Span(id="visit-band", children=f"band {threshold:g}-{200 - threshold:g} %")],
                 className="visit-row"),
        html.P(LEGEND, id="visit-legend", className="visit-legend"),
        html.Div(summary_table(summary, threshold), id="visit-summary"),
        html.P(worse_line(summary), id="visit-worse-limb"),
        whole_body_table(summary),
        flags_block(overview),
        html.H3("Pain (0-10)"),
        html.Div([html.Label("After the visit", htmlFor="visit-pain-after"),
                  dcc.Input(id="visit-pain-after", type="text", value=fmt(overview["pain_after"]).replace("—", ""),
                            style={"width": "4em"}),
                  html.Label("Next morning", htmlFor="visit-pain-next-morning"),
                  dcc.Input(id="visit-pain-next-morning", type="text",
                            value=fmt(overview["pain_next_morning"]).replace("—", ""), style={"width": "4em"}),
                  html.Button("Save pain", id="visit-pain-save"),
                  html.Span(id="visit-pain-message", role="status")], className="visit-row"),
        html.H3("Trials"),
        trials_table(overview),
    ], id="visit-page")


def parse_pain(text: Any, what: str) -> float | None:
    raw = ("" if text is None else str(text)).strip().replace(",", ".")
    if not raw:
        return None
    try:
        v = float(raw)
    except ValueError:
        raise ValueError(f"{what}: {raw!r} is not a number from 0 to 10; nothing was saved.") from None
    if not math.isfinite(v) or not 0 <= v <= 10:
        raise ValueError(f"{what}: {raw} is not on the 0-10 scale; nothing was saved.")
    return v


def register(app, ctx) -> None:
    @app.callback(Output("visit-summary", "children"), Output("visit-band", "children"),
                  Input("visit-threshold", "value"), State("visit-summary-data", "data"), prevent_initial_call=True)
    def _recolour(threshold, summary):
        try:
            t = float(threshold)
        except (TypeError, ValueError):
            return no_update, "give a threshold between 50 and 100 %"
        if not math.isfinite(t) or not 50 <= t <= 100:
            return no_update, "give a threshold between 50 and 100 %"
        return summary_table(summary, t), f"band {t:g}-{200 - t:g} %"

    @app.callback(Output("visit-pain-message", "children"), Input("visit-pain-save", "n_clicks"),
                  State("visit-id", "data"), State("visit-pain-after", "value"),
                  State("visit-pain-next-morning", "value"), prevent_initial_call=True)
    def _pain(_n, vid, after, morning):
        try:
            a = parse_pain(after, "Pain after the visit")
            m = parse_pain(morning, "Pain next morning")
        except ValueError as exc:
            return str(exc)
        if a is None and m is None:
            return "Enter the pain after the visit, the next morning, or both."
        try:
            set_pain(ctx.db, int(vid), after=a, next_morning=m, actor=auth.current_actor())
        except RecordsError as exc:
            return f"Not saved: {exc}"
        parts = ([f"after {a:g}"] if a is not None else []) + ([f"next morning {m:g}"] if m is not None else [])
        return f"Pain saved: {', '.join(parts)} (0-10)."


page = Page(name="visit", path="/visits/<visit_id>", title="Visit summary", layout=layout, register=register,
            admin=False, nav=False)
