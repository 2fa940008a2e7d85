"""The registry store: the only code that speaks SQL (SQLAlchemy Core, SQLite or PostgreSQL).

Guarantees, enforced here and in the database:
- versions are numbered 1, 2, 3 ... per prompt with no gaps or duplicates under concurrent
  writers, and identical content is stored once (unique (prompt, content_hash));
- versions and audit events are never updated, deleted or replaced (triggers);
- a version read back is checked against its content hash (`integrity`): edited rows are refused;
- every label move is a compare-and-swap in one transaction with its audit event.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from ..canonical import canonical_json
from ..domain import AuditEvent, Label, LabelMove, PromptVersion, PushResult
from ..errors import BadInput, LabelConflict, StoreClosed, UnknownRef
from ..resolved import snapshot_resolved, with_resolution
from .integrity import verified_content
from .schema import (
    MIGRATIONS,
    api_keys,
    audit_events,
    labels,
    metadata,
    promotions,
    reports,
    response_cache,
    schema_migrations,
    settings,
    ui_sessions,
    versions,
    webhook_deliveries,
)

ROLES = ("viewer", "editor", "approver", "admin")
NOTIFY_CHANNEL = "promptgate_events"

LATEST = "latest"


def _resolve_statement() -> sa.Select[Any]:
    """Built once: constructing it per call cost more than running it."""
    here, on = labels.alias("here"), labels.alias("on_version")
    return (
        sa.select(versions, on.c.label.label("on_label"))
        .select_from(
            here.join(
                versions,
                sa.and_(versions.c.prompt == here.c.prompt, versions.c.version == here.c.version),
            ).outerjoin(
                on, sa.and_(on.c.prompt == versions.c.prompt, on.c.version == versions.c.version)
            )
        )
        .where(here.c.prompt == sa.bindparam("name"), here.c.label == sa.bindparam("label"))
    )


_RESOLVE = _resolve_statement()


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def engine_url(url: str) -> str:
    """Map a registry URL to SQLAlchemy's: postgresql:// uses psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url[len("sqlite:///") :])
    return None


def _guard_closed(engine: Engine) -> threading.Event:
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


@dataclass(frozen=True)
class PendingPush:
    """A validated prompt to push: its name, normalised content and content hash."""

    name: str
    content: dict[str, Any]
    content_hash: str


