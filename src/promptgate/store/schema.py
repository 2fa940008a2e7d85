"""Tables and migrations of the registry.

Migrations are numbered and never edited: a change is a new migration. Each one runs in its own
transaction together with its row in `schema_migrations`, so a registry is always at a known
version. Immutability of versions and audit events is enforced by triggers in the database.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.String(40), nullable=False),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("prompt", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.UniqueConstraint("prompt", "version", name="uq_versions_prompt_version"),
    sa.UniqueConstraint("prompt", "content_hash", name="uq_versions_prompt_hash"),
)

labels = sa.Table(
    "labels",
    metadata,
    sa.Column("prompt", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("prompt", sa.String(64), nullable=False),
    sa.Column("label", sa.String(32)),
    sa.Column("from_version", sa.Integer),
    sa.Column("to_version", sa.Integer),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Index("ix_audit_prompt_label", "prompt", "label", "id"),
)

response_cache = sa.Table(
    "response_cache",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)

reports = sa.Table(
    "reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("digest", sa.String(64), nullable=False, unique=True),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("report", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("revoked_at", sa.String(40)),
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

promotions = sa.Table(
    "promotions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("label", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("refs", sa.Text, nullable=False),
    sa.Column("candidates", sa.Text, nullable=False),
    sa.Column("baseline", sa.Text, nullable=False),
    sa.Column("report_id", sa.Integer),
    sa.Column("progress", sa.Text, nullable=False),
    sa.Column("decided_by", sa.String(200)),
    sa.Column("comment", sa.Text),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("event_seq", sa.Integer, nullable=False),
    sa.Column("event_type", sa.String(16), nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("at", sa.String(40), nullable=False),
)

ui_sessions = sa.Table(
    "ui_sessions",
    metadata,
    # SHA-256 of the session id in the cookie: a database reader cannot sign anyone in
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("key_name", sa.String(100), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("expires_at", sa.String(40), nullable=False),
    sa.Column("revoked_at", sa.String(40)),
    sa.Index("ix_ui_sessions_key", "key_name"),
)

_IMMUTABLE = ("versions", "audit_events")


def _m1_initial(conn: Connection) -> None:
    for table in (versions, labels, audit_events):
        table.create(conn)
    if conn.dialect.name == "sqlite":
        for name in _IMMUTABLE:
            for op in ("UPDATE", "DELETE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER {name}_no_{op.lower()} BEFORE {op} ON {name} "
                    f"BEGIN SELECT RAISE(ABORT, '{name} are immutable'); END"
                )
    else:
        conn.exec_driver_sql(
            "CREATE FUNCTION promptgate_immutable() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' are immutable'; END $$"
        )
        for name in _IMMUTABLE:
            conn.exec_driver_sql(
                f"CREATE TRIGGER {name}_immutable BEFORE UPDATE OR DELETE ON {name} "
                "FOR EACH ROW EXECUTE FUNCTION promptgate_immutable()"
            )
            conn.exec_driver_sql(
                f"CREATE TRIGGER {name}_no_truncate BEFORE TRUNCATE ON {name} "
                "FOR EACH STATEMENT EXECUTE FUNCTION promptgate_immutable()"
            )


def _m2_cache_and_reports(conn: Connection) -> None:
    response_cache.create(conn)
    reports.create(conn)


def _m3_server(conn: Connection) -> None:
    for table in (api_keys, settings, promotions, webhook_deliveries):
        table.create(conn)


# The keys a row of each append-only table is known by (its primary key and unique constraints).
_IMMUTABLE_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "versions": (("id",), ("prompt", "version"), ("prompt", "content_hash")),
    "audit_events": (("id",),),
}


def _m4_no_replace(conn: Connection) -> None:
    """SQLite's REPLACE (`INSERT OR REPLACE`, `REPLACE INTO`) deletes the conflicting row without
    firing DELETE triggers, so migration 1's triggers let it rewrite a stored version or audit
    event. A BEFORE INSERT trigger runs before conflict resolution: it refuses any insert whose
    key is already taken (REPLACE, upserts, and plain inserts that would collide anyway).
    PostgreSQL needs nothing: upserts and MERGE fire its UPDATE/DELETE triggers."""
    if conn.dialect.name != "sqlite":
        return
    for table, keys in _IMMUTABLE_KEYS.items():
        taken = " OR ".join("(" + " AND ".join(f"{c} = NEW.{c}" for c in key) + ")" for key in keys)
        conn.exec_driver_sql(
            f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
            f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {taken}) "
            f"BEGIN SELECT RAISE(ABORT, '{table} are immutable'); END"
        )


def _m5_ui_sessions(conn: Connection) -> None:
    ui_sessions.create(conn)


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "versions, labels, audit log, immutability triggers", _m1_initial),
    (2, "response cache and gate reports", _m2_cache_and_reports),
    (3, "api keys, settings, promotion requests, webhook deliveries", _m3_server),
    (4, "immutability holds against SQLite REPLACE and upserts", _m4_no_replace),
    (5, "web UI sessions held server-side", _m5_ui_sessions),
]
