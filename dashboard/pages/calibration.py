"""Calibration page (being built)."""

from __future__ import annotations

from dash import html

from . import Page


def layout(ctx, params, query):
    return html.Div([html.H2("Calibration"), html.P("coming soon", className="placeholder")], id="calibration-page")


page = Page(name="calibration", path="/calibration", title="Calibration", layout=layout, admin=False, nav=True)
