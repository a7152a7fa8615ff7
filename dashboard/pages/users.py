"""Users page (being built)."""

from __future__ import annotations

from dash import html

from . import Page


def layout(ctx, params, query):
    return html.Div([html.H2("Users"), html.P("coming soon", className="placeholder")], id="users-page")


page = Page(name="users", path="/users", title="Users", layout=layout, admin=True, nav=True)
