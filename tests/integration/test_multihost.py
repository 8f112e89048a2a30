"""Two worker "hosts" sharing nothing but Redis, PostgreSQL and S3 (moto's server).

Each host is a `celery worker` of its own node name with its own scratch, media and instance
folders; no file is shared between them or with the web app."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from tests.conftest import SAMPLE_BRIEF

pytestmark = pytest.mark.integration


def _host_env(tmp_path: Path, host: str) -> dict[str, str]:
    base = tmp_path / host
    for sub in ("scratch", "media", "instance"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    return {"SCRATCH_DIR": str(base / "scratch"), "MEDIA_ROOT": str(base / "media"),
            "AURA_INSTANCE": str(base / "instance")}


@pytest.fixture
def two_hosts(app, stack, s3_server, db_backend, tmp_path):
    if db_backend != "postgresql":
        pytest.skip("the multi-host run uses PostgreSQL")
    import secrets

    settings = s3_server.config(f"hosts-{secrets.token_hex(4)}")
    app.config.update(settings)
    stack.env.update(settings)
    nodes = {}
    for host in ("hostA", "hostB"):
        nodes[host] = stack.start_worker(name=host, node=f"render@{host}", concurrency=2,
                                         env=_host_env(tmp_path, host))
    stack.start_beat()
    return nodes


def submit(client, token, brief) -> str:
    response = client.post("/tasks/video/async", data=json.dumps(brief, ensure_ascii=False),
                           content_type="application/json", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["task_id"]


def brief(seconds: int, resolution: str = "640x360") -> dict:
    return {**SAMPLE_BRIEF, "target_duration_id": seconds, "priority": "normal",
            "config": {"quality": "low", "resolution": resolution}}


def test_chunks_run_on_both_hosts_and_a_killed_host_is_survived(app, client, stack, make_token, two_hosts,
                                                               tmp_path):
    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.models import RenderStage
    from webapp.services.reconcile import sweep_orphans
    from webapp.storage import get_storage

    token = make_token("operator")
    auth = {"Authorization": f"Bearer {token}"}
    storage = get_storage()

    # 1. The SPEC sample: its chunks run on both hosts; the stage rows name both runners.
    first = submit(client, token, brief(30))
    stack.wait_status(first, "completed", timeout=240)
    status = client.get(f"/tasks/status/{first}", headers=auth).get_json()
    runners = {s["runner"] for s in status["stages"] if s["kind"] == "render"}
    assert runners == set(two_hosts.values()), status["stages"]
    assert all(s["status"] == "done" and s["seconds"] is not None for s in status["stages"])
    assert sorted(storage.list(f"{first}/")) == sorted(f"{first}/{f['name']}" for f in status["result"]["files"])
    stack.wait_artifacts_removed(first)

    # 2. kill -9 of one host's worker processes mid-render: the other host finishes the task.
    # 720p: a 360p chunk renders in about 0.3 s, too short to be caught mid-render.
    second = submit(client, token, brief(40, "1280x720"))

    def running_chunk():
        db.session.rollback()
        return db.session.scalars(select(RenderStage).where(
            RenderStage.task_id == second, RenderStage.kind == "render", RenderStage.status == "running",
            RenderStage.progress > 0.1, RenderStage.progress < 0.6)).first()

    victim = stack.wait_for(running_chunk, 180, "a chunk to be rendering", interval=0.2)
    host = next(h for h, node in two_hosts.items() if node == victim.runner)
    survivor = next(node for h, node in two_hosts.items() if h != host)
    stack.stop(host, signal.SIGKILL)
    # What the dead host still held once it was gone is what it lost (a chunk may have finished in
    # the moment between the look and the kill; that one is simply done).
    db.session.rollback()
    lost = db.session.scalars(select(RenderStage.stage_id).where(
        RenderStage.task_id == second, RenderStage.status == "running",
        RenderStage.runner == victim.runner)).all()
    assert lost, "the killed host held no running stage"
    stack.wait_status(second, "completed", timeout=240)
    status = client.get(f"/tasks/status/{second}", headers=auth).get_json()
    assert status["attempt"] == 1  # the attempt went on: only the lost stages ran again
    for stage_id in lost:
        again = next(s for s in status["stages"] if s["stage"] == stage_id)
        assert again["runner"] == survivor and again["tries"] == 2, again
    from webapp.services.tasks import events_of

    kinds = [e.kind for e in events_of(second)]
    assert kinds.count("completed") == 1 and "stage_lease_expired" in kinds
    outputs = sorted(storage.list(f"{second}/"))
    assert [k for k in outputs if k.endswith(".mp4")] == [f"{second}/video.mp4"]
    stack.wait_artifacts_removed(second)
    assert sweep_orphans()["orphan_objects"] == 0
    assert list((tmp_path / next(h for h in two_hosts if h != host) / "scratch").iterdir()) == []
    # The killed host left the scratch folder of its stage; its orphan sweep removes it.
    from webapp.storage import sweep_scratch

    victim_scratch = tmp_path / host / "scratch"
    assert sweep_scratch({"SCRATCH_DIR": str(victim_scratch)}, live=[], min_age=0) >= 1
    assert list(victim_scratch.iterdir()) == []

    # 3. The web app serves the video through /media: a redirect to S3 that honours Range.
    video = status["result"]["video_url"]
    response = client.get(video, headers=auth)
    assert response.status_code == 302
    ranged = requests.get(response.headers["Location"], headers={"Range": "bytes=0-1023"}, timeout=10)
    assert ranged.status_code == 206 and len(ranged.content) == 1024
    full = requests.get(response.headers["Location"], timeout=30).content
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", "-"],
                           input=full, capture_output=True, check=True).stdout
    assert abs(float(probe) - 40) < 0.2
