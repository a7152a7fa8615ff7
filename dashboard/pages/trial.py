"""Trial review page (being built)."""

from __future__ import annotations

from dash import html

from . import Page


def layout(ctx, params, query):
    return html.Div([html.H2("Trial review"), html.P("coming soon", className="placeholder")], id="trial-page")


page = Page(name="trial", path="/trials/<trial_id>", title="Trial review", layout=layout, admin=False, nav=False)
