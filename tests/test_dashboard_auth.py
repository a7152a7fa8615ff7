"""Access to the dashboard over real HTTP (a real waitress server, urllib; no mocks): the guard in front of
every route, CSRF, session expiry, fresh logins, roles, one-time passwords, the persisted session key."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from helpers import ADMIN, CLINICIAN, Reply, WebClient, browser_login, screenshot, serving, wait_for

from steplab.dashboard.app import create_app
from steplab.dashboard.context import DashboardSettings, DashContext
from steplab.dashboard.pages import all_pages
from steplab.records import users as records_users
from steplab.records.audit import entries, entry_dict


# -- a small HTTP client with cookies (used by tests/test_cmd_run.py too) ---------------------------
def users_action(client: WebClient, button: str, *, new_name=None, new_role="clinician", chosen=None) -> Reply:
    """Press one of the users page's buttons (``users-new-submit``, ``users-deactivate``…) over HTTP."""
    buttons = ["users-new-submit", "users-deactivate", "users-reactivate", "users-reset"]
    return client.callback(
        [("users-message", "children"), ("users-table", "children"), ("users-select", "options"),
         ("users-new-name", "value")],
        [(b, "n_clicks", 1 if b == button else 0) for b in buttons], f"{button}.n_clicks",
        [("users-new-name", "value", new_name), ("users-new-role", "value", new_role),
         ("users-select", "value", chosen)])


def text_of(component) -> str:
    """All the text inside a Dash component as sent in JSON."""
    if isinstance(component, dict):
        return " ".join(text_of(v) for k, v in component.items() if k in ("props", "children"))
    if isinstance(component, list):
        return " ".join(text_of(c) for c in component)
    return "" if component is None else str(component)


def audit(db, action: str | None = None) -> list[dict]:
    with db.read() as s:
        return [entry_dict(e) for e in entries(s, action)]


@pytest.fixture
def live_feed():
    """The simulated step box's live feed (not started: the guard must refuse before it is ever asked)."""
    from steplab.cmd_run import build_live

    live = build_live("sim", None)
    yield live
    live.close()


@pytest.fixture
def site(dashboard_db, live_feed, tmp_path):
    with serving(DashContext(db=dashboard_db, live=live_feed, trials_dir=tmp_path / "trials")) as url:
        yield url


# -- the guard ----------------------------------------------------------------------------------------
def _page_paths() -> list[str]:
    return [re.sub(r"<\w+>", "1", p.path) for p in all_pages()]


def test_every_page_callback_asset_and_api_is_refused_without_a_session(site):
    c = WebClient(site)
    for path in ["/", *_page_paths(), "/no/such/page", "/patients/P001/progress"]:
        r = c.get(path)
        assert r.status == 302 and r.location.startswith("/login?next="), (path, r.status, r.location)
        assert urllib.parse.unquote(r.location.split("next=", 1)[1]) == path
    index = WebClient(site)  # what a session would load, fetched by a logged-in client to know real asset paths
    index.login(*CLINICIAN)
    html_page = index.get("/patients").text
    suites = re.findall(r'src="(/_dash-component-suites/[^"]+)"', html_page)
    assets = re.findall(r'href="(/assets/[^"]+)"', html_page)
    assert suites and assets, html_page[:500]
    for path in ["/_dash-layout", "/_dash-dependencies", suites[0], suites[-1], assets[0], "/assets/steplab.css",
                 "/api/live", "/api/recordings", "/_favicon.ico"]:
        r = c.get(path)
        assert r.status == 401 and r.json() == {"error": "login required"}, (path, r.status, r.text[:200])
    for path, body in [("/_dash-update-component", {"output": "page-content.children"}),
                       ("/api/recordings", {"seconds": 2})]:
        for csrf in (False, True):
            r = c.request("POST", path, body=body, csrf=csrf)
            assert r.status == 401 and r.json()["error"] == "login required", (path, r.status, r.text[:200])


def test_the_login_page_needs_its_csrf_token_and_holds_no_data(site, dashboard_db):
    c = WebClient(site)
    page = c.get("/login")
    assert page.status == 200 and 'name="csrf_token"' in page.text
    assert page.headers.get("X-Frame-Options") == "DENY" and page.headers.get("Cache-Control") == "no-store"
    assert "patient" not in page.text.lower()
    r = c.request("POST", "/login", form={"name": CLINICIAN[0], "password": CLINICIAN[1]})  # no token
    assert r.status == 400 and "expired" in r.text
    assert c.get("/patients").status == 302  # no session came of it
    r = c.login(CLINICIAN[0], "wrong-password")
    assert r.status == 401 and "Wrong user name or password" in r.text
    assert c.get("/patients").status == 302
    r = c.login(*CLINICIAN, next_path="/patients")
    assert r.status == 302 and r.location == "/patients"
    assert c.get("/patients").status == 200 and c.get("/_dash-layout").status == 200
    actions = [(e["action"], e["actor"]) for e in audit(dashboard_db) if e["action"].startswith("login")]
    assert actions == [("login-failed", "unknown"), ("login", CLINICIAN[0])]


