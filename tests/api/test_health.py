"""The probes a load balancer or Kubernetes uses: /healthz and /readyz, without authentication."""

from __future__ import annotations

from pathlib import Path


def test_healthz_answers_without_auth(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_is_ready_on_a_migrated_database_with_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_readyz_names_redis_when_it_is_down(client, redis_server):
    redis_server.stop()
    try:
        response = client.get("/readyz")
    finally:
        redis_server.start()
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "fail"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("redis unreachable")


def test_readyz_names_an_unmigrated_database(redis_server, tmp_path: Path):
    from webapp import create_app

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.db'}",
                      "REDIS_URL": redis_server.url, "MEDIA_ROOT": str(tmp_path / "media"),
                      "INSTANCE_DIR": str(tmp_path / "instance")})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "not migrated" in response.get_json()["checks"]["database"]
    assert response.get_json()["checks"]["redis"] == "ok"
