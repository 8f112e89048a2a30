"""The browser dashboard (placeholder until the dashboard pages land)."""

from __future__ import annotations

from flask import Blueprint

from webapp.extensions import db, login_manager
from webapp.models import User

bp = Blueprint("dashboard", __name__)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


@bp.get("/")
def index():
    return "Aura Render is running. The JSON API is under /tasks/."
