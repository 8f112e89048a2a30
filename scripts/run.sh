#!/usr/bin/env bash
# Runs the whole system on embedded defaults: SQLite, an embedded Redis when none is configured or
# reachable, one Celery worker per queue group, beat, the supervisor and the web app.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/run.py "$@"