def test_a_deep_link_with_a_query_comes_back_whole_after_the_login(site):
    c = WebClient(site)
    r = c.get("/session?patient=P001&seconds=5")
    assert r.status == 302
    nxt = urllib.parse.parse_qs(urllib.parse.urlsplit(r.location).query)["next"]
    assert nxt == ["/session?patient=P001&seconds=5"]
    token = c.form_token(r.location)
    assert 'value="/session?patient=P001&amp;seconds=5"' in c.get(r.location).text
    r = c.request("POST", "/login", form={"csrf_token": token, "name": CLINICIAN[0], "password": CLINICIAN[1],
                                          "next": nxt[0]})
    assert r.location == "/session?patient=P001&seconds=5"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"])
def test_the_login_never_redirects_off_this_server(site, target):
    r = WebClient(site).login(*CLINICIAN, next_path=target)
    assert r.status == 302 and r.location == "/", r.location


def test_a_session_without_the_csrf_header_is_refused_on_callbacks_and_recordings(site, live_feed):
    c = WebClient(site)
    assert c.login(*CLINICIAN).status == 302
    route = ([("page-content", "children")], [("url", "pathname", "/patients"), ("url", "search", "")],
             "url.pathname")
    r = c.callback(*route, csrf=False)
    assert r.status == 400 and "CSRF" in r.json()["error"]
    r = c.request("POST", "/api/recordings", body={"seconds": 2})
    assert r.status == 400 and "CSRF" in r.json()["error"]
    assert live_feed.recording is None  # refused before the handler
    ok = c.callback(*route)
    assert ok.status == 200 and "patients-page" in ok.text
    r = c.request("POST", "/api/recordings", body={"seconds": -1}, csrf=True)
    assert r.status == 400 and "bad seconds" in r.json()["error"]  # the handler answered this time


def test_logout_needs_its_token_ends_the_session_and_is_audited(site, dashboard_db):
    c = WebClient(site)
    c.login(*CLINICIAN)
    assert c.request("POST", "/logout", form={}).status == 400  # a cross-site form cannot log anyone out
    assert c.get("/patients").status == 200
    r = c.request("POST", "/logout", form={"csrf_token": c.cookie("_csrf_token")})
    assert r.status == 302 and r.location == "/login"
    assert c.get("/patients").status == 302 and c.get("/_dash-layout").status == 401
    assert [e["actor"] for e in audit(dashboard_db, "logout")] == [CLINICIAN[0]]


# -- expiry -------------------------------------------------------------------------------------------
def test_an_idle_session_expires(dashboard_db):
    settings = DashboardSettings(session_idle_minutes=5.0 / 60)  # 5 s
    with serving(DashContext(db=dashboard_db, settings=settings)) as url:
        c2 = WebClient(url)
        c2.login(*CLINICIAN)
        assert c2.get("/_dash-layout").status == 200
        time.sleep(6.0)  # idle for longer than the limit (a pause, not a timing assertion)
        r = c2.get("/_dash-layout")
        assert r.status == 401 and "expired" in r.json()["error"]
        assert c2.get("/patients").status == 302
    assert any(e["action"] == "session-expired" for e in audit(dashboard_db))


def test_a_busy_session_still_ends_at_its_maximum_age(dashboard_db):
    settings = DashboardSettings(session_max_hours=2.0 / 3600)  # 2 s, however busy
    with serving(DashContext(db=dashboard_db, settings=settings)) as url:
        c = WebClient(url)
        c.login(*CLINICIAN)
        assert c.get("/_dash-layout").status == 200
        assert wait_for(lambda: c.get("/_dash-layout").status == 401, 60, 0.1)  # requests every 0.1 s
        assert c.get("/patients").status == 302


