"""A batch file dropped on the dashboard in headless Chromium: invalid rows shown before anything
is queued, then one line with a progress bar that follows the batch."""

from __future__ import annotations

import pytest

from tests.conftest import SCREENSHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.sqlite_only]

CSV = ("theme_id,keywords_id,target_duration_id,priority,quality,resolution\\n"
       "产品宣传,科技;创新,5,high,low,256x144\\n"
       ",科技,5,normal,low,256x144\\n"
       "旅行,山;海,5,low,low,256x144\\n")


def test_drop_a_csv_preview_then_queue_and_follow(page, live_server, login):
    from webapp.extensions import db
    from webapp.models import RenderTask

    login(page, "operator", "bella")
    zone = page.locator("form[data-dropzone]")
    zone.wait_for()
    page.evaluate(f"""() => {{
        const dt = new DataTransfer();
        dt.items.add(new File(["{CSV}"], "briefs.csv", {{type: "text/csv"}}));
        document.querySelector("form[data-dropzone]").dispatchEvent(
            new DragEvent("drop", {{dataTransfer: dt, bubbles: true, cancelable: true}}));
    }}""")
    preview = page.locator("#batch-preview")
    preview.get_by_text("2 valid, 1 invalid").wait_for()
    assert preview.locator("tr[data-row='2']").inner_text().count("theme_id") == 1
    db.session.expire_all()
    assert db.session.query(RenderTask).count() == 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "batch-preview.png"), full_page=True)
    preview.get_by_role("button", name="Queue 2 videos").click()
    line = page.locator("#batch-preview .batch-line")
    line.wait_for()
    assert "0 of 2 finished" in line.inner_text()
    assert line.locator("[role=progressbar]").count() == 1
    db.session.expire_all()
    assert db.session.query(RenderTask).count() == 2
