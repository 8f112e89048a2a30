"""The admin page's buttons in headless Chromium, against a real supervisor and worker."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.sqlite_only]


def test_admin_starts_pauses_resumes_and_stops_a_worker(fleet, live_server, page, login):
    fleet.start_supervisor()
    fleet.wait_supervisors(1)
    login(page, "admin")
    page.goto(f"{live_server}/admin")
    page.locator("#start-name").fill("e2e_worker")
    page.locator("#start-concurrency").fill("1")
    page.get_by_role("button", name="Start worker").click()

    row = page.locator('tr[data-worker="e2e_worker"]')
    row.wait_for()
    assert "will start" in page.locator("#fleet .notice-success").inner_text()
    page.wait_for_selector('tr[data-worker="e2e_worker"][data-state="running"]', timeout=60_000)
    assert "video_generation" in row.inner_text()

    page.get_by_role("button", name="Pause e2e_worker").click()
    page.wait_for_selector('tr[data-worker="e2e_worker"][data-state="paused"]', timeout=30_000)
    page.get_by_role("button", name="Resume e2e_worker").click()
    page.wait_for_selector('tr[data-worker="e2e_worker"][data-state="running"]', timeout=30_000)

    dialogs: list[str] = []

    def accept(dialog):
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.get_by_role("button", name="Stop e2e_worker").click()
    page.wait_for_selector('tr[data-worker="e2e_worker"][data-state="stopped"]', timeout=60_000)
    assert dialogs and "Stop worker e2e_worker?" in dialogs[0]
    page.get_by_role("button", name="Start e2e_worker").wait_for()
    audit = page.locator("#audit-log")
    audit.get_by_text("user:admin-e2e").first.wait_for(timeout=15_000)
    assert audit.locator('tr[data-result="ok"]').count() == 4  # start, pause, resume, stop
