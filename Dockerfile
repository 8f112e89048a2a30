# One image for every role of Aura Render; the command picks the role:
#   web (default)   gunicorn on port 8000, healthy when /readyz answers 200
#   supervisor      python -m worker.supervisor --ensure-defaults   (starts and watches the workers)
#   beat            celery -A worker.celery_app:app beat -s /var/lib/aura/celerybeat-schedule
#   flower          celery -A worker.celery_app:app flower --port=5555
#   migrations      flask --app wsgi db upgrade
# Build: docker build -t aura-render .   (podman: add --format docker to keep the HEALTHCHECK)
ARG BASE_IMAGE=python:3.11-slim
ARG NODE_IMAGE=node:20-slim

# --- front-end libraries from the npm registry (Node stays in this stage) -----------------------
FROM ${NODE_IMAGE} AS frontend
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# --- static/vendor and the compiled translations --------------------------------------------------
FROM ${BASE_IMAGE} AS assets
WORKDIR /src
# The image's requirements: the runtime ones plus Flower at the version pinned for development
# (written here so that a change to another development tool does not invalidate the pip layer).
COPY requirements.txt requirements-dev.txt ./
RUN { cat requirements.txt; grep -i '^flower==' requirements-dev.txt || true; } > image-requirements.txt
RUN pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
      "$(grep -i '^Babel==' requirements.txt)"
COPY --from=frontend /src/node_modules node_modules
COPY scripts/vendor.py scripts/
COPY webapp/translations webapp/translations
RUN python scripts/vendor.py

# --- the runtime image ------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
# Debian packages the pipeline runs: ffprobe (the ffmpeg package; encoding uses the ffmpeg binary of
# imageio-ffmpeg), espeak-ng, the CJK fonts it prefers, and tini as PID 1 so that signals reach the
# role's process and zombies are reaped. Left out on install: docs, the serif CJK faces the pipeline
# never uses, and the Mesa GPU drivers with their LLVM that ffmpeg's libraries pull in but only
# hardware OpenGL/VA-API would load (about 160 MB).
RUN printf '%s\n' \
      'path-exclude /usr/share/doc/*' 'path-exclude /usr/share/man/*' \
      'path-exclude /usr/share/fonts/opentype/noto/NotoSerifCJK*' \
      'path-exclude /usr/lib/x86_64-linux-gnu/dri/*' 'path-exclude /usr/lib/aarch64-linux-gnu/dri/*' \
      'path-exclude /usr/lib/*/libLLVM-*' 'path-exclude /usr/lib/*/libz3.so*' \
      > /etc/dpkg/dpkg.cfg.d/aura-slim \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ffmpeg espeak-ng fonts-noto-cjk fonts-wqy-microhei tini \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*

COPY --from=assets /src/image-requirements.txt /tmp/
RUN pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
      -r /tmp/image-requirements.txt \
 && rm /tmp/image-requirements.txt

RUN groupadd --system --gid 10001 aura \
 && useradd --system --uid 10001 --gid aura --home-dir /var/lib/aura --shell /usr/sbin/nologin aura \
 && mkdir -p /var/lib/aura/media /var/lib/aura/logs \
 && chown -R aura:aura /var/lib/aura

WORKDIR /app
COPY --chown=root:root wsgi.py ./
COPY --chown=root:root migrations migrations
COPY --chown=root:root worker worker
COPY --chown=root:root webapp webapp
COPY --from=assets /src/webapp/static/vendor webapp/static/vendor
COPY --from=assets /src/webapp/translations webapp/translations
RUN python -m compileall -q wsgi.py migrations worker webapp

ENV PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    FLASK_APP=wsgi \
    AURA_INSTANCE=/var/lib/aura \
    MEDIA_ROOT=/var/lib/aura/media \
    WEB_CONCURRENCY=2
USER aura
EXPOSE 8000 5555
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
ENTRYPOINT ["tini", "--"]
CMD ["gunicorn", "wsgi:app", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", "--threads", "8", \
     "--access-logfile", "-"]
