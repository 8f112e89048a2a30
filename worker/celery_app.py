"""The Celery app for `celery -A worker.celery_app:app worker|beat|events|inspect ...`."""

from celery.signals import task_revoked, worker_init, worker_process_init

from webapp import create_app
from webapp.extensions import db

flask_app = create_app()
app = flask_app.extensions["celery"]
app.conf.include = ["worker.tasks", "worker.fleet_tasks", "worker.webhook_tasks", "worker.asset_tasks"]


@worker_init.connect
def _shape(sender: object = None, **_kwargs: object) -> None:
    """Note the worker's pool size and queues (before the pool forks) for `worker.sidecar`."""
    from worker import sidecar

    sidecar.note_worker(getattr(sender, "concurrency", None), getattr(sender, "app", app))


@worker_process_init.connect
def _fresh_connections(**_kwargs: object) -> None:
    """A forked pool child must not reuse database connections opened by its parent."""
    with flask_app.app_context():
        db.engine.dispose(close=False)


@task_revoked.connect
def _revoked(request: object = None, expired: bool = False, **_kwargs: object) -> None:
    """A message revoked from Flower or `celery control revoke` cancels its task in the app."""
    if expired or request is None or not getattr(request, "id", None):
        return
    from webapp.services import tasks

    with flask_app.app_context():
        tasks.cancel_from_broker(request.id)
