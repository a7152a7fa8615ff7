"""Access to the dashboard: logins (Flask-Login), the guard in front of every route, CSRF, expiry, roles.

* Every request but the login page is checked **before** it is handled: a page
  without a session is redirected to ``/login``; a callback (``/_dash-…``) or an
  API call gets ``401`` JSON.
* CSRF (Flask-WTF): every POST needs the session's token, in the login form's
  field or, for Dash callbacks, in the ``X-CSRFToken`` header that Dash's
  renderer copies from the ``_csrf_token`` cookie set here.
* A session ends after ``session_idle_minutes`` without a request and
  ``session_max_hours`` after its login.  Administration and identified exports
  need a login younger than ``fresh_login_minutes`` (``login_is_fresh``).
* Logins, failed logins and logouts go to the records' audit log (names only).
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from urllib.parse import urlsplit

import flask
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from markupsafe import escape

from steplab.records import users as records_users

PUBLIC_PATHS = ("/login",)
CSRF_COOKIE = "_csrf_token"  # the name Dash's renderer reads for its X-CSRFToken header


class DashUser(UserMixin):
    def __init__(self, name: str, role: str) -> None:
        self.id = name
        self.name = name
        self.role = role


def is_authenticated() -> bool:
    return bool(flask.has_request_context() and current_user.is_authenticated)


def current_actor() -> str:
    """The logged-in user's name (for the audit log); "" outside a session."""
    return current_user.name if is_authenticated() else ""


def current_role() -> str:
    return current_user.role if is_authenticated() else ""


def is_admin() -> bool:
    return current_role() == "admin"


def login_is_fresh(minutes: float | None = None) -> bool:
    """True when this session's login is younger than ``minutes`` (default: the settings' fresh_login_minutes)."""
    if not is_authenticated():
        return False
    limit = minutes if minutes is not None else flask.current_app.config["STEPLAB_FRESH_S"] / 60.0
    return time.time() - float(flask.session.get("login_at", 0)) <= limit * 60.0


def csrf_token() -> str:
    return generate_csrf() if flask.has_request_context() else ""


def _wants_json(path: str) -> bool:
    return path.startswith("/_dash-") or path.startswith("/api/") or flask.request.is_json


def _refuse(path: str, why: str):
    if _wants_json(path):
        return flask.jsonify({"error": why}), 401
    return flask.redirect("/login?next=" + flask.request.full_path.rstrip("?"))


def _safe_next(target: str | None) -> str:
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"  # never redirect off this server
    return target


LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>steplab · log in</title>
<style>body{{font-family:system-ui,sans-serif;background:#f8f9fa;display:flex;justify-content:center;margin-top:10vh}}
form{{background:white;padding:2em 2.5em;border-radius:8px;box-shadow:0 1px 4px #0003;min-width:20em}}
label{{display:block;margin-top:1em}}input{{width:100%;padding:.4em;font-size:1.1em}}
button{{margin-top:1.5em;padding:.5em 2em;font-size:1.1em}}.error{{color:#b00020}}.note{{color:#495057}}</style></head>
<body><form method="post" action="/login" id="login-form"><h1>steplab</h1>
<p class="note">{note}</p><p class="error" id="login-error">{error}</p>
<input type="hidden" name="csrf_token" value="{csrf}"><input type="hidden" name="next" value="{next}">
<label for="login-name">User name</label><input id="login-name" name="name" autocomplete="username" autofocus>
<label for="login-password">Password</label><input id="login-password" name="password" type="password"
 autocomplete="current-password"><button id="login-submit" type="submit">Log in</button></form></body></html>"""


def install_auth(server: flask.Flask, ctx) -> None:
    """Put the guard, CSRF protection, the login manager and ``/login`` ``/logout`` on ``server``."""
    settings = ctx.settings
    db = ctx.db
    server.config.update(
        SECRET_KEY=getattr(settings, "secret_key", None) or secrets.token_bytes(32),
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_max_hours),
        WTF_CSRF_TIME_LIMIT=int(settings.session_max_hours * 3600), WTF_CSRF_HEADERS=["X-CSRFToken"],
        STEPLAB_FRESH_S=settings.fresh_login_minutes * 60.0,
    )
    manager = LoginManager(server)
    manager.session_protection = "strong"

    @manager.user_loader
    def _load(name: str):
        u = records_users.get_user(db, name)
        if u is None or not u["active"]:
            return None
        return DashUser(u["name"], u["role"])

    @server.before_request
    def _guard():
        path = flask.request.path
        if path in PUBLIC_PATHS:
            return None
        if not current_user.is_authenticated:
            return _refuse(path, "login required")
        now = time.time()
        login_at = float(flask.session.get("login_at", 0))
        seen = float(flask.session.get("seen", 0))
        if now - login_at > settings.session_max_hours * 3600 or now - seen > settings.session_idle_minutes * 60:
            logout_user()
            flask.session.clear()
            return _refuse(path, "session expired: log in again")
        flask.session["seen"] = now
        return None

    CSRFProtect(server)  # after the guard: a request without a session is refused (401) before its token is checked

    @server.after_request
    def _csrf_cookie(response):
        if current_user.is_authenticated or flask.request.path in PUBLIC_PATHS:
            response.set_cookie(CSRF_COOKIE, generate_csrf(), samesite="Strict", httponly=False)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @server.errorhandler(CSRFError)
    def _csrf_error(exc):
        return flask.jsonify({"error": f"CSRF check failed: {exc.description}"}), 400

    def _login_page(error: str = "", note: str = "", status: int = 200):
        nxt = _safe_next(flask.request.values.get("next"))
        return flask.Response(LOGIN_PAGE.format(error=escape(error), note=escape(note), csrf=generate_csrf(),
                                                next=escape(nxt)), status=status, mimetype="text/html")

    @server.route("/login", methods=["GET"])
    def _login_form():
        note = "Log in again to continue." if flask.request.args.get("fresh") else ""
        return _login_page(note=note)

    @server.route("/login", methods=["POST"])
    def _login_post():
        name = (flask.request.form.get("name") or "").strip()
        password = flask.request.form.get("password") or ""
        found = records_users.verify(db, name, password) if name and password else None
        if found is None:
            return _login_page(error="Wrong user name or password.", status=401)
        flask.session.clear()
        login_user(DashUser(found["name"], found["role"]))
        flask.session.permanent = True
        flask.session["login_at"] = flask.session["seen"] = time.time()
        return flask.redirect(_safe_next(flask.request.form.get("next")))

    @server.route("/logout", methods=["POST"])
    def _logout():
        from steplab.records.audit import add_entry

        name = current_actor()
        logout_user()
        flask.session.clear()
        if name:
            db.write(lambda s: add_entry(s, name, "logout", f"user {name}"))
        return flask.redirect("/login")
