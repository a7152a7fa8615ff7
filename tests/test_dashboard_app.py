"""The dashboard's frame in a real browser: the login page, the navigation and the page router."""

from __future__ import annotations

import pytest
from helpers import browser_login

from steplab.dashboard.app import create_app
from steplab.dashboard.context import DashContext

pytestmark = pytest.mark.browser


def test_login_opens_the_patients_page_with_the_navigation(dash_duo, dashboard_db):
    app = create_app(DashContext(db=dashboard_db))
    dash_duo.start_server(app, navigate=False)
    browser_login(dash_duo, dash_duo.server.url)
    dash_duo.wait_for_element("#patients-page", timeout=15)
    assert "clin" in dash_duo.find_element("#nav-user").text
    assert not dash_duo.driver.find_elements("css selector", "#nav-users")  # a clinician has no admin link
    dash_duo.driver.get(dash_duo.server.url + "/no/such/page")
    dash_duo.wait_for_element("#not-found", timeout=15)
