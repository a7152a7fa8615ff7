"""The session page: the rig live (filtered plate forces, each plate's load, the left/right share, live reps).

It only reads ``LiveFeed.snapshot()``; acquisition and analysis run on their own
threads, so a slow or flooded web side never costs a sample.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
from dash import Input, Output, dcc, html

from ..live_feed import LiveFeed, LiveSnapshot
from . import Page

PLATE_COLOURS = {"box": "#6c757d", "floor_left": "#1f77b4", "floor_right": "#d62728"}


def _figure(snap: LiveSnapshot) -> go.Figure:
    fig = go.Figure()
    for name, fz in snap.fz_n.items():
        fig.add_trace(go.Scattergl(x=snap.time_s, y=fz, mode="lines", name=name,
                                   line={"color": PLATE_COLOURS.get(name), "width": 1.5}))
    fig.update_layout(margin={"l": 50, "r": 10, "t": 10, "b": 40}, height=420, uirevision="live",
                      xaxis_title="time (s)", yaxis_title="vertical force, filtered (N)", legend={"orientation": "h"})
    return fig


def fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _reps_table(snap: LiveSnapshot):
    if not snap.reps:
        return html.Div("no reps yet", className="no-reps")
    names = list(snap.reps[-1].headline)
    head = html.Tr([html.Th("rep"), html.Th("lead")] + [html.Th(n) for n in names])
    rows = [html.Tr([html.Td(str(r.number)), html.Td(r.lead or "—")] + [html.Td(fmt(r.headline.get(n))) for n in names],
                    className="live-rep") for r in reversed(snap.reps[-10:])]
    return html.Table([html.Thead(head), html.Tbody(rows)], id="live-reps-table")


def status_line(live: LiveFeed, snap: LiveSnapshot) -> str:
    rate = f"{snap.rate_hz:g} Hz" if snap.rate_hz > 0 else "rate unknown"
    status = (f"{live.device.address} · {rate} · {snap.status} · {snap.samples} samples · "
              f"{snap.lost_samples} lost · {snap.crc_errors} CRC errors")
    if snap.device_resets:
        status += f" · {snap.device_resets} device resets"
    if snap.queue_dropped_samples:
        status += f" · {snap.queue_dropped_samples} dropped by a slow consumer"
    return status


def layout(ctx, params, query):
    live = ctx.live
    if live is None:
        return html.Div([html.H2("Session"), html.P("No rig is attached to this dashboard.")], id="session-page")
    plates = live.names
    return html.Div(
        [
            html.H2("steplab · live forces"),
            html.Div(id="live-status", className="status"),
            html.Div(
                [html.Div([html.Div(name, className="plate-name"), html.Div("—", id=f"plate-{name}-n", className="plate-value")],
                          className="plate-card") for name in plates]
                + [html.Div([html.Div("left / right", className="plate-name"),
                             html.Div("—", id="live-share", className="plate-value")], className="plate-card")],
                style={"display": "flex", "gap": "2em", "fontSize": "1.4em"},
            ),
            dcc.Graph(id="live-forces", config={"displaylogo": False}),
            html.H3("reps (live)"),
            html.Div(id="live-phase"),
            html.Div(id="live-reps"),
            dcc.Interval(id="live-tick", interval=ctx.settings.interval_ms),
        ],
        id="session-page",
    )


def register(app, ctx) -> None:
    live = ctx.live
    if live is None:
        return
    plates = live.names

    @app.callback(
        [Output("live-forces", "figure"), Output("live-status", "children"), Output("live-share", "children"),
         Output("live-reps", "children"), Output("live-phase", "children")]
        + [Output(f"plate-{name}-n", "children") for name in plates],
        Input("live-tick", "n_intervals"),
    )
    def _update(_n):
        snap = live.snapshot()
        values = []
        for name in plates:
            v = snap.load_n.get(name)
            values.append(f"{v:.0f} N" if v is not None and math.isfinite(v) else "—")
        share = snap.left_share_pct
        share_text = f"{share:.0f} % / {100 - share:.0f} %" if share is not None else "—"
        phase = f"analysis: {snap.phase}" if snap.phase else "analysis: waiting for data"
        if snap.body_weight_n:
            phase += f" · body weight {snap.body_weight_n:.0f} N"
        return [_figure(snap), status_line(live, snap), share_text, _reps_table(snap), phase] + values


page = Page(name="session", path="/session", title="Session", layout=layout, register=register)
