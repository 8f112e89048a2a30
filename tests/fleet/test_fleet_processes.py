"""The worker fleet with real supervisor, `celery worker` and Redis processes (SQLite)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.fleet.conftest import worker_mains, worker_processes
from webapp.catalog import VIDEO_QUEUE
from webapp.timeutil import parse_iso, utcnow

pytestmark = [pytest.mark.integration, pytest.mark.sqlite_only]


def completed_events(task_id: str) -> int:
    from webapp.services.tasks import events_of

    return sum(1 for e in events_of(task_id) if e.kind == "completed")


def test_worker_started_through_the_api_consumes_its_queue(fleet):
    fleet.stage_worker()
    fleet.start_supervisor()
    response = fleet.control(worker_id="vid1", action="start", queue=VIDEO_QUEUE, concurrency=1)
    assert response.status_code == 202, response.get_json()
    workers = fleet.wait_running(["vid1"])
    worker = workers["vid1"]
    assert worker["pid"] and worker["node"].startswith("vid1@") and worker["queues"] == [VIDEO_QUEUE]
    assert worker["concurrency"] == 1 and worker["memory_rss_mb"] > 10 and worker["online"]

    task_id = fleet.submit()
    fleet.stack.wait_status(task_id, "processing", timeout=60)
    fleet.stack.wait_for(lambda: task_id in fleet.workers()["vid1"]["current_tasks"], 20,
                         "the worker to report its current task")
    task = fleet.stack.wait_status(task_id, "completed", timeout=120)
    assert completed_events(task_id) == 1
    started = [e for e in task.events if e.kind == "started"]
    assert worker["node"] in started[0].message

    # Concurrency changes live (pool_grow): same process, one more pool child.
    assert fleet.control(worker_id="vid1", action="resize", concurrency=2).status_code == 202
    fleet.stack.wait_for(lambda: fleet.workers()["vid1"]["concurrency"] == 2, 20, "concurrency 2")
    assert fleet.workers()["vid1"]["pid"] == worker["pid"]
    fleet.stack.wait_for(lambda: len(worker_processes(fleet.stack.env["AURA_INSTANCE"])) == 3, 10,
                         "a second pool child")

    # Paused, it takes nothing (cancel_consumer); resumed, it takes the waiting task.
    assert fleet.control(worker_id="vid1", action="pause").status_code == 202
    fleet.stack.wait_for(lambda: fleet.workers()["vid1"]["state"] == "paused", 20, "paused")
    waiting = fleet.submit()
    time.sleep(3)
    assert fleet.stack.task(waiting).status == "queued"
    assert fleet.control(worker_id="vid1", action="resume").status_code == 202
    fleet.stack.wait_status(waiting, "completed", timeout=120)
    assert fleet.workers()["vid1"]["pid"] == worker["pid"]


def test_warm_stop_while_rendering_finishes_the_task_exactly_once(fleet):
    fleet.stage_worker()
    fleet.start_supervisor()
    assert fleet.control(worker_id="stopper", action="start", queue=VIDEO_QUEUE, concurrency=1).status_code == 202
    pid = fleet.wait_running(["stopper"])["stopper"]["pid"]
    task_id = fleet.submit(target_duration_id=6)
    fleet.stack.wait_status(task_id, "processing", timeout=60)

    response = fleet.control(worker_id="stopper", action="stop")
    assert response.status_code == 202 and "stopping" in response.get_json()["message"]
    fleet.stack.wait_for(lambda: fleet.workers()["stopper"]["state"] != "running", 10, "stopping state")
    task = fleet.stack.wait_status(task_id, "completed", timeout=120)
    # The stopping worker finished its claim (the plan); the stages ran on the stage worker.
    assert completed_events(task_id) == 1 and task.attempt == 1
    fleet.wait_gone(["stopper"], timeout=60)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert fleet.workers()["stopper"]["desired_state"] == "stopped"
    # Stopping it again: it is no longer running.
    assert fleet.control(worker_id="stopper", action="stop").status_code == 409


def test_autoscale_one_three_one_with_tasks_in_flight_loses_nothing(fleet):
    fleet.stage_worker()
    fleet.start_supervisor()
    assert fleet.control(worker_id="scaled", action="start", queue=VIDEO_QUEUE, concurrency=1).status_code == 202
    fleet.wait_running(["scaled"])
    tasks = [fleet.submit() for _ in range(5)]

    answer = fleet.autoscale(VIDEO_QUEUE, 3).get_json()
    assert answer["start"] == ["scaled-2", "scaled-3"] and answer["stop"] == []
    fleet.wait_running(["scaled", "scaled-2", "scaled-3"])
    fleet.stack.wait_for(lambda: sum(fleet.stack.task(t).status == "processing" for t in tasks) >= 2, 60,
                         "several tasks in flight")

    answer = fleet.autoscale(VIDEO_QUEUE, 1).get_json()
    assert answer["stop"] == ["scaled-3", "scaled-2"] and answer["current_workers"] == 3
    for task_id in tasks:
        fleet.stack.wait_status(task_id, "completed", timeout=180)
    assert [completed_events(t) for t in tasks] == [1] * 5
    fleet.wait_gone(["scaled-2", "scaled-3"], timeout=60)
    assert fleet.workers()["scaled"]["state"] == "running"
    assert len(worker_mains(fleet.stack.env["AURA_INSTANCE"])) == 1


def test_killed_worker_is_restarted_by_the_supervisor(fleet):
    fleet.stage_worker()
    fleet.start_supervisor()
    assert fleet.control(worker_id="phoenix", action="start", queue=VIDEO_QUEUE, concurrency=1).status_code == 202
    first = fleet.wait_running(["phoenix"])["phoenix"]["pid"]
    os.kill(first, signal.SIGKILL)

    def restarted():
        worker = fleet.workers()["phoenix"]
        return worker["state"] == "running" and worker["pid"] != first and worker

    worker = fleet.stack.wait_for(restarted, 60, "a new phoenix process", interval=0.3)
    assert worker["restarts"] == 1 and worker["last_exit"] == "killed by SIGKILL"
    # Pool children orphaned by the kill were cleaned up: one main process, `concurrency` children.
    procs = worker_processes(fleet.stack.env["AURA_INSTANCE"])
    assert {p[0] for p in worker_mains(fleet.stack.env["AURA_INSTANCE"])} == {worker["pid"]}
    assert len(procs) == 2
    task_id = fleet.submit()
    fleet.stack.wait_status(task_id, "completed", timeout=120)


def test_policy_scales_up_on_backlog_and_down_after_cooldown(fleet, client):
    fleet.stage_worker()
    fleet.start_supervisor()
    fleet.stack.start_beat()
    # The autoscaler itself runs on `monitoring`; keep it apart from the scaled queue.
    assert fleet.control(worker_id="ops", action="start", queue="monitoring,maintenance",
                         concurrency=1).status_code == 202
    policy = {"queue": VIDEO_QUEUE, "min_workers": 0, "max_workers": 2, "allow_zero": True,
              "target_backlog_per_worker": 1, "cooldown_seconds": 12}
    assert client.post("/tasks/workers/policies", json=policy, headers=fleet.headers).status_code == 200
    fleet.wait_running(["ops"])
    submitted_at = utcnow().replace(microsecond=0)
    tasks = [fleet.submit() for _ in range(2)]

    fleet.stack.wait_for(lambda: fleet.workers().get(VIDEO_QUEUE, {}).get("desired_state") == "running"
                         and len([w for w in fleet.workers().values() if w["pool"] == VIDEO_QUEUE]) == 2,
                         20, "the policy to want two video workers")
    for task_id in tasks:
        fleet.stack.wait_status(task_id, "completed", timeout=180)
    fleet.stack.wait_for(lambda: all(w["desired_state"] == "stopped" for w in fleet.workers().values()
                                     if w["pool"] == VIDEO_QUEUE), 60, "scale down to zero")
    decisions = client.get("/tasks/workers/decisions?queue=video_generation", headers=fleet.headers).get_json()
    actions = [d["action"] for d in reversed(decisions["decisions"])]
    assert "scale_up" in actions and "scale_down" in actions
    up = next(d for d in decisions["decisions"] if d["action"] == "scale_up")
    down = next(d for d in decisions["decisions"] if d["action"] == "scale_down")
    assert "waiting" in up["reason"] and up["desired"] == 2 and down["desired"] == 0
    # Decided at the first evaluation that saw the backlog: the decision's own time, not this
    # test's polling, is measured (period 2 s; plus beat start-up and message delivery on a busy
    # 2-core machine).
    assert (parse_iso(up["at"]) - submitted_at).total_seconds() <= 3 * 2 + 4
    assert (parse_iso(down["at"]) - parse_iso(up["at"])).total_seconds() >= 11
    assert [completed_events(t) for t in tasks] == [1, 1]


def test_two_supervisors_never_run_the_same_worker(fleet):
    instance = fleet.stack.env["AURA_INSTANCE"]
    a = fleet.start_supervisor("--host", "host-a")
    b = fleet.start_supervisor("--host", "host-b")
    fleet.wait_supervisors(2)
    assert fleet.control(worker_id="twin", action="start", queue=VIDEO_QUEUE, concurrency=1,
                         count=4).status_code == 202
    names = ["twin", "twin-2", "twin-3", "twin-4"]
    deadline = time.monotonic() + 60
    while True:  # sample the process table while the fleet converges: never a name twice
        nodes = [node for _pid, _ppid, node in worker_mains(instance)]
        assert len(nodes) == len(set(nodes)), nodes
        workers = fleet.workers()
        if all(workers.get(n, {}).get("state") == "running" for n in names):
            break
        assert time.monotonic() < deadline, fleet.logs()
        time.sleep(0.2)
    hosts = {w["host"] for w in workers.values()}
    assert hosts == {"host-a", "host-b"}  # the fair share spreads new slots over both hosts
    by_supervisor = {fleet.proc(a).pid: [], fleet.proc(b).pid: []}
    for _pid, ppid, node in worker_mains(instance):
        by_supervisor[ppid].append(node.split("@")[0])
    assert sorted(by_supervisor[fleet.proc(a).pid] + by_supervisor[fleet.proc(b).pid]) == sorted(names)

    # A dead supervisor's slots expire and the other host takes them over.
    lost = sorted(by_supervisor[fleet.proc(a).pid])
    os.kill(fleet.proc(a).pid, signal.SIGKILL)
    fleet.stack.wait_for(lambda: all(fleet.workers()[n]["host"] == "host-b"
                                     and fleet.workers()[n]["state"] == "running" for n in lost),
                         60, f"host-b to take over {lost}", interval=0.3)
    survivors = [node.split("@")[0] for _pid, ppid, node in worker_mains(instance) if ppid == fleet.proc(b).pid]
    assert sorted(survivors) == sorted(names)


def test_a_stop_past_its_deadline_is_killed_and_the_task_recovered_elsewhere(fleet):
    """A worker rendering a chunk does not stop within its deadline: it is killed, the reconciler
    publishes its stage again (lease expired, or its message taken but never claimed) and another
    worker finishes the task in the same attempt."""
    render_queues = "video_generation,image_processing,audio_processing,video_processing"
    fleet.start_supervisor(env={"WORKER_STOP_TIMEOUT": "1"})
    fleet.stack.start_beat()
    assert fleet.control(worker_id="ops", action="start", queue="maintenance", concurrency=1).status_code == 202
    assert fleet.control(worker_id="slow", action="start", queue=render_queues, concurrency=1).status_code == 202
    fleet.wait_running(["ops", "slow"])
    # Chunks long enough (1080p, high) that one is still rendering when the 1 s stop deadline passes.
    task_id = fleet.submit(target_duration_id=30, config={"quality": "high", "resolution": "1920x1080"})
    fleet.stack.wait_for(lambda: (t := fleet.stack.task(task_id)).stage == "render" and t.progress > 20, 90,
                         "a chunk to be rendering")

    assert fleet.control(worker_id="slow", action="stop").status_code == 202
    fleet.stack.wait_for(lambda: fleet.workers()["slow"]["last_exit"] == "killed by SIGKILL", 30,
                         "the stop to escalate to SIGKILL")
    assert fleet.stack.task(task_id).status == "processing"  # its stage lease is still running out
    assert fleet.control(worker_id="rescue", action="start", queue=render_queues, concurrency=1).status_code == 202
    task = fleet.stack.wait_status(task_id, "completed", timeout=180)
    kinds = [e.kind for e in task.events]
    # The chunk it was killed in (lease expired) or the message it had taken (never claimed) was
    # published again; either way the same attempt completed, once.
    assert {"stage_lease_expired", "stage_republished"} & set(kinds)
    assert kinds.count("completed") == 1 and task.attempt == 1
    # What the killed worker left (a chunk, or only the assembly when its chunks were done) ran on
    # the rescue worker.
    assert any((s.runner or "").startswith("rescue@") for s in task.stage_rows())
