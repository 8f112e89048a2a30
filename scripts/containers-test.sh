#!/usr/bin/env bash
# Proves the Dockerfile and compose.yaml on this machine, end to end:
#   1. prepares what is missing: podman, buildah, runc, debootstrap and docker-compose from Debian,
#      a containers.conf for podman (runc, raised default ulimits), and the base images the Dockerfile
#      and compose.yaml name — pulled when a registry answers, otherwise stand-ins built from a
#      debootstrapped Debian bookworm (see scripts/containers/*.Containerfile);
#   2. builds the product image from the unchanged Dockerfile (layer cache kept between runs);
#   3. brings compose.yaml up with a generated SECRET_KEY, creates a user and an API token inside the
#      web container, renders a small brief through the published port and ffprobes the video;
#   4. scales the supervisor to two containers, stops one in the middle of a render and sees the
#      task complete;
#   5. brings everything down and removes the containers, volumes and network it created (the base
#      images and the build cache stay, so a second run is fast).
# Exit status: 0 passed, 77 this machine cannot run containers at all (the test skips), else failed.
# Compose runs as Debian's docker-compose against podman's Docker-compatible API (a private socket
# served for the run), which honours depends_on conditions. Podman runs HEALTHCHECKs from systemd
# timers; where there is no systemd, this script runs `podman healthcheck run` every 2 s instead.
# Environment: DEBIAN_MIRROR; KEEP_UP=1 leaves the stack running for a look.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
HERE=$ROOT/scripts/containers
PROJECT=aura-containers-test
IMAGE=localhost/aura-render:test
STATE=$ROOT/var/containers
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
STANDIN_BASE=localhost/aura-standin/debian:bookworm-slim
mkdir -p "$STATE"

