"""gunicorn reads this file from the working directory: the Prometheus multiprocess set-up.

Every gunicorn worker (and every Celery worker started with the same environment) writes its
metric samples to PROMETHEUS_MULTIPROC_DIR, and /metrics adds them up. When it is set, whoever set
it empties it at start (the run command does). When it is not, gunicorn uses
<instance>/prometheus and empties it itself when the master starts. A dead worker's live gauges
are dropped as it exits.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from webapp.config import load_config

_config = load_config()
_own_dir = not _config["PROMETHEUS_MULTIPROC_DIR"]
if _own_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(Path(_config["INSTANCE_DIR"]) / "prometheus")
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)


def on_starting(_server: object) -> None:
    if _own_dir:  # samples of an earlier run must not count again
        directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)


def child_exit(_server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
