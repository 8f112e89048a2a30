"""Start the real pieces for a benchmark: a private Redis, a migrated SQLite (or DATABASE_URL)
database, gunicorn and Celery workers, all in a temp instance directory, all stopped at exit."""

from __future__ import annotations

import atexit
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from embedded_redis import RedisProcess, free_port  # noqa: E402

BIN = Path(sys.executable).parent
#: The realistic briefs of the project (a copy of shared/briefs.json); the first is SPEC's sample.
BRIEFS: list[dict] = json.loads((ROOT / "tests" / "pipeline" / "briefs.json").read_text(encoding="utf-8"))
SAMPLE_BRIEF: dict = BRIEFS[0]


class Harness:
    """One throwaway deployment on this machine."""

    def __init__(self, database_url: str | None = None):
        (ROOT / "var").mkdir(exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="bench-", dir=ROOT / "var"))
        self.redis = RedisProcess(data_dir=self.dir / "redis").start()
        self.env = dict(os.environ)
        self.env.update({
            "AURA_INSTANCE": str(self.dir),
            "MEDIA_ROOT": str(self.dir / "media"),
            "REDIS_URL": self.redis.url,
            "DATABASE_URL": database_url or f"sqlite:///{self.dir / 'aura.db'}",
            "PYTHONPATH": str(ROOT),
            # Production rules (no ENVIRONMENT) with a throwaway key, plain-http cookies, and limits
            # raised above what the benchmarks send from one token (bench/submit.py: hundreds per second).
            "SECRET_KEY": secrets.token_urlsafe(48),
            "SESSION_COOKIE_SECURE": "false",
            "RATELIMIT_SUBMIT": "100000/minute",
            "RATELIMIT_READ": "1000000/minute",
            "MAX_ACTIVE_TASKS_PER_USER": "0",  # no cap
            # The example briefs go up to 3840x2160 and 600 s; operators submit them all here.
            "OPERATOR_MAX_RESOLUTION": "3840x2160",
            "OPERATOR_MAX_DURATION": "600",
        })
        self.env.pop("ENVIRONMENT", None)
        self.procs: list[subprocess.Popen] = []
        atexit.register(self.stop)
        os.environ.update(self.env)
        from flask_migrate import upgrade

        from webapp import create_app

        self.app = create_app()
        with self.app.app_context():
            upgrade()

    def token(self, role: str = "admin") -> str:
        from webapp.services import auth

        with self.app.app_context():
            return auth.create_token(f"bench-{role}", role)[1]

    def spawn(self, name: str, cmd: list[str], cpus: set[int] | None = None) -> subprocess.Popen:
        """Start `cmd` in a session of its own; `cpus` pins it (and its children) to those cores."""
        log = open(self.dir / f"{name}.log", "ab")
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=pin)
        self.procs.append(proc)
        return proc

    def gunicorn(self, workers: int = 2, threads: int = 4) -> str:
        port = free_port()
        self.spawn("web", [str(BIN / "gunicorn"), "wsgi:app", "-b", f"127.0.0.1:{port}", "-w", str(workers),
                           "-k", "gthread", "--threads", str(threads), "--keep-alive", "30",
                           "--log-level", "warning"])
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url + "/login", timeout=1)
                return url
            except Exception:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start; see " + str(self.dir / "web.log"))

    def worker(self, queues: str, name: str, concurrency: int = 1, cpus: set[int] | None = None) -> None:
        self.spawn(name, [str(BIN / "celery"), "-A", "worker.celery_app:app", "worker", "-Q", queues,
                          "-n", f"{name}@bench", "--concurrency", str(concurrency), "--loglevel", "WARNING",
                          "--without-mingle", "--without-gossip"], cpus=cpus)
        log = self.dir / f"{name}.log"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if log.exists() and "ready" in log.read_text(errors="replace"):
                return
            time.sleep(0.2)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs = []
        self.redis.stop()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def verdict(name: str, value: float, target: float, unit: str, higher_is_better: bool = False) -> bool:
    ok = value >= target if higher_is_better else value <= target
    sign = ">=" if higher_is_better else "<="
    print(f"  {name:<34} {value:>10.2f} {unit:<6} target {sign} {target:g} {unit:<6} {'PASS' if ok else 'FAIL'}")
    return ok
