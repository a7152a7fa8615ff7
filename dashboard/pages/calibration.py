"""Calibration page: the guided dead-weight calibration of a plate, its verification report and the result.

The run itself is ``dashboard.calibration_run.CalibrationRun`` (one per
dashboard, on a thread of its own); this page starts it, forwards Continue and
Stop, and polls its status.  Clinicians may calibrate (a clinic has no engineer
on call), and every start and outcome goes to the records audit log
(decision 0018).
"""

from __future__ import annotations

import math
from typing import Any

import flask
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from .. import auth
from ..calibration_run import ALL_PLATES, FINAL_STATES, TARGETS, CalibrationBusy, CalibrationRun, RunStatus
from . import Page

RUNNER_KEY = "steplab.calibration_run"  # the app's runner, in flask.Flask.extensions
POLL_MS = 500
PLACE_NEAR_CENTRE_MM = 1.0

FIGURES = (  # key, label with its unit, digits shown
    ("fz_error_pct_fs", "Force error (Fz), % of full scale", 4),
    ("cop_rms_mm", "Centre-of-pressure error (COP RMS), mm", 3),
    ("nonlinearity_pct_fs", "Non-linearity, % of full scale", 4),
    ("hysteresis_pct_fs", "Hysteresis, % of full scale", 4),
    ("repeatability_n", "Repeatability (SD), N", 3),
)
MODE_WORDS = {
    "robot-sim": "This is the simulated rig: its robot places the weights by itself; the page shows its progress.",
    "robot-wire": "This rig is simulated: its robot places the weights by itself; the page shows its progress.",
    "operator": "You place dead weights where the page asks, then press Continue; each step is accepted by itself "
                "once the plate reads a steady load.",
}


def _masses_words(runner: CalibrationRun) -> str:
    """The totals the default plan asks for (fit, then verification), for the operator to have at hand."""
    from steplab.calibration.geometry import plate_geometry
    from steplab.calibration.procedure import CalibrationPlan

    rig = runner.rig()
    if rig is None or not rig.plate_names:
        return ""
    plan = CalibrationPlan.default(plate_geometry(rig, rig.plate_names[0]))
    fit = ", ".join(f"{m:g}" for m in plan.fit_masses_kg)
    verify = ", ".join(f"{m:g}" for m in plan.verify_masses_kg)
    return f" Have weights ready to make {fit} kg, then {verify} kg in total."


def runner_of(app_server: flask.Flask) -> CalibrationRun:
    return app_server.extensions[RUNNER_KEY]


def _position_words(prompt) -> str:
    x, y = prompt.x_mm, prompt.y_mm
    if abs(x) < PLACE_NEAR_CENTRE_MM and abs(y) < PLACE_NEAR_CENTRE_MM:
        return f"at the centre of plate {prompt.plate}"
    parts = []  # the plate frame: x to the standing patient's right, y forward (rig_docs/rig_file.md)
    if abs(x) >= PLACE_NEAR_CENTRE_MM:
        parts.append(f"{abs(x):.0f} mm {'right' if x > 0 else 'left'}")
    if abs(y) >= PLACE_NEAR_CENTRE_MM:
        parts.append(f"{abs(y):.0f} mm {'forward' if y > 0 else 'back'}")
    return (f"{' and '.join(parts)} of the centre of plate {prompt.plate} (as the patient faces; "
            f"x {x:+.0f} mm, y {y:+.0f} mm)")


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:g} s"


def prompt_words(st: RunStatus) -> str:
    """The current prompt in plain words (what to do now)."""
    p = st.prompt
    if p is None:
        return ""
    robot = st.mode != "operator"
    if st.state in FINAL_STATES:
        if st.state in ("saved", "refused"):
            return (f"Finished: remove every weight from plate {p.plate}." if not robot
                    else f"Finished: the robot has lifted every weight off plate {p.plate}.")
        return "Stopped." if robot else f"Stopped: remove every weight from plate {p.plate}."
    then = "" if robot else ", then press Continue"
    if st.state == "stopped":
        return f"The step stopped: {st.message}. Fix it, then press Continue to try the step again (or Stop)."
    if p.kind == "warmup":
        what = (f"Warm-up: leave plate {p.plate} empty while every channel is checked" if robot
                else f"Leave plate {p.plate} empty{then}: the warm-up and channel check take {_duration(st.warmup_s)}")
    elif p.kind == "tare":
        what = f"Tare: keep plate {p.plate} empty and still" if robot else f"Keep plate {p.plate} empty and still{then}"
    elif p.mass_kg == 0:
        what = (f"The robot lifts every weight off plate {p.plate}" if robot
                else f"Remove every weight from plate {p.plate}{then}")
    elif robot:
        what = f"The robot places {p.mass_kg:g} kg {_position_words(p)}"
    else:
        what = f"Place {p.mass_kg:g} kg in total {_position_words(p)}{then}"
    if not robot and st.state == "running":
        what += " — reading the plate: keep clear until the load is steady"
    return what