say() { printf '[containers-test %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
skip() { say "SKIP: $*"; exit 77; }
fail() { say "FAIL: $*"; exit 1; }
now() { date +%s; }

# --- 1. tools ----------------------------------------------------------------------------------
prepare_tools() {
  local want=(podman buildah runc debootstrap netavark aardvark-dns iptables docker-compose curl jq) missing=()
  local pkg
  for pkg in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      say "installing Debian packages: ${missing[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    elif ! command -v podman >/dev/null; then
      skip "no podman, and no root apt-get to install it (packages: ${missing[*]})"
    fi
  fi
  export CONTAINERS_CONF=$HERE/containers.conf
  command -v podman >/dev/null && command -v docker-compose >/dev/null \
    || skip "podman or docker-compose is missing and cannot be installed here"
  podman run --rm --network none "$STANDIN_BASE" true >/dev/null 2>&1 \
    || ! podman image exists "$STANDIN_BASE" \
    || skip "podman cannot start a container on this machine"
}

# --- base images -------------------------------------------------------------------------------
# A label on each stand-in records a hash of its inputs, so a changed Containerfile or a changed
# set of extra CA certificates rebuilds it.
STANDIN_RECIPE=1  # bump when the way make_standin_base builds the base changes
inputs_hash() {
  local f
  { echo "$STANDIN_RECIPE"
    for f in "$@" /usr/local/share/ca-certificates/*.crt; do [ ! -f "$f" ] || cat "$f"; done
  } | sha256sum | cut -c1-16
}

image_label() {
  podman image inspect --format '{{index .Labels "aura.standin.inputs"}}' "$1" 2>/dev/null || true
}

make_standin_base() {
  local hash
  hash=$(inputs_hash "$HERE/debian-slim.dpkg.cfg")
  [ "$(image_label "$STANDIN_BASE")" = "$hash" ] && return 0
  say "making the stand-in Debian bookworm base with debootstrap (minbase)"
  local root
  root=$(mktemp -d /var/tmp/aura-debootstrap.XXXXXX)
  mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
  cp "$HERE/debian-slim.dpkg.cfg" "$root/etc/dpkg/dpkg.cfg.d/docker-slim"
  if ! debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$DEBIAN_MIRROR" \
       > "$STATE/debootstrap.log" 2>&1; then
    tail -20 "$STATE/debootstrap.log"
    rm -rf "$root"
    fail "debootstrap failed (log: $STATE/debootstrap.log)"
  fi
  # Like the official image: the three bookworm suites, no apt caches, no docs or locales; plus the
  # host's extra CA certificates, so TLS to the package registries works through this network.
  rm -f "$root/etc/apt/sources.list"
  cat > "$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT::AutoRemove::SuggestsImportant "false";
EOF
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  rm -rf "$root"/usr/share/{man,info,groff,lintian,linda}/* "$root"/var/lib/apt/lists/* \
         "$root"/var/cache/apt/* "$root"/var/log/*.log "$root"/var/log/apt/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$root" update-ca-certificates >/dev/null 2>&1
  tar -C "$root" -c . | podman import --change 'CMD ["bash"]' --change "LABEL aura.standin.inputs=$hash" \
    - "$STANDIN_BASE" >/dev/null
  rm -rf "$root"
}

# ensure_image NAME STANDIN: use NAME if present or pullable, else build the stand-in under NAME.
ensure_image() {
  local name=docker.io/library/$1 file=$HERE/$2.Containerfile
  local hash
  hash=$(inputs_hash "$file" "$HERE"/"$2"-entrypoint.sh "$HERE/debian-slim.dpkg.cfg")
  local label
  label=$(image_label "$name")
  if podman image exists "$name" && { [ -z "$label" ] || [ "$label" = "$hash" ]; }; then
    return 0  # the real image (no label) or an up-to-date stand-in
  fi
  if [ -z "$label" ] && podman pull -q "$name" >/dev/null 2>&1; then
    say "pulled $name"
    return 0
  fi
  make_standin_base
  say "building a stand-in for $1 (no registry answers here)"
  podman build -q --format docker -f "$file" --label "aura.standin.inputs=$hash" -t "$name" "$HERE" >/dev/null
}

prepare_images() {
  ensure_image python:3.11-slim python
  ensure_image node:20-slim node
  ensure_image redis:7 redis
  ensure_image postgres:16 postgres
}

# --- 2. the product image ------------------------------------------------------------------------
build_image() {
  local old new t0
  old=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  t0=$(now)
  say "building $IMAGE from the Dockerfile"
  # --format docker keeps the HEALTHCHECK (the OCI image format has no field for it).
  if ! podman build --format docker --layers -t "$IMAGE" "$ROOT" > "$STATE/build.log" 2>&1; then
    tail -40 "$STATE/build.log"
    fail "the image did not build (log: $STATE/build.log)"
  fi
  BUILD_SECONDS=$(( $(now) - t0 ))
  new=$(podman image inspect --format '{{.Id}}' "$IMAGE")
  if [ -n "$old" ] && [ "$old" != "$new" ]; then
    podman rmi "$old" >/dev/null 2>&1 || true  # the previous build's own layers; the cache stays
  fi
  IMAGE_SIZE=$(podman images --format '{{.Size}}' "$IMAGE")
  say "image built in ${BUILD_SECONDS}s, size $IMAGE_SIZE"
  [ "$(podman image inspect --format '{{.Config.User}}' "$IMAGE")" = aura ] || fail "the image must run as user aura"
  podman image inspect --format '{{.Config.Healthcheck.Test}}' "$IMAGE" | grep -q readyz \
    || fail "the image has no HEALTHCHECK on /readyz"
  podman run --rm --entrypoint sh "$IMAGE" -c \
    '! command -v node && ! command -v npm && command -v ffprobe && command -v espeak-ng && command -v tini' \
    >/dev/null 2>&1 || fail "the image must have ffprobe, espeak-ng and tini, and no Node.js"
}

# --- 3. compose ------------------------------------------------------------------------------------
ENVFILE=$STATE/compose.env
LABEL=com.docker.compose.project=$PROJECT
SOCKET=${TMPDIR:-/tmp}/aura-containers-test.$$.sock  # short: unix socket paths are limited

# Podman's Docker-compatible API on a private socket, and the health ticker; both end with the run.
start_engine() {
  rm -f "$SOCKET"
  podman system service --time=0 "unix://$SOCKET" > "$STATE/podman-service.log" 2>&1 &
  SERVICE_PID=$!
  local i
  for i in $(seq 50); do
    [ -S "$SOCKET" ] && DOCKER_HOST=unix://$SOCKET docker-compose version >/dev/null 2>&1 && break
    sleep 0.2
  done
  [ -S "$SOCKET" ] || fail "podman system service did not start (log: $STATE/podman-service.log)"
  if [ ! -d /run/systemd/system ]; then
    ( while sleep 2; do
        for c in $(podman ps -q --filter "label=$LABEL" 2>/dev/null); do
          podman healthcheck run "$c" >/dev/null 2>&1 || true
        done
      done ) &
    TICKER_PID=$!
  fi
}

stop_engine() {
  local pid
  for pid in ${TICKER_PID:-} ${SERVICE_PID:-}; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -f "$SOCKET"
}

# The caller's environment wins over the env file in Compose; the test's own environment
# (DATABASE_URL of the test database...) must not leak into the stack, hence env -i.
compose() {
  env -i PATH="$PATH" HOME="${HOME:-/root}" DOCKER_HOST="unix://$SOCKET" \
    docker-compose -p "$PROJECT" --env-file "$ENVFILE" -f "$ROOT/compose.yaml" "$@"
}

container_of() {  # the first running container of a compose service
  podman ps -q --filter "label=$LABEL" --filter "label=com.docker.compose.service=$1" | head -1
}

remove_stack() {
  if [ -f "$ENVFILE" ]; then
    compose --profile flower down -v -t 20 >> "$STATE/compose.log" 2>&1 || true
  fi
  local ids
  ids=$(podman ps -aq --filter "label=$LABEL")
  [ -z "$ids" ] || podman rm -f -t 5 $ids >/dev/null 2>&1 || true
  ids=$(podman volume ls -q --filter "label=$LABEL")
  [ -z "$ids" ] || podman volume rm -f $ids >/dev/null 2>&1 || true
  ids=$(podman network ls -q --filter "label=$LABEL")
  [ -z "$ids" ] || podman network rm -f $ids >/dev/null 2>&1 || true
}

diagnose() {
  say "diagnostics: containers"
  podman ps -a --filter "label=$LABEL" --format '{{.Names}} {{.Status}}' || true
  local c
  for c in $(podman ps -aq --filter "label=$LABEL"); do
    say "logs of $(podman inspect --format '{{.Name}}' "$c")"
    podman logs --tail 30 "$c" 2>&1 | sed 's/^/    /' || true
  done
  for c in $(podman ps -q --filter "label=$LABEL" --filter "label=com.docker.compose.service=supervisor"); do
    say "worker logs in $c"
    podman exec "$c" sh -c 'tail -n 40 /var/lib/aura/logs/*.log' 2>&1 | sed 's/^/    /' || true
  done
}

on_exit() {
  local status=$?
  trap - EXIT
  set +e
  if [ "$status" -ne 0 ] && [ "$status" -ne 77 ] && [ -n "${STACK_STARTED:-}" ]; then
    diagnose
  fi
  if [ -n "${STACK_STARTED:-}" ]; then
    if [ "${KEEP_UP:-0}" = 1 ]; then
      say "KEEP_UP=1: the stack stays up (http://127.0.0.1:$PORT/, token in $STATE/token)"
    else
      say "bringing the stack down and removing its containers, volumes and network"
      remove_stack
      rm -f "$ENVFILE" "$STATE/token"
      [ -z "$(podman ps -aq --filter "label=$LABEL")" ] || say "WARNING: containers left behind"
    fi
  fi
  [ "${KEEP_UP:-0}" = 1 ] || stop_engine
  exit "$status"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_stack() {
  remove_stack  # whatever a crashed earlier run left
  PORT=$(free_port)
  FLOWER_PORT=$(free_port)
  FLOWER_AUTH=flower:$(python3 -c 'import secrets; print(secrets.token_hex(8))')
  BASE=http://127.0.0.1:$PORT
  umask 077
  cat > "$ENVFILE" <<EOF2
SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
POSTGRES_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
AURA_IMAGE=$IMAGE
AURA_PORT=$PORT
LEASE_SECONDS=10
FLOWER_BASIC_AUTH=$FLOWER_AUTH
FLOWER_PORT=$FLOWER_PORT
EOF2
  umask 022
  say "compose up (web on port $PORT)"
  STACK_STARTED=1
  local t0
  t0=$(now)
  compose up -d --no-build > "$STATE/compose.log" 2>&1 || { tail -30 "$STATE/compose.log"; fail "compose up failed"; }
  wait_ready 240
  UP_SECONDS=$(( $(now) - t0 ))
  say "the web app is ready ${UP_SECONDS}s after compose up"
}

wait_ready() {  # until /readyz answers 200 (database migrated, Redis answers)
  local deadline=$(( $(now) + $1 ))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz" || true)" = 200 ]; do
    [ "$(now)" -lt "$deadline" ] || fail "/readyz did not answer 200 within $1 s: $(curl -s "$BASE/readyz" || true)"
    sleep 1
  done
}

# --- 4. the scenario -------------------------------------------------------------------------------
api() {  # METHOD PATH [JSON BODY]; prints the body, fails on a status >= 400
  local out code
  out=$(mktemp)
  code=$(curl -sS -o "$out" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" \
         -H 'Content-Type: application/json' ${3:+--data "$3"} "$BASE$2") || code=000
  if [ "$code" -ge 400 ] || [ "$code" = 000 ]; then
    say "$1 $2 answered $code: $(head -c 500 "$out")"
    rm -f "$out"
    return 1
  fi
  cat "$out"
  rm -f "$out"
}

create_credentials() {
  local web
  web=$(container_of web)
  [ -n "$web" ] || fail "no web container"
  podman healthcheck run "$web" >/dev/null || fail "the image's HEALTHCHECK fails on a ready web container"
  podman exec "$web" flask --app wsgi users create admin --role admin \
    --password "$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')" >/dev/null
  TOKEN=$(podman exec "$web" flask --app wsgi tokens create containers-test --role admin | tail -1)
  printf '%s\n' "$TOKEN" > "$STATE/token"
  api GET /tasks/queue/status >/dev/null || fail "the new token is refused"
  say "created user admin and an admin API token inside the web container"
}

submit() {  # THEME; prints the task id
  local body
  body=$(jq -cn --arg theme "$1" '{theme_id: $theme, keywords_id: ["容器", "测试"], target_duration_id: 5,
    user_description_id: "容器里的渲染测试", priority: "high",
    config: {quality: "low", resolution: "256x144"}}')
  api POST /tasks/video/async "$body" | jq -r .task_id
}

status_of() { api GET "/tasks/status/$1"; }

wait_done() {  # TASK_ID TIMEOUT; fails unless the task completes
  local deadline=$(( $(now) + $2 )) doc state
  while :; do
    doc=$(status_of "$1") || doc='{}'
    state=$(jq -r '.status // "unknown"' <<<"$doc")
    case "$state" in
      completed) return 0 ;;
      failed|cancelled) fail "task $1 ended $state: $(jq -c '.error_detail // .error' <<<"$doc")" ;;
    esac
    [ "$(now)" -lt "$deadline" ] || fail "task $1 still $state after $2 s ($(jq -c '{progress, stage, message}' <<<"$doc"))"
    sleep 1
  done
}

check_video() {  # TASK_ID: download the video through the published port and ffprobe it
  local url file
  url=$(status_of "$1" | jq -r '.result.video_url // empty')
  [ -n "$url" ] || fail "task $1 has no video_url"
  file=$STATE/$1.mp4
  curl -sSf -H "Authorization: Bearer $TOKEN" -o "$file" "$BASE$url" || fail "cannot download $url"
  local probe
  probe=$(ffprobe -v error -show_entries stream=codec_type,width,height:format=duration -of json "$file") \
    || fail "ffprobe cannot read the video of task $1"
  jq -e '[.streams[] | select(.codec_type == "video" and .width == 256 and .height == 144)] | length == 1' \
    <<<"$probe" >/dev/null || fail "the video is not one 256x144 video stream: $probe"
  jq -e '[.streams[] | select(.codec_type == "audio")] | length == 1' <<<"$probe" >/dev/null \
    || fail "the video has no audio stream: $probe"
  jq -e '(.format.duration | tonumber) >= 4 and (.format.duration | tonumber) <= 7' <<<"$probe" >/dev/null \
    || fail "the video does not last about 5 s: $probe"
  say "task $1: downloaded $(stat -c %s "$file") bytes, ffprobe: 256x144 video + audio, $(jq -r .format.duration <<<"$probe") s"
  rm -f "$file"
}

render_one() {
  local task t0
  t0=$(now)
  task=$(submit "容器 first render")
  [ -n "$task" ] && [ "$task" != null ] || fail "submission refused"
  wait_done "$task" 300
  say "task $task completed in $(( $(now) - t0 ))s"
  check_video "$task"
}

check_flower() {
  compose --profile flower up -d --no-build flower >> "$STATE/compose.log" 2>&1 || fail "flower did not start"
  local deadline=$(( $(now) + 60 )) url=http://127.0.0.1:$FLOWER_PORT/workers
  until [ "$(curl -s -o /dev/null -w '%{http_code}' -u "$FLOWER_AUTH" "$url" || true)" = 200 ]; do
    [ "$(now)" -lt "$deadline" ] || fail "flower did not answer 200 with its basic auth"
    sleep 1
  done
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 401 ] || fail "flower answers without basic auth"
  say "flower (profile flower) answers with basic auth and refuses without"
}

scale_to_two() {
  say "scaling the supervisor to two containers and the video and media pools to two workers"
  compose up -d --no-build --scale supervisor=2 >> "$STATE/compose.log" 2>&1 || fail "compose --scale failed"
  local n
  n=$(podman ps -q --filter "label=$LABEL" --filter "label=com.docker.compose.service=supervisor" | wc -l)
  [ "$n" = 2 ] || fail "expected 2 supervisor containers, found $n"
  # Raise the pools once both supervisors are live, so the new slots go to the new one (running
  # workers are not moved when a supervisor joins).
  local deadline=$(( $(now) + 90 ))
  until api GET /tasks/workers | jq -e '[.supervisors[] | select(.online)] | length == 2' >/dev/null 2>&1; do
    [ "$(now)" -lt "$deadline" ] || fail "the second supervisor did not report in"
    sleep 1
  done
  api POST /tasks/workers/autoscale '{"queue": "video_generation", "target_workers": 2}' >/dev/null
  api POST /tasks/workers/autoscale '{"queue": "image_processing", "target_workers": 2}' >/dev/null
  # Every slot running, spread over both containers.
  local doc
  deadline=$(( $(now) + 120 ))
  while :; do
    doc=$(api GET /tasks/workers) || doc='{}'
    if jq -e '[.workers[] | select(.state == "running")] as $r
              | ($r | length) == 5 and ([$r[].host] | unique | length) == 2' \
         <<<"$doc" >/dev/null 2>&1; then
      break
    fi
    [ "$(now)" -lt "$deadline" ] || fail "workers not running on both containers: $(jq -c . <<<"$doc" | head -c 1500)"
    sleep 2
  done
  say "5 workers running in 2 supervisor containers"
}

host_of_task() {  # the container hostname whose worker holds the task's lease
  local pg
  pg=$(container_of postgres)
  podman exec "$pg" psql -U aura -d aura -tAc \
    "SELECT split_part(split_part(lease_owner, ':', 1), '@', 2) FROM render_tasks WHERE id = '$1'"
}

stop_during_render() {
  local task deadline holder victim t0 stop_s code
  task=$(submit "容器 stop during render")
  deadline=$(( $(now) + 120 ))
  holder=""
  while [ -z "$holder" ]; do
    [ "$(now)" -lt "$deadline" ] || fail "task $task was never claimed"
    [ "$(status_of "$task" | jq -r .status)" != completed ] || fail "task $task finished before the stop"
    holder=$(host_of_task "$task" | tr -d '[:space:]')
    sleep 0.3
  done
  victim=""
  for c in $(podman ps -q --filter "label=$LABEL" --filter "label=com.docker.compose.service=supervisor"); do
    [ "$(podman inspect --format '{{.Config.Hostname}}' "$c")" != "$holder" ] || victim=$c
  done
  [ -n "$victim" ] || fail "no supervisor container has hostname $holder"
  say "task $task is rendering in $holder ($(status_of "$task" | jq -r '"\(.stage) \(.progress)%"')); stopping that container"
  t0=$(now)
  podman stop -t 120 "$victim" >/dev/null 2>> "$STATE/compose.log"
  stop_s=$(( $(now) - t0 ))
  code=$(podman inspect --format '{{.State.ExitCode}}' "$victim")
  say "the container stopped in ${stop_s}s with exit code $code"
  [ "$code" = 0 ] || fail "the stop was not warm (exit code $code)"
  wait_done "$task" 300
  local doc
  doc=$(status_of "$task")
  if [ "$(jq -r .attempt <<<"$doc")" = 1 ]; then
    say "task $task completed after its container was stopped (finished by the stopping worker: warm stop)"
  else
    say "task $task completed after its container was stopped (attempt $(jq -r .attempt <<<"$doc"), requeued)"
  fi
  check_video "$task"
}

prepare_tools
prepare_images
build_image
trap on_exit EXIT
trap 'exit 143' TERM INT
start_engine
start_stack
create_credentials
render_one
check_flower
scale_to_two
stop_during_render
say "PASSED: image $IMAGE_SIZE, build ${BUILD_SECONDS}s, up ${UP_SECONDS}s"
