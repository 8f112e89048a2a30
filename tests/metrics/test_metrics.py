"""/metrics read by prometheus_client's own parser: values match the database and Redis after a
known workload; access rules; several gunicorn workers add up (multiprocess mode)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, small_brief


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of an exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_match_the_database_and_redis(client, app, make_token, make_task, redis_server):
    import redis

    from webapp.extensions import db
    from webapp.models import WorkerPool, WorkerSlot
    from webapp.services import broker
    from webapp.timeutil import utcnow

    operator = _auth(make_token("operator"))
    # A known workload: 3 submitted through the API (queued, in Redis), 2 of them cancelled,
    # rows in other states, a pool of 2 with one running slot.
    ids = [client.post("/tasks/video/async", headers=operator,
                       json=small_brief(priority=p)).get_json()["task_id"] for p in ("urgent", "low", "low")]
    before = samples(client.get("/metrics", headers=operator).get_data(as_text=True))
    for task_id in ids[1:]:
        client.post(f"/tasks/{task_id}/cancel", headers=operator)
    make_task(status="completed", finished_at=utcnow(), actual_duration=12.0)
    make_task(status="failed", finished_at=utcnow())
    make_task(status="queued", created_at=utcnow() - timedelta(seconds=90))
    pool = WorkerPool(name="video", queues=["video_generation"], desired_count=2)
    db.session.add(pool)
    db.session.flush()
    db.session.add(WorkerSlot(pool_id=pool.id, slot=1, name="video", state="running", restarts=3,
                              lease_expires_at=utcnow() + timedelta(seconds=30)))
    db.session.commit()

    response = client.get("/metrics", headers=operator)
    assert response.status_code == 200 and response.mimetype == "text/plain"
    got = samples(response.get_data(as_text=True))
    counts = dict(db.session.execute(__import__("sqlalchemy").text(
        "SELECT status, count(*) FROM render_tasks GROUP BY status")).all())
    for state in ("pending", "queued", "processing", "completed", "failed", "cancelled", "retry"):
        assert got[("aura_tasks", (("state", state),))] == counts.get(state, 0), state
    assert counts == {"queued": 2, "cancelled": 2, "completed": 1, "failed": 1}

    r = redis.Redis.from_url(redis_server.url)
    for priority, level in (("urgent", 0), ("high", 3), ("normal", 6), ("low", 9)):
        expected = r.llen(broker.list_key("video_generation", level))
        assert got[("aura_queue_waiting_messages", (("priority", priority), ("queue", "video_generation")))] \
            == expected
    assert got[("aura_queue_waiting_messages", (("priority", "urgent"), ("queue", "video_generation")))] == 1
    assert got[("aura_queue_waiting_messages", (("priority", "low"), ("queue", "video_generation")))] == 2
    assert 85 <= got[("aura_queue_oldest_wait_seconds", (("queue", "video_generation"),))] <= 200
    assert got[("aura_pool_desired_workers", (("pool", "video"),))] == 2
    assert got[("aura_pool_running_workers", (("pool", "video"),))] == 1
    assert got[("aura_supervisor_restarts", (("pool", "video"),))] == 3
    assert got[("aura_broker_up", ())] == 1
    key = ("aura_tasks_finished_total", (("quality", "low"), ("resolution_class", "sd"), ("status", "cancelled")))
    assert got[key] - before.get(key, 0) == 2
    latency = ("aura_http_request_duration_seconds_count",
               (("method", "POST"), ("route", "/tasks/video/async"), ("status", "202")))
    assert got[latency] >= 3


def test_metrics_access(client, app, make_token):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=_auth("nonsense")).status_code == 401
    assert client.get("/metrics", headers=_auth(make_token("viewer"))).status_code == 200
    app.config["METRICS_ALLOWED_IPS"] = ["127.0.0.0/8"]
    assert client.get("/metrics").status_code == 200  # the test client comes from 127.0.0.1
    app.config["METRICS_ALLOWED_IPS"] = ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 401


@pytest.mark.sqlite_only
def test_gunicorn_workers_add_up(app, make_token, tmp_path: Path):
    """Two gunicorn workers, PROMETHEUS_MULTIPROC_DIR from gunicorn.conf.py: every scrape (whichever
    worker answers) counts the requests both served."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from embedded_redis import free_port

    token = make_token("viewer")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "REDIS_URL": app.config["REDIS_URL"],
           "AURA_INSTANCE": str(tmp_path / "inst"), "MEDIA_ROOT": str(tmp_path / "media"), "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "wsgi:app", "-b", f"127.0.0.1:{port}",
                             "-w", "2", "-k", "gthread", "--threads", "2"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        for _ in range(30):  # spread over both workers by the kernel
            urllib.request.urlopen(base + "/readyz", timeout=5).read()
        assert (tmp_path / "inst" / "prometheus").is_dir()
        for _ in range(4):
            request = urllib.request.Request(base + "/metrics", headers=_auth(token))
            text = urllib.request.urlopen(request, timeout=5).read().decode()
            got = samples(text)
            assert got[("aura_http_request_duration_seconds_count",
                        (("method", "GET"), ("route", "/readyz"), ("status", "200")))] == 30
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)
