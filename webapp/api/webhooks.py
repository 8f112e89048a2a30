"""The webhooks API (admin): register, list, change, delete, rotate, test, deliveries."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify
from flask_babel import gettext as _

from webapp.api import contract as c
from webapp.api.auth import api_error
from webapp.api.contract import operation
from webapp.catalog import Role
from webapp.extensions import csrf
from webapp.services import webhooks

bp = Blueprint("api_webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)
NOT_FOUND = {404: c.ErrorOut}


def _principal() -> str:
    token = g.get("api_token")
    return f"token:{token.name}" if token is not None else "unknown"


def _endpoint_or_404(endpoint_id: str):
    endpoint = webhooks.get_endpoint(endpoint_id)
    if endpoint is None:
        return None, api_error(404, "not_found", _("No webhook endpoint with id %(id)s.", id=endpoint_id))
    return endpoint, None


def _service_errors(partial: bool):
    """The service's own field messages for a body the model refuses."""
    def errors(raw: Any) -> dict[str, str] | None:
        try:
            webhooks.parse_endpoint(raw, partial=partial)
        except webhooks.WebhookError as exc:
            return exc.fields
        return None
    return errors


@operation(bp, "POST", "", role=Role.ADMIN, body=c.WebhookIn, body_errors=_service_errors(False),
           responses={201: c.WebhookSecretOut}, summary="Register a webhook endpoint")
def create(body: c.WebhookIn, raw_body: Any):
    """Register an endpoint: 201 with its id and its secret (shown only here)."""
    try:
        values = webhooks.parse_endpoint(raw_body, partial=False)
    except webhooks.WebhookError as exc:
        return api_error(400, "invalid_request", exc.message, exc.fields)
    endpoint, secret = webhooks.create_endpoint(values, _principal())
    response = jsonify({**endpoint.to_dict(), "secret": secret})
    response.status_code = 201
    response.headers["Location"] = f"/webhooks/{endpoint.id}"
    return response


@operation(bp, "GET", "", role=Role.ADMIN, responses={200: c.WebhooksOut}, summary="Registered webhook endpoints")
def list_all():
    return jsonify({"webhooks": [e.to_dict() for e in webhooks.list_endpoints()]})


@operation(bp, "GET", "/<endpoint_id>", role=Role.ADMIN, responses={200: c.WebhookOut, **NOT_FOUND},
           summary="One webhook endpoint")
def show(endpoint_id: str):
    endpoint, error = _endpoint_or_404(endpoint_id)
    return error or jsonify(endpoint.to_dict())


@operation(bp, "PATCH", "/<endpoint_id>", role=Role.ADMIN, body=c.WebhookPatchIn, body_errors=_service_errors(True),
           responses={200: c.WebhookOut, **NOT_FOUND}, summary="Change a webhook endpoint")
def change(endpoint_id: str, body: c.WebhookPatchIn, raw_body: Any):
    """Change url, events, description or enabled (re-enabling clears the failure record)."""
    endpoint, error = _endpoint_or_404(endpoint_id)
    if error:
        return error
    try:
        values = webhooks.parse_endpoint(raw_body, partial=True)
    except webhooks.WebhookError as exc:
        return api_error(400, "invalid_request", exc.message, exc.fields)
    return jsonify(webhooks.update_endpoint(endpoint, values).to_dict())


@operation(bp, "DELETE", "/<endpoint_id>", role=Role.ADMIN, responses={204: None, **NOT_FOUND},
           summary="Delete a webhook endpoint and its deliveries")
def remove(endpoint_id: str):
    endpoint, error = _endpoint_or_404(endpoint_id)
    if error:
        return error
    webhooks.delete_endpoint(endpoint)
    return "", 204


@operation(bp, "POST", "/<endpoint_id>/rotate-secret", role=Role.ADMIN,
           responses={200: c.WebhookSecretOut, **NOT_FOUND}, summary="Rotate a webhook endpoint's secret")
def rotate(endpoint_id: str):
    """A new secret (shown once); the old one also signs for 24 hours."""
    endpoint, error = _endpoint_or_404(endpoint_id)
    if error:
        return error
    secret = webhooks.rotate_secret(endpoint)
    return jsonify({**endpoint.to_dict(), "secret": secret})


@operation(bp, "POST", "/<endpoint_id>/test", role=Role.ADMIN, responses={200: c.DeliveryOut, **NOT_FOUND},
           summary="Send a ping to a webhook endpoint now")
def test(endpoint_id: str):
    """Send a `ping` event now and answer with the delivery's outcome."""
    endpoint, error = _endpoint_or_404(endpoint_id)
    if error:
        return error
    return jsonify(webhooks.send_test(endpoint).to_dict())


@operation(bp, "GET", "/<endpoint_id>/deliveries", role=Role.ADMIN, query=c.DeliveriesArgs,
           responses={200: c.DeliveriesOut, **NOT_FOUND}, summary="A webhook endpoint's newest deliveries")
def deliveries(endpoint_id: str, query: c.DeliveriesArgs):
    """The endpoint's newest deliveries (?limit=, at most 500)."""
    endpoint, error = _endpoint_or_404(endpoint_id)
    if error:
        return error
    rows = webhooks.deliveries_of(endpoint_id=endpoint.id, limit=query.limit)
    return jsonify({"endpoint_id": endpoint.id, "deliveries": [d.to_dict() for d in rows]})


@operation(bp, "POST", "/<endpoint_id>/deliveries/<delivery_id>/redeliver", role=Role.ADMIN,
           responses={202: c.RedeliverOut, **NOT_FOUND}, summary="Send a delivery again (same webhook-id)")
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
