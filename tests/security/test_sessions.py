"""Sessions and tokens follow their user: a change of password, role or active flag ends the user's
other sessions, CSRF tokens expire, and a token never has more rights than its owner has now."""

from __future__ import annotations

import time

import pytest

from tests.conftest import IsolatedClient, small_brief
from tests.dashboard.conftest import csrf_from
from webapp.extensions import db
from webapp.models import User
from webapp.services import auth


def second_client(app, user: User):
    other = app.test_client()
    assert isinstance(other, IsolatedClient)
    response = other.post("/login", data={"username": user.username, "password": "password123"})
    assert response.status_code == 302
    assert other.get("/settings").status_code == 200
    return other


def fresh_user(name: str) -> User:
    db.session.expire_all()
    return db.session.scalar(db.select(User).where(User.username == name))


def test_changing_ones_password_ends_the_other_sessions_only(app, client, sign_in):
    user = sign_in("viewer", "ana")
    laptop = second_client(app, user)
    response = client.post("/settings/password", data={"current": "password123", "new": "n3w-password",
                                                       "confirm": "n3w-password"})
    assert response.status_code == 302
    assert client.get("/settings").status_code == 200  # the session that changed it goes on
    response = laptop.get("/settings")
    assert response.status_code == 302 and response.location.startswith("/login")


@pytest.mark.parametrize("change", [{"role": "operator"}, {"active": False}, {"password": "another-pass"}])
def test_an_admins_change_ends_the_users_sessions(app, client, sign_in, change):
    sign_in("viewer", "bo")
    assert client.get("/settings").status_code == 200
    auth.update_user(fresh_user("bo"), **change)
    response = client.get("/settings")
    assert response.status_code == 302 and response.location.startswith("/login")


def test_no_change_keeps_the_sessions(app, client, sign_in):
    sign_in("viewer", "cy")
    assert auth.update_user(fresh_user("cy"), role="viewer", active=True) is False
    assert client.get("/settings").status_code == 200


def test_csrf_tokens_expire(app, client, make_user):
    make_user("dee", "viewer")
    app.config.update(WTF_CSRF_ENABLED=True, WTF_CSRF_TIME_LIMIT=1)
    token = csrf_from(client.get("/login").get_data(as_text=True))
    time.sleep(2.1)
    response = client.post("/login", data={"csrf_token": token, "username": "dee", "password": "password123"})
    assert response.status_code == 400
    fresh = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"csrf_token": fresh, "username": "dee", "password": "password123"})
    assert response.status_code == 302


def test_a_tokens_role_is_capped_by_its_owners_current_role(app, client, make_user):
    owner = make_user("eve", "admin")
    _token, raw = auth.create_token("eve-admin", "admin", owner)
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/tasks/workers", headers=headers).status_code == 200
    auth.update_user(fresh_user("eve"), role="operator")
    response = client.get("/tasks/workers", headers=headers)
    assert response.status_code == 403 and "(operator)" in response.get_json()["message"]
    assert client.post("/tasks/video/async", json=small_brief(), headers=headers).status_code == 202
    auth.update_user(fresh_user("eve"), role="viewer")
    assert client.post("/tasks/video/async", json=small_brief(), headers=headers).status_code == 403
    assert client.get("/tasks/queue/status", headers=headers).status_code == 200
    auth.update_user(fresh_user("eve"), active=False)
    assert client.get("/tasks/queue/status", headers=headers).status_code == 401


def test_a_change_in_another_process_applies_at_the_next_use(app, client, make_user):
    """The per-process token cache follows the shared generation counter, not only its age."""
    owner = make_user("fay", "operator")
    _token, raw = auth.create_token("fay-op", "operator", owner)
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.post("/tasks/video/async", json=small_brief(), headers=headers).status_code == 202
    # Another process demotes fay: the database and the counter change, this process's cache does not.
    db.session.execute(db.update(User).where(User.id == owner.id).values(role="viewer"))
    db.session.commit()
    from webapp.services.broker import redis_client

    redis_client().incr(auth.GENERATION_KEY)
    assert client.post("/tasks/video/async", json=small_brief(), headers=headers).status_code == 403