def _new_id(result: Any) -> int:
    """The primary key an INSERT just made."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


class Store:
    """A registry on one database. Thread-safe; one instance per process is plenty."""

    def __init__(self, url: str, *, create: bool = False) -> None:
        self.url = url
        path = _sqlite_path(url)
        if path is not None:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            elif not path.exists():
                raise BadInput(f"no registry at {path}: run `promptgate init` first")
        try:
            self.engine = self._make_engine(engine_url(url))
        except (sa.exc.ArgumentError, ImportError, sa.exc.NoSuchModuleError) as exc:
            raise BadInput(f"bad registry URL {url!r}: {exc}") from None
        self.dialect = self.engine.dialect.name
        self._closed = _guard_closed(self.engine)

    @staticmethod
    def _make_engine(url: str) -> Engine:
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

    def close(self, grace_s: float = 1.0) -> None:
        """Release the connections. Safe to call twice and while other threads still work:
        new connections are refused, connections still out are closed as they come back
        (waiting up to `grace_s` for them first, so that none is mid-return when the pool goes)."""
        if self._closed.is_set():
            return
        self._closed.set()
        checked_out = getattr(self.engine.pool, "checkedout", None)
        deadline = time.monotonic() + grace_s
        while checked_out is not None and checked_out() > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.engine.dispose()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def _tx(self, write: bool) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(write=write)
            with conn.begin():
                yield conn

    def _write(self) -> Any:
        return self._tx(True)

    def _read(self) -> Any:
        return self._tx(False)

    def _retrying(self, fn: Any, attempts: int = 50) -> Any:
        """Run a write transaction, retrying on races another writer won (unique violations)."""
        for attempt in range(attempts):
            try:
                with self._write() as conn:
                    return fn(conn)
            except IntegrityError:
                if attempt == attempts - 1:
                    raise
            except OperationalError as exc:  # SQLite busy / PG serialization failure
                if attempt == attempts - 1 or not _transient(exc):
                    raise
            time.sleep(min(0.002 * (2 ** min(attempt, 6)), 0.1))
        raise AssertionError("unreachable")

    # -- schema -------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The newest applied migration; 0 for an empty database."""
        with self._read() as conn:
            if not sa.inspect(conn).has_table("schema_migrations"):
                return 0
            return int(conn.scalar(sa.select(sa.func.max(schema_migrations.c.version))) or 0)

    def migrate(self) -> list[int]:
        """Apply pending migrations, each in its own transaction; returns those applied."""
        applied: list[int] = []
        with self._write() as conn:
            metadata.tables["schema_migrations"].create(conn, checkfirst=True)
        for number, name, fn in MIGRATIONS:
            with self._write() as conn:
                if self.dialect == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7071)")
                done = conn.scalar(
                    sa.select(schema_migrations.c.version).where(
                        schema_migrations.c.version == number
                    )
                )
                if done is not None:
                    continue
                fn(conn)
                conn.execute(
                    schema_migrations.insert().values(
                        version=number, name=name, applied_at=utcnow()
                    )
                )
                applied.append(number)
        return applied

    def ensure_ready(self) -> None:
        """Refuse to work on a registry that `init` has not created or is behind."""
        have = self.schema_version()
        want = MIGRATIONS[-1][0]
        if have == 0:
            raise BadInput(f"registry {self.url} is not initialised: run `promptgate init`")
        if have < want:
            self.migrate()

    # -- versions -----------------------------------------------------------------------------

    @staticmethod
    def _version_from_row(row: Any, label_names: Sequence[str] = ()) -> PromptVersion:
        return PromptVersion(
            name=row.prompt,
            version=row.version,
            content_hash=row.content_hash,
            content=verified_content(row.prompt, row.version, row.content_hash, row.content),
            message=row.message,
            author=row.author,
            created_at=_dt(row.created_at),
            labels=tuple(sorted(label_names)),
        )

    def _labels_of(self, conn: Connection, name: str) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for row in conn.execute(
            sa.select(labels.c.label, labels.c.version).where(labels.c.prompt == name)
        ):
            out.setdefault(row.version, []).append(row.label)
        return out

    def _get(self, conn: Connection, name: str, version: int) -> PromptVersion | None:
        row = conn.execute(
            sa.select(versions).where(versions.c.prompt == name, versions.c.version == version)
        ).first()
        if row is None:
            return None
        return self._version_from_row(row, self._labels_of(conn, name).get(version, []))

    @staticmethod
    def _all_labels(conn: Connection) -> dict[tuple[str, int], list[str]]:
        """Label names by (prompt, version), for version objects' `labels`."""
        out: dict[tuple[str, int], list[str]] = {}
        for row in conn.execute(sa.select(labels.c.prompt, labels.c.version, labels.c.label)):
            out.setdefault((row.prompt, row.version), []).append(row.label)
        return out

    def get_version(self, name: str, version: int) -> PromptVersion:
        with self._read() as conn:
            v = self._get(conn, name, version)
        if v is None:
            raise UnknownRef(f"unknown ref {name}@v{version}: no such version")
        return v

    def resolve(self, name: str, label: str = LATEST) -> PromptVersion:
        """The version `label` points at; UnknownRef when the prompt or the label is not set.

        One statement (the version joined with every label on it), outside an explicit
        transaction: the hot path of every application that asks for `name@production`.
        """
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            rows = conn.execute(_RESOLVE, {"name": name, "label": label}).all()
            if not rows:
                if not self._exists(conn, name):
                    raise UnknownRef(f"unknown prompt {name!r}")
                raise UnknownRef(f"unknown ref {name}@{label}: label {label!r} is not set")
        return self._version_from_row(rows[0], [r.on_label for r in rows if r.on_label])

    def label_version(self, name: str, label: str) -> int | None:
        """The version number a label points at, or None; the cheap read for CAS baselines."""
        with self._read() as conn:
            return self._label_version(conn, name, label)

    @staticmethod
    def _label_version(conn: Connection, name: str, label: str) -> int | None:
        return conn.scalar(
            sa.select(labels.c.version).where(labels.c.prompt == name, labels.c.label == label)
        )

    @staticmethod
    def _exists(conn: Connection, name: str) -> bool:
        return (
            conn.scalar(sa.select(versions.c.id).where(versions.c.prompt == name).limit(1))
            is not None
        )

    def exists(self, name: str) -> bool:
        with self._read() as conn:
            return self._exists(conn, name)

    def history(self, name: str) -> list[PromptVersion]:
        """Every version of a prompt, oldest first."""
        with self._read() as conn:
            by_version = self._labels_of(conn, name)
            rows = conn.execute(
                sa.select(versions).where(versions.c.prompt == name).order_by(versions.c.version)
            ).all()
        if not rows:
            raise UnknownRef(f"unknown prompt {name!r}")
        return [self._version_from_row(r, by_version.get(r.version, [])) for r in rows]

    def list_prompts(self) -> list[PromptVersion]:
        """The newest version of every prompt, by name."""
        newest = (
            sa.select(versions.c.prompt, sa.func.max(versions.c.version).label("v"))
            .group_by(versions.c.prompt)
            .subquery()
        )
        with self._read() as conn:
            rows = conn.execute(
                sa.select(versions)
                .join(
                    newest,
                    sa.and_(newest.c.prompt == versions.c.prompt, newest.c.v == versions.c.version),
                )
                .order_by(versions.c.prompt)
            ).all()
            all_labels = self._all_labels(conn)
        return [self._version_from_row(r, all_labels.get((r.prompt, r.version), [])) for r in rows]

    def labels(self, name: str | None = None) -> list[Label]:
        query = sa.select(labels).order_by(labels.c.prompt, labels.c.label)
        if name is not None:
            query = query.where(labels.c.prompt == name)
        with self._read() as conn:
            return [
                Label(
                    prompt=r.prompt,
                    label=r.label,
                    version=r.version,
                    revision=r.revision,
                    updated_at=_dt(r.updated_at),
                )
                for r in conn.execute(query)
            ]

    def snapshot(
        self, label: str, names: Sequence[str] | None = None
    ) -> tuple[int, dict[str, PromptVersion]]:
        """The versions at `label` (of `names`, or all) and the newest event seq, read in one
        transaction: a chain never sees a new parent with an old child."""
        with self._tx(write=self.dialect == "sqlite") as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            seq = int(
                conn.scalar(sa.select(sa.func.coalesce(sa.func.max(audit_events.c.id), 0))) or 0
            )
            query = (
                sa.select(versions)
                .select_from(
                    versions.join(
                        labels,
                        sa.and_(
                            labels.c.prompt == versions.c.prompt,
                            labels.c.version == versions.c.version,
                        ),
                    )
                )
                .where(labels.c.label == label)
            )
            if names:
                query = query.where(versions.c.prompt.in_(list(names)))
            rows = conn.execute(query).all()
            all_labels = self._all_labels(conn)
        return seq, {
            r.prompt: self._version_from_row(r, all_labels.get((r.prompt, r.version), []))
            for r in rows
        }

    def lock_versions(self, label: str, names: Sequence[str] | None) -> dict[str, dict[str, Any]]:
        """`snapshot` as version objects: what `promptgate.lockfile` writes."""
        _seq, found, resolutions = snapshot_resolved(self, label, names)
        return {name: with_resolution(v.to_json(), resolutions[name]) for name, v in found.items()}

    def label_map(self, label: str) -> dict[str, int]:
        """Every prompt's version at `label`, read in one transaction."""
        with self._read() as conn:
            return {
                r.prompt: r.version
                for r in conn.execute(
                    sa.select(labels.c.prompt, labels.c.version).where(labels.c.label == label)
                )
            }

    def list_at_label(self, label: str) -> list[PromptVersion]:
        """Every prompt's version at `label` (prompts without it are absent), by name."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(versions)
                .select_from(
                    versions.join(
                        labels,
                        sa.and_(
                            labels.c.prompt == versions.c.prompt,
                            labels.c.version == versions.c.version,
                        ),
                    )
                )
                .where(labels.c.label == label)
                .order_by(versions.c.prompt)
            ).all()
            all_labels = self._all_labels(conn)
        return [self._version_from_row(r, all_labels.get((r.prompt, r.version), [])) for r in rows]

    def push(self, items: Sequence[PendingPush], *, message: str, author: str) -> list[PushResult]:
        """Store every item in one transaction: all or nothing.

        Identical content returns the existing version (created=False). `latest` moves to each
        pushed version that it does not already point at, recorded by the push event.
        """

        def run(conn: Connection) -> list[PushResult]:
            now = utcnow()
            results: list[PushResult] = []
            for item in items:
                existing = conn.execute(
                    sa.select(versions.c.version).where(
                        versions.c.prompt == item.name, versions.c.content_hash == item.content_hash
                    )
                ).scalar()
                created = existing is None
                if created:
                    number = (
                        int(
                            conn.scalar(
                                sa.select(
                                    sa.func.coalesce(sa.func.max(versions.c.version), 0)
                                ).where(versions.c.prompt == item.name)
                            )
                            or 0
                        )
                        + 1
                    )
                    conn.execute(
                        versions.insert().values(
                            prompt=item.name,
                            version=number,
                            content_hash=item.content_hash,
                            content=canonical_json(item.content).decode("utf-8"),
                            message=message,
                            author=author,
                            created_at=now,
                        )
                    )
                else:
                    assert existing is not None
                    number = int(existing)
                previous = self._label_version(conn, item.name, LATEST)
                if previous != number:
                    self._set_label(conn, item.name, LATEST, number, previous, now)
                    self._audit(
                        conn,
                        "push",
                        item.name,
                        LATEST,
                        previous,
                        number,
                        author,
                        message,
                        now,
                        {"content_hash": item.content_hash, "created": created},
                    )
                version = self._get(conn, item.name, number)
                assert version is not None
                results.append(PushResult(version=version, created=created))
            return results

        result: list[PushResult] = self._retrying(run)
        return result

    # -- labels -------------------------------------------------------------------------------

    def _set_label(
        self, conn: Connection, name: str, label: str, to: int, expect: int | None, now: str
    ) -> None:
        if expect is None:
            try:
                with conn.begin_nested():
                    conn.execute(
                        labels.insert().values(
                            prompt=name, label=label, version=to, revision=1, updated_at=now
                        )
                    )
            except IntegrityError:
                raise LabelConflict(
                    f"{name}@{label} was set by someone else (expected it unset)"
                ) from None
            return
        moved = conn.execute(
            labels.update()
            .where(labels.c.prompt == name, labels.c.label == label, labels.c.version == expect)
            .values(version=to, revision=labels.c.revision + 1, updated_at=now)
        ).rowcount
        if moved != 1:
            now_at = self._label_version(conn, name, label)
            raise LabelConflict(
                f"{name}@{label} moved: expected v{expect}, it is "
                + (f"v{now_at}" if now_at is not None else "unset")
            )

    @staticmethod
    def _audit(
        conn: Connection,
        type_: str,
        name: str,
        label: str | None,
        from_v: int | None,
        to_v: int | None,
        actor: str,
        reason: str,
        now: str,
        details: dict[str, Any],
    ) -> int:
        if conn.dialect.name == "postgresql":
            # Event ids are the feed's order: take them under one lock held to commit, so
            # they commit in id order and a reader past seq N never misses a lower id later.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7072)")
        result = conn.execute(
            audit_events.insert().values(
                type=type_,
                prompt=name,
                label=label,
                from_version=from_v,
                to_version=to_v,
                actor=actor,
                reason=reason,
                at=now,
                details=canonical_json(details).decode("utf-8"),
            )
        )
        if conn.dialect.name == "postgresql":
            # delivered at commit: wakes the events long-polls of every server replica
            conn.exec_driver_sql(f"NOTIFY {NOTIFY_CHANNEL}")
        return _new_id(result)

    def move_labels(
        self,
        moves: Sequence[LabelMove],
        *,
        actor: str,
        details: dict[str, Any] | None = None,
        event_type: str = "move",
    ) -> list[AuditEvent]:
        """Move every label by compare-and-swap in one transaction with its audit events.

        Moves whose label already points at the target are skipped (no event). If any label
        is not where its move expects, LabelConflict is raised and nothing moves.
        """
        details = details or {}

        def run(conn: Connection) -> list[AuditEvent]:
            now = utcnow()
            ids: list[int] = []
            for move in moves:
                if self._get(conn, move.prompt, move.to_version) is None:
                    raise UnknownRef(f"unknown ref {move.prompt}@v{move.to_version}")
                current = self._label_version(conn, move.prompt, move.label)
                if current != move.expect:
                    raise LabelConflict(
                        f"{move.prompt}@{move.label} moved: expected "
                        + (f"v{move.expect}" if move.expect is not None else "unset")
                        + ", it is "
                        + (f"v{current}" if current is not None else "unset")
                    )
                if current == move.to_version:
                    continue
                self._set_label(conn, move.prompt, move.label, move.to_version, move.expect, now)
                ids.append(
                    self._audit(
                        conn,
                        event_type,
                        move.prompt,
                        move.label,
                        move.expect,
                        move.to_version,
                        actor,
                        move.reason,
                        now,
                        details,
                    )
                )
            return [self._event(conn, i) for i in ids]

        try:
            events: list[AuditEvent] = self._retrying(run, attempts=5)
        except IntegrityError:
            raise LabelConflict("a label moved under this write; nothing moved") from None
        return events

    def remove_label(
        self, name: str, label: str, *, expect: int | None, actor: str, reason: str
    ) -> AuditEvent:
        """Remove a label (CAS against `expect`), with its audit event."""

        def run(conn: Connection) -> AuditEvent:
            now = utcnow()
            current = self._label_version(conn, name, label)
            if current is None:
                raise UnknownRef(f"unknown ref {name}@{label}: label {label!r} is not set")
            if expect is not None and current != expect:
                raise LabelConflict(f"{name}@{label} moved: expected v{expect}, it is v{current}")
            gone = conn.execute(
                labels.delete().where(
                    labels.c.prompt == name, labels.c.label == label, labels.c.version == current
                )
            ).rowcount
            if gone != 1:
                raise LabelConflict(f"{name}@{label} moved while being removed")
            return self._event(
                conn,
                self._audit(conn, "remove", name, label, current, None, actor, reason, now, {}),
            )

        event_: AuditEvent = self._retrying(run, attempts=5)
        return event_

    # -- audit --------------------------------------------------------------------------------

    @staticmethod
    def _event_from_row(row: Any) -> AuditEvent:
        return AuditEvent(
            id=row.id,
            type=row.type,
            prompt=row.prompt,
            label=row.label,
            from_version=row.from_version,
            to_version=row.to_version,
            actor=row.actor,
            reason=row.reason,
            at=_dt(row.at),
            details=json.loads(row.details),
        )

    def _event(self, conn: Connection, event_id: int) -> AuditEvent:
        row = conn.execute(sa.select(audit_events).where(audit_events.c.id == event_id)).one()
        return self._event_from_row(row)

    def audit(
        self,
        *,
        prompt: str | None = None,
        label: str | None = None,
        before: int | None = None,
        since: int | None = None,
        limit: int | None = None,
        oldest_first: bool = False,
        types: Iterable[str] | None = None,
    ) -> list[AuditEvent]:
        """Audit events, newest first unless `oldest_first`; filtered and paginated by id."""
        query = sa.select(audit_events)
        if prompt is not None:
            query = query.where(audit_events.c.prompt == prompt)
        if label is not None:
            query = query.where(audit_events.c.label == label)
        if before is not None:
            query = query.where(audit_events.c.id < before)
        if since is not None:
            query = query.where(audit_events.c.id > since)
        if types is not None:
            query = query.where(audit_events.c.type.in_(list(types)))
        order = audit_events.c.id if oldest_first else audit_events.c.id.desc()
        query = query.order_by(order)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [self._event_from_row(r) for r in conn.execute(query)]

    def label_moves(self, name: str, label: str) -> list[AuditEvent]:
        """The label's history, oldest first: every event that set, moved or removed it."""
        return self.audit(prompt=name, label=label, oldest_first=True)

    # -- response cache -----------------------------------------------------------------------

    def cache_get(self, key: str) -> dict[str, Any] | None:
        with self._read() as conn:
            text = conn.scalar(
                sa.select(response_cache.c.response).where(response_cache.c.key == key)
            )
        return json.loads(text) if text is not None else None

    def cache_get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        with self._read() as conn:
            for i in range(0, len(keys), 500):
                chunk = list(keys[i : i + 500])
                for row in conn.execute(
                    sa.select(response_cache.c.key, response_cache.c.response).where(
                        response_cache.c.key.in_(chunk)
                    )
                ):
                    out[row.key] = json.loads(row.response)
        return out

    def cache_put_many(self, entries: Sequence[tuple[str, str, dict[str, Any]]]) -> int:
        """Store (key, model, response) entries; existing keys are kept. Returns rows added."""
        unique = list({k: (k, m, r) for k, m, r in entries}.values())

        def run(conn: Connection, chunk: Sequence[tuple[str, str, dict[str, Any]]]) -> int:
            have = set(
                conn.scalars(
                    sa.select(response_cache.c.key).where(
                        response_cache.c.key.in_([k for k, _, _ in chunk])
                    )
                )
            )
            now = utcnow()
            rows = [
                {
                    "key": k,
                    "model": m,
                    "response": canonical_json(r).decode("utf-8"),
                    "created_at": now,
                }
                for k, m, r in chunk
                if k not in have
            ]
            if rows:
                conn.execute(response_cache.insert(), rows)
            return len(rows)

        added = 0
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            added += int(self._retrying(lambda conn, chunk=chunk: run(conn, chunk)))
        return added

    def cache_entries(self) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
        """Every cached response as (key, model, created_at, response), by key."""
        with self._read() as conn:
            for row in conn.execute(sa.select(response_cache).order_by(response_cache.c.key)):
                yield row.key, row.model, row.created_at, json.loads(row.response)

    # -- reports ------------------------------------------------------------------------------

    def save_report(self, digest: str, verdict: str, report: dict[str, Any]) -> int:
        """Keep a gate report by its digest (idempotent); returns its id."""

        def run(conn: Connection) -> int:
            found = conn.scalar(sa.select(reports.c.id).where(reports.c.digest == digest))
            if found is not None:
                return int(found)
            result = conn.execute(
                reports.insert().values(
                    digest=digest,
                    verdict=verdict,
                    report=canonical_json(report).decode("utf-8"),
                    created_at=utcnow(),
                )
            )
            return _new_id(result)

        report_id: int = self._retrying(run)
        return report_id


