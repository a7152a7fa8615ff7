"""Trial review: the plate forces with each rep's events, the per-rep metrics, decisions and re-analysis.

The forces are the stored raw recording read again the way it was analysed
(``records.trials.trial_traces``, min/max-downsampled so peaks survive); the
events (onset, contact, peak, arrest, stabilisation) come from the shown result
version (``records.reps.trial_review``).  Rep and trial decisions act on the
newest version, the one summaries use; a re-analysis changes one parameter of
the newest version's set and adds a version (the old ones stay and can be shown).
Every change is audited with the logged-in user.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import fields, replace
from typing import Any

import plotly.graph_objects as go
from dash import Input, Output, State, callback_context, dcc, html, no_update

from steplab.dsp import AnalysisParams
from steplab.records.reps import EVENT_NAMES, set_rep_accepted, trial_review
from steplab.records.summary import metric_label, metric_unit
from steplab.records.trials import TrialError, reanalyze, set_accepted, trial_traces

from .. import auth
from . import Page

PLATE_COLOURS = {"box": "#6c757d", "floor_left": "#1f77b4", "floor_right": "#d62728", "total": "#212529"}
PLATE_NAMES = {"box": "Box", "floor_left": "Floor left", "floor_right": "Floor right", "total": "Total"}
EVENT_COLOURS = {"onset": "#2a9d8f", "contact": "#e76f51", "peak": "#9b2226", "arrest": "#6a4c93",
                 "stabilisation": "#3a86ff"}
EVENT_WORDS = {"onset": "movement onset", "contact": "foot contact", "peak": "force peak",
               "arrest": "descent stopped", "stabilisation": "stable again"}

#: The per-rep columns of each protocol (metrics.md names); other protocols show what their reps have.
HEADLINE = {
    "step-down": ("lowering_duration_s", "peak_descent_speed_m_s", "touchdown_speed_m_s",
                  "trail_support_at_contact_pct", "landing_peak_force_bw", "loading_rate_bw_s", "time_to_peak_s",
                  "landing_phase_duration_s", "time_to_stabilization_s"),
    "forward-step-down": ("lowering_duration_s", "raising_duration_s", "tap_force_pct_bw", "peak_descent_speed_m_s"),
    "squat": ("left_share_pct", "left_share_descent_pct", "left_share_ascent_pct", "lowering_duration_s"),
    "balance": ("cop_path_mm", "cop_mean_velocity_mm_s", "cop_ml_range_mm", "cop_ap_range_mm", "cop_ellipse95_mm2"),
}
MAX_COLUMNS = 9

#: Plain words for the parameters a clinician is most likely to change (the rest keep their metrics.md names).
PARAM_WORDS = {
    "force_cutoff_hz": "Force filter cut-off (Hz)",
    "cop_cutoff_hz": "COP filter cut-off (Hz)",
    "contact_threshold_n": "Contact threshold (N)",
    "contact_min_s": "Shortest contact (s)",
    "onset_speed_m_s": "Onset speed (m/s)",
    "arrest_timeout_s": "Arrest time-out (s)",
    "stabilization_band_bw": "Stabilisation band (fraction of BW)",
    "stabilization_hold_s": "Stabilisation hold (s)",
    "quiet_window_s": "Quiet window (s)",
}
NUMERIC_PARAMS = tuple(f.name for f in fields(AnalysisParams) if f.name != "stabilization_method")
TRACE_POINTS = 4000
_TRACE_CACHE_SIZE = 8


def fmt(v: Any, digits: int = 3) -> str:
    """A number for a table cell: 3 significant digits, '—' when missing."""
    if v is None or isinstance(v, bool):
        return "—" if v is None else str(v)
    if isinstance(v, float):
        return "—" if not math.isfinite(v) else f"{v:.{digits}g}"
    return str(v)


def with_unit(name: str) -> str:
    unit = metric_unit(name)
    return f"{metric_label(name)} ({unit})" if unit else metric_label(name)


def columns(protocol: str, reps: list[dict]) -> list[str]:
    present = {k for r in reps for k, v in (r.get("metrics") or {}).items() if v is not None}
    wanted = HEADLINE.get(protocol)
    if wanted is not None:
        return [n for n in wanted if n in present] or sorted(present)[:MAX_COLUMNS]
    from steplab.records.summary import METRIC_INFO

    order = list(METRIC_INFO)
    names = sorted((n for n in present if n != "integration_drift_m_s"),
                   key=lambda n: (order.index(n) if n in order else len(order), n))
    return names[:MAX_COLUMNS]


def _version(review: dict, version: int | None) -> dict | None:
    vs = review["versions"]
    if not vs:
        return None
    for v in vs:
        if v["version"] == version:
            return v
    return vs[-1]


def reps_table(review: dict, version: dict | None) -> html.Table | html.P:
    if version is None or not version["reps"]:
        return html.P("This analysis found no reps.", id="trial-reps-table")
    names = columns(review["protocol"], version["reps"])
    head = html.Tr([html.Th("Rep"), html.Th("Lead"), html.Th("Status")] + [html.Th(with_unit(n)) for n in names]
                   + [html.Th("Flags")])
    rows = []
    for r in version["reps"]:
        status = "counted" if r["accepted"] else f"rejected: {r['reject_reason']}"
        cls = "trial-rep-row" + ("" if r["accepted"] else " rep-rejected")
        rows.append(html.Tr([html.Td(str(r["number"])), html.Td(r["lead"] or "—"), html.Td(status)]
                            + [html.Td(fmt(r["metrics"].get(n))) for n in names]
                            + [html.Td(", ".join(r["flags"]) or "—")], className=cls, id=f"trial-rep-{r['number']}"))
    return html.Table([html.Thead(head), html.Tbody(rows)], id="trial-reps-table", className="trial-table")


def versions_table(review: dict, shown: int | None) -> html.Table:
    head = html.Tr([html.Th(h) for h in ("Version", "When (UTC)", "Parameters changed (from version 1)", "Reason", "Who",
                                         "Reps")])
    rows = []
    newest = review["versions"][-1]["version"] if review["versions"] else None
    for v in review["versions"]:
        changed = "; ".join(f"{PARAM_WORDS.get(k, k)}: {fmt(a)} → {fmt(b)}" for k, (a, b) in v["changed"].items())
        label = str(v["version"]) + (" (counts)" if v["version"] == newest else "")
        cls = "trial-version-row" + (" version-shown" if v["version"] == shown else "")
        n_ok = sum(1 for r in v["reps"] if r["accepted"])
        rows.append(html.Tr([html.Td(label), html.Td(v["created_at"].replace("T", " ")), html.Td(changed or "as recorded"),
                             html.Td(v["reason"] or "—"), html.Td(v["by"]), html.Td(f"{n_ok} of {len(v['reps'])}")],
                            className=cls))
    return html.Table([html.Thead(head), html.Tbody(rows)], id="trial-versions-table", className="trial-table")


def _force_at(traces: dict, t_s: float) -> float | None:
    ts, total = traces["t_s"], traces["fz_n"]["total"]
    if not ts:
        return None
    import bisect

    i = min(max(bisect.bisect_left(ts, t_s), 0), len(ts) - 1)
    return total[i]


def figure(traces: dict | None, version: dict | None) -> go.Figure:
    """Plate forces with one vertical line per event of every rep (shapes named ``rep N EVENT``),
    a marker trace per event kind (the legend), and a grey band over each rejected rep."""
    fig = go.Figure()
    if traces:
        for role, ys in traces["fz_n"].items():
            fig.add_trace(go.Scatter(x=traces["t_s"], y=ys, mode="lines", name=f"{PLATE_NAMES.get(role, role)} (N)",
                                       line={"color": PLATE_COLOURS.get(role), "width": 1.3,
                                             "dash": "dot" if role == "total" else "solid"}))
    shapes: list[dict] = []
    annotations: list[dict] = []
    if version is not None:
        marks: dict[str, tuple[list, list, list]] = {e: ([], [], []) for e in EVENT_NAMES}
        for r in version["reps"]:
            ev = r["events"]
            for name, t in ev.items():
                shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": t, "x1": t, "y0": 0, "y1": 1,
                               "name": f"rep {r['number']} {name}",
                               "line": {"color": EVENT_COLOURS[name], "width": 1, "dash": "dot"}})
                xs, ys, text = marks[name]
                xs.append(t)
                ys.append(_force_at(traces, t) if traces else 0.0)
                text.append(f"rep {r['number']}: {EVENT_WORDS[name]}")
            if "contact" in ev:
                annotations.append({"x": ev["contact"], "y": 1.0, "xref": "x", "yref": "paper", "showarrow": False,
                                    "yanchor": "bottom", "text": f"rep {r['number']}" + ("" if r["accepted"] else " ✗")})
            if not r["accepted"] and ev:
                lo = min(ev.values()) - 0.3
                hi = max(ev.values()) + 0.3
                shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": lo, "x1": hi, "y0": 0, "y1": 1,
                               "name": f"rep {r['number']} rejected", "fillcolor": "#adb5bd", "opacity": 0.35,
                               "line": {"width": 0}, "layer": "below"})
        for name, (xs, ys, text) in marks.items():
            if xs:
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=EVENT_WORDS[name], text=text,
                                         hoverinfo="text+x", marker={"color": EVENT_COLOURS[name], "size": 9,
                                                                     "symbol": "diamond"}))
    fig.update_layout(shapes=shapes, annotations=annotations, height=430, margin={"l": 60, "r": 10, "t": 30, "b": 40},
                      xaxis_title="time from the start of the recording (s)", yaxis_title="vertical force (N)",
                      legend={"orientation": "h", "y": -0.18}, uirevision="trial")
    return fig


def _header(review: dict) -> list:
    status = "accepted" if review["accepted"] else f"rejected: {review['reject_reason']}"
    return [html.Span(["Patient ", dcc.Link(review["patient"], href=f"/patients/{review['patient']}")]),
            html.Span(["Visit ", dcc.Link(f"{review['visit_id']} ({review['visit_date']})",
                                          href=f"/visits/{review['visit_id']}")]),
            html.Span(f"Protocol {review['protocol']} {review['protocol_version']}"),
            html.Span(f"Lead limb: {review['lead'] or 'both (alternating)'}"),
            html.Span(f"Pain during {fmt(review['pain_during'])} / 10"),
            html.Span(f"Movement quality {fmt(review['quality_score'])} / 6"),
            html.Span(f"Trial {status}", id="trial-status",
                      className="trial-accepted" if review["accepted"] else "trial-rejected")]


def _version_options(review: dict) -> list[dict]:
    vs = review["versions"]
    return [{"label": f"version {v['version']}" + (" (newest, counts)" if i == len(vs) - 1 else ""),
             "value": v["version"]} for i, v in enumerate(vs)]


def _rep_options(review: dict) -> list[dict]:
    v = review["versions"][-1] if review["versions"] else None
    return [{"label": f"rep {r['number']} ({r['lead'] or '—'})", "value": r["number"]} for r in (v["reps"] if v else [])]


def _trial_id(params) -> int | None:
    try:
        return int(params.get("trial_id", ""))
    except (TypeError, ValueError):
        return None


def layout(ctx, params, query):
    trial_id = _trial_id(params)
    review = None
    if trial_id is not None:
        with ctx.db.read() as s:
            review = trial_review(s, trial_id)
    if review is None:
        return html.Div([html.H2("Trial review"), html.P(f"There is no trial {params.get('trial_id')}."),
                         dcc.Link("Patients", href="/patients")], id="trial-page")
    traces, trace_error = _traces(ctx, trial_id)
    shown = review["versions"][-1]["version"] if review["versions"] else None
    version = _version(review, shown)
    param_options = [{"label": PARAM_WORDS.get(n, n), "value": n} for n in NUMERIC_PARAMS]
    return html.Div([
        dcc.Store(id="trial-id", data=trial_id),
        dcc.Store(id="trial-refresh", data=0),
        html.H2(f"Trial {trial_id}: review"),
        html.Div(_header(review), id="trial-header", className="trial-header"),
        html.Div([html.Label("Show analysis", htmlFor="trial-version-select"),
                  dcc.Dropdown(id="trial-version-select", options=_version_options(review), value=shown,
                               clearable=False, style={"width": "22em"}),
                  html.Span(id="trial-version-note", className="trial-note")], className="trial-row"),
        html.P(trace_error, className="trial-error") if trace_error else None,
        dcc.Graph(id="trial-graph", figure=figure(traces, version), config={"displaylogo": False}),
        html.H3("Reps"),
        html.Div(reps_table(review, version), id="trial-reps"),
        html.Div(id="trial-message", className="trial-message", role="status"),
        html.Div([
            html.Fieldset([html.Legend("A rep"),
                           dcc.Dropdown(id="trial-rep-select", options=_rep_options(review), placeholder="rep",
                                        style={"width": "13em"}),
                           dcc.Input(id="trial-rep-reason", placeholder="why (needed to reject)", type="text",
                                     debounce=False, style={"width": "16em"}),
                           html.Button("Reject rep", id="trial-rep-reject", className="btn-warn"),
                           html.Button("Count rep again", id="trial-rep-accept")], className="trial-box"),
            html.Fieldset([html.Legend("The whole trial"),
                           dcc.Input(id="trial-reason", placeholder="why (needed to reject)", type="text",
                                     style={"width": "16em"}),
                           html.Button("Reject trial", id="trial-reject", className="btn-warn"),
                           html.Button("Accept trial", id="trial-accept")], className="trial-box"),
            html.Fieldset([html.Legend("Analyse again with one parameter changed"),
                           dcc.Dropdown(id="trial-param-name", options=param_options, value="force_cutoff_hz",
                                        clearable=False, style={"width": "18em"}),
                           dcc.Input(id="trial-param-value", placeholder="new value", type="text",
                                     style={"width": "7em"}),
                           dcc.Input(id="trial-reanalyze-reason", placeholder="why", type="text",
                                     style={"width": "14em"}),
                           html.Button("Analyse again", id="trial-reanalyze")], className="trial-box"),
        ], className="trial-actions"),
        html.H3("Analysis versions"),
        html.P("Every analysis is kept. The newest version counts in the visit summary; pick an older one above to "
               "look at it.", className="trial-note"),
        html.Div(versions_table(review, shown), id="trial-versions"),
    ], id="trial-page")


_CACHE: OrderedDict[tuple[int, int], tuple[dict | None, str | None]] = OrderedDict()


def _traces(ctx, trial_id: int) -> tuple[dict | None, str | None]:
    """The trial's downsampled forces (cached: a raw recording never changes), or why there are none."""
    key = (id(ctx.db), trial_id)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    try:
        value: tuple[dict | None, str | None] = (trial_traces(ctx.db, trial_id, max_points=TRACE_POINTS), None)
    except (TrialError, ValueError) as exc:
        value = (None, f"The forces cannot be shown: {exc}")
    _CACHE[key] = value
    while len(_CACHE) > _TRACE_CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def parse_param(name: str | None, text: str | None) -> tuple[str, float | int]:
    """The parameter and its new value from the form, or ValueError with one line for the page."""
    if not name or name not in NUMERIC_PARAMS:
        raise ValueError("Choose the parameter to change.")
    raw = (text or "").strip().replace(",", ".")
    if not raw:
        raise ValueError(f"Give the new value of {PARAM_WORDS.get(name, name)}.")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number: nothing was changed.") from None
    if not math.isfinite(value):
        raise ValueError(f"{raw!r} is not a usable number: nothing was changed.")
    if name == "filter_order":
        if value != int(value):
            raise ValueError("The filter order is a whole even number: nothing was changed.")
        return name, int(value)
    return name, value


