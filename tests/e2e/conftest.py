"""End-to-end fixtures: the test app served over HTTP from a thread, headless Debian chromium."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The app on a free local port, with CSRF protection on as in production."""
    app.config["WTF_CSRF_ENABLED"] = True
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (bash scripts/setup.sh --dev)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request) -> Iterator[Any]:
    """A fresh browser context and page; a screenshot of the last page is saved at the end."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "_")
    try:
        tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def login(live_server, make_user) -> Callable[..., Any]:
    """login(page, role) creates a user of that role and signs in through the form."""

    def sign_in(page: Any, role: str = "operator", username: str | None = None) -> Any:
        user = make_user(username or f"{role}-e2e", role)
        page.goto(f"{live_server}/login")
        page.get_by_label("User name").fill(user.username)
        page.get_by_label("Password").fill("password123")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server}/")
        return user

    return sign_in
