"""gunicorn reads this file from the working directory: the Prometheus multiprocess set-up.

Every gunicorn worker (and every Celery worker started with the same environment) writes its
metric samples to PROMETHEUS_MULTIPROC_DIR, and /metrics adds them up. Unset, it defaults to
<instance>/prometheus. The directory must be emptied when the deployment starts (the run command
does); a dead worker's live gauges are dropped here.
"""

from __future__ import annotations

import os
from pathlib import Path

from webapp.config import load_config

_config = load_config()
if not _config["PROMETHEUS_MULTIPROC_DIR"]:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(Path(_config["INSTANCE_DIR"]) / "prometheus")
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)


def child_exit(_server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
