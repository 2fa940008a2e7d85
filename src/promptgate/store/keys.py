"""The registry server's API keys (table `api_keys`): made, looked up by key or name, listed and
revoked. Only a key's SHA-256 is stored; a key is shown once, when made."""

from __future__ import annotations

import hashlib
import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..domain import ApiKey
from ..errors import BadInput, UnknownRef
from .core import Store
from .engine import utcnow
from .schema import api_keys, ui_sessions

ROLES = ("viewer", "editor", "approver", "admin")


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(store: Store, name: str, role: str) -> str:
    """Make an API key; only its SHA-256 is stored. Returns the key (shown once)."""
    if role not in ROLES:
        raise BadInput(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    if (
        not name
        or len(name) > 100
        or not name.replace("-", "").replace("_", "").replace(".", "").replace("@", "").isalnum()
    ):
        raise BadInput(f"bad key name {name!r}: letters, digits, - _ . @")
    key = "pg_" + secrets.token_urlsafe(32)

    def run(conn: Connection) -> None:
        if conn.scalar(sa.select(api_keys.c.name).where(api_keys.c.name == name)):
            raise BadInput(f"a key named {name!r} exists already")
        conn.execute(
            api_keys.insert().values(
                name=name, key_hash=_key_hash(key), role=role, created_at=utcnow()
            )
        )

    store.write_retrying(run, attempts=3)
    return key


def lookup_key(store: Store, key: str) -> tuple[str, str] | None:
    """(name, role) of a live key, or None."""
    with store.reading() as conn:
        row = conn.execute(
            sa.select(api_keys.c.name, api_keys.c.role).where(
                api_keys.c.key_hash == _key_hash(key), api_keys.c.revoked_at.is_(None)
            )
        ).first()
    return (row.name, row.role) if row else None


def key_by_name(store: Store, name: str) -> tuple[str, str] | None:
    """(name, role) of the live key named `name` (a signed-in session holds the name)."""
    with store.reading() as conn:
        row = conn.execute(
            sa.select(api_keys.c.name, api_keys.c.role).where(
                api_keys.c.name == name, api_keys.c.revoked_at.is_(None)
            )
        ).first()
    return (row.name, row.role) if row else None


def list_keys(store: Store) -> list[ApiKey]:
    """Every key, revoked ones included, by name (never the keys themselves)."""
    with store.reading() as conn:
        return [
            ApiKey(name=r.name, role=r.role, created_at=r.created_at, revoked_at=r.revoked_at)
            for r in conn.execute(sa.select(api_keys).order_by(api_keys.c.name))
        ]


def revoke_key(store: Store, name: str) -> None:
    """Revoke a key, and end every web UI session it signed in (same transaction)."""

    def run(conn: Connection) -> None:
        now = utcnow()
        done = conn.execute(
            api_keys.update()
            .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
        if done != 1:
            raise UnknownRef(f"no live key named {name!r}")
        conn.execute(
            ui_sessions.update()
            .where(ui_sessions.c.key_name == name, ui_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    store.write_retrying(run, attempts=3)


class LocalKeys:
    """The key admin of a registry database (a server's is `RemoteStore`, same methods)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create_key(self, name: str, role: str) -> str:
        return create_key(self.store, name, role)

    def list_keys(self) -> list[ApiKey]:
        return list_keys(self.store)

    def revoke_key(self, name: str) -> None:
        revoke_key(self.store, name)
