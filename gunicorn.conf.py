"""Gunicorn settings every command here shares (gunicorn reads ./gunicorn.conf.py by default).

Gunicorn 25+ opens a control socket for `gunicornc`, by default one per user
($XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl): a second instance on the host would
take it over. Each master puts its own in the instance directory, named by its pid:
`gunicornc -s var/gunicorn-<pid>.ctl status`.
"""

import os
from pathlib import Path

from webapp.config import load_config

_instance = Path(load_config()["INSTANCE_DIR"])
_instance.mkdir(parents=True, exist_ok=True)
control_socket = str(_instance / f"gunicorn-{os.getpid()}.ctl")
