"""Command-line tools: `flask --app wsgi tokens ...`, `users ...`, `assets import DIR`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from sqlalchemy import select

from webapp.catalog import Role
from webapp.extensions import db
from webapp.models import ApiToken, User
from webapp.services import auth, reconcile

ROLE_CHOICE = click.Choice([r.value for r in Role])


def register_cli(app: Flask) -> None:
    """Attach the command groups to the app."""
    app.cli.add_command(tokens)
    app.cli.add_command(users)
    app.cli.add_command(reconcile_command)
    app.cli.add_command(assets)


@click.group()
def tokens() -> None:
    """Manage API tokens."""


@tokens.command("create")
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, default=Role.OPERATOR.value, show_default=True)
def tokens_create(name: str, role: str) -> None:
    """Create a token; the raw token is printed as the last line, once."""
    token, raw = auth.create_token(name, role)
    click.echo(f"Created token #{token.id} '{name}' with role {role}. Store it now; it is not shown again:")
    click.echo(raw)


@tokens.command("list")
def tokens_list() -> None:
    """List tokens (prefixes only)."""
    for token in db.session.scalars(select(ApiToken).order_by(ApiToken.id)):
        state = "revoked" if token.revoked_at else "active"
        click.echo(f"{token.id}\t{token.name}\t{token.role}\t{token.prefix}…\t{state}")


@tokens.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke a token by id."""
    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise click.ClickException(f"no token with id {token_id}")
    auth.revoke_token(token)
    click.echo(f"Revoked token #{token_id}")


@click.group()
def users() -> None:
    """Manage dashboard users."""


@users.command("create")
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, default=Role.VIEWER.value, show_default=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def users_create(name: str, role: str, password: str) -> None:
    """Create a user who signs in with a password."""
    if db.session.scalar(select(User).where(User.username == name)) is not None:
        raise click.ClickException(f"user {name!r} exists")
    if len(password) < 8:
        raise click.ClickException("the password needs at least 8 characters")
    auth.create_user(name, password, role)
    click.echo(f"Created user {name} with role {role}")


@users.command("update")
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE)
@click.option("--active/--inactive", default=None)
@click.option("--password", is_flag=False, flag_value="", default=None,
              help="a new password (prompted when given without a value)")
def users_update(name: str, role: str | None, active: bool | None, password: str | None) -> None:
    """Change a user's role, active flag or password; any change ends the user's sessions."""
    user = db.session.scalar(select(User).where(User.username == name))
    if user is None:
        raise click.ClickException(f"no user {name!r}")
    if password == "":
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    if password is not None and len(password) < 8:
        raise click.ClickException("the password needs at least 8 characters")
    changed = auth.update_user(user, password=password, role=role, active=active)
    click.echo(f"Updated user {name}; their sessions have ended" if changed else f"Nothing to change for {name}")


@click.command("reconcile")
def reconcile_command() -> None:
    """Run one reconciler pass now and print what it did."""
    click.echo(reconcile.reconcile())


@click.group()
def assets() -> None:
    """Manage the media library."""


@assets.command("import")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--owner", default="admin", show_default=True,
              help="The user name (or token:<name>) who owns the imported assets.")
@click.option("--tags", default="", help="Comma-separated tags for every imported file.")
@click.option("--shared/--private", default=False, show_default=True, help="Visible to every operator.")
def assets_import(folder: Path, owner: str, tags: str, shared: bool) -> None:
    """Import every file of FOLDER on this server (recursively); refusals are listed, not fatal."""
    from webapp.services import assets as asset_service

    principal = owner if ":" in owner else f"user:{owner}"
    actor = asset_service.Actor(principal)
    kept = refused = 0
    for path, asset, error in asset_service.import_folder(folder, actor, tags=tags, shared=shared):
        if asset is not None:
            kept += 1
            click.echo(f"{asset.id}\t{asset.kind}\t{path}")
        else:
            refused += 1
            click.echo(f"refused\t{path}\t{error}", err=True)
    click.echo(f"Imported {kept} file(s), refused {refused}.")
    if refused and not kept:
        raise SystemExit(1)
