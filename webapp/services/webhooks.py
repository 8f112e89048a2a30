"""Webhooks: registered endpoints, the delivery outbox, signing (Standard Webhooks) and sending.

Outbox rows are written by `record_task_event` / `record_alert_event` inside the transaction of the
state change they report; the writer publishes them after its commit (`publish_pending`), and
beat's sweep publishes any that nobody published (the writer died in between) or whose backoff
is over. A delivery's id is its `webhook-id` header and never changes across retries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import random
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, has_app_context
from sqlalchemy import delete, or_, select, update

from webapp.catalog import TaskName
from webapp.dblock import write_lock
from webapp.extensions import db
from webapp.models import RenderTask, TaskCallback, WebhookDelivery, WebhookEndpoint
from webapp.services import dispatch
from webapp.timeutil import iso, utcnow

log = logging.getLogger(__name__)

TASK_EVENTS = ("task.completed", "task.failed", "task.cancelled", "task.retrying", "task.progress")
ALERT_EVENTS = ("alert.fired", "alert.resolved")
EVENTS = TASK_EVENTS + ALERT_EVENTS
#: What an endpoint receives when it names no events: everything but the chatty progress.
DEFAULT_EVENTS = tuple(e for e in EVENTS if e != "task.progress")
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
ROTATION_OVERLAP = timedelta(hours=24)
MAX_RESPONSE_BYTES = 4096
RESEND_AFTER = timedelta(seconds=10)  # a published delivery nobody picked up is published again
SWEEP_BATCH = 500


class WebhookError(ValueError):
    """A request about webhooks that cannot be honoured; `fields` names the culprits."""

    def __init__(self, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class UnsafeTarget(WebhookError):
    """The URL points somewhere webhooks may not go (SSRF protection)."""


# --- secrets and signatures ---------------------------------------------------------------------

def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key: the base64-decoded part after `whsec_`."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(endpoint: WebhookEndpoint, msg_id: str, body: bytes, now: datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers; during a rotation both secrets sign (space-separated)."""
    timestamp = int(time.time())
    signatures = [signature(endpoint.secret, msg_id, timestamp, body)]
    if endpoint.previous_secret and endpoint.previous_secret_until and \
            endpoint.previous_secret_until > (now or utcnow()):
        signatures.append(signature(endpoint.previous_secret, msg_id, timestamp, body))
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(signatures), "content-type": "application/json",
            "user-agent": "AuraRender-Webhooks/1"}


# --- SSRF checks ----------------------------------------------------------------------------------

def _allowed_by_config(host: str, address: ipaddress._BaseAddress) -> bool:
    for entry in current_app.config.get("WEBHOOK_ALLOWED_HOSTS") or []:
        if entry.lower() == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str