def test_timer_callbacks_do_not_keep_an_idle_session_alive(dashboard_db):
    settings = DashboardSettings(session_idle_minutes=1.5 / 60)
    with serving(DashContext(db=dashboard_db, settings=settings)) as url:
        c = WebClient(url)
        c.login(*CLINICIAN)

        def tick() -> int:  # what the live page's redraw timer sends; a clinician gets no change from it
            buttons = ["users-new-submit", "users-deactivate", "users-reactivate", "users-reset"]
            return c.callback([("users-message", "children"), ("users-table", "children"),
                               ("users-select", "options"), ("users-new-name", "value")],
                              [(b, "n_clicks", 0) for b in buttons], "live-interval.n_intervals",
                              [("users-new-name", "value", None), ("users-new-role", "value", None),
                               ("users-select", "value", None)]).status

        assert tick() == 200
        assert wait_for(lambda: tick() == 401, 60, 0.2)  # ticking every 0.2 s, yet the session ends


# -- roles, fresh logins, users -----------------------------------------------------------------------
def test_a_clinician_cannot_manage_users_even_calling_the_callback(site, dashboard_db):
    c = WebClient(site)
    c.login(*CLINICIAN)
    route = c.callback([("page-content", "children")], [("url", "pathname", "/users"), ("url", "search", "")],
                       "url.pathname")
    assert route.status == 200 and "Not allowed" in route.text and "users-table" not in route.text
    before = records_users.list_users(dashboard_db)
    for button in ("users-new-submit", "users-deactivate", "users-reset"):
        r = users_action(c, button, new_name="mallory", new_role="admin", chosen=ADMIN[0])
        assert r.status == 200 and "Not allowed" in r.text, r.text[:300]
        assert "users-table" not in r.json()["response"]  # nothing else is sent back
    assert records_users.list_users(dashboard_db) == before
    assert not [e for e in audit(dashboard_db) if e["action"].startswith("user-") and e["actor"] == CLINICIAN[0]]


def test_an_admin_adds_deactivates_and_resets_users_all_audited(site, dashboard_db):
    admin = WebClient(site)
    admin.login(*ADMIN)
    page = admin.callback([("page-content", "children")], [("url", "pathname", "/users"), ("url", "search", "")],
                          "url.pathname")
    assert "users-table" in page.text and "clin" in page.text
    r = users_action(admin, "users-new-submit", new_name="anna.m", new_role="clinician").json()["response"]
    message = text_of(r["users-message"]["children"])
    password = re.search(r"One-time password:\s+(\S+)", message).group(1)
    assert "Added clinician anna.m" in message and len(password) >= records_users.MIN_PASSWORD_CHARS
    assert r["users-new-name"]["value"] == ""
    assert "anna.m" in json.dumps(r["users-table"])
    again = text_of(users_action(admin, "users-new-submit", new_name="anna.m").json()["response"]["users-message"])
    assert "Not done: there is already a user 'anna.m'" in again

    anna = WebClient(site)  # the new user must choose a password first
    r = anna.login("anna.m", password, next_path="/patients")
    assert r.status == 302 and r.location.startswith("/account/password")
    assert anna.change_password(password, "annas-own-pass").status == 302
    assert anna.get("/patients").status == 200

    msg = text_of(users_action(admin, "users-deactivate", chosen="anna.m").json()["response"]["users-message"])
    assert "anna.m is deactivated" in msg
    assert anna.get("/_dash-layout").status == 401  # her open session ends at once
    assert WebClient(site).login("anna.m", "annas-own-pass").status == 401
    users_action(admin, "users-reactivate", chosen="anna.m")
    msg = text_of(users_action(admin, "users-reset", chosen="anna.m").json()["response"]["users-message"])
    reset = re.search(r"One-time password:\s+(\S+)", msg).group(1)
    assert WebClient(site).login("anna.m", "annas-own-pass").status == 401  # the old password is gone
    fresh = WebClient(site)
    assert fresh.login("anna.m", reset).location.startswith("/account/password")

    msg = text_of(users_action(admin, "users-deactivate", chosen=ADMIN[0]).json()["response"]["users-message"])
    assert "last active admin" in msg and records_users.get_user(dashboard_db, ADMIN[0])["active"]
    assert "Choose a user first" in text_of(users_action(admin, "users-reset").json()["response"]["users-message"])

    log = audit(dashboard_db)
    changes = [(e["action"], e["actor"], e["subject"]) for e in log if e["action"].startswith("user-")
               and e["subject"] == "user anna.m"]
    assert changes == [("user-add", ADMIN[0], "user anna.m"), ("user-password-change", "anna.m", "user anna.m"),
                       ("user-deactivate", ADMIN[0], "user anna.m"), ("user-reactivate", ADMIN[0], "user anna.m"),
                       ("user-password-reset", ADMIN[0], "user anna.m")]
    dumped = json.dumps(log)
    for secret in (password, reset, "annas-own-pass"):
        assert secret not in dumped


