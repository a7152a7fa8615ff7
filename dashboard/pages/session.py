"""The session page: run a visit on the rig (visit, tare, weigh-in, recordings, scores) with the live view.

The live view (forces of every plate, the left/right load bar with its target
band, connection and data quality, live reps) is drawn by ``assets/live.js``,
which polls ``GET /api/live/frame`` (behind the login) about 30 times a second,
receives the new display blocks only and redraws the traces on a canvas (a few
ms; a Plotly redraw of the same traces took ~100 ms in headless chromium on
the busy lab machine); no Dash callback runs per frame.  Every redraw stamps ``#live-frame-stamp``: ``data-frame`` (+1 per
frame drawn) and ``data-arrival-ms`` (host wall-clock time [ms since the epoch]
when the newest sample drawn arrived), for the browser benchmark.

The controls are Dash callbacks on ``dashboard.session_control.SessionControl``
(one visit in progress per rig); every change goes through a records function
with the logged-in clinician as actor.  Nothing here waits on acquisition:
``LiveFeed`` runs on its own threads.
"""

from __future__ import annotations

import json
import math
from typing import Any

import dash
import flask
from dash import ClientsideFunction, Input, Output, State, dcc, html

from steplab.acquisition.recorder import MAX_RECORDING_S, RecordingError
from steplab.records.patients import RecordsError
from steplab.records.protocols import DEFAULT_BATTERY, PROTOCOL_NAMES, TEMPLATES
from steplab.records.session_trials import patient_codes

from .. import auth
from ..live_feed import LiveFeed, LiveRefused
from ..session_control import SessionControl, control_for
from . import Page

PLATE_COLOURS = {"box": "#6c757d", "floor_left": "#1f77b4", "floor_right": "#d62728", "box_left": "#8d6e63",
                 "box_right": "#546e7a"}
DEFAULT_BAND_PCT = (45, 55)
DEFAULT_SECONDS = 10
TICK_MS = 1000  # the controls' refresh (recording state, trials table); the live view has its own loop
FRAME_INTERVAL_MS = 30  # live.js asks for a frame this often (about 33 Hz)
STAMP_ATTRS: dict[str, Any] = {"data-frame": "0", "data-arrival-ms": ""}  # the benchmark hooks (live.js sets them)
LIVE_ATTRS: dict[str, Any] = {"data-interval-ms": str(FRAME_INTERVAL_MS)}
CANVAS_ATTRS: dict[str, Any] = {"data-height": "300", "data-points": "0"}


def fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _forces(names: list[str]):
    """The force traces: a canvas live.js draws on, with its legend and axis titles."""
    legend = [html.Span([html.Span(className="swatch", style={"background": PLATE_COLOURS.get(n, "#343a40")}),
                         n.replace("_", " ")], className="legend-item") for n in names]
    return html.Div([
        html.Div(legend, className="forces-legend"),
        html.Div("vertical force, filtered (N)", className="forces-ylabel"),
        html.Canvas(id="live-forces-canvas", **CANVAS_ATTRS),
        html.Div("time (s)", className="forces-xlabel"),
    ], id="live-forces", className="live-forces")


def _protocol_options(battery: list[str] | None):
    names = [p for p in (battery or PROTOCOL_NAMES) if p in TEMPLATES]
    return [{"label": TEMPLATES[p].title, "value": p} for p in names]


def _visit_line(control: SessionControl):
    visit = control.visit()
    if visit is None:
        return "No visit in progress: choose a patient and start one."
    mass = f"{visit['body_mass_kg']:.1f} kg" if visit["body_mass_kg"] else "body mass not yet measured"
    return html.Span([f"Visit {visit['id']} of {visit['patient']} on {visit['date']} · {mass} · ",
                      dcc.Link("visit summary", href=f"/visits/{visit['id']}", id="session-visit-link")])


