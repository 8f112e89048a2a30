"""Users and API tokens: tokens are created once, stored as SHA-256 and checked per request; a
token's role is capped by its owner's current role; changing a user ends their other sessions."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import redis
from sqlalchemy import select, update

from webapp.catalog import Role
from webapp.extensions import db
from webapp.models import ApiToken, User
from webapp.timeutil import utcnow

TOKEN_PREFIX = "aura_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
# A token's role and state are cached this long per process. Every change of a token or a user bumps
# a generation counter in Redis, which each use reads: a change applies to the next request everywhere.
CACHE_SECONDS = 5.0
GENERATION_KEY = "aura:auth:generation"
#: Polled fragments (session_viewer) read the generation at most this often per process: a change of a
#: user made in another process ends their session there within this time (in this one at once).
SESSION_GENERATION_SECONDS = 1.0


@dataclass(frozen=True)
class TokenInfo:
    """What a request needs to know about its token."""

    id: int
    name: str
    role: str

    def can(self, needed: Role) -> bool:
        return Role(self.role).allows(needed)


_cache: dict[str, tuple[float, bytes | None, TokenInfo | None]] = {}
_cache_lock = threading.Lock()


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_token(name: str, role: Role | str, user: User | None = None) -> tuple[ApiToken, str]:
    """Create a token; the raw value is returned once and never stored."""
    role = Role(role)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name, role=role.value, token_hash=hash_token(raw), prefix=raw[:12],
                     user_id=user.id if user else None)
    db.session.add(token)
    db.session.commit()
    return token, raw


def _generation() -> bytes | None:
    """The auth generation counter (None when Redis does not answer: the cache's age decides)."""
    from webapp.services.broker import redis_client

    try:
        return redis_client().get(GENERATION_KEY) or b"0"
    except redis.RedisError:
        return None


def _bump_generation() -> None:
    from webapp.services.broker import redis_client

    forget_cached_tokens()
    try:
        redis_client().incr(GENERATION_KEY)
    except redis.RedisError:
        pass  # other processes see the change when their cache entry ages out


def authenticate(raw: str) -> TokenInfo | None:
    """The live token with this value, or None (cached per process until a change or CACHE_SECONDS)."""
    if not raw or len(raw) > 200 or not raw.isascii():
        return None
    digest = hash_token(raw)
    now_mono = time.monotonic()
    generation = _generation()
    with _cache_lock:
        hit = _cache.get(digest)
    if hit and now_mono - hit[0] < CACHE_SECONDS and generation is not None and hit[1] == generation:
        return hit[2]
    info = _lookup(digest)
    with _cache_lock:
        if len(_cache) > 10000:
            _cache.clear()
        _cache[digest] = (now_mono, generation, info)
    return info


def _lookup(digest: str) -> TokenInfo | None:
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if token is None or token.revoked_at is not None:
        return None
    role = Role(token.role)
    if token.user_id is not None:
        owner = db.session.get(User, token.user_id)
        if owner is None or not owner.active:
            return None
        if not owner.role_enum.allows(role):  # never more than the owner has now
            role = owner.role_enum
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        db.session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
        db.session.commit()
    return TokenInfo(token.id, token.name, role.value)


def forget_cached_tokens() -> None:
    """Drop the per-process token and session caches (after a change in this process)."""
    from flask import has_app_context

    with _cache_lock:
        _cache.clear()
        _recent_generation.clear()
        if has_app_context():
            _viewers().clear()


def revoke_token(token: ApiToken) -> None:
    """Revoke a token; every process refuses it from the next request on."""
    token.revoked_at = utcnow()
    db.session.commit()
    _bump_generation()


def create_user(username: str, password: str, role: Role | str) -> User:
    """Create a user with a hashed password."""
    user = User(username=username, role=Role(role).value)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


def update_user(user: User, *, password: str | None = None, role: Role | str | None = None,
                active: bool | None = None) -> bool:
    """Change a user's password, role or active flag. Any change ends the user's sessions (the
    caller signs the current one in again when it should survive) and re-checks their tokens."""
    changed = False
    if password is not None:
        user.set_password(password)
        changed = True
    if role is not None and Role(role).value != user.role:
        user.role = Role(role).value
        changed = True
    if active is not None and bool(active) != user.active:
        user.active = bool(active)
        changed = True
    if changed:
        user.session_epoch = (user.session_epoch or 0) + 1
    db.session.commit()
    if changed:
        _bump_generation()
    return changed


def _parse_session_id(session_id: str) -> tuple[int, int] | None:
    user_id, _sep, epoch = str(session_id).partition(".")
    if not user_id.isascii() or not user_id.isdigit() or not (epoch or "0").isascii() \
            or not (epoch or "0").isdigit():
        return None
    return int(user_id), int(epoch or "0")


def session_user(session_id: str) -> User | None:
    """The user of a session id (`<id>.<epoch>`), or None when it is unknown or the epoch is old."""
    parsed = _parse_session_id(session_id)
    if parsed is None:
        return None
    user = db.session.get(User, parsed[0])
    if user is None or (user.session_epoch or 0) != parsed[1]:
        return None
    return user


@dataclass(frozen=True)
class SessionViewer:
    """A read-only picture of a session's user, enough for Flask-Login and role checks.

    Polled fragments (the live board) use it instead of loading the user row on every poll."""

    id: int
    username: str
    role: str
    locale: str | None
    session_epoch: int

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.id}.{self.session_epoch}"

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    def can(self, needed: Role) -> bool:
        return self.role_enum.allows(needed)


def _viewers() -> dict[str, tuple[float, bytes, SessionViewer | None]]:
    """The app's cache of session pictures (per app: user ids are only unique within its database)."""
    from flask import current_app

    return current_app.extensions.setdefault("aura_session_viewers", {})


_recent_generation: list[tuple[float, bytes | None]] = []


def _generation_within(seconds: float) -> bytes | None:
    """The auth generation as read at most `seconds` ago in this process."""
    now_mono = time.monotonic()
    if _recent_generation and now_mono - _recent_generation[0][0] < seconds:
        return _recent_generation[0][1]
    generation = _generation()
    _recent_generation[:] = [(now_mono, generation)]
    return generation


def session_viewer(session_id: str) -> SessionViewer | None:
    """`session_user` as a read-only picture, cached per process like tokens: any change of a user
    bumps the auth generation in Redis, read at most every SESSION_GENERATION_SECONDS, so an ended
    session is refused on its next request in this process and within that time in the others.
    Without Redis every call reads the row."""
    generation = _generation_within(SESSION_GENERATION_SECONDS)
    now_mono = time.monotonic()
    key = str(session_id)
    viewers = _viewers()
    with _cache_lock:
        hit = viewers.get(key)
    if hit and generation is not None and hit[1] == generation and now_mono - hit[0] < CACHE_SECONDS:
        return hit[2]
    user = session_user(key)
    viewer = None if user is None else SessionViewer(user.id, user.username, user.role, user.locale,
                                                      user.session_epoch or 0)
    if generation is not None:
        with _cache_lock:
            if len(viewers) > 10000:
                viewers.clear()
            viewers[key] = (now_mono, generation, viewer)
    return viewer


_DUMMY_HASH: list[str] = []


def dummy_check(password: str) -> bool:
    """A password check against a throwaway hash (same method and cost as a user's); always False."""
    from werkzeug.security import check_password_hash, generate_password_hash

    if not _DUMMY_HASH:
        _DUMMY_HASH.append(generate_password_hash(secrets.token_urlsafe(16)))
    check_password_hash(_DUMMY_HASH[0], password)
    return False
