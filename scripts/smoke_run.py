"""Drive the README's run command the way a new user does: start it, wait for the printed URL and
token, render a tiny brief through the JSON API, stop it with Ctrl+C and check nothing is left.

Standard library only, so it can run against a fresh clone before anything is installed:

    python3 scripts/smoke_run.py --clone        # a fresh clone of HEAD, runtime requirements only
    python3 scripts/smoke_run.py --root DIR     # an existing checkout
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY_BRIEF = {
    "theme_id": "产品宣传", "keywords_id": ["科技", "创新", "未来"], "target_duration_id": 5,
    "user_description_id": "一个展示AI技术发展的宣传视频", "priority": "normal",
    "config": {"quality": "low", "resolution": "256x144"},
}


class SmokeError(AssertionError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, token: str, body: dict | None = None, timeout: float = 10) -> dict:
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def sign_in(base: str, username: str, password: str) -> str:
    """Sign in through the form over plain http, as a browser does; return the dashboard's HTML."""
    import http.cookiejar
    import urllib.parse

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(f"{base}/login", timeout=10) as response:
        form = response.read().decode()
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
    if not csrf:
        raise SmokeError("the sign-in page has no CSRF token")
    data = urllib.parse.urlencode({"csrf_token": csrf.group(1), "username": username,
                                   "password": password}).encode()
    with opener.open(f"{base}/login", data=data, timeout=10) as response:
        page = response.read().decode()
        if urllib.parse.urlsplit(response.url).path != "/":
            raise SmokeError(f"signing in over http did not reach the dashboard (at {response.url})")
    return page


def new_user_env() -> dict[str, str]:
    """A new user's shell: nothing of ours configured, and no development environment to lean on."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REDIS_", "DATABASE_URL", "MEDIA_ROOT", "AURA_", "VIRTUAL_ENV", "PYTHON",
                                "SECRET_KEY", "ENVIRONMENT"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_started(proc: subprocess.Popen, log_path: Path, port: int, start_timeout: float = 900) -> tuple[str, str]:
    """Wait until the run command has printed its API token and its web app answers; returns the
    log so far and the admin token. Raises SmokeError with the log's tail otherwise."""
    deadline = time.monotonic() + start_timeout
    text = ""
    while "API token" not in text:
        if time.monotonic() > deadline:
            raise SmokeError(f"no API token printed within {start_timeout:.0f} s:\n{text[-3000:]}")
        if proc.poll() is not None:
            raise SmokeError(f"the run command exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.3)
        text = log_path.read_text(errors="replace")
    token = re.search(r"API token \(admin role\): (\S+)", text).group(1)
    deadline = time.monotonic() + 60
    while True:
        try:
            call(f"http://127.0.0.1:{port}/tasks/queue/status", token)
            return text, token
        except OSError:
            if time.monotonic() > deadline:
                raise SmokeError(f"the web app did not answer:\n{log_path.read_text(errors='replace')[-3000:]}") \
                    from None
            time.sleep(0.3)


def run_and_render(command: list[str], cwd: Path, env: dict[str, str], log_path: Path, port: int,
                   start_timeout: float = 900, render_timeout: float = 180) -> dict:
    """Start `command`, render TINY_BRIEF through it, stop it with SIGINT; return what was seen.

    Raises SmokeError with the log's tail when a step fails or a process outlives the stop."""
    log = open(log_path, "w+")
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    seen: dict = {}

    def tail() -> str:
        return log_path.read_text(errors="replace")[-3000:]

    try:
        text, token = wait_started(proc, log_path, port, start_timeout)
        seen.update(log=text, token=token)
        base = f"http://127.0.0.1:{port}"
        password = re.search(r"with password: (\S+)", text)
        if password:
            seen["signed_in_page"] = sign_in(base, "admin", password.group(1))
        started = time.monotonic()
        task_id = call(f"{base}/tasks/video/async", token, TINY_BRIEF)["task_id"]
        status: dict = {}
        deadline = time.monotonic() + render_timeout
        while time.monotonic() < deadline:
            status = call(f"{base}/tasks/status/{task_id}", token)
            if status["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.5)
        seen.update(task_id=task_id, status=status, render_seconds=time.monotonic() - started)
        if status.get("status") != "completed":
            raise SmokeError(f"the brief did not complete: {status}\n{tail()}")
        video = next(f for f in status["result"]["files"] if f["kind"] == "video")
        request = urllib.request.Request(base + video["url"], headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            seen["video_bytes"] = len(response.read())
        if seen["video_bytes"] < 10_000:
            raise SmokeError(f"the video is only {seen['video_bytes']} bytes")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=90)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise SmokeError(f"the run command did not stop on Ctrl+C:\n{tail()}") from None
    time.sleep(1)
    leftovers = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    if leftovers:
        subprocess.run(["pkill", "-KILL", "-g", str(proc.pid)])
        raise SmokeError(f"processes left running after Ctrl+C: {leftovers}\n{tail()}")
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clone", action="store_true", help="run a fresh clone of HEAD (runtime requirements only)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to run (default: this one)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aura-smoke-"))
    root = args.root
    if args.clone:
        root = work / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(root)], check=True)
    env = new_user_env()
    port = free_port()
    started = time.monotonic()
    try:
        seen = run_and_render(["bash", "scripts/run.sh", "--port", str(port)], root, env, work / "run.log", port)
    except SmokeError as exc:
        print(f"smoke: FAILED: {exc}", file=sys.stderr)
        return 1
    redis_line = next((line.strip() for line in seen["log"].splitlines() if line.strip().startswith("Redis:")), "")
    print(f"smoke: the run command rendered {seen['task_id']} ({seen['video_bytes']} bytes) in "
          f"{seen['render_seconds']:.1f} s; {redis_line}; stopped cleanly; "
          f"{time.monotonic() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