def _trials_table(control: SessionControl):
    rows = control.trials()
    if not rows:
        return html.Div("No trials in this visit yet." if control.visit_id else "", className="no-trials")
    head = html.Tr([html.Th(h) for h in ("trial", "protocol", "lead", "reps", "lost samples", "pain (0-10)",
                                         "quality (0-6)", "")])
    body = [html.Tr([html.Td(dcc.Link(str(r["id"]), href=f"/trials/{r['id']}")), html.Td(r["protocol"]),
                     html.Td(r["lead"] or "—"), html.Td(str(r["reps"])), html.Td(str(r["lost_samples"])),
                     html.Td(fmt(r["pain_during"])), html.Td(fmt(r["quality_score"])),
                     html.Td("" if r["accepted"] else "rejected")], className="session-trial-row")
            for r in rows]
    return html.Table([html.Thead(head), html.Tbody(body)], className="session-trials-table")


def _controls(ctx, query):
    control = control_for(ctx)
    codes = patient_codes(ctx.db)
    wanted = query.get("patient")
    visit = control.visit()
    battery = visit["battery"] if visit else list(DEFAULT_BATTERY)
    options = _protocol_options(battery if visit else None)
    return html.Div([
        html.H2("Session"),
        html.Section([
            html.H3("1 · Visit"),
            html.Label("Patient", htmlFor="session-patient"),
            dcc.Dropdown(id="session-patient", options=[{"label": c, "value": c} for c in codes],
                         value=wanted if wanted in codes else (visit["patient"] if visit else None),
                         placeholder="choose a patient code", clearable=False),
            html.Label("Protocols of this visit"),
            dcc.Checklist(id="session-battery", options=_protocol_options(None), value=battery,
                          className="session-battery"),
            html.Label("Body mass (kg, optional: the weigh-in measures it)", htmlFor="session-body-mass"),
            dcc.Input(id="session-body-mass", type="number", min=5, max=500, step=0.1, placeholder="kg"),
            html.Button("Start visit", id="session-start-visit", className="primary"),
            html.Div(_visit_line(control), id="session-visit", className="message"),
        ]),
        html.Section([
            html.H3("2 · Before recording"),
            html.Button("Tare (plates empty)", id="session-tare"),
            html.Div(id="session-tare-message", className="message"),
            html.Button("Weigh-in (stand still)", id="session-weigh"),
            html.Div(id="session-weight", className="message"),
        ]),
        html.Section([
            html.H3("3 · Record"),
            html.Label("Protocol", htmlFor="session-protocol"),
            dcc.Dropdown(id="session-protocol", options=options,
                         value=options[0]["value"] if options else None, clearable=False),
            html.Label("Leading limb"),
            dcc.RadioItems(id="session-lead", options=[{"label": " left", "value": "left"},
                                                       {"label": " right", "value": "right"}],
                           value="left", inline=True),
            html.Label("Seconds to record", htmlFor="session-seconds"),
            dcc.Input(id="session-seconds", type="number", min=1, max=MAX_RECORDING_S, step=1,
                      value=DEFAULT_SECONDS),
            html.Button("Record", id="session-record", className="primary record"),
            html.Div(control.message, id="session-recording-status", className="message"),
            html.Div(id="session-analysis-note", className="note"),
        ]),
        dcc.Interval(id="session-tick", interval=TICK_MS),
        dcc.Store(id="session-version", data=control.version),
    ], className="session-controls")


def _results(control: SessionControl):
    return html.Section([
        html.H3("4 · Trials of this visit"),
        html.Div(_trials_table(control), id="session-trials"),
        html.Div([
            html.Span("Last trial:", className="scores-title"),
            html.Label(["pain during it (0-10) ", dcc.Input(id="session-pain", type="number", min=0, max=10,
                                                            step=0.5)]),
            html.Label(["movement quality (0-6) ", dcc.Input(id="session-quality", type="number", min=0, max=6,
                                                             step=1)]),
            html.Button("Save scores", id="session-save-scores"),
        ], className="session-scores"),
        html.Div(id="session-scores-message", className="message"),
    ], className="session-results")