def resolve_target(url: str) -> Target:
    """Parse and resolve `url`; refuse loopback, private, link-local and other non-global
    addresses unless WEBHOOK_ALLOWED_HOSTS names the host or its address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget("The URL must be http:// or https:// with a host.", {"url": "http(s) URL required"})
    if parts.username or parts.password:
        raise UnsafeTarget("The URL must not carry credentials.", {"url": "no user:password@ in URLs"})
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeTarget("The URL has an invalid port.", {"url": "invalid port"}) from None
    host = parts.hostname
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):  # UnicodeError: a name IDNA cannot encode (an empty or 64+ label)
        raise UnsafeTarget(f"The host {host} cannot be resolved.", {"url": "unknown host"}) from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        if not address.is_global or address.is_multicast:
            if not _allowed_by_config(host, address):
                raise UnsafeTarget(f"The host {host} resolves to {address}, a non-public address "
                                   "(allow it with WEBHOOK_ALLOWED_HOSTS).", {"url": "non-public address"})
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, str(addresses[0]))


def origin_of(url: str) -> tuple[str, str, int] | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        return parts.scheme, parts.hostname.lower(), parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the address that was checked, not to a second DNS answer."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, headers: dict[str, str], body: bytes, timeout: float) -> tuple[int | None, str | None]:
    """POST once: (status code, error). No redirects, short timeouts, a bounded read."""
    try:
        target = resolve_target(url)
    except UnsafeTarget as exc:
        return None, exc.message
    cls = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    conn = cls(target.host, target.port, target.address, timeout)
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    finally:
        conn.close()
    if 200 <= status < 300:
        return status, None
    if 300 <= status < 400:
        return status, "redirects are not followed"
    return status, f"HTTP {status}"


# --- endpoints ------------------------------------------------------------------------------------

def parse_endpoint(body: Any, partial: bool = False) -> dict[str, Any]:
    """Validate a create (or, partial, a PATCH) body: url, events, description, enabled."""
    if not isinstance(body, dict):
        raise WebhookError("The body must be a JSON object.", {"body": "JSON object expected"})
    allowed = {"url", "events", "description", "enabled"} if partial else {"url", "events", "description"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise WebhookError(f"Unknown fields: {', '.join(unknown)}.", {k: "unknown field" for k in unknown})
    values: dict[str, Any] = {}
    if "url" in body or not partial:
        url = body.get("url")
        if not isinstance(url, str) or len(url) > 2000:
            raise WebhookError("url is required (an http(s) URL of at most 2000 characters).",
                               {"url": "required"})
        resolve_target(url)
        values["url"] = url
    if "events" in body or not partial:
        events = body.get("events", list(DEFAULT_EVENTS))
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            raise WebhookError("events must be a non-empty list of event names.", {"events": "list expected"})
        bad = sorted(set(events) - set(EVENTS))
        if bad:
            raise WebhookError(f"Unknown events: {', '.join(bad)}. Known: {', '.join(EVENTS)}.",
                               {"events": "unknown event"})
        values["events"] = sorted(set(events), key=EVENTS.index)
    if "description" in body:
        description = body["description"]
        if not isinstance(description, str) or len(description) > 500:
            raise WebhookError("description must be text of at most 500 characters.",
                               {"description": "at most 500 characters"})
        values["description"] = description
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise WebhookError("enabled must be true or false.", {"enabled": "boolean expected"})
        values["enabled"] = body["enabled"]
    return values


def create_endpoint(values: dict[str, Any], created_by: str | None) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its secret (shown this once)."""
    now = utcnow()
    endpoint = WebhookEndpoint(id="wh_" + secrets.token_hex(8), url=values["url"],
                               description=values.get("description", ""), events=values["events"],
                               secret=new_secret(), enabled=True, created_by=created_by,
                               created_at=now, updated_at=now)
    with write_lock():
        db.session.add(endpoint)
        db.session.commit()
    return endpoint, endpoint.secret


def list_endpoints() -> list[WebhookEndpoint]:
    return list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.created_at)))


def get_endpoint(endpoint_id: str) -> WebhookEndpoint | None:
    if not isinstance(endpoint_id, str) or len(endpoint_id) > 40:
        return None
    return db.session.get(WebhookEndpoint, endpoint_id)


def update_endpoint(endpoint: WebhookEndpoint, values: dict[str, Any]) -> WebhookEndpoint:
    for name, value in values.items():
        setattr(endpoint, name, value)
    if values.get("enabled"):
        endpoint.disabled_reason, endpoint.failing_since = None, None
    endpoint.updated_at = utcnow()
    with write_lock():
        db.session.commit()
    return endpoint


def rotate_secret(endpoint: WebhookEndpoint, overlap: timedelta = ROTATION_OVERLAP) -> str:
    """A new secret; the old one keeps signing as a second signature for `overlap`."""
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = utcnow() + overlap
    endpoint.secret = new_secret()
    endpoint.updated_at = utcnow()
    with write_lock():
        db.session.commit()
    return endpoint.secret


def delete_endpoint(endpoint: WebhookEndpoint) -> None:
    with write_lock():
        db.session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
        db.session.execute(delete(TaskCallback).where(TaskCallback.endpoint_id == endpoint.id))
        db.session.delete(endpoint)
        db.session.commit()


