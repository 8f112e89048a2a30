"""The command-line tools: `flask --app wsgi tokens ...` and `flask --app wsgi users ...`."""

from __future__ import annotations

from webapp.services import auth


def test_tokens_create_prints_a_working_token_as_its_last_line(app, client):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["tokens", "create", "ci-bot", "--role", "viewer"])
    assert result.exit_code == 0, result.output
    raw = result.output.strip().splitlines()[-1]
    info = auth.authenticate(raw)
    assert info is not None and info.role == "viewer" and info.name == "ci-bot"
    assert client.get("/tasks/history", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    listing = runner.invoke(args=["tokens", "list"]).output
    assert "ci-bot" in listing and raw[:12] in listing and raw not in listing  # only the prefix


def test_tokens_are_stored_hashed_and_can_be_revoked(app, client):
    from webapp.extensions import db
    from webapp.models import ApiToken

    runner = app.test_cli_runner()
    raw = runner.invoke(args=["tokens", "create", "tmp", "--role", "admin"]).output.strip().splitlines()[-1]
    token = db.session.query(ApiToken).filter_by(name="tmp").one()
    assert token.token_hash != raw and raw not in token.token_hash
    assert runner.invoke(args=["tokens", "revoke", str(token.id)]).exit_code == 0
    assert client.get("/tasks/history", headers={"Authorization": f"Bearer {raw}"}).status_code == 401
    assert runner.invoke(args=["tokens", "revoke", "9999"]).exit_code != 0


def test_tokens_create_rejects_an_unknown_role(app):
    result = app.test_cli_runner().invoke(args=["tokens", "create", "x", "--role", "root"])
    assert result.exit_code != 0 and "root" in result.output


def test_users_create_with_and_without_password(app, client):
    runner = app.test_cli_runner()
    done = runner.invoke(args=["users", "create", "ann", "--role", "operator", "--password", "s3cret-pass"])
    assert done.exit_code == 0, done.output
    prompted = runner.invoke(args=["users", "create", "bob", "--role", "viewer"], input="another-pass\nanother-pass\n")
    assert prompted.exit_code == 0, prompted.output
    assert runner.invoke(args=["users", "create", "ann", "--password", "whatever-1"]).exit_code != 0  # exists
    assert runner.invoke(args=["users", "create", "cy", "--password", "short"]).exit_code != 0
    response = client.post("/login", data={"username": "bob", "password": "another-pass"})
    assert response.status_code == 302


def test_users_update_ends_the_users_sessions(app, client):
    runner = app.test_cli_runner()
    runner.invoke(args=["users", "create", "uma", "--role", "viewer", "--password", "s3cret-pass"])
    assert client.post("/login", data={"username": "uma", "password": "s3cret-pass"}).status_code == 302
    assert client.get("/settings").status_code == 200
    done = runner.invoke(args=["users", "update", "uma", "--role", "operator"])
    assert done.exit_code == 0 and "sessions have ended" in done.output
    assert client.get("/settings").status_code == 302
    assert "Nothing to change" in runner.invoke(args=["users", "update", "uma", "--active"]).output
    assert runner.invoke(args=["users", "update", "uma", "--inactive"]).exit_code == 0
    assert client.post("/login", data={"username": "uma", "password": "s3cret-pass"}).status_code == 401
    assert runner.invoke(args=["users", "update", "nobody", "--active"]).exit_code != 0
