"""Gunicorn settings every command here shares (gunicorn reads ./gunicorn.conf.py by default).

- Gunicorn 25+ opens a control socket for `gunicornc`, by default one per user
  ($XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl): a second instance on the host would
  take it over. Each master puts its own in the instance directory, named by its pid:
  `gunicornc -s var/gunicorn-<pid>.ctl status`.
- Keep-alive: the dashboard's live board polls every 2 s on one connection; gunicorn's default of
  2 s closes it just as the next poll is sent (a reconnect, or a reset the browser must retry).
- Prometheus multiprocess mode: every gunicorn worker (and every Celery worker started with the
  same environment) writes its metric samples to PROMETHEUS_MULTIPROC_DIR, and /metrics adds them
  up. Unset, it defaults to <instance>/prometheus. The directory must be emptied when the
  deployment starts (the run command does); a dead worker's live gauges are dropped here.
"""

from __future__ import annotations

import os
from pathlib import Path

from webapp.config import load_config

_config = load_config()
_instance = Path(_config["INSTANCE_DIR"])
_instance.mkdir(parents=True, exist_ok=True)
control_socket = str(_instance / f"gunicorn-{os.getpid()}.ctl")
keepalive = 5

if not _config["PROMETHEUS_MULTIPROC_DIR"]:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_instance / "prometheus")
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)


def child_exit(_server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