def endpoint_for_callback(url: Any) -> WebhookEndpoint:
    """The enabled endpoint whose origin `url` shares (it signs the callback); else WebhookError."""
    origin = origin_of(url) if isinstance(url, str) and len(url) <= 2000 else None
    if origin is None:
        raise WebhookError("callback_url must be an http(s) URL.", {"callback_url": "http(s) URL required"})
    for endpoint in db.session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))):
        if origin_of(endpoint.url) == origin:
            return endpoint
    raise WebhookError("callback_url must have the origin (scheme, host, port) of an enabled registered "
                       "webhook endpoint.", {"callback_url": "origin not registered"})


def get_delivery(delivery_id: str) -> WebhookDelivery | None:
    if not isinstance(delivery_id, str) or len(delivery_id) > 40:
        return None
    return db.session.get(WebhookDelivery, delivery_id)


def deliveries_of(*, endpoint_id: str | None = None, task_id: str | None = None,
                  limit: int = 100) -> list[WebhookDelivery]:
    stmt = select(WebhookDelivery).order_by(WebhookDelivery.created_at.desc()).limit(limit)
    if endpoint_id is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
    if task_id is not None:
        stmt = stmt.where(WebhookDelivery.task_id == task_id)
    return list(db.session.scalars(stmt))


# --- the outbox -----------------------------------------------------------------------------------

_pending = threading.local()


def _remember(ids: list[str]) -> None:
    if not hasattr(_pending, "ids"):
        _pending.ids = []
    _pending.ids.extend(ids)


def _body(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=str)


def _outbox_rows(conn: Any, event: str, body: str, targets: list[tuple[str, str]],
                 task_id: str | None) -> list[str]:
    now = utcnow()
    rows = [dict(id="msg_" + secrets.token_hex(12), endpoint_id=endpoint_id, url=url, event=event,
                 task_id=task_id, payload=body, status="pending", attempts=0, next_attempt_at=now,
                 dispatched_at=now, created_at=now) for endpoint_id, url in targets]
    if rows:
        conn.execute(WebhookDelivery.__table__.insert(), rows)
        _remember([row["id"] for row in rows])
    return [row["id"] for row in rows]


def _subscribers(conn: Any, event: str) -> list[tuple[str, str]]:
    rows = conn.execute(select(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.events)
                        .where(WebhookEndpoint.enabled.is_(True))).all()
    return [(row.id, row.url) for row in rows if event in (row.events or [])]


def record_task_event(conn: Any, task_id: str, event: str) -> list[str]:
    """Write the outbox rows of a task event in the caller's transaction (a Connection or the
    Session); the payload is the task's status document then, plus `type` and `timestamp`."""
    targets = _subscribers(conn, event)
    callback = conn.execute(select(TaskCallback.endpoint_id, TaskCallback.url)
                            .where(TaskCallback.task_id == task_id)).first()
    if callback is not None:
        enabled = conn.execute(select(WebhookEndpoint.events).where(
            WebhookEndpoint.id == callback.endpoint_id, WebhookEndpoint.enabled.is_(True))).first()
        if enabled is not None and (event != "task.progress" or "task.progress" in (enabled.events or [])):
            targets.append((callback.endpoint_id, callback.url))
    if not targets:
        return []
    row = conn.execute(select(RenderTask.__table__).where(RenderTask.id == task_id)).first()
    if row is None:
        return []
    document = RenderTask(**dict(row._mapping)).to_status()
    document.update(type=event, timestamp=iso(utcnow()))
    return _outbox_rows(conn, event, _body(document), targets, task_id)


def record_alert_event(conn: Any, event: str, alert: dict[str, Any]) -> list[str]:
    """Outbox rows for alert.fired / alert.resolved, in the caller's transaction."""
    targets = _subscribers(conn, event)
    if not targets:
        return []
    return _outbox_rows(conn, event, _body({"type": event, "timestamp": iso(utcnow()), "alert": alert}),
                        targets, None)


