"""Users page (admins): the clinic's accounts; add one, deactivate or reactivate it, reset its password.

A new account and a reset get a one-time password, shown once in
``#users-message`` (only its hash is stored); its owner chooses a new one at the
next login.  Everything here needs an admin with a recent login
(``auth.login_is_fresh``): the layout and every callback check it again, so a
clinician calling the callback directly changes nothing.  Each change is
audited with the admin's name.
"""

from __future__ import annotations

from dash import Input, Output, State, callback_context, dcc, html, no_update

from steplab.records import users as records_users

from .. import auth
from . import Page

PATH = "/users"
ROLE_LABELS = {"clinician": "Clinician", "admin": "Administrator"}


def refusal(next_path: str = PATH):
    """Why the current user may not administer users (a component), or None when they may."""
    if not auth.is_admin():
        return html.Div([html.H2("Not allowed"), html.P("This page is for administrators.")], id="not-allowed")
    if not auth.login_is_fresh():
        return auth.fresh_login_link(next_path, what="Managing users")
    return None


def _table(rows: list[dict]) -> html.Table:
    head = html.Thead(html.Tr([html.Th("User"), html.Th("Role"), html.Th("State"), html.Th("Password"),
                               html.Th("Added (UTC)")]))
    body = [html.Tr([html.Td(r["name"]), html.Td(ROLE_LABELS.get(r["role"], r["role"])),
                     html.Td("active" if r["active"] else "deactivated"),
                     html.Td("one-time (not yet changed)" if r["must_change_password"] else "chosen by the user"),
                     html.Td(r["created_at"].replace("T", " "))],
                    className="users-row" + ("" if r["active"] else " users-inactive"), id=f"users-row-{r['name']}")
            for r in rows]
    return html.Table([head, html.Tbody(body)], className="table")


def _options(rows: list[dict]) -> list[dict]:
    return [{"label": f"{r['name']} ({ROLE_LABELS.get(r['role'], r['role']).lower()}"
                      f"{'' if r['active'] else ', deactivated'})", "value": r["name"]} for r in rows]


def layout(ctx, params, query):
    refused = refusal()
    if refused is not None:
        return html.Div([html.H2("Users"), refused], id="users-page")
    rows = records_users.list_users(ctx.db)
    return html.Div([
        html.H2("Users"),
        html.P("Everyone who logs in to this dashboard. Clinicians run sessions and see patients; "
               "administrators also manage users.", className="note"),
        html.Div(_table(rows), id="users-table"),
        html.H3("Add a user"),
        html.Div([
            html.Label("User name", htmlFor="users-new-name"),
            dcc.Input(id="users-new-name", type="text", placeholder="e.g. anna.m", maxLength=80, debounce=False),
            html.Label("Role", htmlFor="users-new-role"),
            dcc.Dropdown(id="users-new-role", options=[{"label": v, "value": k} for k, v in ROLE_LABELS.items()],
                         value="clinician", clearable=False, style={"minWidth": "12em"}),
            html.Button("Add user", id="users-new-submit", n_clicks=0),
        ], className="form-row"),
        html.Div(id="users-message", className="message", role="status"),
        html.H3("Change a user"),
        html.Div([
            html.Label("User", htmlFor="users-select"),
            dcc.Dropdown(id="users-select", options=_options(rows), placeholder="choose a user",
                         style={"minWidth": "16em"}),
            html.Button("Deactivate", id="users-deactivate", n_clicks=0),
            html.Button("Reactivate", id="users-reactivate", n_clicks=0),
            html.Button("New one-time password", id="users-reset", n_clicks=0),
        ], className="form-row"),
    ], id="users-page")


def _shown_once(text: str, password: str):
    return html.Div([html.Span(text + " One-time password: "),
                     html.Code(password, id="users-one-time-password"),
                     html.Span(" (shown only now: give it to them; they choose their own at the first login)")])


def register(app, ctx) -> None:
    db = ctx.db

    @app.callback(Output("users-message", "children"), Output("users-table", "children"),
                  Output("users-select", "options"), Output("users-new-name", "value"),
                  Input("users-new-submit", "n_clicks"), Input("users-deactivate", "n_clicks"),
                  Input("users-reactivate", "n_clicks"), Input("users-reset", "n_clicks"),
                  State("users-new-name", "value"), State("users-new-role", "value"), State("users-select", "value"),
                  prevent_initial_call=True)
    def _act(_add, _off, _on, _reset, new_name, new_role, chosen):
        refused = refusal()
        if refused is not None:  # checked again here: the callback can be called without the page
            return refused, no_update, no_update, no_update
        actor = auth.current_actor()
        which = callback_context.triggered_id
        typed = no_update  # the name field is emptied once its user is added
        try:
            if which == "users-new-submit":
                name = (new_name or "").strip()
                if not name:
                    message = "Type the new user's name first."
                else:
                    password = records_users.add_user_with_one_time_password(db, name, new_role or "", actor)
                    message = _shown_once(f"Added {ROLE_LABELS.get(new_role or '', new_role).lower()} {name}.",
                                          password)
                    typed = ""
            elif not chosen:
                message = "Choose a user first."
            elif which == "users-reset":
                password = records_users.reset_password(db, chosen, actor)
                auth.clear_failed_logins(chosen)
                message = _shown_once(f"New one-time password for {chosen}: their old password no longer works.",
                                      password)
            elif which in ("users-deactivate", "users-reactivate"):
                active = which == "users-reactivate"
                records_users.set_active(db, chosen, active, actor)
                if active:
                    auth.clear_failed_logins(chosen)
                message = (f"{chosen} can log in again." if active
                           else f"{chosen} is deactivated: they can no longer log in (kept in the records).")
            else:
                message = "Nothing to do."
        except records_users.AccountError as exc:
            message = f"Not done: {exc}."
        rows = records_users.list_users(db)
        return message, _table(rows), _options(rows), typed


page = Page(name="users", path=PATH, title="Users", layout=layout, register=register, admin=True, nav=True)
