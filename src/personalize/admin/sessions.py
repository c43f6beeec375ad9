"""Admin sessions, kept on the server.

The browser's cookie (signed with ``SECRET_KEY``) carries a random session token, never
the user's id; the ``admin_sessions`` table keeps only the token's SHA-256 hash. A
request is signed in only while its row exists, so the server decides when a session
ends:

* signing out deletes the session's row;
* changing one's password deletes every session of the account and starts a new one
  for the browser that changed it;
* removing an account deletes its sessions (``ON DELETE CASCADE``);
* a session unused for ``ADMIN_SESSION_IDLE_MINUTES``, or older than
  ``ADMIN_SESSION_MAX_HOURS``, is refused and deleted;
* "Sign out everywhere else" on the account page deletes the account's other sessions.

Roles and granted sites are not copied into the session: they are read from the
account on every request, so a changed role counts from the next request on.

Secrets shown once (a new secret key, a signing secret) wait on the session's row,
encrypted, until the page that shows them takes them: they never travel in the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import datetime, timedelta

from flask import current_app, session
from sqlalchemy import delete, or_, select

from ..db import db
from ..models import AdminUser, utcnow
from .models import AdminSession

#: the cookie session's key for the token
TOKEN_KEY = "sid"
#: a one-time secret not shown within this time is dropped
PENDING_SECRET_SECONDS = 15 * 60
_TOKEN_MAX = 100


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _limits() -> tuple[timedelta | None, timedelta | None]:
    """(idle timeout, absolute lifetime) from the settings; ``None`` where the setting is 0 (off)."""
    idle = float(current_app.config.get("ADMIN_SESSION_IDLE_MINUTES") or 0)
    lifetime = float(current_app.config.get("ADMIN_SESSION_MAX_HOURS") or 0)
    return (timedelta(minutes=idle) if idle > 0 else None, timedelta(hours=lifetime) if lifetime > 0 else None)


def is_expired(row: AdminSession, now: datetime | None = None) -> bool:
    now = now or utcnow()
    idle, lifetime = _limits()
    return (idle is not None and now - row.last_seen_at > idle) or (lifetime is not None and now - row.created_at > lifetime)


def start_session(user: AdminUser, user_agent: str = "") -> str:
    """A new session for ``user``; returns its token (for the cookie: only its hash is stored)."""
    delete_expired()
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(AdminSession(token_hash=_hash(token), user_id=user.id, created_at=now, last_seen_at=now,
                                user_agent=(user_agent or "")[:200]))
    db.session.commit()
    return token


def find_session(token: object) -> AdminSession | None:
    """The live session of ``token``; an expired one is deleted and ``None`` returned. Refreshes the
    session's last use (at most every minute or so: it is a write)."""
    if not isinstance(token, str) or not token or len(token) > _TOKEN_MAX:
        return None
    digest = _hash(token)
    row = db.session.scalar(select(AdminSession).where(AdminSession.token_hash == digest))
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    now = utcnow()
    if is_expired(row, now):
        db.session.delete(row)
        db.session.commit()
        return None
    idle, _lifetime = _limits()
    every = min(timedelta(seconds=60), idle / 4) if idle else timedelta(seconds=60)
    if now - row.last_seen_at >= every:
        row.last_seen_at = now
        db.session.commit()
    return row


def end_session(token: object) -> None:
    if isinstance(token, str) and token and len(token) <= _TOKEN_MAX:
        db.session.execute(delete(AdminSession).where(AdminSession.token_hash == _hash(token)))
        db.session.commit()


def end_sessions_of(user_id: int, keep: AdminSession | None = None) -> int:
    """Delete ``user_id``'s sessions (but ``keep``); returns how many ended."""
    q = delete(AdminSession).where(AdminSession.user_id == user_id)
    if keep is not None:
        q = q.where(AdminSession.id != keep.id)
    ended = db.session.execute(q).rowcount or 0
    db.session.commit()
    return ended


def sessions_of(user_id: int) -> list[AdminSession]:
    """``user_id``'s live sessions, the most recently used first."""
    rows = db.session.scalars(select(AdminSession).where(AdminSession.user_id == user_id).order_by(AdminSession.last_seen_at.desc()))
    return [row for row in rows if not is_expired(row)]


def delete_expired() -> None:
    """Delete every session past its idle timeout or lifetime (run at each sign-in: the table stays small)."""
    idle, lifetime = _limits()
    now = utcnow()
    conditions = []
    if idle is not None:
        conditions.append(AdminSession.last_seen_at < now - idle)
    if lifetime is not None:
        conditions.append(AdminSession.created_at < now - lifetime)
    if conditions:
        db.session.execute(delete(AdminSession).where(or_(*conditions)))


# ------------------------------------------------------------------ the browser's side


def sign_in(user: AdminUser, user_agent: str = "") -> None:
    """Start a session for ``user`` in this browser: a fresh cookie session (new CSRF token) holding the new token.
    A session this browser held before (signing in again, or as someone else) ends."""
    end_session(session.get(TOKEN_KEY))
    session.clear()
    session[TOKEN_KEY] = start_session(user, user_agent)


def sign_out() -> None:
    end_session(session.get(TOKEN_KEY))
    session.clear()


def renew(user: AdminUser, user_agent: str = "") -> None:
    """End every session of ``user``, this one too, and give this browser a new one (after a password change:
    whoever holds an older token, even this browser's, is out)."""
    end_sessions_of(user.id)
    session[TOKEN_KEY] = start_session(user, user_agent)


# ------------------------------------------------------------------ secrets shown once


def stash_secret(row: AdminSession, kind: str, site_id: int, value: str) -> None:
    """Keep ``value`` (encrypted, on the server) until :func:`take_secret` shows it once."""
    pending = _pending(row)
    pending[f"{kind}:{site_id}"] = {"value": value, "at": time.time()}
    _store(row, pending)


def take_secret(row: AdminSession | None, kind: str, site_id: int) -> str | None:
    """The secret stashed for ``kind`` and site, removed as it is taken; ``None`` if there is none (or it waited too long)."""
    if row is None or not row.pending_secrets:
        return None
    pending = _pending(row)
    item = pending.pop(f"{kind}:{site_id}", None)
    now = time.time()
    pending = {k: v for k, v in pending.items() if now - v.get("at", 0) < PENDING_SECRET_SECONDS}
    _store(row, pending)
    if item is None or now - item.get("at", 0) >= PENDING_SECRET_SECONDS:
        return None
    return item.get("value")


def _pending(row: AdminSession) -> dict:
    from ..sync.secrets import SecretsUnreadable, decrypt

    try:
        return decrypt(current_app.config, row.pending_secrets or "")
    except SecretsUnreadable:  # the keys changed since: nothing left to show
        return {}


def _store(row: AdminSession, pending: dict) -> None:
    from ..sync.secrets import encrypt

    row.pending_secrets = encrypt(current_app.config, pending) or None
    db.session.commit()
