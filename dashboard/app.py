"""The lab dashboard (Dash).  This first page shows the rig's plate forces live."""

from __future__ import annotations

import dash
import plotly.graph_objects as go
from dash import Input, Output, dcc, html

from .live_source import LiveAcquisition

PLATE_COLOURS = {"box": "#6c757d", "floor_left": "#1f77b4", "floor_right": "#d62728"}


def _figure(snap) -> go.Figure:
    fig = go.Figure()
    for name, fz in snap.fz_n.items():
        fig.add_trace(go.Scattergl(x=snap.time_s, y=fz, mode="lines", name=name,
                                   line={"color": PLATE_COLOURS.get(name), "width": 1.5}))
    fig.update_layout(margin={"l": 50, "r": 10, "t": 10, "b": 40}, height=420, uirevision="live",
                      xaxis_title="time (s)", yaxis_title="vertical force (N)", legend={"orientation": "h"})
    return fig


def create_app(live: LiveAcquisition, interval_ms: int = 200) -> dash.Dash:
    app = dash.Dash(__name__, title="steplab", update_title=None)
    plates = live.names
    app.layout = html.Div(
        [
            html.H2("steplab · live forces"),
            html.Div(id="live-status", className="status"),
            html.Div(
                [html.Div([html.Div(name, className="plate-name"), html.Div("—", id=f"plate-{name}-n", className="plate-value")],
                          className="plate-card") for name in plates],
                style={"display": "flex", "gap": "2em", "fontSize": "1.4em"},
            ),
            dcc.Graph(id="live-forces", config={"displaylogo": False}),
            dcc.Interval(id="live-tick", interval=interval_ms),
        ],
        style={"fontFamily": "sans-serif", "margin": "1em 2em"},
    )

    @app.callback(
        [Output("live-forces", "figure"), Output("live-status", "children")]
        + [Output(f"plate-{name}-n", "children") for name in plates],
        Input("live-tick", "n_intervals"),
    )
    def _update(_n):
        snap = live.snapshot()
        rate = f"{snap.rate_hz:g} Hz" if snap.rate_hz > 0 else "rate unknown"
        status = (f"{live.device.address} · {rate} · {snap.status} · {snap.samples} samples · "
                  f"{snap.lost_samples} lost · {snap.crc_errors} CRC errors")
        if snap.device_resets:
            status += f" · {snap.device_resets} device resets"
        values = []
        for name in plates:
            fz = snap.fz_n.get(name)
            values.append(f"{fz[-1]:.0f} N" if fz is not None and fz.size and fz[-1] == fz[-1] else "—")
        return [_figure(snap), status] + values

    return app
