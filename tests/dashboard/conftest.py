"""Fixtures of the dashboard view tests: a client whose every request runs in its own app context,
signed-in users, and a SQL statement counter."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event


@pytest.fixture
def sign_in(client, make_user) -> Callable[..., Any]:
    """sign_in(role="operator", username=None) creates a user and signs the client in as them."""

    def login(role: str = "operator", username: str | None = None):
        user = make_user(username or f"{role}1", role)
        response = client.post("/login", data={"username": user.username, "password": "password123"})
        assert response.status_code == 302, response.get_data(as_text=True)
        return user

    return login


HTMX = {"HX-Request": "true"}


def csrf_from(html: str) -> str:
    """The CSRF token of a rendered page."""
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html) or \
        re.search(r'"X-CSRFToken": "([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture
def count_queries(app) -> Callable[[], Any]:
    """with count_queries() as statements: ... collects the SQL run inside the block."""
    from webapp.extensions import db

    @contextmanager
    def counting() -> Iterator[list[str]]:
        statements: list[str] = []

        def record(_conn, _cursor, statement, *_args):
            statements.append(statement)

        engine = db.engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            yield statements
        finally:
            event.remove(engine, "before_cursor_execute", record)

    return counting


@pytest.fixture(autouse=True)
def board_rebuilds_at_once(monkeypatch):
    """Tests change rows and poll again within a second: let every change rebuild the live board."""
    from webapp.dashboard import live

    monkeypatch.setattr(live, "MIN_REBUILD_SECONDS", 0.0)
