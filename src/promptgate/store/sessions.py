"""Web UI sessions, held in the registry (table `ui_sessions`, migration 4).

A session id is 32 random bytes given to the browser once; only its SHA-256 is stored. A session
signs its key in while its row is live: not revoked (sign-out, or its key revoked), not expired,
and its key not revoked. So a cookie copied before sign-out is refused after it, and a database
reader, who sees hashes only, cannot make a cookie that signs anyone in.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .core import Store
from .schema import api_keys, ui_sessions


@dataclass(frozen=True)
class SessionUser:
    """Who a live session signs in: its key's name and role."""

    name: str
    role: str


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="microseconds")


def create_session(store: Store, key_name: str, ttl_s: float) -> str:
    """A new session for `key_name`, valid `ttl_s` seconds; returns its id (shown once).
    Sessions expired before now are deleted on the way."""
    session_id = secrets.token_urlsafe(32)
    now = datetime.now(timezone.utc)

    def run(conn: Connection) -> None:
        conn.execute(ui_sessions.delete().where(ui_sessions.c.expires_at < _iso(now)))
        conn.execute(
            ui_sessions.insert().values(
                id_hash=_hash(session_id),
                key_name=key_name,
                created_at=_iso(now),
                expires_at=_iso(now + timedelta(seconds=ttl_s)),
            )
        )

    store.write_retrying(run, attempts=3)
    return session_id


def session_user(store: Store, session_id: str) -> SessionUser | None:
    """The key a live session signs in, or None (unknown, ended, expired, key revoked)."""
    now = _iso(datetime.now(timezone.utc))
    with store.reading() as conn:
        row = conn.execute(
            sa.select(api_keys.c.name, api_keys.c.role)
            .select_from(ui_sessions.join(api_keys, api_keys.c.name == ui_sessions.c.key_name))
            .where(
                ui_sessions.c.id_hash == _hash(session_id),
                ui_sessions.c.revoked_at.is_(None),
                ui_sessions.c.expires_at > now,
                api_keys.c.revoked_at.is_(None),
            )
        ).first()
    return SessionUser(row.name, row.role) if row else None


def end_session(store: Store, session_id: str) -> None:
    """Sign-out: the session is refused from now on, whoever holds its cookie."""

    def run(conn: Connection) -> None:
        conn.execute(
            ui_sessions.update()
            .where(ui_sessions.c.id_hash == _hash(session_id), ui_sessions.c.revoked_at.is_(None))
            .values(revoked_at=_iso(datetime.now(timezone.utc)))
        )

    store.write_retrying(run, attempts=3)
