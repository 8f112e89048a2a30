"""The job system end to end with a real Redis, real `celery worker` and beat processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_BRIEF, small_brief

pytestmark = pytest.mark.integration


def submit(client, token, brief):
    response = client.post("/tasks/video/async", data=json.dumps(brief, ensure_ascii=False),
                           content_type="application/json", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()


def ffprobe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def events(task_id: str) -> list[str]:
    from webapp.services.tasks import events_of

    return [e.kind for e in events_of(task_id)]


def stage_ids(task_id: str) -> list[str]:
    from webapp.services.tasks import events_of

    return [e.data["stage"] for e in events_of(task_id) if e.kind == "stage"]


def stage_events(task_id: str) -> dict[str, dict]:
    from webapp.services.tasks import events_of

    return {e.data["stage"]: e.data for e in events_of(task_id) if e.kind == "stage"}


def test_sample_brief_becomes_a_real_mp4(app, client, stack, make_token):
    """SPEC's sample brief at a small size: status goes to completed, ffprobe confirms the file."""
    token = make_token("operator")
    stack.start_worker()
    brief = {**SAMPLE_BRIEF, "target_duration_id": 6, "config": {"quality": "low", "resolution": "320x180"}}
    task_id = submit(client, token, brief)["task_id"]
    task = stack.wait_status(task_id, "completed", timeout=120)
    status = client.get(f"/tasks/status/{task_id}", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert status["progress"] == 100.0 and status["error"] is None
    assert status["actual_duration"] is not None
    video = next(f for f in status["result"]["files"] if f["kind"] == "video")
    path = Path(app.config["MEDIA_ROOT"]) / task_id / video["name"]
    info = ffprobe(path)
    streams = {s["codec_type"]: s for s in info["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["video"]["pix_fmt"] == "yuv420p"
    assert (streams["video"]["width"], streams["video"]["height"]) == (320, 180)
    fps = eval(streams["video"]["r_frame_rate"])  # "24/1"
    assert abs(float(info["format"]["duration"]) - 6.0) <= 1.0 / fps + 1e-3
    assert streams["audio"]["codec_name"] == "aac"
    # Subtitles: both sidecars present, every cue inside the video.
    kinds = {f["kind"]: f for f in status["result"]["files"]}
    assert {"video", "poster", "thumbnail", "srt", "vtt"} <= set(kinds)
    vtt = (Path(app.config["MEDIA_ROOT"]) / task_id / kinds["vtt"]["name"]).read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT")
    import re

    stamps = re.findall(r"(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)", vtt)
    assert stamps
    for h1, m1, s1, ms1, h2, m2, s2, ms2 in stamps:
        start = int(h1) * 3600 + int(m1) * 60 + int(s1) + int(ms1) / 1000
        end = int(h2) * 3600 + int(m2) * 60 + int(s2) + int(ms2) / 1000
        assert 0 <= start < end <= 6.0
    assert any("\u4e00" <= ch <= "\u9fff" for ch in vtt)  # Chinese captions for a Chinese brief
    kinds = events(task_id)
    assert kinds[:2] == ["created", "started"] and kinds[-1] == "completed"
    assert {"visuals", "audio", "chunk-0", "assemble"} <= {e for e in stage_ids(task_id)}
    assert task.lease_owner is None
    # Served under /media with Range support.
    ranged = client.get(video["url"], headers={"Authorization": f"Bearer {token}", "Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.data) == 100
    assert client.get(f"/media/{task_id}/../../etc/passwd",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 404
    assert client.get(video["url"]).status_code == 401


@pytest.mark.sqlite_only
def test_urgent_task_starts_next_when_every_slot_is_busy(app, client, stack, make_token):
    token = make_token("operator")
    stack.start_worker(concurrency=1)
    blocker = submit(client, token, small_brief(target_duration_id=8))["task_id"]
    stack.wait_status(blocker, "processing", timeout=60)
    lows = [submit(client, token, small_brief(priority="low"))["task_id"] for _ in range(3)]
    urgent = submit(client, token, small_brief(priority="urgent"))["task_id"]
    for task_id in [blocker, urgent, *lows]:
        stack.wait_status(task_id, "completed", timeout=120)
    started = {t: stack.task(t).started_at for t in [urgent, *lows]}
    assert min(started, key=started.get) == urgent, started


@pytest.mark.sqlite_only
def test_cancel_while_queued(app, client, stack, make_token):
    token = make_token("operator")
    task_id = submit(client, token, small_brief())["task_id"]
    response = client.post(f"/tasks/{task_id}/cancel", headers={"Authorization": f"Bearer {token}"})
    assert response.get_json()["status"] == "cancelled"
    stack.start_worker()
    marker = submit(client, token, small_brief())["task_id"]  # published after the cancelled one
    stack.wait_status(marker, "completed", timeout=120)
    task = stack.task(task_id)
    assert task.status == "cancelled" and task.started_at is None
    assert not (Path(app.config["MEDIA_ROOT"]) / task_id).exists()


def _children_running(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.sqlite_only
def test_cancel_while_running_stops_quickly_and_leaves_nothing(app, client, stack, make_token):
    token = make_token("operator")
    stack.start_worker()
    # 720p: a 640x360 chunk renders in about 0.3 s, too short a stage to be seen running.
    task_id = submit(client, token, small_brief(target_duration_id=60,
                                                config={"quality": "low", "resolution": "1280x720"}))["task_id"]
    stack.wait_for(lambda: (t := stack.task(task_id)).status == "processing" and t.stage == "render",
                   90, "rendering to start")
    asked = time.monotonic()
    client.post(f"/tasks/{task_id}/cancel", headers={"Authorization": f"Bearer {token}"})
    stack.wait_status(task_id, "cancelled", timeout=15)
    assert time.monotonic() - asked < 5
    media = Path(app.config["MEDIA_ROOT"])
    time.sleep(0.5)
    assert not (media / task_id).exists()
    assert not (media / "work" / task_id).exists()
    assert not list((media / "tmp").glob(f"{task_id}*")) if (media / "tmp").exists() else True
    assert _children_running(f"ffmpeg.*{task_id}") == []
    kinds = events(task_id)  # a stage that finished as the cancel came may log between the two
    assert kinds[-1] == "cancelled" and "cancel_requested" in kinds


@pytest.mark.sqlite_only
def test_kill_9_of_the_rendering_process_still_completes_once(app, client, stack, make_token):
    """The process rendering a chunk dies: its stage lease expires, the reconciler publishes that
    stage again and the same attempt completes; the stages already done are not redone."""
    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.models import RenderStage

    token = make_token("operator")
    stack.start_worker(concurrency=1)
    stack.start_beat()
    task_id = submit(client, token, small_brief(target_duration_id=20,
                                                config={"quality": "low", "resolution": "320x180"}))["task_id"]

    def rendering():
        db.session.rollback()
        return db.session.scalars(select(RenderStage).where(
            RenderStage.task_id == task_id, RenderStage.kind == "render",
            RenderStage.status == "running")).first()

    stage = stack.wait_for(rendering, 90, "rendering to start")
    os.kill(int(stage.owner.split(":")[1]), signal.SIGKILL)
    db.session.rollback()
    done = set(db.session.scalars(select(RenderStage.stage_id).where(
        RenderStage.task_id == task_id, RenderStage.status == "done")))
    task = stack.wait_status(task_id, "completed", timeout=120)
    kinds = events(task_id)
    assert kinds.count("completed") == 1
    assert "stage_lease_expired" in kinds and "lease_expired" not in kinds
    assert task.attempt == 1
    rows = {s.stage_id: s for s in task.stage_rows()}
    assert rows[stage.stage_id].tries == 2
    assert "visuals" in done  # the chunks' input
    assert all(rows[stage_id].tries == 1 for stage_id in done)
    files = sorted(get_storage_keys(task_id))
    assert files.count(f"{task_id}/video.mp4") == 1
    stack.wait_artifacts_removed(task_id)


@pytest.mark.sqlite_only
def test_a_worker_of_one_slot_runs_a_second_stage_on_an_idle_core(app, client, stack, make_token):
    """One worker with concurrency 1 on every queue, on a machine of two cores or more: while it
    runs a stage it takes another queued stage of the task beside it, so stages overlap on that one
    runner; each stage runs once, and the messages of the stages taken beside end as Ignore. A
    worker with a slot per core takes nothing beside."""
    from worker.pipeline.proc import allotted_cores

    if allotted_cores() < 2:
        pytest.skip("needs two cores")
    token = make_token("operator")
    node = stack.start_worker(concurrency=1, name="one")
    task_id = submit(client, token, small_brief(target_duration_id=24))["task_id"]
    task = stack.wait_status(task_id, "completed", timeout=120)
    rows = task.stage_rows()
    assert {row.runner for row in rows} == {node}
    assert all(row.tries == 1 for row in rows)
    spans = [(row.started_at, row.finished_at) for row in rows]
    overlapping = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:] if a[0] < b[1] and b[0] < a[1]]
    assert overlapping, spans
    beside = stack.log_text("one").count("runs beside")
    assert beside >= 1
    # Each stage taken beside still has its message, which ends as Ignore when it comes.
    ignored = re.compile(r"aura\.stage\.run \S+ ignored: (duplicate|stale)")
    stack.wait_for(lambda: len(ignored.findall(stack.log_text("one"))) >= beside, 20,
                   "the messages of the stages taken beside to be ignored")

    stack.stop("one")
    stack.start_worker(concurrency=allotted_cores(), name="full")
    second = submit(client, token, small_brief(target_duration_id=24))["task_id"]
    stack.wait_status(second, "completed", timeout=120)
    assert "runs beside" not in stack.log_text("full")


def get_storage_keys(prefix: str) -> list[str]:
    from webapp.storage import get_storage

    return list(get_storage().list(prefix.rstrip("/") + "/"))


@pytest.mark.sqlite_only
def test_redis_restarted_empty_while_tasks_wait(app, client, stack, make_token, redis_server):
    import redis as redis_lib

    from webapp.services.broker import SENTINEL_KEY

    token = make_token("operator")
    stack.start_worker(queues=["maintenance"], name="ops")
    stack.start_beat()
    client_redis = redis_lib.Redis.from_url(redis_server.url)
    stack.wait_for(lambda: client_redis.get(SENTINEL_KEY), 30, "the reconciler's sentinel")
    ids = [submit(client, token, small_brief())["task_id"] for _ in range(3)]
    assert client_redis.llen("video_generation:6") == 3
    redis_server.restart()
    assert redis_lib.Redis.from_url(redis_server.url).llen("video_generation:6") == 0
    stack.start_worker(queues=["video_generation", "image_processing", "audio_processing", "video_processing"],
                       name="video")
    for task_id in ids:
        stack.wait_status(task_id, "completed", timeout=120)
        assert "redispatched" in events(task_id)


@pytest.mark.sqlite_only
def test_redis_down_at_submit_then_back(app, client, stack, make_token, redis_server):
    token = make_token("operator")
    redis_server.stop()
    started = time.monotonic()
    body = submit(client, token, small_brief())
    assert time.monotonic() - started < 5
    assert body["status"] == "pending"
    redis_server.start()
    stack.start_worker()
    stack.start_beat()
    stack.wait_status(body["task_id"], "completed", timeout=120)
    assert "dispatched" in events(body["task_id"])


@pytest.mark.sqlite_only
def test_stages_run_on_their_own_queues(app, client, stack, make_token):
    """Storyboard on video_generation, visuals on image_processing, audio on audio_processing,
    chunks and assembly on video_processing: each seen on the worker that serves only that queue."""
    token = make_token("operator")
    nodes = {
        "video_generation": stack.start_worker(["video_generation"], name="gen"),
        "image_processing": stack.start_worker(["image_processing"], name="img"),
        "audio_processing": stack.start_worker(["audio_processing"], name="aud"),
        "video_processing": stack.start_worker(["video_processing"], name="vid", concurrency=2),
    }
    task_id = submit(client, token, small_brief(target_duration_id=24))["task_id"]
    stack.wait_status(task_id, "completed", timeout=120)
    done = stage_events(task_id)
    by_host = {stage: info["by"].split(":")[0] for stage, info in done.items()}
    assert by_host["visuals"] == nodes["image_processing"]
    assert by_host["audio"] == nodes["audio_processing"]
    chunks = [s for s in by_host if s.startswith("chunk-")]
    assert len(chunks) >= 2
    assert all(by_host[c] == nodes["video_processing"] for c in chunks)
    assert by_host["assemble"] == nodes["video_processing"]
    assert stack.task(task_id).lease_owner is None
