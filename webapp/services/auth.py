"""API tokens: created once, stored as SHA-256, checked per request."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from webapp.catalog import Role
from webapp.extensions import db
from webapp.models import ApiToken, User
from webapp.timeutil import utcnow

TOKEN_PREFIX = "aura_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
# A token's role and state are cached this long per process; a revocation takes effect within it.
CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class TokenInfo:
    """What a request needs to know about its token."""

    id: int
    name: str
    role: str

    def can(self, needed: Role) -> bool:
        return Role(self.role).allows(needed)


_cache: dict[str, tuple[float, TokenInfo | None]] = {}
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


def authenticate(raw: str) -> TokenInfo | None:
    """The live token with this value, or None (cached for CACHE_SECONDS per process)."""
    if not raw or len(raw) > 200:
        return None
    digest = hash_token(raw)
    now_mono = time.monotonic()
    with _cache_lock:
        hit = _cache.get(digest)
    if hit and now_mono - hit[0] < CACHE_SECONDS:
        return hit[1]
    info = _lookup(digest)
    with _cache_lock:
        if len(_cache) > 10000:
            _cache.clear()
        _cache[digest] = (now_mono, info)
    return info


def _lookup(digest: str) -> TokenInfo | None:
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if token is None or token.revoked_at is not None:
        return None
    if token.user_id is not None:
        owner = db.session.get(User, token.user_id)
        if owner is None or not owner.active:
            return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        db.session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
        db.session.commit()
    return TokenInfo(token.id, token.name, token.role)


def forget_cached_tokens() -> None:
    """Drop the per-process token cache (after a revocation in this process)."""
    with _cache_lock:
        _cache.clear()


def revoke_token(token: ApiToken) -> None:
    """Revoke a token; other processes stop accepting it within CACHE_SECONDS."""
    token.revoked_at = utcnow()
    db.session.commit()
    forget_cached_tokens()


def create_user(username: str, password: str, role: Role | str) -> User:
    """Create a user with a hashed password."""
    user = User(username=username, role=Role(role).value)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user
