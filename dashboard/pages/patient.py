"""Patient page ``/patients/<code>``: the facts and their edit form, the visits, links to progress, session, export.

Pseudonymous: the code and clinical facts only (never the name).  Saving checks
every field first (``records.patients.update_patient``, audited with the user);
bad input gets one line in ``#patient-edit-message`` and changes nothing.
"""

from __future__ import annotations

from dash import Input, Output, State, dcc, html, no_update

from steplab.records.patients import RecordsError, patient_facts, update_patient
from steplab.records.query import visit_list

from .. import auth
from . import Page
from .patients import INVOLVED_OPTIONS, parse_number, parse_year, plain

_FIELD_WORDS = {"involved": "involved limb", "birth_year": "birth year", "height_cm": "height", "notes": "notes"}


def _num(v, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}".rstrip("0").rstrip(".")


def _edit_value(v: float | None) -> str:
    """A stored number as typed back into its box: short, yet exactly the stored value."""
    if v is None:
        return ""
    short = f"{v:g}"
    return short if float(short) == v else repr(v)


def _facts_line(f: dict) -> str:
    parts = [f"involved limb: {f['involved'] or 'not set'}", f"born {f['birth_year'] or '-'}",
             f"height {_num(f['height_cm'])} cm" if f["height_cm"] is not None else "height -"]
    return " · ".join(parts)


def _visits_table(visits: list[dict]) -> html.Table:
    head = html.Thead(html.Tr([html.Th("Date"), html.Th("Body mass (kg)"), html.Th("Pain before (0-10)"),
                               html.Th("Pain after (0-10)"), html.Th("Pain next morning (0-10)"), html.Th("Trials"),
                               html.Th("")]))
    rows = [html.Tr([html.Td(dcc.Link(v["date"], href=f"/visits/{v['id']}")), html.Td(_num(v["body_mass_kg"])),
                     html.Td(_num(v["pain_before"])), html.Td(_num(v["pain_after"])),
                     html.Td(_num(v["pain_next_morning"])), html.Td(v["trials"], className="num"),
                     html.Td(dcc.Link("Summary", href=f"/visits/{v['id']}", className="visit-link"))],
                    className="visit-row") for v in reversed(visits)]  # newest first
    if not rows:
        rows = [html.Tr(html.Td("No visits yet: start a session to record the first one.", colSpan=7,
                                className="empty"))]
    return html.Table([head, html.Tbody(rows)], id="patient-visits")


def layout(ctx, params, query):
    code = params.get("code", "")
    try:
        with ctx.db.read() as s:
            facts = patient_facts(s, code)
            visits = visit_list(s, code)
    except RecordsError:
        return html.Div([html.H2("Patient not found"),
                         html.P(f"There is no patient with the code \u201c{code}\u201d.", id="patient-not-found",
                                className="message error"),
                         dcc.Link("Back to the patient list", href="/patients")], id="patient-page")
    edit = html.Section([
        html.H3("Edit"),
        html.Div([
            html.Label(["Involved limb", dcc.Dropdown(id="patient-edit-involved", options=INVOLVED_OPTIONS,
                                                      value=facts["involved"], clearable=True,
                                                      placeholder="not set")], className="dropdown-label"),
            html.Label(["Birth year", dcc.Input(id="patient-edit-birth-year", type="text", inputMode="numeric",
                                                value="" if facts["birth_year"] is None else str(facts["birth_year"]),
                                                autoComplete="off")]),
            html.Label(["Height (cm)", dcc.Input(id="patient-edit-height", type="text", inputMode="decimal",
                                                 value=_edit_value(facts["height_cm"]), autoComplete="off")]),
        ], className="form-row"),
        html.Label(["Notes (clinical, no names)",
                    dcc.Textarea(id="patient-edit-notes", value=facts["notes"] or "", className="notes")],
                   className="notes-label"),
        html.Button("Save", id="patient-edit-save", n_clicks=0),
        html.Div(id="patient-edit-message", className="message", role="status"),
    ], className="card")
    actions = html.Div([
        dcc.Link("Start a session", href=f"/session?patient={code}", id="patient-start-session",
                 className="button-link primary"),
        dcc.Link("Progress", href=f"/patients/{code}/progress", id="patient-progress-link", className="button-link"),
        dcc.Link("Export", href=f"/export?patient={code}", id="patient-export-link", className="button-link"),
    ], className="actions")
    return html.Div([
        dcc.Store(id="patient-code", data=code),
        html.H2(f"Patient {code}"),
        html.P(_facts_line(facts), id="patient-facts", className="facts"),
        actions,
        html.H3(f"Visits ({len(visits)})"),
        _visits_table(visits),
        edit,
    ], id="patient-page")


def register(app, ctx) -> None:
    @app.callback(Output("patient-edit-message", "children"), Output("patient-edit-message", "className"),
                  Output("patient-facts", "children"),
                  Input("patient-edit-save", "n_clicks"), State("patient-code", "data"),
                  State("patient-edit-involved", "value"), State("patient-edit-birth-year", "value"),
                  State("patient-edit-height", "value"), State("patient-edit-notes", "value"),
                  prevent_initial_call=True)
    def _save(_clicks, code, involved, birth_year, height, notes):
        try:
            changed = update_patient(ctx.db, code, involved=involved or None, birth_year=parse_year(birth_year),
                                     height_cm=parse_number(height, "Height"), notes=notes,
                                     actor=auth.current_actor())
            with ctx.db.read() as s:
                facts = patient_facts(s, code)
        except RecordsError as exc:
            return plain(str(exc)), "message error", no_update
        if not changed:
            return "Nothing to save: no field was changed.", "message ok", no_update
        return f"Saved {', '.join(_FIELD_WORDS[k] for k in changed)}.", "message ok", _facts_line(facts)


page = Page(name="patient", path="/patients/<code>", title="Patient", layout=layout, register=register, admin=False,
            nav=False)