def register(app, ctx) -> None:
    @app.callback(Output("trial-message", "children"), Output("trial-refresh", "data"),
                  Output("trial-version-select", "value"), Output("trial-version-select", "options"),
                  Input("trial-rep-reject", "n_clicks"), Input("trial-rep-accept", "n_clicks"),
                  Input("trial-reject", "n_clicks"), Input("trial-accept", "n_clicks"),
                  Input("trial-reanalyze", "n_clicks"),
                  State("trial-id", "data"), State("trial-refresh", "data"), State("trial-rep-select", "value"),
                  State("trial-rep-reason", "value"), State("trial-reason", "value"),
                  State("trial-param-name", "value"), State("trial-param-value", "value"),
                  State("trial-reanalyze-reason", "value"), prevent_initial_call=True)
    def _act(_rr, _ra, _tr, _ta, _re, trial_id, refresh, rep, rep_reason, reason, pname, pvalue, re_reason):
        which = callback_context.triggered_id
        actor = auth.current_actor()
        keep = (no_update, no_update)
        try:
            if which in ("trial-rep-reject", "trial-rep-accept"):
                if rep is None:
                    return "Choose a rep first: nothing was changed.", no_update, *keep
                rejecting = which == "trial-rep-reject"
                why = (rep_reason or "").strip()
                if rejecting and not why:
                    return f"Give a reason for rejecting rep {rep}: nothing was changed.", no_update, *keep
                version = set_rep_accepted(ctx.db, int(trial_id), int(rep), not rejecting, why or None, actor=actor)
                msg = (f"Rep {rep} of version {version} rejected ({why}); the visit summary leaves it out."
                       if rejecting else f"Rep {rep} of version {version} counts again.")
                return msg, (refresh or 0) + 1, *keep
            if which in ("trial-reject", "trial-accept"):
                rejecting = which == "trial-reject"
                why = (reason or "").strip()
                if rejecting and not why:
                    return "Give a reason for rejecting the trial: nothing was changed.", no_update, *keep
                set_accepted(ctx.db, int(trial_id), not rejecting, why or None, actor=actor)
                msg = (f"Trial {trial_id} rejected ({why}); it is kept but left out of summaries."
                       if rejecting else f"Trial {trial_id} accepted; it counts in the visit summary.")
                return msg, (refresh or 0) + 1, *keep
            if which == "trial-reanalyze":
                try:
                    name, value = parse_param(pname, pvalue)
                except ValueError as exc:
                    return str(exc), no_update, *keep
                why = (re_reason or "").strip()
                if not why:
                    return "Give a reason for the re-analysis: nothing was changed.", no_update, *keep
                with ctx.db.read() as s:
                    review = trial_review(s, int(trial_id))
                if review is None:
                    return f"There is no trial {trial_id}.", no_update, *keep
                newest = review["versions"][-1]["parameters"] if review["versions"] else {}
                known = {f.name for f in fields(AnalysisParams)}
                try:
                    base = AnalysisParams(**{k: v for k, v in newest.items() if k in known})
                    params = replace(base, **{name: value})
                except (TypeError, ValueError) as exc:
                    return f"{PARAM_WORDS.get(name, name)} = {pvalue}: {exc}; nothing was changed.", no_update, *keep
                old = getattr(base, name)
                version = reanalyze(ctx.db, int(trial_id), params=params, reason=why, actor=actor)
                with ctx.db.read() as s:
                    review = trial_review(s, int(trial_id))
                assert review is not None
                new_reps = review["versions"][-1]["reps"]
                n_ok = sum(1 for r in new_reps if r["accepted"])
                msg = (f"Version {version} made with {PARAM_WORDS.get(name, name)} {fmt(value)} (was {fmt(old)}): "
                       f"{len(new_reps)} reps found, {n_ok} counted (rejected reps stay rejected). It now counts; "
                       "the older versions are kept.")
                return msg, (refresh or 0) + 1, version, _version_options(review)
        except (TrialError, ValueError) as exc:
            return f"Not done: {exc}", no_update, *keep
        return no_update, no_update, *keep

    @app.callback(Output("trial-graph", "figure"), Output("trial-reps", "children"),
                  Output("trial-versions", "children"), Output("trial-header", "children"),
                  Output("trial-rep-select", "options"), Output("trial-version-note", "children"),
                  Input("trial-refresh", "data"), Input("trial-version-select", "value"),
                  State("trial-id", "data"), prevent_initial_call=True)
    def _show(_refresh, shown, trial_id):
        with ctx.db.read() as s:
            review = trial_review(s, int(trial_id))
        if review is None:
            return no_update, no_update, no_update, no_update, no_update, f"There is no trial {trial_id}."
        version = _version(review, shown)
        traces, _ = _traces(ctx, int(trial_id))
        newest = review["versions"][-1]["version"] if review["versions"] else None
        note = "" if version is None or version["version"] == newest else \
            (f"You are looking at version {version['version']}; rep decisions and the summary use version {newest}.")
        return (figure(traces, version), reps_table(review, version),
                versions_table(review, version["version"] if version else None), _header(review),
                _rep_options(review), note)


page = Page(name="trial", path="/trials/<trial_id>", title="Trial review", layout=layout, register=register,
            admin=False, nav=False)
