"""Access to the dashboard: logins (Flask-Login), the guard in front of every route, CSRF, expiry, roles.

* Every request but the login page is checked **before** it is handled: a page
  without a session is redirected to ``/login``; a callback (``/_dash-…``) or an
  API call gets ``401`` JSON.
* A user with a one-time password (first run, new user, reset) reaches nothing
  but ``/account/password`` (pages are redirected there, callbacks get ``403``)
  until a new password is chosen.
* CSRF (Flask-WTF): every POST needs the session's token, in the form's field
  or, for Dash callbacks and the JSON API, in the ``X-CSRFToken`` header that
  Dash's renderer copies from the ``_csrf_token`` cookie set here.
* A session ends after ``session_idle_minutes`` without a request (callbacks
  fired only by a timer, such as the live page's redraw, do not count) and
  ``session_max_hours`` after its login.  Administration and identified exports
  need a login younger than ``fresh_login_minutes`` (``login_is_fresh``;
  ``fresh_login_link`` is the "log in again" message to show otherwise).
* Logins, failed logins, logouts, expiries and password changes go to the
  records' audit log (user names only, never a password).
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import deque
from datetime import timedelta
from urllib.parse import quote, urlsplit

import flask
from dash import html
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from markupsafe import escape

from steplab.records import users as records_users

PUBLIC_PATHS = ("/login",)
PASSWORD_PATH = "/account/password"
CSRF_COOKIE = "_csrf_token"  # the name Dash's renderer reads for its X-CSRFToken header
TIMER_PROPS = (".n_intervals",)  # a callback fired only by these is no sign of a person at the screen


FAILED_LOGINS_LIMIT = 10  # failed logins for one user name within the window before that name is refused
FAILED_LOGINS_WINDOW_S = 15 * 60.0
THROTTLE_MAX_NAMES = 10_000  # names remembered at most (a flood of invented names cannot fill the memory)


class LoginThrottle:
    """Failed logins per user name in the last ``window_s``; past ``limit`` that name is refused until they age out.

    Per name, not per address: behind one clinic router every computer has the same address.  In memory only:
    a restart (or the window passing) lifts it.
    """

    def __init__(self, limit: int = FAILED_LOGINS_LIMIT, window_s: float = FAILED_LOGINS_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failed: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failed.get(key, deque())
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    def wait_s(self, name: str) -> float:
        """0 when ``name`` may try; else the seconds until its oldest counted failure ages out."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(name.lower(), now)
            return 0.0 if len(times) < self.limit else max(1.0, self.window_s - (now - times[0]))

    def failed(self, name: str) -> None:
        now = time.monotonic()
        key = name.lower()
        with self._lock:
            times = self._recent(key, now)
            times.append(now)
            self._failed[key] = times
            if len(self._failed) > THROTTLE_MAX_NAMES:  # forget names whose failures aged out, else the oldest
                stale = [k for k in self._failed if not self._recent(k, now)]
                for old in stale or list(self._failed)[:1]:
                    del self._failed[old]

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failed.pop(name.lower(), None)


class DashUser(UserMixin):
    def __init__(self, name: str, role: str, must_change_password: bool = False) -> None:
        self.id = name
        self.name = name
        self.role = role
        self.must_change_password = must_change_password


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


def fresh_login_url(next_path: str = "/") -> str:
    """``/login?fresh=1&next=…``: log in again, then come back to ``next_path``."""
    return "/login?fresh=1&next=" + quote(_safe_next(next_path), safe="/")


def fresh_login_link(next_path: str = "/", what: str = "This") -> html.Div:
    """The message for a stale login: "<what> needs a recent login: log in again" with the link."""
    if flask.has_request_context():
        minutes = flask.current_app.config.get("STEPLAB_FRESH_S", 600.0) / 60.0
        age = f" (within the last {minutes:g} minutes)"
    else:
        age = ""
    return html.Div([html.Span(f"{what} needs a recent login{age}: "),
                     html.A("log in again", href=fresh_login_url(next_path), className="fresh-login-link")],
                    className="fresh-login")


def clear_failed_logins(name: str) -> None:
    """Lift the failed-login limit of ``name`` (an admin gave them a new one-time password or reactivated them)."""
    throttle = flask.current_app.extensions.get("steplab_login_throttle") if flask.has_app_context() else None
    if throttle is not None:
        throttle.succeeded(name)


def csrf_token() -> str:
    return generate_csrf() if flask.has_request_context() else ""


JSON_PREFIXES = ("/_dash-", "/api/", "/assets/", "/_favicon", "/favicon.ico")  # callbacks, the API, files: 401, not a redirect


def _wants_json(path: str) -> bool:
    return path.startswith(JSON_PREFIXES) or flask.request.is_json


def _refuse(path: str, why: str):
    if _wants_json(path):
        return flask.jsonify({"error": why}), 401
    return flask.redirect("/login?next=" + quote(flask.request.full_path.rstrip("?"), safe="/"))


