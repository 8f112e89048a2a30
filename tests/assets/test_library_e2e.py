"""The library page in headless Chromium: files chosen with the file chooser and dropped on the drop
zone, one progress bar each, thumbnails in the grid, a clip and an audio file that play, delete."""

from __future__ import annotations

import base64

import pytest

from tests.assets.media import make_audio, make_clip, make_font, make_image

pytestmark = [pytest.mark.e2e, pytest.mark.sqlite_only]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e-media")
    return {
        "clip.mp4": make_clip(folder / "clip.mp4", seconds=2.0),
        "tone.ogg": make_audio(folder / "tone.ogg"),
        "photo.jpg": make_image(folder / "photo.jpg"),
        "box.ttf": make_font(folder / "box.ttf"),
        "logo.png": make_image(folder / "logo.png", size=(120, 60), alpha=True),
        "clip.webm": make_clip(folder / "clip.webm", seconds=1.0),
        "tone.wav": make_audio(folder / "tone.wav", seconds=1.0),
        "fake.mp4": make_image(folder / "fake.png"),
    }


def drop(page, selector: str, items: list[tuple[str, bytes, str]]) -> None:
    """Drop files on an element as a user dragging them from the desktop would."""
    payload = [{"name": n, "data": base64.b64encode(d).decode(), "type": t} for n, d, t in items]
    transfer = page.evaluate_handle("""(files) => {
        const dt = new DataTransfer();
        for (const f of files) {
            const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));
            dt.items.add(new File([bytes], f.name, {type: f.type}));
        }
        return dt;
    }""", payload)
    page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(selector, "dragover", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def test_upload_by_chooser_and_drop_then_play_and_delete(page, live_server, login, files):
    login(page, "operator", "olga")
    page.get_by_role("link", name="Library").click()
    page.wait_for_url(f"{live_server}/library")
    page.get_by_label("Tags for these files").fill("campaign")

    # The file chooser: three files at once, each with its own bar.
    with page.expect_file_chooser() as chooser:
        page.get_by_text("choose files").click()
    chooser.value.set_files([str(files[n]) for n in ("clip.mp4", "tone.ogg", "photo.jpg")])
    items = page.locator("#upload-list .upload-item")
    page.wait_for_function("() => document.querySelectorAll('#upload-list .upload-item[data-state]').length === 3",
                           timeout=60_000)
    assert items.count() == 3
    for i in range(3):
        assert items.nth(i).get_attribute("data-state") == "done", items.nth(i).inner_text()
        assert items.nth(i).locator("[role=progressbar]").get_attribute("aria-valuenow") == "100"

    # Drag and drop: a font, a logo (PNG files as logos), a WebM, a WAV and a PNG posing as an MP4.
    page.get_by_label("PNG files are").select_option("logo")
    drop(page, "#drop-zone", [(n, files[n].read_bytes(), "") for n in ("box.ttf", "logo.png", "clip.webm",
                                                                        "tone.wav", "fake.mp4")])
    page.wait_for_function("() => document.querySelectorAll('#upload-list .upload-item[data-state]').length === 8",
                           timeout=60_000)
    refused = page.locator('#upload-list .upload-item[data-name="fake.mp4"]')
    assert refused.get_attribute("data-state") == "failed"
    assert "not a valid MP4" in refused.inner_text()
    page.wait_for_function("() => document.querySelectorAll('#asset-grid .asset-card').length === 7", timeout=20_000)
    grid = page.locator("#asset-grid")
    for kind, count in (("clip", 2), ("audio", 2), ("image", 1), ("font", 1), ("logo", 1)):
        assert grid.locator(f'.asset-card[data-kind="{kind}"]').count() == count, kind
    assert "campaign" in grid.locator('.asset-card[data-kind="image"]').inner_text()
    # Every thumbnail loaded as a real picture.
    page.wait_for_function("""() => [...document.querySelectorAll('#asset-grid img')]
        .every(img => img.complete && img.naturalWidth > 0)""", timeout=20_000)
    assert page.locator("#asset-grid img").count() == 5  # image, logo, font, two waveforms

    # A clip and an audio file play in the page.
    for selector in ('.asset-card[data-kind="clip"] video', '.asset-card[data-kind="audio"] audio'):
        media = grid.locator(selector).first
        page.evaluate("m => { m.muted = true; return m.play(); }", media.element_handle())
        page.wait_for_function("m => m.currentTime > 0.2", arg=media.element_handle(), timeout=20_000)

    # Delete the picture.
    card = grid.locator('.asset-card[data-kind="image"]')
    card.get_by_role("button", name="Delete photo.jpg").click()
    page.wait_for_selector(".flash-success")
    assert "Deleted photo.jpg." in page.locator(".flashes").inner_text()
    assert page.locator('#asset-grid .asset-card[data-kind="image"]').count() == 0


def test_library_page_in_chinese(page, live_server, login, files):
    login(page, "operator", "wang")
    page.get_by_role("button", name="中文").click()
    page.wait_for_selector('html[lang="zh-CN"]')
    page.get_by_role("link", name="素材库").click()
    page.wait_for_url(f"{live_server}/library")
    with page.expect_file_chooser() as chooser:
        page.get_by_text("选择文件").click()
    chooser.value.set_files([{"name": "fake.mp4", "mimeType": "video/mp4", "buffer": files["fake.mp4"].read_bytes()}])
    item = page.locator('#upload-list .upload-item[data-name="fake.mp4"][data-state="failed"]')
    item.wait_for(timeout=30_000)
    assert "已拒绝" in item.inner_text()


def test_preview_button_plays_the_preview_inline(page, live_server, login, stack):
    stack.start_worker(concurrency=1)
    login(page, "operator", "olga")
    page.evaluate("window.__noReload = true")
    page.get_by_label("Theme", exact=True).fill("Preview me")
    keywords = page.get_by_label("Keywords", exact=True)
    keywords.fill("fast")
    keywords.press("Enter")
    page.get_by_label("Target duration (seconds)").fill("30")
    page.get_by_label("Quality", exact=True).select_option("high")
    page.get_by_role("button", name="Preview").click()
    player = page.locator("#preview-box video#preview-player")
    player.wait_for(timeout=120_000)
    page.wait_for_function("() => document.querySelector('#preview-player').readyState >= 1", timeout=20_000)
    assert abs(page.evaluate("document.querySelector('#preview-player').duration") - 10.0) < 0.2
    assert page.evaluate("document.querySelector('#preview-player').videoWidth") == 640
    page.evaluate("v => { v.muted = true; return v.play(); }", player.element_handle())
    page.wait_for_function("() => document.querySelector('#preview-player').currentTime > 0.3", timeout=20_000)
    assert page.evaluate("window.__noReload") is True
    # The form kept what was typed: the preview does not submit.
    assert page.get_by_label("Theme", exact=True).input_value() == "Preview me"