def _live_panel(live: LiveFeed):
    names = live.names
    return html.Div([
        html.Div("connecting…", id="live-status", className="live-status"),
        html.Div("", id="live-quality", className="live-quality"),
        html.Div("", id="live-recording", className="live-recording"),
        html.Div([html.Div([html.Div(name.replace("_", " "), className="plate-name"),
                            html.Div("—", id=f"plate-{name}-n", className="plate-value")], className="plate-card")
                  for name in names], className="plate-cards"),
        html.Div([
            html.Div([html.Span("LEFT", className="loadbar-side"), html.Span("—", id="live-share"),
                      html.Span("RIGHT", className="loadbar-side")], className="loadbar-labels"),
            html.Div([html.Div(id="live-loadbar-left", className="loadbar-fill"),
                      html.Div(id="live-loadbar-band", className="loadbar-band",
                               style={"left": f"{DEFAULT_BAND_PCT[0]}%",
                                      "width": f"{DEFAULT_BAND_PCT[1] - DEFAULT_BAND_PCT[0]}%"}),
                      html.Div(className="loadbar-mid")], id="live-loadbar", className="loadbar no-load"),
            html.Div("target band for the left share (%)", className="plate-name"),
            dcc.RangeSlider(id="session-target-band", min=0, max=100, step=1, value=list(DEFAULT_BAND_PCT),
                            marks={v: f"{v}" for v in range(0, 101, 10)}, allowCross=False),
        ], className="loadbar-panel"),
        _forces(names),
        html.Div([html.Span("0 reps", id="live-rep-count", className="rep-count"),
                  html.Span("", id="live-phase", className="live-phase")], className="reps-head"),
        html.Div(html.Div("no reps yet", className="no-reps"), id="live-reps"),
        html.Span(id="live-frame-stamp", **STAMP_ATTRS),
    ], className="session-live", id="session-live",
        **{**LIVE_ATTRS, "data-colours": json.dumps({n: PLATE_COLOURS.get(n, "#343a40") for n in names})})


def layout(ctx, params, query):
    live = ctx.live
    if live is None:
        return html.Div([html.H2("Session"), html.P("No rig is attached to this dashboard (start it with "
                                                    "steplab run --device …).")], id="session-page")
    return html.Div([_controls(ctx, query), html.Div([_live_panel(live), _results(control_for(ctx))])],
                    id="session-page", className="session-page")


