#!/usr/bin/env bash
# Runs the whole test suite: unit, contract (SQLite and PostgreSQL), integration with real Redis and
# Celery workers, and end-to-end tests in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest "$@"
