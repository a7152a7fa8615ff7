"""Patient page (being built)."""

from __future__ import annotations

from dash import html

from . import Page


def layout(ctx, params, query):
    return html.Div([html.H2("Patient"), html.P("coming soon", className="placeholder")], id="patient-page")


page = Page(name="patient", path="/patients/<code>", title="Patient", layout=layout, admin=False, nav=False)
