"""The dashboard's pages.  Each module holds one ``page``: its path, title, layout and callbacks.

A path may hold parameters (``/trials/<trial_id>``); ``layout(ctx, params, query)``
builds the page for one request (the logged-in user is ``dashboard.auth.current_actor()``),
``register(app, ctx)`` adds its callbacks once.  Component ids start with the page's
name so pages never collide.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Page:
    name: str
    path: str  # "/patients", "/trials/<trial_id>"
    title: str
    layout: Callable[..., Any]  # layout(ctx, params: dict[str, str], query: dict[str, str]) -> component
    register: Callable[..., None] | None = None  # register(app, ctx)
    admin: bool = False  # admins only
    nav: bool = True  # listed in the navigation bar (pages without parameters only)

    def match(self, path: str) -> dict[str, str] | None:
        pattern = "^" + re.sub(r"<(\w+)>", r"(?P<\1>[^/]+)", re.escape(self.path).replace(r"\<", "<").replace(r"\>", ">")) + "/?$"
        m = re.match(pattern, path)
        return m.groupdict() if m else None


def all_pages() -> list[Page]:
    """Every page, in navigation order."""
    from . import calibration, export, patient, patients, progress, session, trial, users, visit

    return [patients.page, session.page, calibration.page, export.page, users.page, patient.page, visit.page,
            trial.page, progress.page]


def find(pages: list[Page], path: str) -> tuple[Page, dict[str, str]] | None:
    for p in pages:
        params = p.match(path)
        if params is not None:
            return p, params
    return None