def progress_children(st: RunStatus):
    if not st.plates or st.n_steps == 0:
        return "Not started."
    plate = st.plates[min(st.plate_index, len(st.plates) - 1)]
    done = st.state in ("saved", "refused")
    step = st.n_steps if done else st.step
    text = f"Plate {plate} ({st.plate_index + 1} of {len(st.plates)}): step {step} of {st.n_steps}"
    return [html.Span(text, id="calibration-progress-text"),
            html.Progress(value=str(step), max=str(st.n_steps), className="calibration-bar")]


def _fmt(v, digits: int) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def report_children(st: RunStatus):
    if not st.reports:
        return html.P("The verification report appears when the first plate is done.", className="calibration-hint")
    plates = list(st.reports)
    head = html.Tr([html.Th("Verification (masses and positions not used in the fit)")]
                   + [html.Th(f"Plate {p}") for p in plates] + [html.Th("Target")])
    rows = []
    for key, label, digits in FIGURES:
        target = TARGETS.get(key)
        cells = []
        for p in plates:
            v = st.reports[p].get(key)
            ok = target is None or (v is not None and v <= target)
            data: dict[str, Any] = {"data-value": repr(v)}  # the full figure, for checks
            cells.append(html.Td(_fmt(v, digits), id=f"calibration-figure-{p}-{key}",
                                 className="figure-ok" if ok else "figure-missed", **data))
        unit = "mm" if key.endswith("_mm") else "%"
        rows.append(html.Tr([html.Td(label)] + cells
                            + [html.Td(f"≤ {target:g} {unit}" if target is not None else "reported only")],
                            className="calibration-figure-row"))
    return html.Table([html.Thead(head), html.Tbody(rows)], className="calibration-table")


def result_children(st: RunStatus):
    if st.state == "saved":
        return [html.Span(f"Saved as calibration record {st.calibration_id}.", id="calibration-saved-id",
                          className="calibration-saved"), " ", st.live_note]
    if st.state == "refused":
        missed = "; ".join(f[:1].upper() + f[1:] for f in st.failures)
        return [html.Span("Not saved: the verification missed a target.", className="calibration-refused"), " ",
                f"{missed}. {st.message} {st.live_note}"]
    if st.state in ("failed", "cancelled"):
        return [html.Span(st.message, className="calibration-refused"), " ", st.live_note]
    if st.active:
        return "Calibration in progress: the live view is paused until it ends."
    return "No calibration run yet in this session."


