"""The registry's database connection: URLs, the SQLAlchemy engine (SQLite pragmas, PostgreSQL
pool), closing it for good, and telling a transient failure (busy, serialization) apart."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from ..errors import StoreClosed


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def engine_url(url: str) -> str:
    """Map a registry URL to SQLAlchemy's: postgresql:// uses psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url[len("sqlite:///") :])
    return None


def guard_closed(engine: Engine) -> threading.Event:
    """Make `Store.close()` final. `Engine.dispose()` alone leaves a connection that another
    thread had checked out open in the discarded pool (until the garbage collector finds it),
    and lets later calls open fresh ones that nobody closes; a server stopping mid-gate did
    both."""
    closed = threading.Event()

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_conn: Any, _record: Any) -> None:
        if closed.is_set() and dbapi_conn is not None:
            dbapi_conn.close()

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        if closed.is_set():
            dbapi_conn.close()
            raise StoreClosed("the registry connection is closed (the process is stopping)")

    return closed


def new_id(result: Any) -> int:
    """The primary key an INSERT just made."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # Writers take the write lock up front: no deadlocked lock upgrades.
            mode = "IMMEDIATE" if conn.get_execution_options().get("write") else "DEFERRED"
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    return sa.create_engine(url, pool_size=10, max_overflow=20)


def is_transient(exc: OperationalError | DBAPIError) -> bool:
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return any(s in text for s in ("locked", "busy", "serializ", "deadlock", "could not obtain"))


def default_sqlite_url(root: Path) -> str:
    return f"sqlite:///{os.path.relpath(root / '.promptgate' / 'registry.db')}"
