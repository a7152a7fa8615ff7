"""Progress across visits: for one protocol and metric, each limb's visit means with their MDC95 bands,
the LSI below, pain (during, after, next morning) at the bottom, on one shared time axis (days since
the first visit); and a table of every change judged against the measurement noise.

A later visit whose mean lies outside the band of an earlier one (mean ± MDC95) is a
real change; inside it, the change is within noise (``records.summary.progress``).
"""

from __future__ import annotations

import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html
from plotly.subplots import make_subplots

from steplab.records.history import progress_json
from steplab.records.patients import RecordsError
from steplab.records.summary import METRIC_INFO

from . import Page
from .trial import fmt

LIMB_COLOURS = {"left": "#1f77b4", "right": "#d62728"}
BAND_COLOURS = {"left": "rgba(31,119,180,0.15)", "right": "rgba(214,39,40,0.15)"}
PAIN_STYLE = {"during_mean": ("during trials (mean)", "#e76f51", "circle"),
              "after": ("after the visit", "#6a4c93", "square"),
              "next_morning": ("next morning", "#2a9d8f", "triangle-up")}
VERDICT_WORDS = {"improved": "real change: better", "worsened": "real change: worse", "changed": "real change",
                 "within_noise": "within noise", "unknown": "too few reps to tell"}
DEFAULT_METRIC = {"step-down": "landing_peak_force_bw", "drop-landing": "landing_peak_force_bw",
                  "forward-step-down": "lowering_duration_s", "balance": "cop_path_mm", "squat": "lowering_duration_s"}


def metric_options(progress: dict, protocol: str | None) -> list[dict]:
    metrics = (progress.get("protocols") or {}).get(protocol or "", {})
    order = list(METRIC_INFO)
    names = sorted(metrics, key=lambda n: (order.index(n) if n in order else len(order), n))
    return [{"label": f"{metrics[n]['label']} ({metrics[n]['unit']})" if metrics[n]["unit"] else metrics[n]["label"],
             "value": n} for n in names]


def _choose_metric(progress: dict, protocol: str | None, wanted: str | None) -> str | None:
    opts = [o["value"] for o in metric_options(progress, protocol)]
    if wanted in opts:
        return wanted
    d = DEFAULT_METRIC.get(protocol or "")
    return d if d in opts else (opts[0] if opts else None)


def figure(progress: dict, protocol: str | None, metric: str | None, threshold_pct: float = 90.0) -> go.Figure:
    """Three rows sharing the x axis (days since the first visit): metric per limb with MDC95 bands, LSI (dashed:
    the threshold band [T, 200 − T] %), pain."""
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06, row_heights=[0.5, 0.25, 0.25],
                        subplot_titles=("", "LSI (%)", "Pain (0-10)"))
    m = ((progress.get("protocols") or {}).get(protocol or "") or {}).get(metric or "")
    if m:
        unit = f" ({m['unit']})" if m["unit"] else ""
        for limb in ("left", "right"):
            pts = [p for p in m["series"] if p[limb]["mean"] is not None]
            days = [p["day"] for p in pts]
            lows = [p[limb]["band_low"] for p in pts]
            highs = [p[limb]["band_high"] for p in pts]
            if all(v is not None for v in lows + highs) and pts:
                fig.add_trace(go.Scatter(x=days + days[::-1], y=highs + lows[::-1], fill="toself", mode="lines",
                                         fillcolor=BAND_COLOURS[limb], line={"width": 0}, hoverinfo="skip",
                                         name=f"{limb}: mean ± MDC95 (noise band)", legendgroup=limb), row=1, col=1)
            fig.add_trace(go.Scatter(x=days, y=[p[limb]["mean"] for p in pts], mode="lines+markers",
                                     name=f"{limb} mean{unit}", legendgroup=limb,
                                     line={"color": LIMB_COLOURS[limb]},
                                     text=[f"n={p[limb]['n']}" for p in pts], hoverinfo="x+y+text"), row=1, col=1)
        lsi = [p for p in m["series"] if p["lsi_pct"] is not None]
        fig.add_trace(go.Scatter(x=[p["day"] for p in lsi], y=[p["lsi_pct"] for p in lsi], mode="lines+markers",
                                 name="LSI (%)", line={"color": "#212529"}), row=2, col=1)
        for y in (threshold_pct, 200.0 - threshold_pct):
            fig.add_hline(y=y, line={"color": "#adb5bd", "dash": "dash", "width": 1}, row=2, col=1)
        fig.update_yaxes(title_text=f"{m['label']}{unit}", row=1, col=1)
    for key, (words, colour, symbol) in PAIN_STYLE.items():
        pts = [p for p in progress.get("pain") or [] if p.get(key) is not None]
        fig.add_trace(go.Scatter(x=[p["day"] for p in pts], y=[p[key] for p in pts], mode="lines+markers",
                                 name=f"pain {words}", line={"color": colour, "dash": "dot"},
                                 marker={"symbol": symbol, "size": 9}), row=3, col=1)
    fig.update_yaxes(range=[-0.5, 10.5], row=3, col=1)
    fig.update_xaxes(title_text="days since the first visit", row=3, col=1)
    fig.update_layout(height=640, margin={"l": 70, "r": 10, "t": 30, "b": 40}, legend={"orientation": "h", "y": -0.12},
                      uirevision="progress")
    return fig