def _num(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise RecordsError(f"{value!r} is not a number") from None
    if not math.isfinite(v):
        raise RecordsError(f"{value!r} is not a number")
    return v


def register(app, ctx) -> None:
    live = ctx.live
    if live is None:
        return
    control = control_for(ctx)

    @app.server.route("/api/live/frame", methods=["GET"])
    def _live_frame():
        """The next frame of the live view: display blocks after ``after`` of timeline ``gen``, readouts."""
        args = flask.request.args
        try:
            after = int(args.get("after", -1))
            gen = int(args["gen"]) if "gen" in args else None
            reps = int(args.get("reps", -1))
        except ValueError:
            return flask.jsonify({"error": "after, gen and reps are whole numbers"}), 400
        resp = flask.jsonify(live.frame(after, gen, reps))
        resp.headers["Cache-Control"] = "no-store"
        return resp

    app.clientside_callback(ClientsideFunction(namespace="steplabLive", function_name="band"),
                            Output("live-loadbar-band", "style"), Input("session-target-band", "value"))

    @app.callback(Output("session-visit", "children"), Output("session-protocol", "options"),
                  Output("session-protocol", "value"), Output("session-version", "data", allow_duplicate=True),
                  Input("session-start-visit", "n_clicks"), State("session-patient", "value"),
                  State("session-battery", "value"), State("session-body-mass", "value"), prevent_initial_call=True)
    def _start_visit(_n, code, battery, mass):
        try:
            control.start_visit(code, [p for p in PROTOCOL_NAMES if p in (battery or [])], _num(mass))
        except RecordsError as exc:
            return f"Not started: {exc}", dash.no_update, dash.no_update, dash.no_update
        visit = control.visit() or {}
        options = _protocol_options(visit.get("battery"))
        return _visit_line(control), options, options[0]["value"] if options else None, control.version

    @app.callback(Output("session-tare-message", "children"), Input("session-tare", "n_clicks"),
                  prevent_initial_call=True)
    def _tare(_n):
        try:
            plates = live.tare_now()
        except LiveRefused as exc:
            return f"Not tared: {exc}"
        return f"Tared {', '.join(p.replace('_', ' ') for p in plates)}: the empty plates read 0 N."

    @app.callback(Output("session-weight", "children"), Output("session-visit", "children", allow_duplicate=True),
                  Input("session-weigh", "n_clicks"), prevent_initial_call=True)
    def _weigh(_n):
        try:
            w = live.weigh_in()
        except LiveRefused as exc:
            return f"Not weighed: {exc}", dash.no_update
        try:
            vid = control.save_body_mass(w.mass_kg, auth.current_actor())
        except RecordsError as exc:
            return f"{w.mass_kg:.1f} kg measured, not stored: {exc}", dash.no_update
        return f"{w.mass_kg:.1f} kg ({w.mean_n:.0f} N, sway {w.sd_n:.1f} N SD over {w.seconds:g} s), " \
            f"stored in visit {vid}.", \
            _visit_line(control)

    @app.callback(Output("session-recording-status", "children", allow_duplicate=True),
                  Input("session-record", "n_clicks"), State("session-protocol", "value"),
                  State("session-lead", "value"), State("session-seconds", "value"), prevent_initial_call=True)
    def _record(_n, protocol, lead, seconds):
        try:
            s = _num(seconds)
            if s is None or not 0 < s <= MAX_RECORDING_S:
                raise RecordingError(f"seconds must be between 1 and {MAX_RECORDING_S:g}")
            if protocol in TEMPLATES and not TEMPLATES[protocol].leads:
                lead = None  # a bilateral movement has no leading limb
            control.record(protocol, lead, s, auth.current_actor())
        except (RecordingError, RecordsError, ValueError) as exc:
            return f"Not recording: {exc}"
        return control.message

    @app.callback(Output("session-analysis-note", "children"), Input("session-protocol", "value"))
    def _protocol(protocol):
        if not protocol or protocol not in TEMPLATES:
            return ""
        if live.recording is None:
            visit = control.visit()
            live.set_analysis(protocol, visit["body_mass_kg"] if visit else None)
        return f"Live reps are looked for as {TEMPLATES[protocol].title.lower()}."

    @app.callback(Output("session-recording-status", "children"), Output("session-trials", "children"),
                  Output("session-version", "data"), Input("session-tick", "n_intervals"),
                  State("session-version", "data"))
    def _tick(_n, seen):
        if seen == control.version:
            return dash.no_update, dash.no_update, dash.no_update
        return control.message, _trials_table(control), control.version

    @app.callback(Output("session-scores-message", "children"), Input("session-save-scores", "n_clicks"),
                  State("session-pain", "value"), State("session-quality", "value"), prevent_initial_call=True)
    def _scores(_n, pain, quality):
        try:
            q = _num(quality)
            if q is not None and q != int(q):
                raise RecordsError("the movement-quality score is a whole number 0-6")
            tid = control.save_scores(_num(pain), None if q is None else int(q), auth.current_actor())
        except RecordsError as exc:
            return f"Not saved: {exc}"
        return f"Scores saved for trial {tid}."


page = Page(name="session", path="/session", title="Session", layout=layout, register=register)
