"""GET /metrics: Prometheus text, for any valid API token or a client in METRICS_ALLOWED_IPS."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from webapp.api.auth import api_error, bearer_token
from webapp.extensions import csrf
from webapp.services import metrics
from webapp.services.auth import authenticate

bp = Blueprint("metrics", __name__)
csrf.exempt(bp)


@bp.get("/metrics")
def scrape():
    raw = bearer_token()
    allowed = metrics.address_allowed(request.remote_addr, current_app.config["METRICS_ALLOWED_IPS"])
    if not allowed and (raw is None or authenticate(raw) is None):
        response = api_error(401, "unauthorized", "A valid API token (any role) or an address in "
                                                  "METRICS_ALLOWED_IPS is required.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="aura"'
        return response
    return Response(metrics.exposition(), mimetype="text/plain; version=0.0.4; charset=utf-8")
