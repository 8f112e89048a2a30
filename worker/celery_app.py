"""The Celery app for `celery -A worker.celery_app:app worker|beat|events|inspect ...`."""

from celery.signals import worker_process_init

from webapp import create_app
from webapp.extensions import db

flask_app = create_app()
app = flask_app.extensions["celery"]
app.conf.include = ["worker.tasks", "worker.fleet_tasks", "worker.webhook_tasks"]


@worker_process_init.connect
def _fresh_connections(**_kwargs: object) -> None:
    """A forked pool child must not reuse database connections opened by its parent."""
    with flask_app.app_context():
        db.engine.dispose(close=False)