def _transient(exc: OperationalError | DBAPIError) -> bool:
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return any(s in text for s in ("locked", "busy", "serializ", "deadlock", "could not obtain"))


def default_sqlite_url(root: Path) -> str:
    return f"sqlite:///{os.path.relpath(root / '.promptgate' / 'registry.db')}"


# -- the registry server's tables ---------------------------------------------------------------


def _key_hash(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(store: Store, name: str, role: str) -> str:
    """Make an API key; only its SHA-256 is stored. Returns the key (shown once)."""
    import secrets

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

    store._retrying(run, attempts=3)
    return key


def lookup_key(store: Store, key: str) -> tuple[str, str] | None:
    """(name, role) of a live key, or None."""
    with store._read() as conn:
        row = conn.execute(
            sa.select(api_keys.c.name, api_keys.c.role).where(
                api_keys.c.key_hash == _key_hash(key), api_keys.c.revoked_at.is_(None)
            )
        ).first()
    return (row.name, row.role) if row else None


def key_by_name(store: Store, name: str) -> tuple[str, str] | None:
    """(name, role) of the live key named `name` (a signed-in session holds the name)."""
    with store._read() as conn:
        row = conn.execute(
            sa.select(api_keys.c.name, api_keys.c.role).where(
                api_keys.c.name == name, api_keys.c.revoked_at.is_(None)
            )
        ).first()
    return (row.name, row.role) if row else None


def list_keys(store: Store) -> list[dict[str, Any]]:
    with store._read() as conn:
        return [
            {"name": r.name, "role": r.role, "created_at": r.created_at, "revoked_at": r.revoked_at}
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

    store._retrying(run, attempts=3)


def get_setting(store: Store, key: str, default: Any) -> str:
    """A setting, created from `default()` atomically on first use (first writer wins)."""
    with store._read() as conn:
        value = conn.scalar(sa.select(settings.c.value).where(settings.c.key == key))
    if value is not None:
        return str(value)

    def run(conn: Connection) -> str:
        found = conn.scalar(sa.select(settings.c.value).where(settings.c.key == key))
        if found is not None:
            return str(found)
        made = str(default())
        conn.execute(settings.insert().values(key=key, value=made))
        return made

    result: str = store._retrying(run)
    return result


def _promotion(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "refs": json.loads(row.refs),
        "label": row.label,
        "reason": row.reason,
        "author": row.author,
        "state": row.state,
        "candidates": json.loads(row.candidates),
        "baseline": json.loads(row.baseline),
        "report": row.report_id,
        "progress": json.loads(row.progress),
        "decided_by": row.decided_by,
        "comment": row.comment,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def create_promotion(
    store: Store,
    *,
    refs: list[str],
    label: str,
    reason: str,
    author: str,
    candidates: dict[str, Any],
    baseline: dict[str, Any],
) -> dict[str, Any]:
    """File a promotion request (state `gating`) with its request events, one per prompt."""

    def run(conn: Connection) -> dict[str, Any]:
        now = utcnow()
        result = conn.execute(
            promotions.insert().values(
                label=label,
                reason=reason,
                author=author,
                state="gating",
                refs=json.dumps(refs),
                candidates=json.dumps(candidates),
                baseline=json.dumps(baseline),
                progress=json.dumps({"done": 0, "total": 0}),
                created_at=now,
                updated_at=now,
            )
        )
        pid = _new_id(result)
        for name, cand in candidates.items():
            store._audit(
                conn,
                "request",
                name,
                label,
                baseline.get(name),
                cand["version"],
                author,
                reason,
                now,
                {"request": pid},
            )
        row = conn.execute(sa.select(promotions).where(promotions.c.id == pid)).one()
        return _promotion(row)

    result: dict[str, Any] = store._retrying(run, attempts=3)
    return result


def get_promotion(store: Store, pid: int) -> dict[str, Any]:
    with store._read() as conn:
        row = conn.execute(sa.select(promotions).where(promotions.c.id == pid)).first()
    if row is None:
        raise UnknownRef(f"no promotion request {pid}")
    return _promotion(row)


def list_promotions(store: Store, state: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(promotions).order_by(promotions.c.id.desc())
    if state:
        query = query.where(promotions.c.state == state)
    with store._read() as conn:
        return [_promotion(r) for r in conn.execute(query)]


def update_promotion(
    store: Store,
    pid: int,
    *,
    expect_state: str | tuple[str, ...],
    conn: Connection | None = None,
    **values: Any,
) -> bool:
    """Compare-and-swap a request's fields on its state; False if the state had moved."""
    states = (expect_state,) if isinstance(expect_state, str) else expect_state
    if "progress" in values:
        values["progress"] = json.dumps(values["progress"])
    stmt = (
        promotions.update()
        .where(promotions.c.id == pid, promotions.c.state.in_(states))
        .values(updated_at=utcnow(), **values)
    )
    if conn is not None:
        return bool(conn.execute(stmt).rowcount == 1)
    with store._write() as c:
        return bool(c.execute(stmt).rowcount == 1)


def record_refused_report(store: Store, pid: int, *, actor: str, reason: str) -> None:
    """Audit a CI report the server refused for a request: one `decision` event per prompt,
    `details.decision = "report-refused"`; the request itself stays as it was."""
    request = get_promotion(store, pid)
    now = utcnow()

    def run(conn: Connection) -> None:
        for name, cand in request["candidates"].items():
            store._audit(
                conn,
                "decision",
                name,
                request["label"],
                request["baseline"].get(name),
                cand["version"],
                actor,
                reason,
                now,
                {"request": pid, "decision": "report-refused"},
            )

    with store._write() as conn:
        run(conn)


def get_report(store: Store, report_id: int) -> dict[str, Any] | None:
    with store._read() as conn:
        text = conn.scalar(sa.select(reports.c.report).where(reports.c.id == report_id))
    return json.loads(text) if text else None


def record_delivery(
    store: Store,
    *,
    url: str,
    event_seq: int,
    event_type: str,
    status: int | None,
    attempts: int,
    error: str | None,
) -> None:
    with store._write() as conn:
        conn.execute(
            webhook_deliveries.insert().values(
                url=url,
                event_seq=event_seq,
                event_type=event_type,
                status=status,
                attempts=attempts,
                error=error,
                at=utcnow(),
            )
        )


def list_deliveries(store: Store) -> list[dict[str, Any]]:
    with store._read() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(sa.select(webhook_deliveries).order_by(webhook_deliveries.c.id))
        ]


def max_seq(store: Store) -> int:
    with store._read() as conn:
        return int(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(audit_events.c.id), 0))))