def test_user_administration_needs_a_recent_login(dashboard_db):
    settings = DashboardSettings(fresh_login_minutes=1.0 / 60)  # 1 s
    with serving(DashContext(db=dashboard_db, settings=settings)) as url:
        admin = WebClient(url)
        admin.login(*ADMIN)
        time.sleep(1.5)  # the login grows stale (the session itself lives on)
        page = admin.callback([("page-content", "children")], [("url", "pathname", "/users"),
                                                                ("url", "search", "")], "url.pathname")
        assert page.status == 200 and "needs a recent login" in page.text and "users-table" not in page.text
        assert "/login?fresh=1&next=/users" in json.dumps(page.json())
        r = users_action(admin, "users-new-submit", new_name="late", new_role="admin")
        assert "needs a recent login" in r.text and records_users.get_user(dashboard_db, "late") is None
        token = admin.form_token("/login?fresh=1&next=/users")
        r = admin.request("POST", "/login", form={"csrf_token": token, "name": ADMIN[0], "password": ADMIN[1],
                                                   "next": "/users"})
        assert r.status == 302 and r.location == "/users"  # a fresh login, back to where it was needed


def test_repeated_failed_logins_for_a_name_are_refused_until_an_admin_resets_it(dashboard_db):
    with serving(DashContext(db=dashboard_db), failed_logins_limit=3) as url:
        for _ in range(3):
            assert WebClient(url).login(CLINICIAN[0], "guess-guess-1").status == 401
        r = WebClient(url).login(*CLINICIAN)  # even the right password, for now
        assert r.status == 429 and "Too many failed logins" in r.text
        assert WebClient(url).login(*ADMIN).status == 302  # other names are not held up
        for _ in range(4):
            WebClient(url).login("annas-secret-pass", "x")  # a password typed as the name is never written down
        admin = WebClient(url)
        admin.login(*ADMIN)
        reset = text_of(users_action(admin, "users-reset", chosen=CLINICIAN[0]).json()["response"]["users-message"])
        one_time = re.search(r"One-time password:\s+(\S+)", reset).group(1)
        assert WebClient(url).login(CLINICIAN[0], one_time).location.startswith("/account/password")
    log = audit(dashboard_db)
    assert [e["subject"] for e in log if e["action"] == "login-throttled"] == [
        f"user {CLINICIAN[0]}", "user (not a known name)"]
    assert "annas-secret-pass" not in json.dumps(log)


# -- one-time passwords and the password page ---------------------------------------------------------
def test_a_user_with_a_one_time_password_reaches_nothing_but_the_password_page(site, dashboard_db):
    one_time = records_users.reset_password(dashboard_db, CLINICIAN[0], actor=ADMIN[0])
    c = WebClient(site)
    r = c.login(CLINICIAN[0], one_time, next_path="/patients")
    assert r.status == 302 and r.location == "/account/password?next=/patients"
    for path in ["/", "/patients", "/users"]:
        assert c.get(path).location == "/account/password", path
    for path in ["/_dash-layout", "/_dash-dependencies", "/api/live"]:
        r = c.get(path)
        assert r.status == 403 and "new password" in r.json()["error"], path
    r = c.callback([("page-content", "children")], [("url", "pathname", "/patients"), ("url", "search", "")],
                   "url.pathname")
    assert r.status == 403 and "new password" in r.json()["error"]
    page = c.get("/account/password?next=/patients")
    assert page.status == 200 and "one-time password" in page.text and "password-back" not in page.text
    assert 'id="password-logout"' in page.text  # the one way out without choosing a password
    assert c.request("POST", "/account/password", form={"current": one_time, "new": "x" * 12,
                                                        "again": "x" * 12}).status == 400  # no token
    assert "differ" in c.change_password(one_time, "new-pass-123", "new-pass-124").text
    assert "at least 8" in c.change_password(one_time, "short").text
    assert "wrong" in c.change_password("not-it-at-all", "new-pass-123").text
    assert c.get("/patients").location == "/account/password"  # none of those changed anything
    token = c.form_token("/account/password?next=/patients")
    r = c.request("POST", "/account/password", form={"csrf_token": token, "current": one_time,
                                                     "new": "new-pass-123", "again": "new-pass-123",
                                                     "next": "/patients"})
    assert r.status == 302 and r.location == "/patients"
    assert c.get("/patients").status == 200 and c.get("/_dash-layout").status == 200
    assert WebClient(site).login(CLINICIAN[0], "new-pass-123").location == "/"