def _safe_next(target: str | None) -> str:
    if not target:
        return "/"
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(c) < 32 for c in target)):
        return "/"  # never redirect off this server (browsers read "/\\host" as "//host")
    return target


POLLED_PATHS = ("/api/live/frame", "/api/live")  # polled by the open session page's script, not by a person


def _timer_only() -> bool:
    """A request made by a timer (the live view's frame poll, an interval callback), not by a person."""
    if flask.request.method == "GET" and flask.request.path in POLLED_PATHS:
        return True
    if flask.request.path != "/_dash-update-component":
        return False
    body = flask.request.get_json(silent=True)
    fired = body.get("changedPropIds") if isinstance(body, dict) else None
    if not isinstance(fired, list) or not fired:
        return False
    return all(str(p).endswith(TIMER_PROPS) for p in fired)


_STYLE = """<style>body{font-family:system-ui,sans-serif;background:#f8f9fa;display:flex;flex-direction:column;
align-items:center;margin-top:10vh}form{background:white;padding:2em 2.5em;border-radius:8px;box-shadow:0 1px 4px #0003;min-width:20em;
max-width:28em}label{display:block;margin-top:1em}input{width:100%;padding:.4em;font-size:1.1em;box-sizing:border-box}
button{margin-top:1.5em;padding:.5em 2em;font-size:1.1em}.error{color:#b00020}.note{color:#495057}
form.plain{background:none;box-shadow:none;padding:1em 0;min-width:0}</style>"""

LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<link rel="icon" href="data:,"><title>steplab · log in</title>{style}
</head><body><form method="post" action="/login" id="login-form"><h1>steplab</h1>
<p class="note" id="login-note">{note}</p><p class="error" id="login-error">{error}</p>
<input type="hidden" name="csrf_token" value="{csrf}"><input type="hidden" name="next" value="{next}">
<label for="login-name">User name</label><input id="login-name" name="name" autocomplete="username" autofocus>
<label for="login-password">Password</label><input id="login-password" name="password" type="password"
 autocomplete="current-password"><button id="login-submit" type="submit">Log in</button></form></body></html>"""

PASSWORD_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<link rel="icon" href="data:,"><title>steplab · new password</title>
{style}</head><body><form method="post" action="/account/password" id="password-form"><h1>Choose a new password</h1>
<p class="note" id="password-note">{note}</p><p class="error" id="password-error">{error}</p>
<input type="hidden" name="csrf_token" value="{csrf}"><input type="hidden" name="next" value="{next}">
<label for="password-current">Current password (or the one-time password you were given)</label>
<input id="password-current" name="current" type="password" autocomplete="current-password" autofocus>
<label for="password-new">New password (at least {min_chars} characters)</label>
<input id="password-new" name="new" type="password" autocomplete="new-password">
<label for="password-again">New password again</label>
<input id="password-again" name="again" type="password" autocomplete="new-password">
<button id="password-submit" type="submit">Save the new password</button>{back}</form>
<form method="post" action="/logout" class="plain"><input type="hidden" name="csrf_token" value="{csrf}">
<button id="password-logout" type="submit">Log out</button></form></body></html>"""


