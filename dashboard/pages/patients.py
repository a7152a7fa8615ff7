"""Patients page (being built)."""

from __future__ import annotations

from dash import html

from . import Page


def layout(ctx, params, query):
    return html.Div([html.H2("Patients"), html.P("coming soon", className="placeholder")], id="patients-page")


page = Page(name="patients", path="/patients", title="Patients", layout=layout, admin=False, nav=True)