def _change_rows(changes: list[dict], kind: str) -> list:
    rows = []
    for c in changes:
        for limb in ("left", "right"):
            d = c.get(limb) or {}
            verdict = d.get("verdict") or "unknown"
            cls = "progress-change-row " + ("change-real" if d.get("exceeds_mdc") else "change-noise")
            rows.append(html.Tr([html.Td(kind), html.Td(f"day {fmt(c['from_day'])} → day {fmt(c['to_day'])}"),
                                 html.Td(limb), html.Td(fmt(d.get("before_mean"))), html.Td(fmt(d.get("after_mean"))),
                                 html.Td(fmt(d.get("change"))), html.Td(fmt(d.get("mdc95"))),
                                 html.Td(VERDICT_WORDS.get(verdict, verdict), className=f"verdict-{verdict}")],
                                className=cls))
    return rows


def table(progress: dict, protocol: str | None, metric: str | None) -> html.Table | html.P:
    m = ((progress.get("protocols") or {}).get(protocol or "") or {}).get(metric or "")
    if not m or not (m["changes"] or m["from_baseline"]):
        return html.P("No change to judge yet: a change needs two visits with reps of this metric.",
                      id="progress-table")
    unit = f" ({m['unit']})" if m["unit"] else ""
    head = html.Tr([html.Th(h) for h in ("Compared with", "Visits", "Limb", f"Before{unit}", f"After{unit}",
                                         f"Change{unit}", f"Noise, MDC95{unit}", "Verdict")])
    rows = _change_rows(m["changes"], "previous visit") + _change_rows(m["from_baseline"][1:], "first visit")
    return html.Table([html.Thead(head), html.Tbody(rows)], id="progress-table", className="progress-table")


def load(ctx, code: str) -> dict | None:
    with ctx.db.read() as s:
        try:
            return progress_json(s, code)
        except RecordsError:
            return None


def layout(ctx, params, query):
    code = params.get("code", "")
    progress = load(ctx, code)
    if progress is None:
        return html.Div([html.H2("Progress"), html.P(f"There is no patient {code}."),
                         dcc.Link("Patients", href="/patients")], id="progress-page")
    protocols = sorted(progress.get("protocols") or {})
    protocol = query.get("protocol") if query.get("protocol") in protocols else (
        "step-down" if "step-down" in protocols else (protocols[0] if protocols else None))
    metric = _choose_metric(progress, protocol, query.get("metric"))
    visits = progress.get("visits") or []
    return html.Div([
        dcc.Store(id="progress-data", data=progress),
        html.H2(f"Progress: {code}"),
        html.Div([dcc.Link(f"Patient {code}", href=f"/patients/{code}"),
                  html.Span(f"{len(visits)} visits, involved limb: {progress.get('involved') or 'none'}")]
                 + [dcc.Link(f"visit {v['label']}", href=f"/visits/{v['visit_id']}") for v in visits[-6:]],
                 className="progress-links"),
        html.Div([html.Label("Protocol", htmlFor="progress-protocol"),
                  dcc.Dropdown(id="progress-protocol", options=[{"label": p, "value": p} for p in protocols],
                               value=protocol, clearable=False, style={"width": "14em"}),
                  html.Label("Metric", htmlFor="progress-metric"),
                  dcc.Dropdown(id="progress-metric", options=metric_options(progress, protocol), value=metric,
                               clearable=False, style={"width": "22em"})], className="progress-row"),
        html.P("Shaded: each visit's mean ± MDC95 (the measurement noise). A later visit outside a band is a real "
               "change; inside it, the change could be noise.", className="progress-legend"),
        dcc.Graph(id="progress-graph", figure=figure(progress, protocol, metric, ctx.settings.lsi_threshold_pct),
                  config={"displaylogo": False}),
        html.H3("Changes"),
        html.Div(table(progress, protocol, metric), id="progress-changes"),
    ], id="progress-page")


def register(app, ctx) -> None:
    @app.callback(Output("progress-metric", "options"), Output("progress-metric", "value"),
                  Input("progress-protocol", "value"), State("progress-metric", "value"), State("progress-data", "data"),
                  prevent_initial_call=True)
    def _protocol(protocol, metric, progress):
        return metric_options(progress, protocol), _choose_metric(progress, protocol, metric)

    @app.callback(Output("progress-graph", "figure"), Output("progress-changes", "children"),
                  Input("progress-metric", "value"), State("progress-protocol", "value"), State("progress-data", "data"),
                  prevent_initial_call=True)
    def _metric(metric, protocol, progress):
        return figure(progress, protocol, metric, ctx.settings.lsi_threshold_pct), table(progress, protocol, metric)


page = Page(name="progress", path="/patients/<code>/progress", title="Progress", layout=layout, register=register,
            admin=False, nav=False)
