"""Export page ``/export``: one visit as CSV or C3D (a zip of one file per trial), a PDF report or the visit bundle.

``?visit=ID`` or ``?patient=CODE`` (its latest visit) preselects; ``?format=`` too.
The files are made by ``records.export_run.export_records`` (the same code as
``steplab export``) in a private temporary folder, sent to the browser with
``dcc.Download`` and deleted.  Pseudonymised unless "identified" is ticked; an
identified export needs a fresh login (``auth.login_is_fresh``), otherwise the
page says so with a link to log in again and exports nothing.  Every export is in
the audit log with the user's name (identified ones before and after).
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import quote, urlencode

from dash import Input, Output, State, dcc, html, no_update

from steplab.records.export_run import export_records
from steplab.records.history import patient_code_of_visit
from steplab.records.patients import RecordsError, search
from steplab.records.query import visit_list

from .. import auth
from . import Page

FORMAT_OPTIONS = [
    {"label": "PDF report of the visit", "value": "pdf"},
    {"label": "C3D: one file per trial (zip), for gait-lab software", "value": "c3d"},
    {"label": "CSV: one file per trial (zip), forces and events in columns", "value": "csv"},
    {"label": "Bundle: trials, results, summary, progress and the report (zip)", "value": "bundle"},
]
FORMATS = [o["value"] for o in FORMAT_OPTIONS]
IDENTIFIED_LABEL = ("Identified: include the name, date of birth, real dates and device serials "
                    "(needs a recent login; written to the audit log)")


def _visit_options(visits: list[dict]) -> list[dict]:
    return [{"label": f"{v['date']} · {v['trials']} trial{'s' * (v['trials'] != 1)} · visit {v['id']}",
             "value": v["id"]} for v in reversed(visits)]  # newest first


def _visits(ctx, code: str | None) -> list[dict]:
    if not code:
        return []
    with ctx.db.read() as s:
        return visit_list(s, code)


def layout(ctx, params, query):
    code = query.get("patient")
    visit = query.get("visit")
    note = ""
    with ctx.db.read() as s:
        codes = [r["code"] for r in search(s)]
        if visit:
            try:
                code = patient_code_of_visit(s, int(visit))
            except (RecordsError, ValueError):
                note, visit, code = f"There is no visit {visit}: choose one below.", None, None
    if code and code not in codes:
        note, code = f"There is no patient {code}: choose one below.", None
    visits = _visits(ctx, code)
    options = _visit_options(visits)
    if visit is None and options:
        visit = options[0]["value"]  # the latest visit
    fmt = query.get("format") if query.get("format") in FORMATS else "pdf"
    return html.Div([
        html.H2("Export"),
        html.P("Exports are pseudonymised: they carry the patient's code, day numbers instead of dates and no "
               "device serials, unless you tick \u201cidentified\u201d.", className="hint"),
        html.Div([
            html.Label(["Patient", dcc.Dropdown(id="export-patient", options=codes, value=code,
                                                placeholder="choose a patient", clearable=False)],
                       className="dropdown-label"),
            html.Label(["Visit", dcc.Dropdown(id="export-visit", options=options, value=visit,
                                              placeholder="choose a visit", clearable=False)],
                       className="dropdown-label wide"),
        ], className="form-row"),
        html.Fieldset([html.Legend("Format"),
                       dcc.RadioItems(id="export-format", options=FORMAT_OPTIONS, value=fmt,
                                      labelClassName="radio")]),
        dcc.Checklist(id="export-identified", options=[{"label": IDENTIFIED_LABEL, "value": "identified"}],
                      value=[], labelClassName="checkbox"),
        html.Button("Export", id="export-submit", n_clicks=0, className="primary"),
        dcc.Download(id="export-download"),
        dcc.Loading(html.Div(note, id="export-message", className="message error" if note else "message",
                             role="status"), type="dot"),
    ], id="export-page", className="card")


def _fresh_login_link(code: str | None, visit: str | None, fmt: str) -> str:
    back = "/export?" + urlencode({"visit": visit, "format": fmt} if visit else {"patient": code or "", "format": fmt})
    return "/login?fresh=1&next=" + quote(back, safe="/")


def _zip(files: list[Path]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for f in files:
            z.write(f, arcname=f.name)
    return buf.getvalue()


def make_download(ctx, visit_id: int, fmt: str, identified: bool, actor: str) -> tuple[dict, str]:
    """Export ``visit_id`` as ``fmt`` in a private temporary folder; (dcc.Download data, the message line)."""
    with tempfile.TemporaryDirectory(prefix="steplab-export-") as tmp:
        ext = {"pdf": ".pdf", "bundle": ".zip"}.get(fmt, "")
        run = export_records(ctx.db, fmt, Path(tmp) / f"export{ext}", visit_id=visit_id, identified=identified,
                             actor=actor, lsi_low_pct=ctx.settings.lsi_threshold_pct)
        kind = "identified" if identified else "pseudonymised"
        stem = f"{run.code}_visit{visit_id}" + ("_identified" if identified else "")
        if fmt == "pdf":
            name, data = f"{stem}_report.pdf", run.files[0].read_bytes()
        elif fmt == "bundle":
            name, data = f"{stem}_bundle.zip", run.files[0].read_bytes()
        else:
            name, data = f"{stem}_{fmt}.zip", _zip(run.files)
    what = {"pdf": "the PDF report", "bundle": "the bundle"}.get(fmt, f"{len(run.files)} {fmt.upper()} "
                                                                      f"file{'s' * (len(run.files) != 1)}")
    line = f"Exported {what} of visit {visit_id} of {run.code} ({kind}): {name}."
    if run.skipped:
        line += (f" Trials {', '.join(run.skipped)} were imported from C3D/CSV files and have no raw data "
                 f"to export as {fmt.upper()}.")
    return dcc.send_bytes(data, name), line


def register(app, ctx) -> None:
    @app.callback(Output("export-visit", "options"), Output("export-visit", "value"),
                  Input("export-patient", "value"), State("export-visit", "value"), prevent_initial_call=True)
    def _patient_visits(code, current):
        try:
            options = _visit_options(_visits(ctx, code))
        except RecordsError:
            return [], None
        values = [o["value"] for o in options]
        return options, current if current in values else (values[0] if values else None)

    @app.callback(Output("export-download", "data"), Output("export-message", "children"),
                  Output("export-message", "className"),
                  Input("export-submit", "n_clicks"), State("export-patient", "value"),
                  State("export-visit", "value"), State("export-format", "value"),
                  State("export-identified", "value"), prevent_initial_call=True)
    def _export(_clicks, code, visit, fmt, identified_values):
        identified = "identified" in (identified_values or [])
        if not code:
            return no_update, "Choose a patient first.", "message error"
        if not visit:
            return no_update, f"Patient {code} has no visit to export: record one first.", "message error"
        if fmt not in FORMATS:
            return no_update, "Choose a format.", "message error"
        if identified and not auth.login_is_fresh():
            return no_update, ["An identified export needs a recent login. ",
                               html.A("Log in again", href=_fresh_login_link(code, visit, fmt), id="export-relogin"),
                               " and export again; nothing was exported."], "message error"
        try:
            data, line = make_download(ctx, int(visit), fmt, identified, auth.current_actor())
        except (ValueError, OSError) as exc:  # RecordsError, ExportError…: one line, nothing sent
            return no_update, "Not exported: " + " ".join(str(exc).split()), "message error"
        return data, line, "message ok"


page = Page(name="export", path="/export", title="Export", layout=layout, register=register, admin=False, nav=True)
