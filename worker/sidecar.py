"""A second stage beside the message's own, on cores the worker's pool leaves idle.

A worker with fewer pool slots than cores (one worker with concurrency 1 on every queue, as a
new user starts it, on a machine of several cores) would run a render's stages one after another
with cores to spare: the audio and visuals stages are single-threaded for the most part, and one
chunk's filter graph and encoder do not fill two cores. While it runs a stage, such a runner
claims another queued stage of the same task attempt from a queue it consumes, through the same
conditional UPDATE as any claim, and runs it in a thread beside its own; then the next, until its
own stage ends. The second stage's message, delivered later, finds the stage taken and ends as
`Ignore`, as any duplicate does. A worker whose pool has a slot per core takes nothing more
(docs/architecture.md, "Stages").
"""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace
from typing import Any

from flask import current_app

from webapp.catalog import TaskName
from webapp.services import stages
from worker.pipeline.proc import allotted_cores

log = logging.getLogger(__name__)

#: The worker's pool size and the queues it consumes, noted at its start (celery_app's worker_init).
_WORKER: dict[str, Any] = {"concurrency": None, "queues": None}


def note_worker(concurrency: Any, app: Any) -> None:
    _WORKER["concurrency"] = concurrency if isinstance(concurrency, int) else None
    try:
        queues = app.amqp.queues.consume_from or app.amqp.queues
        _WORKER["queues"] = sorted(queues)
    except AttributeError:
        _WORKER["queues"] = None


def spare_cores() -> int:
    """Cores this worker's pool leaves idle when every slot is busy (0 when unknown)."""
    concurrency, queues = _WORKER["concurrency"], _WORKER["queues"]
    if not concurrency or not queues:
        return 0
    return max(0, allotted_cores() - concurrency)


class _SideRun:
    """What `worker.tasks.perform` needs of a Celery task, for a stage run beside the message's."""

    name = TaskName.STAGE

    def __init__(self, stage_id: str, hostname: str):
        self.request = SimpleNamespace(id=f"beside:{stage_id}", hostname=hostname)

    def update_state(self, **_kwargs: Any) -> None:
        """The stage has no message of its own here; its message is ignored when delivered."""


class Sidecar:
    """Runs queued stages of `sc`'s attempt, one at a time in a thread, while `sc` runs."""

    def __init__(self, sc: stages.StageClaim, hostname: str):
        self.sc = sc
        self.hostname = hostname
        self.done = threading.Event()
        self.ran: list[str] = []
        self._app = current_app._get_current_object()
        self._thread = threading.Thread(target=self._loop, name=f"beside-{sc.stage_id}", daemon=True)

    def __enter__(self) -> Sidecar:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.done.set()  # take nothing more; the stage under way runs to its end
        self._thread.join()

    def _loop(self) -> None:
        from worker.tasks import owner_name, perform

        with self._app.app_context():
            while not self.done.is_set():
                claimed = None
                for stage_id in stages.queued_stage_ids(self.sc.task_id, self.sc.attempt, _WORKER["queues"]):
                    side = _SideRun(stage_id, self.hostname)
                    claim = stages.claim_stage(self.sc.task_id, self.sc.attempt, stage_id, owner_name(side.request),
                                               self.hostname)
                    if not isinstance(claim, str):
                        claimed = (side, claim)
                        break
                if claimed is None:
                    return
                side, claim = claimed
                self.ran.append(claim.stage_id)
                try:
                    log.info("stage %s of %s runs beside %s", claim.stage_id, claim.task_id, self.sc.stage_id)
                    perform(side, claim)
                except BaseException:  # noqa: BLE001 - perform recorded the outcome; a thread has no caller
                    log.info("stage %s of %s beside %s ended early", claim.stage_id, claim.task_id,
                             self.sc.stage_id, exc_info=True)
