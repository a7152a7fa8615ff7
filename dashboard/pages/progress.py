"""Progress page (being built)."""

from __future__ import annotations

from dash import html

from . import Page


def layout(ctx, params, query):
    return html.Div([html.H2("Progress"), html.P("coming soon", className="placeholder")], id="progress-page")


page = Page(name="progress", path="/patients/<code>/progress", title="Progress", layout=layout, admin=False, nav=False)