def decide_promotion(
    store: Store, pid: int, *, approve: bool, actor: str, comment: str | None
) -> dict[str, Any]:
    """Approve (move every label by CAS against the baseline the gate judged) or reject a
    passed request, in one transaction with its decision and move events.

    Raises LabelConflict when a label moved since the gate judged it (the request then goes
    stale, recorded in its own transaction), BadInput when the request is not `passed`.
    """

    def run(conn: Connection) -> dict[str, Any]:
        row = conn.execute(sa.select(promotions).where(promotions.c.id == pid)).first()
        if row is None:
            raise UnknownRef(f"no promotion request {pid}")
        request = _promotion(row)
        if request["state"] != "passed":
            raise BadInput(f"request {pid} is {request['state']}, not passed")
        now = utcnow()
        if approve:
            for name, cand in request["candidates"].items():
                expect = request["baseline"].get(name)
                current = store._label_version(conn, name, request["label"])
                if current != expect:
                    raise LabelConflict(
                        f"{name}@{request['label']} moved since the gate judged it (expected "
                        + (f"v{expect}" if expect else "unset")
                        + ", it is "
                        + (f"v{current}" if current else "unset")
                        + ")"
                    )
                if current == cand["version"]:
                    continue
                store._set_label(conn, name, request["label"], cand["version"], expect, now)
                store._audit(
                    conn,
                    "move",
                    name,
                    request["label"],
                    expect,
                    cand["version"],
                    actor,
                    request["reason"],
                    now,
                    {
                        "request": pid,
                        "requester": request["author"],
                        "approver": actor,
                        "report": request["report"],
                    },
                )
        for name, cand in request["candidates"].items():
            store._audit(
                conn,
                "decision",
                name,
                request["label"],
                request["baseline"].get(name),
                cand["version"],
                actor,
                comment or "",
                now,
                {"request": pid, "decision": "approved" if approve else "rejected"},
            )
        update_promotion(
            store,
            pid,
            expect_state="passed",
            conn=conn,
            state="approved" if approve else "rejected",
            decided_by=actor,
            comment=comment,
        )
        final = conn.execute(sa.select(promotions).where(promotions.c.id == pid)).one()
        return _promotion(final)

    try:
        result: dict[str, Any] = store._retrying(run, attempts=3)
    except LabelConflict:
        update_promotion(
            store, pid, expect_state="passed", state="stale", decided_by=actor, comment=comment
        )
        raise
    return result