def layout(ctx, params, query):
    runner = runner_of(flask.current_app)
    live = ctx.live
    plates = runner.plate_names()
    mode = runner.current_mode()
    if live is None or not plates:
        body = [html.P("No rig is connected (or it has not described itself yet): nothing to calibrate.",
                       id="calibration-no-rig")]
        options: list[dict] = []
    else:
        body = []
        options = [{"label": f"Plate {n}", "value": n} for n in plates]
        if mode != "operator":
            options.append({"label": "All plates, one after another", "value": ALL_PLATES})
    st = runner.status()
    controls = html.Div([
        html.Label("Plate to calibrate", htmlFor="calibration-plate"),
        dcc.Dropdown(id="calibration-plate", options=options, value=options[0]["value"] if options else None,
                     clearable=False, className="calibration-plate"),
        dcc.Checklist(id="calibration-warmed-up",
                      options=[{"label": " The rig has been switched on for at least 15 minutes "
                                         "(skip the warm-up wait)", "value": "yes"}],
                      value=[], style={} if mode == "operator" else {"display": "none"}),
        html.Div([
            html.Button("Start calibration", id="calibration-start", n_clicks=0, disabled=st.active or not options),
            html.Button("Continue", id="calibration-continue", n_clicks=0, disabled=st.state not in ("waiting", "stopped"),
                        style={} if mode == "operator" else {"display": "none"}),
            html.Button("Stop", id="calibration-cancel", n_clicks=0, disabled=not st.active),
        ], className="calibration-buttons"),
        html.Div(id="calibration-message", className="calibration-message"),
    ], className="calibration-controls")
    return html.Div([
        html.H2("Calibration"),
        html.P(MODE_WORDS[mode] + (_masses_words(runner) if mode == "operator" else ""), id="calibration-mode",
               **{"data-mode": mode}),
        html.P("A calibration changes every measurement made afterwards: a new one is saved only when it meets the "
               "targets (force error ≤ 0.5 % of full scale, centre-of-pressure error ≤ 2 mm on weights the fit never "
               "saw). The live view pauses while it runs, and it cannot start during a recording.",
               className="calibration-hint"),
        *body,
        controls,
        html.H3("Now"),
        html.Div(prompt_words(st) or "Choose a plate and press Start calibration.", id="calibration-prompt",
                 className="calibration-prompt"),
        html.Div(progress_children(st), id="calibration-progress"),
        html.H3("Verification report"),
        html.Div(report_children(st), id="calibration-report"),
        html.H3("Result"),
        html.Div(result_children(st), id="calibration-result"),
        dcc.Interval(id="calibration-poll", interval=POLL_MS),
        dcc.Store(id="calibration-version", data=st.version),
    ], id="calibration-page")


def _json_safe(v):
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def register(app, ctx) -> None:
    def on_event(actor: str, action: str, subject: str, detail: dict) -> None:
        from steplab.records.audit import add_entry

        ctx.db.write(lambda s: add_entry(s, actor, action, subject, detail=_json_safe(detail)))

    runner = CalibrationRun(ctx.live, on_event=on_event)
    app.server.extensions[RUNNER_KEY] = runner

    @app.callback(Output("calibration-message", "children"), Input("calibration-start", "n_clicks"),
                  Input("calibration-continue", "n_clicks"), Input("calibration-cancel", "n_clicks"),
                  State("calibration-plate", "value"), State("calibration-warmed-up", "value"),
                  prevent_initial_call=True)
    def _act(_start, _continue, _cancel, plate, warmed):
        from dash import ctx as dash_ctx

        which = dash_ctx.triggered_id
        if which == "calibration-start":
            if not plate:
                return "Choose a plate first."
            try:
                runner.start(plate, auth.current_actor(), warmed_up=bool(warmed))
            except CalibrationBusy as exc:
                return f"Not started: {exc}."
            return "Calibration started: the live view is paused until it ends."
        if which == "calibration-continue":
            return "Continuing." if runner.confirm() else "Nothing is waiting for Continue."
        if which == "calibration-cancel":
            return "Stopping: nothing will be saved." if runner.cancel() else "No calibration is running."
        return no_update

    @app.callback(Output("calibration-prompt", "children"), Output("calibration-progress", "children"),
                  Output("calibration-report", "children"), Output("calibration-result", "children"),
                  Output("calibration-start", "disabled"), Output("calibration-continue", "disabled"),
                  Output("calibration-cancel", "disabled"), Output("calibration-version", "data"),
                  Output("calibration-message", "children", allow_duplicate=True),
                  Input("calibration-poll", "n_intervals"), State("calibration-plate", "options"),
                  State("calibration-version", "data"), prevent_initial_call=True)
    def _poll(_n, options, shown_version):
        st = runner.status()
        if st.version == shown_version:
            raise PreventUpdate  # nothing changed: the page is not redrawn
        prompt = prompt_words(st) or ("Choose a plate and press Start calibration." if not st.plates
                                      else "Done: remove every weight from the plate.")
        return (prompt, progress_children(st), report_children(st), result_children(st),
                st.active or not options, st.state not in ("waiting", "stopped"), not st.active, st.version,
                "" if st.state in FINAL_STATES or st.state == "waiting" else no_update)


page = Page(name="calibration", path="/calibration", title="Calibration", layout=layout, register=register,
            admin=False, nav=True)
