"""Aura Render web application: `create_app()` builds it."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, has_request_context, jsonify, request
from sqlalchemy import event
from sqlalchemy.engine import Engine

from webapp.config import check_production, load_config
from webapp.extensions import babel, csrf, db, htmx, login_manager, migrate

MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL and a busy timeout let the web app, workers and beat share one SQLite file."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def select_locale() -> str | None:
    """Language: the switcher's cookie, then the user's choice, then Accept-Language."""
    from flask_login import current_user

    supported = ["en", "zh"]
    if not has_request_context():  # CLI, workers, tests: the default locale
        return None
    chosen = request.cookies.get("lang")
    if chosen in supported:
        return chosen
    if getattr(current_user, "is_authenticated", False) and getattr(current_user, "locale", None) in supported:
        return current_user.locale
    return request.accept_languages.best_match(["en", "zh", "zh_CN", "zh-CN"], default="en")[:2]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app; `config` overrides values read from the environment."""
    app = Flask(__name__, instance_relative_config=False)
    app.config.update(load_config())
    if config:
        app.config.update(config)
    check_production(app.config)
    Path(app.config["INSTANCE_DIR"]).mkdir(parents=True, exist_ok=True)
    Path(app.config["MEDIA_ROOT"]).mkdir(parents=True, exist_ok=True)
    if not app.config.get("STORAGE_URL"):
        app.config["STORAGE_URL"] = Path(app.config["MEDIA_ROOT"]).resolve().as_uri()
    app.json.ensure_ascii = False  # Chinese text stays readable in JSON

    engine_options: dict[str, Any] = {
        "json_serializer": lambda obj: __import__("json").dumps(obj, ensure_ascii=False),
    }
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        engine_options.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
    else:
        engine_options.update(connect_args={"timeout": 15})
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options)

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR)
    htmx.init_app(app)
    csrf.init_app(app)
    login_manager.init_app(app)
    babel.init_app(app, locale_selector=select_locale,
                   default_translation_directories=str(Path(__file__).parent / "translations"))

    from webapp.celery_setup import celery_init_app

    celery_init_app(app)
    from webapp.limits import init_limits

    init_limits(app)
    register_blueprints(app)
    register_errors(app)
    register_security_headers(app)

    from webapp.cli import register_cli

    register_cli(app)
    return app


def register_blueprints(app: Flask) -> None:
    """One blueprint per area."""
    from webapp.admin.views import bp as admin_bp
    from webapp.api.assets import bp as assets_bp
    from webapp.api.batches import bp as api_batches_bp
    from webapp.api.docs import bp as api_docs_bp
    from webapp.api.metrics import bp as metrics_bp
    from webapp.api.views import bp as api_bp
    from webapp.api.webhooks import bp as api_webhooks_bp
    from webapp.api.workers import bp as api_workers_bp
    from webapp.dashboard.library import bp as library_bp
    from webapp.dashboard.ops import bp as ops_bp
    from webapp.dashboard.views import bp as dashboard_bp
    from webapp.health import bp as health_bp
    from webapp.media import bp as media_bp

    app.register_blueprint(api_workers_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(assets_bp)
    app.register_blueprint(media_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(library_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(api_docs_bp)
    app.register_blueprint(api_webhooks_bp)
    app.register_blueprint(api_batches_bp)
    app.register_blueprint(metrics_bp)
    app.register_blueprint(ops_bp)

    from webapp.services import metrics

    metrics.init_app(app)


#: No inline script anywhere (scripts are static files); style attributes stay (progress bars).
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "style-src-attr 'unsafe-inline'",
    "img-src 'self' data:", "media-src 'self'", "connect-src 'self'", "object-src 'none'",
    "base-uri 'self'", "form-action 'self'", "frame-ancestors 'none'",
])


def register_security_headers(app: Flask) -> None:
    """CSP, no framing, no MIME sniffing, a referrer policy on every response; HSTS in production."""
    hsts = app.config["ENVIRONMENT"] == "production"

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        if hsts:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response


def register_errors(app: Flask) -> None:
    """JSON errors under /tasks, plain pages elsewhere."""
    from werkzeug.exceptions import HTTPException

    from webapp.api.auth import api_error

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        response = _http_error(exc)
        if exc.code == 429:
            from webapp.limits import retry_after_seconds

            response = app.make_response(response)
            response.headers["Retry-After"] = str(retry_after_seconds())
        return response

    def _http_error(exc: HTTPException):
        if request.path.startswith(("/tasks", "/webhooks", "/assets")):
            names = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                     405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type",
                     429: "rate_limited"}
            message = exc.description or exc.name
            if exc.code == 413 and request.path.startswith("/assets"):
                from webapp.services.assets import too_large_message

                message = too_large_message(app.config["ASSET_MAX_BYTES"])
            elif exc.code == 413:
                message = "The body is larger than 64 KB."
            if exc.code == 429:
                message = f"Too many requests ({exc.description}); retry after the Retry-After seconds."
            return api_error(exc.code or 500, names.get(exc.code or 500, "error"), message)
        if (exc.code or 0) >= 400 and not request.path.startswith(("/media/", "/static/")):
            from webapp.dashboard.views import error_page

            return error_page(exc)
        return exc

    @app.errorhandler(500)
    def server_error(exc: Exception):
        if request.path.startswith(("/tasks", "/webhooks", "/assets")):
            return api_error(500, "internal_error", "Internal error; it has been logged.")
        return jsonify({"error": "internal_error"}), 500