def test_a_user_changes_their_own_password(site):
    c = WebClient(site)
    c.login(*CLINICIAN)
    assert '"href": "/account/password"' in json.dumps(c.get("/_dash-layout").json())  # the user's name in the nav
    page = c.get("/account/password")
    assert page.status == 200 and "password-back" in page.text
    assert c.change_password(CLINICIAN[1], CLINICIAN[1]).status == 400  # must differ
    assert c.change_password(CLINICIAN[1], "another-pass-9").location == "/"
    assert WebClient(site).login(*CLINICIAN).status == 401
    assert WebClient(site).login(CLINICIAN[0], "another-pass-9").status == 302


# -- the session key ----------------------------------------------------------------------------------
def test_the_session_key_is_made_once_private_and_kept_across_restarts(dashboard_db, data_dir):
    from steplab.cmd_run import SECRET_FILE, session_secret
    from steplab.errors import UserError

    key = session_secret(data_dir)
    path = data_dir / SECRET_FILE
    assert path.stat().st_mode & 0o777 == 0o600 and len(key) >= 32
    assert session_secret(data_dir) == key
    assert [p.name for p in data_dir.iterdir()] == [SECRET_FILE]  # no temporary file left
    settings = DashboardSettings(secret_key=key)
    with serving(DashContext(db=dashboard_db, settings=settings)) as url:
        c = WebClient(url)
        c.login(*CLINICIAN)
        assert c.get("/patients").status == 200
    with serving(DashContext(db=dashboard_db, settings=DashboardSettings(secret_key=session_secret(data_dir)))) as url:
        c.base = url  # the same browser, the server restarted (another port: cookies are per host)
        assert c.get("/patients").status == 200
    with serving(DashContext(db=dashboard_db)) as url:  # another key: the old session is worthless
        c.base = url
        assert c.get("/patients").status == 302
    path.chmod(0o644)
    with pytest.raises(UserError, match="can be read by other users"):
        session_secret(data_dir)


# -- in a real browser --------------------------------------------------------------------------------
@pytest.mark.browser
def test_an_admin_adds_a_clinician_who_sees_not_allowed_on_users_and_is_sent_out_when_deactivated(dash_duo, dashboard_db):
    from selenium.webdriver.common.by import By

    app = create_app(DashContext(db=dashboard_db))
    dash_duo.start_server(app, navigate=False)
    dash_duo.driver.set_window_size(1280, 900)
    base = dash_duo.server.url
    browser_login(dash_duo, base, user=ADMIN, next_path="/users")
    dash_duo.wait_for_element("#users-table", timeout=20)
    dash_duo.find_element("#users-new-name").send_keys("nina")
    dash_duo.find_element("#users-new-submit").click()
    dash_duo.wait_for_contains_text("#users-message", "One-time password", timeout=20)
    password = dash_duo.find_element("#users-one-time-password").text
    dash_duo.wait_for_contains_text("#users-table", "nina", timeout=20)
    screenshot(dash_duo, "users")
    dash_duo.find_element("#nav-logout").click()
    dash_duo.wait_for_element("#login-name", timeout=20)
    driver = dash_duo.driver
    driver.find_element(By.ID, "login-name").send_keys("nina")
    driver.find_element(By.ID, "login-password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    dash_duo.wait_for_element("#password-new", timeout=20)
    screenshot(dash_duo, "account-password")
    driver.find_element(By.ID, "password-current").send_keys(password)
    driver.find_element(By.ID, "password-new").send_keys("ninas-own-pass")
    driver.find_element(By.ID, "password-again").send_keys("ninas-own-pass")
    driver.find_element(By.ID, "password-submit").click()
    dash_duo.wait_for_element("#nav-user", timeout=20)
    assert "nina (clinician)" in dash_duo.find_element("#nav-user").text
    assert not driver.find_elements(By.CSS_SELECTOR, "#nav-users")
    driver.get(base + "/users")
    dash_duo.wait_for_element("#not-allowed", timeout=20)
    assert not driver.find_elements(By.CSS_SELECTOR, "#users-table")
    screenshot(dash_duo, "users-not-allowed")
    records_users.set_active(dashboard_db, "nina", False, actor=ADMIN[0])  # her session ends on the server...
    driver.find_element(By.ID, "nav-patients").click()  # ...so the next callback is refused (401)
    dash_duo.wait_for_element("#login-name", timeout=20)  # and the page goes to the login (assets/auth.js)
    assert "next=" in driver.current_url and "patients" in driver.current_url  # back there after the login
