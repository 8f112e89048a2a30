"""Configuration, Celery settings and the import boundary between web and worker."""

from __future__ import annotations

import subprocess
import sys

import pytest

from webapp.catalog import PRIORITIES, QUEUES, TASK_QUEUES
from webapp.celery_setup import celery_config, transport_options
from webapp.config import DEFAULT_SECRET_KEY, check_production, hide_password, load_config, redis_url_from


def test_redis_url_wins_over_parts():
    env = {"REDIS_URL": "redis://other:1/2", "REDIS_HOST": "h", "REDIS_PORT": "7"}
    assert redis_url_from(env) == "redis://other:1/2"


def test_redis_url_from_parts_with_password():
    env = {"REDIS_HOST": "cache", "REDIS_PORT": "6380", "REDIS_DB": "3", "REDIS_PASSWORD": "p@ss word"}
    assert redis_url_from(env) == "redis://:p%40ss%20word@cache:6380/3"
    assert redis_url_from({}) == "redis://localhost:6379/0"


def test_spec_names_are_read():
    config = load_config({"CELERY_WORKER_CONCURRENCY": "3", "CELERY_WORKER_MAX_MEMORY": "256",
                          "TASK_SOFT_TIME_LIMIT": "100", "TASK_TIME_LIMIT": "200", "TASK_MAX_RETRIES": "5",
                          "ENVIRONMENT": "development", "DATABASE_URL": "postgresql://u@h/db",
                          "MEDIA_ROOT": "/tmp/m"})
    assert config["CELERY_WORKER_CONCURRENCY"] == 3
    assert config["TASK_MAX_RETRIES"] == 5
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"
    assert config["MEDIA_ROOT"] == "/tmp/m"
    assert config["VISIBILITY_TIMEOUT"] > 200


def test_bad_integer_is_a_clear_error():
    with pytest.raises(RuntimeError, match="TASK_TIME_LIMIT"):
        load_config({"TASK_TIME_LIMIT": "ten"})


def test_production_refuses_default_or_weak_secret():
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        check_production(load_config({"ENVIRONMENT": "production"}))
    with pytest.raises(RuntimeError):
        check_production({"ENVIRONMENT": "production", "SECRET_KEY": "short"})
    check_production({"ENVIRONMENT": "production", "SECRET_KEY": "x" * 40})
    check_production({"ENVIRONMENT": "development", "SECRET_KEY": DEFAULT_SECRET_KEY})


