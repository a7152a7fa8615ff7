"""Export page (being built)."""

from __future__ import annotations

from dash import html

from . import Page


def layout(ctx, params, query):
    return html.Div([html.H2("Export"), html.P("coming soon", className="placeholder")], id="export-page")


page = Page(name="export", path="/export", title="Export", layout=layout, admin=False, nav=True)