def publish_pending() -> int:
    """After the commit: publish the deliveries this thread wrote. Lost publishes are swept."""
    ids = getattr(_pending, "ids", None)
    if not ids:
        return 0
    _pending.ids = []
    if not has_app_context():  # e.g. a lease heartbeat thread: the sweep publishes them
        return 0
    sent = 0
    for delivery_id in ids:
        if not dispatch.send(TaskName.WEBHOOK_DELIVER, [delivery_id], priority="high"):
            break  # the broker is down: the sweep publishes them later
        sent += 1
    return sent


def forget_pending() -> None:
    """Drop ids written in a transaction that was rolled back."""
    _pending.ids = []


# --- delivering -----------------------------------------------------------------------------------

def backoff_seconds(attempts: int) -> float:
    """1 s, 2 s, 4 s ... capped at an hour, with +-25 % jitter."""
    return min(2.0 ** max(0, attempts - 1), 3600.0) * random.uniform(0.75, 1.25)


def deliver(delivery_id: str) -> str:
    """Send one delivery if it is due and nobody else is sending it; record the outcome."""
    from webapp.services import alerts, metrics

    cfg = current_app.config
    timeout = float(cfg.get("WEBHOOK_TIMEOUT_SECONDS", 5.0))
    now = utcnow()
    with write_lock(), db.engine.begin() as conn:
        claimed = conn.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending",
                   or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now),
                   or_(WebhookDelivery.next_attempt_at.is_(None),
                       WebhookDelivery.next_attempt_at <= now + timedelta(seconds=1)))
            .values(locked_until=now + timedelta(seconds=timeout * 2 + 10),
                    attempts=WebhookDelivery.attempts + 1, last_attempt_at=now)).rowcount
    if not claimed:
        return "skipped"
    with db.engine.connect() as conn:
        delivery = conn.execute(select(WebhookDelivery.__table__).where(WebhookDelivery.id == delivery_id)).one()
        endpoint_row = conn.execute(select(WebhookEndpoint.__table__)
                                    .where(WebhookEndpoint.id == delivery.endpoint_id)).first()
    if endpoint_row is None or not endpoint_row.enabled:
        with write_lock(), db.engine.begin() as conn:
            conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                         .values(status="failed", locked_until=None, next_attempt_at=None,
                                 last_error="endpoint disabled or deleted"))
        return "failed"
    endpoint = WebhookEndpoint(**dict(endpoint_row._mapping))
    body = delivery.payload.encode("utf-8")
    started = time.monotonic()
    code, error = post(delivery.url, signed_headers(endpoint, delivery.id, body, now), body, timeout)
    latency_ms = (time.monotonic() - started) * 1000
    done = utcnow()
    metrics.observe_delivery(delivery.event, error is None, latency_ms / 1000)
    retry_in: float | None = None
    disable = False
    with write_lock(), db.engine.begin() as conn:
        values: dict[str, Any] = dict(locked_until=None, response_code=code, latency_ms=latency_ms,
                                      last_error=error)
        if error is None:
            values.update(status="delivered", delivered_at=done, next_attempt_at=None)
            if endpoint.failing_since is not None:
                conn.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id)
                             .values(failing_since=None))
        else:
            give_up_at = delivery.created_at + timedelta(hours=float(cfg.get("WEBHOOK_RETRY_HOURS", 24)))
            retry_in = backoff_seconds(delivery.attempts + 1)
            if done + timedelta(seconds=retry_in) > give_up_at:
                values.update(status="failed", next_attempt_at=None)
                retry_in = None
            else:
                # Short waits are published with a countdown; longer ones wait for the sweep.
                values.update(next_attempt_at=done + timedelta(seconds=retry_in),
                              dispatched_at=done + timedelta(seconds=retry_in) if retry_in <= 10 else None)
            if endpoint.failing_since is None:
                conn.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id,
                                                           WebhookEndpoint.failing_since.is_(None))
                             .values(failing_since=done))
            elif (done - endpoint.failing_since).total_seconds() >= cfg.get("WEBHOOK_DISABLE_AFTER_SECONDS", 3600):
                disable = bool(conn.execute(
                    update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id,
                                                  WebhookEndpoint.enabled.is_(True))
                    .values(enabled=False, updated_at=done,
                            disabled_reason=f"Failing since {iso(endpoint.failing_since)}: {error}"[:255])
                ).rowcount)
        if disable:
            values.update(status="failed", next_attempt_at=None)
            retry_in = None
        conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values))
        if disable:
            alerts.fire(conn, f"webhook_disabled:{endpoint.id}", "webhook_disabled",
                        {"endpoint_id": endpoint.id, "url": endpoint.url, "error": error})
    publish_pending()
    if retry_in is not None and retry_in <= 10:
        dispatch.send(TaskName.WEBHOOK_DELIVER, [delivery_id], priority="high", countdown=retry_in)
    return "delivered" if error is None else "retrying" if retry_in is not None else "failed"