def test_production_app_does_not_start_with_default_key(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    from webapp import create_app

    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app()


@pytest.mark.parametrize("environment", [None, "", "prod", "Production", "staging", " production "])
def test_default_key_is_refused_unless_development_or_testing(monkeypatch, environment):
    """Unset or anything but development/testing counts as production: the well-known key is refused."""
    if environment is None:
        monkeypatch.delenv("ENVIRONMENT", raising=False)
    else:
        monkeypatch.setenv("ENVIRONMENT", environment)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    from webapp import create_app

    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app()
    assert load_config({} if environment is None else {"ENVIRONMENT": environment})["ENVIRONMENT"] == "production"


@pytest.mark.parametrize("environment", ["development", "Development", "TESTING", "testing"])
def test_default_key_is_accepted_in_development_and_testing(environment):
    config = load_config({"ENVIRONMENT": environment})
    assert config["ENVIRONMENT"] == environment.lower()
    check_production(config)
    assert config["SESSION_COOKIE_SECURE"] is False


def test_secure_cookies_follow_production_unless_configured():
    key = {"SECRET_KEY": "k" * 40}
    assert load_config(key)["SESSION_COOKIE_SECURE"] is True
    assert load_config({**key, "SESSION_COOKIE_SECURE": "false"})["SESSION_COOKIE_SECURE"] is False
    assert load_config({"ENVIRONMENT": "development", "SESSION_COOKIE_SECURE": "1"})["SESSION_COOKIE_SECURE"] is True
    with pytest.raises(RuntimeError, match="SESSION_COOKIE_SECURE"):
        load_config({"SESSION_COOKIE_SECURE": "maybe"})


def test_csrf_tokens_expire():
    assert load_config({})["WTF_CSRF_TIME_LIMIT"] == 8 * 3600
    assert load_config({"CSRF_TIME_LIMIT": "60"})["WTF_CSRF_TIME_LIMIT"] == 60


def test_printed_urls_hide_passwords():
    assert hide_password("redis://:s3cret@cache:6380/0") == "redis://:***@cache:6380/0"
    assert hide_password("postgresql://aura:pw@db/aura") == "postgresql://aura:***@db/aura"
    assert hide_password("redis://localhost:6379/0") == "redis://localhost:6379/0"


def test_celery_settings_hold_priority_and_crash_recovery():
    config = celery_config(load_config({"TASK_TIME_LIMIT": "600", "CELERY_WORKER_MAX_MEMORY": "512"}))
    assert config["worker_prefetch_multiplier"] == 1
    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    assert config["task_default_priority"] == PRIORITIES["normal"].redis_level == 6
    assert config["broker_transport_options"]["priority_steps"] == [0, 3, 6, 9]
    assert config["broker_transport_options"]["visibility_timeout"] > config["task_time_limit"]
    assert config["worker_max_memory_per_child"] == 512 * 1024
    assert {q.name for q in config["task_queues"]} == set(QUEUES)
    assert {r["queue"] for r in config["task_routes"].values()} <= set(QUEUES)
    assert set(TASK_QUEUES.values()) <= set(QUEUES)
    assert PRIORITIES["urgent"].redis_level < PRIORITIES["high"].redis_level < PRIORITIES["low"].redis_level


def test_transport_options_are_the_same_in_web_and_worker(tmp_path):
    """The worker's Celery app is built by the same factory as the web's: same options."""
    code = ("import json; from worker.celery_app import app; "
            "print(json.dumps(app.conf.broker_transport_options, sort_keys=True))")
    env = {"AURA_INSTANCE": str(tmp_path), "PATH": "/usr/bin:/bin", "ENVIRONMENT": "testing"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2])).stdout
    import json

    assert json.loads(out.strip().splitlines()[-1]) == json.loads(
        json.dumps(transport_options(load_config({"AURA_INSTANCE": str(tmp_path)})), sort_keys=True))


def test_web_process_never_imports_worker_or_moviepy(tmp_path):
    code = ("import sys, wsgi; bad = sorted(m for m in sys.modules if m == 'worker' or m.startswith('worker.') "
            "or m.startswith('moviepy')); print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"AURA_INSTANCE": str(tmp_path), "PATH": "/usr/bin:/bin",
                                 "ENVIRONMENT": "testing"},
                            cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_environment_variable_is_read_in_config_and_documented():
    """webapp/config.py is the one place that reads the environment; each name it reads is in the
    README's configuration table and in .env.example, and no other module reads a variable itself."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    source = (root / "webapp" / "config.py").read_text()
    names = set(re.findall(r'(?:env\.get|_int|_float|_bool|_size|_list)\((?:env, )?"([A-Z0-9_]+)"', source))
    assert {"SECRET_KEY", "RATELIMIT_SUBMIT", "SUPERVISOR_MAX_WORKERS", "AURA_K8S_PREFIX"} <= names
    readme = (root / "README.md").read_text()
    example = (root / ".env.example").read_text()
    for name in sorted(names):
        assert f"`{name}`" in readme, f"{name} is not in the README's configuration table"
        assert re.search(rf"^{name}=", example, re.M), f"{name} is not in .env.example"
    reads = re.compile(r"os\.environ\.get\(|os\.getenv\(|os\.environ\[\"")
    offenders = []
    for folder in ("webapp", "worker", "scripts"):
        for path in (root / folder).rglob("*.py"):
            if path.name in ("config.py", "smoke_run.py"):
                continue
            if reads.search(path.read_text()):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []
