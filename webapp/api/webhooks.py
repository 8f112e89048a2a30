"""The webhooks API (admin): register, list, change, delete, rotate, test, deliveries."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from flask_babel import gettext as _

from webapp.api.auth import api_error, require_role
from webapp.api.views import read_json_body
from webapp.catalog import Role
from webapp.extensions import csrf
from webapp.services import webhooks
from webapp.services.validation import BriefError

bp = Blueprint("api_webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)


def _principal() -> str:
    token = g.get("api_token")
    return f"token:{token.name}" if token is not None else "unknown"


def _endpoint_or_404(endpoint_id: str):
    endpoint = webhooks.get_endpoint(endpoint_id)
    if endpoint is None:
        return None, api_error(404, "not_found", _("No webhook endpoint with id %(id)s.", id=endpoint_id))
    return endpoint, None


def _parse(partial: bool) -> dict:
    """The JSON body validated as an endpoint; raises WebhookError."""
    try:
        body = read_json_body()
    except BriefError as exc:
        raise webhooks.WebhookError(exc.message, exc.fields) from None
    return webhooks.parse_endpoint(body, partial=partial)


@bp.post("")
@require_role(Role.ADMIN)
def create():
    """Register an endpoint: 201 with its id and its secret (shown only here)."""
    try:
        values = _parse(partial=False)
    except webhooks.WebhookError as exc:
        return api_error(400, "invalid_request", exc.message, exc.fields)
    endpoint, secret = webhooks.create_endpoint(values, _principal())
    response = jsonify({**endpoint.to_dict(), "secret": secret})
    response.status_code = 201
    response.headers["Location"] = f"/webhooks/{endpoint.id}"
    return response


@bp.get("")
@require_role(Role.ADMIN)
def list_all():
    return jsonify({"webhooks": [e.to_dict() for e in webhooks.list_endpoints()]})


@bp.get("/<endpoint_id>")
@require_role(Role.ADMIN)
def show(endpoint_id: str):
    endpoint, error = _endpoint_or_404(endpoint_id)
    return error or jsonify(endpoint.to_dict())


@bp.patch("/<endpoint_id>")
@require_role(Role.ADMIN)
def change(endpoint_id: str):
    """Change url, events, description or enabled (re-enabling clears the failure record)."""
    endpoint, error = _endpoint_or_404(endpoint_id)
    if error:
        return error
    try:
        values = _parse(partial=True)
    except webhooks.WebhookError as exc:
        return api_error(400, "invalid_request", exc.message, exc.fields)
    return jsonify(webhooks.update_endpoint(endpoint, values).to_dict())


@bp.delete("/<endpoint_id>")
@require_role(Role.ADMIN)
def remove(endpoint_id: str):
    endpoint, error = _endpoint_or_404(endpoint_id)
    if error:
        return error
    webhooks.delete_endpoint(endpoint)
    return "", 204


@bp.post("/<endpoint_id>/rotate-secret")
@require_role(Role.ADMIN)
def rotate(endpoint_id: str):
    """A new secret (shown once); the old one also signs for 24 hours."""
    endpoint, error = _endpoint_or_404(endpoint_id)
    if error:
        return error
    secret = webhooks.rotate_secret(endpoint)
    return jsonify({**endpoint.to_dict(), "secret": secret})


@bp.post("/<endpoint_id>/test")
@require_role(Role.ADMIN)
def test(endpoint_id: str):
    """Send a `ping` event now and answer with the delivery's outcome."""
    endpoint, error = _endpoint_or_404(endpoint_id)
    if error:
        return error
    return jsonify(webhooks.send_test(endpoint).to_dict())


@bp.get("/<endpoint_id>/deliveries")
@require_role(Role.ADMIN)
def deliveries(endpoint_id: str):
    """The endpoint's newest deliveries (?limit=, at most 500)."""
    endpoint, error = _endpoint_or_404(endpoint_id)
    if error:
        return error
    raw = request.args.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        return api_error(400, "invalid_request", _("limit must be a whole number from 1 to %(n)s", n=500),
                         {"limit": "1-500"})
    rows = webhooks.deliveries_of(endpoint_id=endpoint.id, limit=int(raw))
    return jsonify({"endpoint_id": endpoint.id, "deliveries": [d.to_dict() for d in rows]})


@bp.post("/<endpoint_id>/deliveries/<delivery_id>/redeliver")
@require_role(Role.ADMIN)
def redeliver(endpoint_id: str, delivery_id: str):
    """Send a delivery again, with the same webhook-id."""
    endpoint, error = _endpoint_or_404(endpoint_id)
    if error:
        return error
    delivery = webhooks.get_delivery(delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        return api_error(404, "not_found", _("No delivery with id %(id)s.", id=delivery_id))
    webhooks.redeliver(delivery)
    return jsonify({"id": delivery.id, "status": "pending"}), 202