def sweep(limit: int = SWEEP_BATCH) -> int:
    """Publish due deliveries that nobody published or picked up (beat, every few seconds)."""
    now = utcnow()
    rows = list(db.session.scalars(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now,
               or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now),
               or_(WebhookDelivery.dispatched_at.is_(None), WebhookDelivery.dispatched_at < now - RESEND_AFTER))
        .order_by(WebhookDelivery.next_attempt_at).limit(limit)))
    db.session.rollback()
    if not rows:
        return 0
    with write_lock():
        db.session.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(rows))
                           .values(dispatched_at=now).execution_options(synchronize_session=False))
        db.session.commit()
    _remember(rows)
    return publish_pending()


CLEANUP_KEY = "aura:webhooks:cleanup"


def cleanup(max_age_days: int | None = None) -> dict[str, int]:
    """Forget finished deliveries, batches and callbacks past the retention period (RETENTION_DAYS)."""
    from webapp.models import TaskBatch

    days = current_app.config["RETENTION_DAYS"] if max_age_days is None else max_age_days
    cutoff = utcnow() - timedelta(days=days)
    with write_lock():
        deliveries = db.session.execute(
            delete(WebhookDelivery).where(WebhookDelivery.status != "pending", WebhookDelivery.created_at < cutoff)
            .execution_options(synchronize_session=False)).rowcount
        batches = db.session.execute(delete(TaskBatch).where(TaskBatch.created_at < cutoff)
                                     .execution_options(synchronize_session=False)).rowcount
        callbacks = db.session.execute(
            delete(TaskCallback).where(TaskCallback.task_id.not_in(select(RenderTask.id)))
            .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
    return {"deliveries": deliveries, "batches": batches, "callbacks": callbacks}


def cleanup_due(every_seconds: int = 3600) -> bool:
    """True for one caller an hour (a Redis key with a TTL)."""
    from webapp.services.broker import redis_client

    return bool(redis_client().set(CLEANUP_KEY, "1", nx=True, ex=every_seconds))


def redeliver(delivery: WebhookDelivery) -> None:
    """Send a delivery again (an admin's request), whatever its state."""
    now = utcnow()
    with write_lock():
        db.session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery.id)
                           .values(status="pending", next_attempt_at=now, dispatched_at=now, locked_until=None))
        db.session.commit()
    _remember([delivery.id])
    publish_pending()


def send_test(endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A `ping` delivery to the endpoint, sent now; returns it with its outcome."""
    body = _body({"type": "ping", "timestamp": iso(utcnow()), "endpoint_id": endpoint.id})
    with write_lock():
        ids = _outbox_rows(db.session, "ping", body, [(endpoint.id, endpoint.url)], None)
        db.session.commit()
    forget_pending()
    deliver(ids[0])
    db.session.expire_all()
    return db.session.get(WebhookDelivery, ids[0])
