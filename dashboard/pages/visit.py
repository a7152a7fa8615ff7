"""Visit summary page (being built)."""

from __future__ import annotations

from dash import html

from . import Page


def layout(ctx, params, query):
    return html.Div([html.H2("Visit summary"), html.P("coming soon", className="placeholder")], id="visit-page")


page = Page(name="visit", path="/visits/<visit_id>", title="Visit summary", layout=layout, admin=False, nav=False)
