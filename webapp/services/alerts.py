"""Alert state: fired and resolved with a cooldown, shown on the pages, sent as webhook events."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from webapp.dblock import write_lock
from webapp.extensions import db
from webapp.models import AlertState
from webapp.services import webhooks
from webapp.timeutil import iso, utcnow


def _document(key: str, kind: str, state: str, details: dict[str, Any], fired_at: Any,
              resolved_at: Any = None) -> dict[str, Any]:
    return {"key": key, "kind": kind, "state": state, "details": details,
            "fired_at": iso(fired_at), "resolved_at": iso(resolved_at)}


def fire(conn: Any, key: str, kind: str, details: dict[str, Any]) -> bool:
    """Mark `key` firing in the caller's transaction; send alert.fired unless it was sent within
    the cooldown. True when the alert was not firing before."""
    now = utcnow()
    cooldown = timedelta(seconds=current_app.config.get("ALERT_COOLDOWN_SECONDS", 300))
    row = conn.execute(select(AlertState.__table__).where(AlertState.key == key)).first()
    if row is not None and row.state == "firing":
        conn.execute(update(AlertState).where(AlertState.key == key).values(details=details, updated_at=now))
        return False
    notify = row is None or row.notified_at is None or now - row.notified_at >= cooldown
    values = dict(kind=kind, state="firing", details=details, fired_at=now, resolved_at=None, updated_at=now)
    if notify:
        values["notified_at"] = now
    if row is None:
        conn.execute(AlertState.__table__.insert().values(key=key, **values))
    else:
        conn.execute(update(AlertState).where(AlertState.key == key).values(**values))
    if notify:
        webhooks.record_alert_event(conn, "alert.fired", _document(key, kind, "firing", details, now))
    return True


def resolve(conn: Any, key: str) -> bool:
    """Mark a firing alert resolved and send alert.resolved. True when it was firing."""
    now = utcnow()
    row = conn.execute(select(AlertState.__table__).where(AlertState.key == key)).first()
    if row is None or row.state != "firing":
        return False
    conn.execute(update(AlertState).where(AlertState.key == key)
                 .values(state="resolved", resolved_at=now, updated_at=now))
    webhooks.record_alert_event(conn, "alert.resolved",
                                _document(key, row.kind, "resolved", row.details or {}, row.fired_at, now))
    return True


def reconcile(observed: dict[str, tuple[str, dict[str, Any]]], kinds: set[str]) -> dict[str, list[str]]:
    """Bring the stored alerts of `kinds` in line with what is observed now ({key: (kind, details)})."""
    fired: list[str] = []
    resolved: list[str] = []
    with write_lock(), db.engine.begin() as conn:
        for key, (kind, details) in observed.items():
            if fire(conn, key, kind, details):
                fired.append(key)
        firing = conn.execute(select(AlertState.key, AlertState.kind).where(AlertState.state == "firing")).all()
        for row in firing:
            if row.kind in kinds and row.key not in observed and resolve(conn, row.key):
                resolved.append(row.key)
    webhooks.publish_pending()
    return {"fired": fired, "resolved": resolved}


def active() -> list[AlertState]:
    """Alerts firing now, oldest first."""
    return list(db.session.scalars(select(AlertState).where(AlertState.state == "firing")
                                   .order_by(AlertState.fired_at)))


def describe(alert: AlertState) -> str:
    """One line for an alert, in the reader's language."""
    from flask_babel import gettext as _

    d = alert.details or {}
    if alert.kind == "backlog":
        return _("Backlog on %(queue)s: %(waiting)s waiting (limit %(limit)s)",
                 queue=d.get("queue"), waiting=d.get("waiting"), limit=d.get("limit"))
    if alert.kind == "failure_rate":
        return _("Failure rate %(rate)s%% over the last %(window)s min (%(failed)s of %(finished)s, limit %(limit)s%%)",
                 rate=round(100 * d.get("rate", 0)), window=d.get("window_minutes"), failed=d.get("failed"),
                 finished=d.get("finished"), limit=round(100 * d.get("limit", 0)))
    if alert.kind == "webhook_disabled":
        return _("Webhook %(url)s disabled after failing: %(error)s", url=d.get("url"), error=d.get("error"))
    return alert.kind
