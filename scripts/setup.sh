#!/usr/bin/env bash
# Installs everything Aura Render needs on a fresh clone; safe to run again (it skips what is there).
#   bash scripts/setup.sh          runtime: Python venv, requirements, fonts, espeak-ng, ffmpeg, front-end libraries
#   bash scripts/setup.sh --dev    plus test tools, Debian's chromium for the browser tests and wrk for bench/
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0
[ "${1:-}" = "--dev" ] && DEV=1

apt_packages=(fonts-noto-cjk fonts-wqy-microhei espeak-ng ffmpeg)
[ "$DEV" = 1 ] && apt_packages+=(chromium wrk)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: please install these Debian packages: ${missing[*]}" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements-$([ "$DEV" = 1 ] && echo dev || echo run)
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip
  if [ "$DEV" = 1 ]; then
    .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  else
    .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  fi
  echo "$want" > "$stamp"
fi

# Front-end libraries come from the npm registry, pinned in package-lock.json, copied to static/vendor.
if [ -f package.json ]; then
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --silent --no-audit --no-fund
  fi
  .venv/bin/python scripts/vendor.py
fi
