"""Patients page ``/patients``: the list (pseudonymous codes, never names) with a search, and the new-patient form.

The list is one query (``records.patients.search``: visits counted in a grouped
subquery), built with the page and again on each search.  Adding a patient checks
everything first (``records.patients.add_patient``); bad input gets one line in
``#patient-new-message`` and writes nothing.  Additions are audited with the user.
"""

from __future__ import annotations

import math
from html import escape
from urllib.parse import quote

from dash import Input, Output, State, dcc, html, no_update
from dash import ctx as callback_ctx

from steplab.records.patients import RecordsError, add_patient, search

from .. import auth
from . import Page

INVOLVED_OPTIONS = [{"label": "Left", "value": "left"}, {"label": "Right", "value": "right"},
                    {"label": "None (no involved limb)", "value": "none"}]

#: The command-line option names in records' messages, in the words of the form.
_FIELD_WORDS = {"--involved": "Involved limb", "--birth-year": "Birth year", "--height": "Height"}


def plain(message: str) -> str:
    """A records message in the form's words ("--height must …" -> "Height must …"), on one line."""
    for option, words in _FIELD_WORDS.items():
        message = message.replace(option, words)
    message = " ".join(message.split())
    return message[:1].upper() + message[1:]


def parse_year(text, what: str = "Birth year") -> int | None:
    """A year typed in a text box: None when blank; RecordsError unless a whole number."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        value = float(str(text).strip())
    except ValueError:
        raise RecordsError(f"{what} must be a year like 1975, got {str(text).strip()!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise RecordsError(f"{what} must be a year like 1975, got {str(text).strip()!r}")
    return int(value)


def parse_number(text, what: str) -> float | None:
    """A number typed in a text box (a decimal comma is accepted): None when blank; RecordsError otherwise."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    s = str(text).strip().replace(",", ".")
    try:
        value = float(s)
    except ValueError:
        raise RecordsError(f"{what} must be a number, got {str(text).strip()!r}") from None
    if not math.isfinite(value):
        raise RecordsError(f"{what} must be a number, got {str(text).strip()!r}")
    return value


def _cell(v) -> str:
    return escape("-" if v is None else str(v))


def table_html(rows: list[dict], text: str = "") -> str:
    """The list as one block of HTML (rows ``tr.patient-row``, each with a link ``a.patient-link``).

    One component instead of seven per patient: with a clinic's 500 patients the
    browser draws it in a blink, where 3,500 Dash components took seconds.  Codes
    are checked (letters, digits, . _ -) and every cell is escaped anyway; the links
    navigate inside the app like ``dcc.Link`` (``assets/patients.js``).
    """
    n = len(rows)
    if text.strip():
        caption = f"{n} patient{'s' * (n != 1)} match \u201c{escape(text.strip())}\u201d"
    else:
        caption = f"{n} patient{'s' * (n != 1)}"
    head = ("<thead><tr><th>Code</th><th>Involved limb</th><th>Born</th><th>Visits</th><th>Last visit</th></tr>"
            "</thead>")
    body = "".join(
        f'<tr class="patient-row"><td><a class="patient-link" href="/patients/{quote(r["code"])}">{_cell(r["code"])}'
        f'</a></td><td>{_cell(r["involved"])}</td><td>{_cell(r["birth_year"])}</td><td class="num">{r["visits"]}</td>'
        f'<td>{_cell(r["last_visit"] or "no visit yet")}</td></tr>' for r in rows)
    if not rows:
        body = (f'<tr><td colspan="5" class="empty">'
                f'{"No patient found." if text.strip() else "No patients yet: add one below."}</td></tr>')
    return f'<table><caption id="patients-count">{caption}</caption>{head}<tbody>{body}</tbody></table>'


def _table(children: str) -> dcc.Markdown:
    return dcc.Markdown(children, id="patients-table", dangerously_allow_html=True, dedent=False)


def _rows(ctx, text: str | None) -> list[dict]:
    with ctx.db.read() as s:
        return search(s, text)


def layout(ctx, params, query):
    rows = _rows(ctx, None)
    form = html.Section([
        html.H3("New patient"),
        html.P("Use a pseudonymous code (letters, digits, . _ -), never the patient's name.", className="hint"),
        html.Div([
            html.Label(["Code", dcc.Input(id="patient-new-code", type="text", placeholder="e.g. KNEE-014",
                                          autoComplete="off", maxLength=64)], className="code-label"),
            html.Label(["Involved limb", dcc.Dropdown(id="patient-new-involved", options=INVOLVED_OPTIONS,
                                                      placeholder="choose", clearable=True)],
                       className="dropdown-label"),
            html.Label(["Birth year", dcc.Input(id="patient-new-birth-year", type="text", inputMode="numeric",
                                                placeholder="e.g. 1975", autoComplete="off")]),
            html.Label(["Height (cm)", dcc.Input(id="patient-new-height", type="text", inputMode="decimal",
                                                 placeholder="e.g. 172", autoComplete="off")]),
            html.Button("Add patient", id="patient-new-submit", n_clicks=0),
        ], className="form-row"),
        html.Div(id="patient-new-message", className="message", role="status"),
    ], className="card")
    return html.Div([
        html.H2("Patients"),
        html.Div(dcc.Input(id="patients-search", type="search", placeholder="Search by code or notes",
                           debounce=0.3, autoComplete="off", className="search"), className="search-row"),
        _table(table_html(rows)),
        form,
    ], id="patients-page")


def register(app, ctx) -> None:
    @app.callback(Output("patients-table", "children"), Output("patient-new-message", "children"),
                  Output("patient-new-message", "className"), Output("patient-new-code", "value"),
                  Input("patients-search", "value"), Input("patient-new-submit", "n_clicks"),
                  State("patient-new-code", "value"), State("patient-new-involved", "value"),
                  State("patient-new-birth-year", "value"), State("patient-new-height", "value"),
                  prevent_initial_call=True)
    def _update(text, _clicks, code, involved, birth_year, height):
        message, cls, code_out = no_update, no_update, no_update
        if callback_ctx.triggered_id == "patient-new-submit":
            code = (code or "").strip()
            try:
                if not code:
                    raise RecordsError("Type the patient's code first.")
                add_patient(ctx.db, code, involved=involved or None, birth_year=parse_year(birth_year),
                            height_cm=parse_number(height, "Height"), actor=auth.current_actor())
            except RecordsError as exc:
                return no_update, plain(str(exc)), "message error", no_update
            message = [f"Added patient {code}. ", dcc.Link("Open", href=f"/patients/{code}")]
            cls, code_out = "message ok", ""
        return table_html(_rows(ctx, text), text=text or ""), message, cls, code_out


page = Page(name="patients", path="/patients", title="Patients", layout=layout, register=register, admin=False,
            nav=True)
