"""Shared fixtures: a real private Redis, real databases (SQLite and PostgreSQL when reachable),
Flask apps on freshly migrated schemas, and real Celery worker / beat processes."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
# The suite (and every worker process it spawns, which inherits this environment) runs as
# `testing`: the default secret key is accepted there and nowhere else.
os.environ["ENVIRONMENT"] = "testing"

from embedded_redis import RedisProcess  # noqa: E402

PG_ADMIN_DSN = os.environ.get("AURA_TEST_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")
OUTPUT_DIR = ROOT / "test-output"
VENV_BIN = Path(sys.executable).parent


def _postgres_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=2):
            return True
    except Exception:
        return False


PG_AVAILABLE = _postgres_reachable()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses a database on SQLite and, where reachable, on PostgreSQL."""
    if "db_backend" in metafunc.fixturenames:
        backends = ["sqlite"]
        if PG_AVAILABLE and metafunc.definition.get_closest_marker("sqlite_only") is None:
            backends.append("postgresql")
        metafunc.parametrize("db_backend", backends, indirect=True, scope="function")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    """A private redis-server for the session; tests may restart or stop it."""
    server = RedisProcess(data_dir=Path("/tmp") / f"aura-test-redis-{os.getpid()}").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated database per backend for the whole session."""
    from flask_migrate import upgrade

    from webapp import create_app

    urls = {"sqlite": f"sqlite:///{tmp_path_factory.mktemp('db') / 'aura.db'}"}
    pg_name = None
    if PG_AVAILABLE:
        import psycopg

        pg_name = f"aura_test_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        urls["postgresql"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
    for url in urls.values():
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "AURA_INSTANCE": str(tmp_path_factory.mktemp("inst"))})
        with app.app_context():
            upgrade()
            from webapp.extensions import db

            db.engine.dispose()
    yield urls
    if pg_name:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


@pytest.fixture
def db_backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture
def app(db_backend: str, database_urls: dict[str, str], redis_server: RedisProcess, tmp_path: Path):
    """A Flask app on an emptied, migrated database and an emptied Redis."""
    from webapp import create_app
    from webapp.extensions import db
    from webapp.services import tasks as task_service

    if not redis_server.proc or redis_server.proc.poll() is not None:
        redis_server.start()
    media = tmp_path / "media"
    app = create_app({
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_urls[db_backend],
        "REDIS_URL": redis_server.url,
        "MEDIA_ROOT": str(media),
        "AURA_INSTANCE": str(tmp_path / "instance"),
        "INSTANCE_DIR": str(tmp_path / "instance"),
        "WTF_CSRF_ENABLED": False,
        "LEASE_SECONDS": 3,
        "RECONCILE_SECONDS": 1,
        "RETRY_BACKOFF_SECONDS": 1,
        # Rates and caps above what any test sends; tests/security sets the defaults back to test them.
        "RATELIMIT_READ": "100000/minute",
        "RATELIMIT_SUBMIT": "100000/minute",
        "MAX_ACTIVE_TASKS_PER_USER": 0,  # no cap
    })
    media.mkdir(parents=True, exist_ok=True)
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        task_service._estimate_cache.clear()
    import redis

    redis.Redis.from_url(redis_server.url).flushall()
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


class IsolatedClient(FlaskClient):
    """A test client that gives each request a fresh app context, as a real server does.

    The `app` fixture keeps an app context pushed; Flask would reuse it for every request, so
    `g` (Flask-Login's user, Flask-Babel's locale) and the SQLAlchemy session would leak between
    requests.
    """

    def open(self, *args: Any, **kwargs: Any):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def client(app) -> FlaskClient:
    app.test_client_class = IsolatedClient
    return app.test_client()


@pytest.fixture
def make_token(app) -> Callable[..., str]:
    """make_token(role="operator") -> a raw bearer token."""
    from webapp.services import auth

    def make(role: str = "operator", name: str | None = None) -> str:
        _token, raw = auth.create_token(name or f"test-{role}", role)
        return raw

    return make


@pytest.fixture
def make_user(app) -> Callable[..., Any]:
    """make_user(username, role="viewer", password="password123") -> User."""
    from webapp.services import auth

    def make(username: str, role: str = "viewer", password: str = "password123"):
        return auth.create_user(username, password, role)

    return make


SAMPLE_BRIEF: dict[str, Any] = {
    "theme_id": "产品宣传",
    "keywords_id": ["科技", "创新", "未来"],
    "target_duration_id": 60,
    "user_description_id": "一个展示AI技术发展的宣传视频",
    "priority": "high",
    "config": {"quality": "high", "resolution": "1920x1080"},
}


def small_brief(**overrides: Any) -> dict[str, Any]:
    """The SPEC sample brief at a small, fast size."""
    brief = {**SAMPLE_BRIEF, "target_duration_id": 5, "priority": "normal",
             "config": {"quality": "low", "resolution": "256x144"}}
    brief.update(overrides)
    return brief


@pytest.fixture
def make_task(app) -> Callable[..., Any]:
    """make_task(**fields) inserts a RenderTask row (no broker message) and returns it."""
    from webapp.extensions import db
    from webapp.models import RenderTask
    from webapp.services.tasks import new_task_id
    from webapp.timeutil import utcnow

    def make(**fields: Any):
        brief = fields.pop("request", small_brief())
        now = utcnow()
        values = dict(
            id=new_task_id(), status="queued", priority=brief["priority"], queue="video_generation",
            theme=brief["theme_id"], description=brief["user_description_id"],
            resolution=brief["config"]["resolution"], quality=brief["config"]["quality"],
            target_duration=brief["target_duration_id"], request=brief, progress=0.0, message="",
            attempt=0, max_attempts=4, created_at=now, updated_at=now, estimated_duration=10,
        )
        values.update(fields)
        task = RenderTask(**values)
        db.session.add(task)
        db.session.commit()
        return task

    return make


class Stack:
    """Real Celery worker and beat processes against the test app's database and Redis."""

    def __init__(self, app, tmp_path: Path):
        self.app = app
        self.logs = tmp_path / "logs"
        self.logs.mkdir(exist_ok=True)
        cfg = app.config
        self.env = dict(os.environ)
        self.env.update({
            "DATABASE_URL": cfg["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": cfg["REDIS_URL"],
            "MEDIA_ROOT": cfg["MEDIA_ROOT"],
            "AURA_INSTANCE": cfg["INSTANCE_DIR"],
            "LEASE_SECONDS": str(cfg["LEASE_SECONDS"]),
            "RECONCILE_SECONDS": str(cfg["RECONCILE_SECONDS"]),
            "RETRY_BACKOFF_SECONDS": str(cfg["RETRY_BACKOFF_SECONDS"]),
            "TASK_MAX_RETRIES": str(cfg["TASK_MAX_RETRIES"]),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        })
        self.procs: dict[str, subprocess.Popen] = {}
        self._count = 0

    def celery(self, *args: str) -> list[str]:
        return [str(VENV_BIN / "celery"), "-A", "worker.celery_app:app", *args]

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**self.env, **(env or {})}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def log_text(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_worker(self, queues: list[str] | None = None, name: str | None = None, concurrency: int = 1,
                     extra: list[str] | None = None, env: dict[str, str] | None = None,
                     wait: bool = True, node: str | None = None) -> str:
        """Start `celery worker` consuming `queues`; returns its node name."""
        from webapp.catalog import QUEUES

        self._count += 1
        name = name or f"w{self._count}"
        node = node or f"{name}@{secrets.token_hex(3)}"
        cmd = self.celery("worker", "-Q", ",".join(queues or list(QUEUES)), "-n", node,
                          "--concurrency", str(concurrency), "--loglevel", "INFO", "--without-mingle",
                          "--without-gossip", *(extra or []))
        self.spawn(name, cmd, env)
        if wait:
            self.wait_for(lambda: "ready." in self.log_text(name), 60, f"worker {name} ready")
        return node

    def start_beat(self) -> None:
        self.spawn("beat", self.celery("beat", "--loglevel", "INFO", "-s", str(self.logs / "beat-schedule")))

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name, signal.SIGTERM, timeout=15)

    @staticmethod
    def wait_for(predicate: Callable[[], Any], timeout: float, what: str = "condition",
                 interval: float = 0.1) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def task(self, task_id: str):
        """A fresh read of a task row."""
        from webapp.extensions import db
        from webapp.models import RenderTask

        db.session.expire_all()
        return db.session.get(RenderTask, task_id)

    def wait_artifacts_removed(self, task_id: str, timeout: float = 30) -> None:
        """The worker that ends a task removes its artifacts (`work/<id>/`) right after the task's
        row turns final, so a test that saw the final status waits for that removal too."""
        from webapp.storage import get_storage, work_prefix

        storage = get_storage()
        left: list[str] = []

        def removed() -> bool:
            left[:] = storage.list(work_prefix(task_id))
            return not left

        try:
            self.wait_for(removed, timeout, f"the artifacts of task {task_id} to be removed", interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; still there: {left}") from None

    def wait_status(self, task_id: str, statuses: str | tuple[str, ...], timeout: float = 120):
        wanted = (statuses,) if isinstance(statuses, str) else statuses
        try:
            return self.wait_for(lambda: (t := self.task(task_id)) is not None and t.status in wanted and t,
                                 timeout, f"task {task_id} to be {wanted}", interval=0.2)
        except AssertionError:
            task = self.task(task_id)
            logs = "\n".join(f"--- {n}\n{self.log_text(n)[-3000:]}" for n in self.procs)
            raise AssertionError(f"task {task_id} is {task.status if task else None} "
                                 f"({task.message if task else ''}), wanted {wanted}\n{logs}") from None


@pytest.fixture
def stack(app, tmp_path: Path) -> Iterator[Stack]:
    """Starts nothing by itself; tests start the workers and beat they need."""
    running = Stack(app, tmp_path)
    yield running
    running.stop_all()


# --- browser (end-to-end) fixtures: one Playwright and one Chromium for the whole session ---------

SCREENSHOTS = OUTPUT_DIR / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The app on a free local port, with CSRF protection on as in production."""
    app.config["WTF_CSRF_ENABLED"] = True
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (bash scripts/setup.sh --dev)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request) -> Iterator[Any]:
    """A fresh browser context and page; a screenshot of the last page is saved at the end."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    # A Content-Security-Policy violation (an inline script, a blocked source) fails the test too.
    tab.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    yield tab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "_")
    try:
        tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def login(live_server, make_user) -> Callable[..., Any]:
    """login(page, role) creates a user of that role and signs in through the form."""

    def sign_in(page: Any, role: str = "operator", username: str | None = None) -> Any:
        user = make_user(username or f"{role}-e2e", role)
        page.goto(f"{live_server}/login")
        page.get_by_label("User name").fill(user.username)
        page.get_by_label("Password").fill("password123")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server}/")
        return user

    return sign_in


# --- S3 storage: moto's standalone server, a real process speaking the S3 HTTP API ------------------


class S3Server:
    """`moto_server` on a free local port; `url` is its endpoint."""

    def __init__(self, log_dir: Path):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_dir / "moto.log", "ab")
        self.proc = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        import urllib.request

        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)

    def config(self, bucket: str) -> dict[str, str]:
        """App settings for a fresh bucket on this server."""
        from webapp.storage import S3Storage

        settings = {"STORAGE_URL": f"s3://{bucket}/aura", "S3_ENDPOINT_URL": self.url,
                    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1"}
        S3Storage(bucket, endpoint_url=self.url, access_key="testing", secret_key="testing").ensure_bucket()
        return settings

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()
