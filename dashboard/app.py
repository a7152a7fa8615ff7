"""The lab dashboard (Dash): one app, a navigation bar, and the pages of ``dashboard/pages``.

``create_app(ctx)`` builds it from a ``DashContext`` (records database, live
feed, settings).  Every request passes ``dashboard.auth`` first: nothing but the
login page answers without a session.  The pages read ``LiveFeed.snapshot()``
and the records; acquisition and analysis run on their own threads, so a slow or
flooded web side never costs a sample.
"""

from __future__ import annotations

import math
from pathlib import Path
from urllib.parse import parse_qs

import dash
import flask
from dash import Input, Output, dcc, html

from steplab.acquisition.recorder import RecordingError

from . import auth
from .context import DashContext
from .live_feed import LiveFeed, LiveSnapshot
from .pages import all_pages, find

ASSETS = Path(__file__).parent / "assets"


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


def _nav(pages) -> html.Nav:
    admin = auth.is_admin()
    links = [dcc.Link(p.title, href=p.path, id=f"nav-{p.name}", className="nav-link")
             for p in pages if p.nav and (admin or not p.admin)]
    user = auth.current_actor()
    return html.Nav(
        [html.Span("steplab", className="brand")] + links
        + [html.A(f"{user} ({auth.current_role()})", href="/account/password", title="Change your password",
                  id="nav-user", className="nav-user"),
           html.Form([dcc.Input(type="hidden", name="csrf_token", value=auth.csrf_token()),
                      html.Button("Log out", id="nav-logout", type="submit", className="nav-logout")],
                     action="/logout", method="POST", className="nav-logout-form")],
        className="nav")


def _api_routes(server: flask.Flask, ctx: DashContext) -> None:
    live = ctx.live
    if live is None:
        return

    @server.route("/api/live")
    def _live_json():
        """The live readouts and data-quality counters as JSON (no time series)."""
        return flask.jsonify(snapshot_dict(live, live.snapshot()))

    if ctx.trials_dir is None:
        return
    folder = Path(ctx.trials_dir)

    @server.route("/api/recordings", methods=["GET"])
    def _recordings():
        trials = sorted(p.name for p in folder.glob("*.npz")) if folder.is_dir() else []
        return flask.jsonify({"recording": live.recording, "trials": trials, "error": live.last_recording_error})

    @server.route("/api/recordings", methods=["POST"])
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


def create_app(ctx: DashContext) -> dash.Dash:
    """The dashboard for ``ctx``; its Flask server is ``app.server`` (serve it with waitress)."""
    server = flask.Flask("steplab.dashboard")
    auth.install_auth(server, ctx)
    app = dash.Dash(__name__, server=server, title="steplab", update_title=None,  # type: ignore[arg-type]
                    suppress_callback_exceptions=True, assets_folder=str(ASSETS), serve_locally=True)
    pages = all_pages()

    def serve_layout():
        if not flask.has_request_context() or not auth.is_authenticated():
            return html.Div(id="page-content")  # the guard refuses the request before this is ever sent
        return html.Div([dcc.Location(id="url"), _nav(pages), html.Main(id="page-content", className="page")])

    app.layout = serve_layout

    @app.callback(Output("page-content", "children"), Input("url", "pathname"), Input("url", "search"))
    def _route(pathname, search):
        path = pathname or "/"
        if path == "/":
            path = "/patients"
        found = find(pages, path)
        if found is None:
            return html.Div([html.H2("Not found"), html.P(f"There is no page {path}."),
                             dcc.Link("Patients", href="/patients")], id="not-found")
        page, params = found
        if page.admin and not auth.is_admin():
            return html.Div([html.H2("Not allowed"), html.P("This page is for administrators.")], id="not-allowed")
        query = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
        return page.layout(ctx, params, query)

    for page in pages:
        if page.register is not None:
            page.register(app, ctx)
    _api_routes(server, ctx)
    return app
