"""The lab dashboard (Dash).  This first page shows the rig live: filtered plate forces, each plate's
load, the left/right share of the floor load and the reps the streaming analysis detects.

The page only reads ``LiveFeed.snapshot()``; acquisition and analysis run on
their own threads, so a slow or flooded web side never costs a sample.
"""

from __future__ import annotations

import math
from pathlib import Path

import dash
import flask
import plotly.graph_objects as go
from dash import Input, Output, dcc, html

from steplab.acquisition.recorder import RecordingError

from .live_feed import LiveFeed, LiveSnapshot

PLATE_COLOURS = {"box": "#6c757d", "floor_left": "#1f77b4", "floor_right": "#d62728"}


def _figure(snap: LiveSnapshot) -> go.Figure:
    fig = go.Figure()
    for name, fz in snap.fz_n.items():
        fig.add_trace(go.Scattergl(x=snap.time_s, y=fz, mode="lines", name=name,
                                   line={"color": PLATE_COLOURS.get(name), "width": 1.5}))
    fig.update_layout(margin={"l": 50, "r": 10, "t": 10, "b": 40}, height=420, uirevision="live",
                      xaxis_title="time (s)", yaxis_title="vertical force, filtered (N)", legend={"orientation": "h"})
    return fig


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _reps_table(snap: LiveSnapshot):
    if not snap.reps:
        return html.Div("no reps yet", className="no-reps")
    names = list(snap.reps[-1].headline)
    head = html.Tr([html.Th("rep"), html.Th("lead")] + [html.Th(n) for n in names])
    rows = [html.Tr([html.Td(str(r.number)), html.Td(r.lead or "—")] + [html.Td(_fmt(r.headline.get(n))) for n in names],
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


def snapshot_dict(live: LiveFeed, snap: LiveSnapshot) -> dict:
    """What ``/api/live`` returns: readouts, live reps and quality counters (JSON-safe)."""
    def num(v):
        return None if v is None or not math.isfinite(v) else float(v)

    return {"device": live.device.address, "status": snap.status, "state": snap.state, "connected": snap.connected,
            "rate_hz": snap.rate_hz, "samples": snap.samples, "lost_samples": snap.lost_samples,
            "crc_errors": snap.crc_errors, "duplicate_samples": snap.duplicate_samples,
            "device_resets": snap.device_resets, "queue_dropped_samples": snap.queue_dropped_samples,
            "behind_samples": live.behind_samples, "load_n": {k: num(v) for k, v in snap.load_n.items()},
            "left_share_pct": num(snap.left_share_pct), "body_weight_n": num(snap.body_weight_n),
            "phase": snap.phase, "retares": snap.retares, "calibrated": snap.calibrated,
            "recording": live.recording,
            "reps": [{"number": r.number, "lead": r.lead, "t_onset_s": r.t_onset_s, "t_contact_s": r.t_contact_s,
                      "headline": {k: num(v) for k, v in r.headline.items()}} for r in snap.reps]}


def create_app(live: LiveFeed, interval_ms: int = 200, trials_dir: str | Path | None = None) -> dash.Dash:
    """The live page; with ``trials_dir``, ``/api/recordings`` records trials there (POST {"seconds": S})."""
    app = dash.Dash(__name__, title="steplab", update_title=None)  # type: ignore[arg-type]  # None: no "Updating…" title
    plates = live.names
    app.layout = html.Div(
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
            dcc.Interval(id="live-tick", interval=interval_ms),
        ],
        style={"fontFamily": "sans-serif", "margin": "1em 2em"},
    )

    @app.server.route("/api/live")
    def _live_json():
        """The live readouts and data-quality counters as JSON (no time series)."""
        return flask.jsonify(snapshot_dict(live, live.snapshot()))

    if trials_dir is not None:
        folder = Path(trials_dir)

        @app.server.route("/api/recordings", methods=["GET"])
        def _recordings():
            trials = sorted(p.name for p in folder.glob("*.npz")) if folder.is_dir() else []
            return flask.jsonify({"recording": live.recording, "trials": trials,
                                  "error": live.last_recording_error})

        @app.server.route("/api/recordings", methods=["POST"])
        def _start_recording():
            body = flask.request.get_json(silent=True)  # JSON only: a cross-site form cannot start a recording
            if not isinstance(body, dict):
                return flask.jsonify({"error": "send a JSON object {\"seconds\": S}"}), 415
            try:
                seconds = float(body.get("seconds"))
                out = live.start_recording(seconds, folder)
            except (TypeError, ValueError) as exc:
                return flask.jsonify({"error": f"bad seconds: {exc}"}), 400
            except RecordingError as exc:
                return flask.jsonify({"error": str(exc)}), 409
            return flask.jsonify({"out": out.name, "seconds": seconds}), 201

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

    return app