def install_auth(server: flask.Flask, ctx) -> None:
    """Put the guard, CSRF protection, the login manager, ``/login``, ``/logout`` and ``/account/password`` on ``server``."""
    from steplab.records.audit import add_entry

    settings = ctx.settings
    db = ctx.db
    server.config.update(
        SECRET_KEY=getattr(settings, "secret_key", None) or secrets.token_bytes(32),
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_max_hours),
        WTF_CSRF_TIME_LIMIT=max(1, int(settings.session_max_hours * 3600)), WTF_CSRF_HEADERS=["X-CSRFToken"],
        STEPLAB_FRESH_S=settings.fresh_login_minutes * 60.0,
    )
    manager = LoginManager(server)
    manager.session_protection = "strong"
    throttle = LoginThrottle()
    server.extensions["steplab_login_throttle"] = throttle

    @manager.user_loader
    def _load(name: str):
        u = records_users.get_user(db, name)
        if u is None or not u["active"]:
            return None  # a deactivated user's open sessions end at their next request
        return DashUser(u["name"], u["role"], u["must_change_password"])

    def _audit(actor: str, action: str, detail: dict | None = None) -> None:
        db.write(lambda s: add_entry(s, actor, action, f"user {actor}", detail=detail))

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
            name = current_actor()
            logout_user()
            flask.session.clear()
            _audit(name, "session-expired", {"idle": now - login_at <= settings.session_max_hours * 3600})
            return _refuse(path, "session expired: log in again")
        if current_user.must_change_password and path not in (PASSWORD_PATH, "/logout"):
            if _wants_json(path):
                return flask.jsonify({"error": "choose a new password first (/account/password)"}), 403
            return flask.redirect(PASSWORD_PATH)
        if not _timer_only():
            flask.session["seen"] = now
        return None

    CSRFProtect(server)  # after the guard: a request without a session is refused (401) before its token is checked

    @server.after_request
    def _csrf_cookie(response):
        if current_user.is_authenticated or flask.request.path in PUBLIC_PATHS:
            response.set_cookie(CSRF_COOKIE, generate_csrf(), samesite="Strict", httponly=False)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if flask.request.path in PUBLIC_PATHS + (PASSWORD_PATH,):
            response.headers["Cache-Control"] = "no-store"
        return response

    def _login_page(error: str = "", note: str = "", status: int = 200):
        nxt = _safe_next(flask.request.values.get("next"))
        return flask.Response(LOGIN_PAGE.format(style=_STYLE, error=escape(error), note=escape(note),
                                                csrf=generate_csrf(), next=escape(nxt)),
                              status=status, mimetype="text/html")

    def _password_page(error: str = "", status: int = 200):
        forced = bool(getattr(current_user, "must_change_password", False))
        note = ("You logged in with a one-time password: choose your own before you go on." if forced
                else f"Logged in as {current_actor()}.")
        back = "" if forced else '<p><a href="/" id="password-back">Back to the dashboard</a></p>'
        nxt = _safe_next(flask.request.values.get("next"))
        return flask.Response(PASSWORD_PAGE.format(style=_STYLE, error=escape(error), note=escape(note),
                                                   csrf=generate_csrf(), next=escape(nxt), back=back,
                                                   min_chars=records_users.MIN_PASSWORD_CHARS),
                              status=status, mimetype="text/html")

    @server.errorhandler(CSRFError)
    def _csrf_error(exc):
        if flask.request.path == "/login":
            return _login_page(error="The form had expired: please log in again.", status=400)
        if flask.request.path == PASSWORD_PATH:
            return _password_page(error="The form had expired: please enter it again.", status=400)
        return flask.jsonify({"error": f"CSRF check failed: {exc.description}"}), 400

    def _first_start_pending() -> bool:
        """Only the first start's admin exists, still with its one-time password."""
        rows = records_users.list_users(db)
        return len(rows) == 1 and rows[0]["name"] == records_users.FIRST_ADMIN and rows[0]["must_change_password"]

    @server.route("/login", methods=["GET"])
    def _login_form():
        if flask.request.args.get("fresh"):
            note = "Log in again to continue."
        elif _first_start_pending():
            note = (f"First start: log in as {records_users.FIRST_ADMIN} with the one-time password shown in the "
                    "terminal that started steplab.")
        else:
            note = ""
        return _login_page(note=note)

    @server.route("/login", methods=["POST"])
    def _login_post():
        name = (flask.request.form.get("name") or "").strip()
        password = flask.request.form.get("password") or ""
        wait_s = throttle.wait_s(name) if name else 0.0
        if wait_s > 0:
            known = records_users.get_user(db, name) is not None
            db.write(lambda s: add_entry(s, "unknown", "login-throttled",
                                         f"user {name}" if known else "user (not a known name)"))
            return _login_page(error=f"Too many failed logins for this name: try again in {math.ceil(wait_s / 60)} "
                                     "min, or ask an administrator for a new one-time password.", status=429)
        found = records_users.verify(db, name, password) if name and password else None
        if found is None:
            if name:
                throttle.failed(name)
            return _login_page(error="Wrong user name or password.", status=401)
        throttle.succeeded(name)
        flask.session.clear()  # a new session for every login (no fixation)
        login_user(DashUser(found["name"], found["role"], found["must_change_password"]))
        flask.session.permanent = True
        flask.session["login_at"] = flask.session["seen"] = time.time()
        nxt = _safe_next(flask.request.form.get("next"))
        if found["must_change_password"]:
            return flask.redirect(PASSWORD_PATH + ("?next=" + quote(nxt, safe="/") if nxt != "/" else ""))
        return flask.redirect(nxt)

    @server.route(PASSWORD_PATH, methods=["GET"])
    def _password_form():
        return _password_page()

    @server.route(PASSWORD_PATH, methods=["POST"])
    def _password_post():
        form = flask.request.form
        new = form.get("new") or ""
        if new != (form.get("again") or ""):
            return _password_page(error="The two new passwords differ.", status=400)
        try:
            records_users.change_password(db, current_actor(), form.get("current") or "", new)
        except records_users.AccountError as exc:
            return _password_page(error=str(exc).capitalize() + ".", status=400)
        current_user.must_change_password = False
        return flask.redirect(_safe_next(form.get("next")))

    @server.route("/logout", methods=["POST"])
    def _logout():
        name = current_actor()
        logout_user()
        flask.session.clear()
        if name:
            _audit(name, "logout")
        return flask.redirect("/login")
