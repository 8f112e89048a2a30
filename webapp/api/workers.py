"""Worker fleet endpoints of the JSON API (placeholder until the worker fleet lands)."""

from flask import Blueprint

from webapp.extensions import csrf

bp = Blueprint("api_workers", __name__, url_prefix="/tasks/workers")
csrf.exempt(bp)
