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
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from ..canonical import canonical_json
from ..domain import AuditEvent, Label, LabelMove, PendingPush, PromptVersion, PushResult
from ..errors import BadInput, LabelConflict, UnknownRef
from ..resolved import snapshot_resolved, with_resolution
from .engine import engine_url, guard_closed, is_transient, make_engine, new_id, sqlite_path, utcnow
from .integrity import verified_content
from .schema import (
    MIGRATIONS,
    audit_events,
    labels,
    metadata,
    reports,
    response_cache,
    schema_migrations,
    versions,
)

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


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _versions_at(label: str) -> sa.Select[Any]:
    """The versions `label` points at (one row per prompt that has it)."""
    on_label = sa.and_(labels.c.prompt == versions.c.prompt, labels.c.version == versions.c.version)
    return (
        sa.select(versions)
        .select_from(versions.join(labels, on_label))
        .where(labels.c.label == label)
    )


class Store:
    """A registry on one database. Thread-safe; one instance per process is plenty."""

    def __init__(self, url: str, *, create: bool = False) -> None:
        self.url = url
        path = sqlite_path(url)
        if path is not None:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            elif not path.exists():
                raise BadInput(f"no registry at {path}: run `promptgate init` first")
        try:
            self.engine = make_engine(engine_url(url))
        except (sa.exc.ArgumentError, ImportError, sa.exc.NoSuchModuleError) as exc:
            raise BadInput(f"bad registry URL {url!r}: {exc}") from None
        self.dialect = self.engine.dialect.name
        self._closed = guard_closed(self.engine)

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
    # `reading`, `writing`, `write_retrying`, and the `*_in(conn, ...)` / `record_event` steps
    # below, are the API the store package's other modules (keys, promotions, sessions, ...)
    # build their transactions from.

    @contextmanager
    def _tx(self, write: bool) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(write=write)
            with conn.begin():
                yield conn

    def writing(self) -> Any:
        """A write transaction (SQLite: BEGIN IMMEDIATE), as `with store.writing() as conn`."""
        return self._tx(True)

    def reading(self) -> Any:
        """A read transaction, as `with store.reading() as conn`."""
        return self._tx(False)

    def write_retrying(self, fn: Any, attempts: int = 50) -> Any:
        """Run a write transaction, retrying on races another writer won (unique violations)."""
        for attempt in range(attempts):
            try:
                with self.writing() as conn:
                    return fn(conn)
            except IntegrityError:
                if attempt == attempts - 1:
                    raise
            except OperationalError as exc:  # SQLite busy / PG serialization failure
                if attempt == attempts - 1 or not is_transient(exc):
                    raise
            time.sleep(min(0.002 * (2 ** min(attempt, 6)), 0.1))
        raise AssertionError("unreachable")

    # -- schema -------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The newest applied migration; 0 for an empty database."""
        with self.reading() as conn:
            if not sa.inspect(conn).has_table("schema_migrations"):
                return 0
            return int(conn.scalar(sa.select(sa.func.max(schema_migrations.c.version))) or 0)

    def migrate(self) -> list[int]:
        """Apply pending migrations, each in its own transaction; returns those applied."""
        applied: list[int] = []
        with self.writing() as conn:
            metadata.tables["schema_migrations"].create(conn, checkfirst=True)
        for number, name, fn in MIGRATIONS:
            with self.writing() as conn:
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
        with self.reading() as conn:
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
        with self.reading() as conn:
            return self.label_version_in(conn, name, label)

    @staticmethod
    def label_version_in(conn: Connection, name: str, label: str) -> int | None:
        """`label_version`, read in the caller's transaction."""
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
        with self.reading() as conn:
            return self._exists(conn, name)

    def history(self, name: str) -> list[PromptVersion]:
        """Every version of a prompt, oldest first."""
        with self.reading() as conn:
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
        with self.reading() as conn:
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
        with self.reading() as conn:
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
            query = _versions_at(label)
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
        with self.reading() as conn:
            return {
                r.prompt: r.version
                for r in conn.execute(
                    sa.select(labels.c.prompt, labels.c.version).where(labels.c.label == label)
                )
            }

    def list_at_label(self, label: str) -> list[PromptVersion]:
        """Every prompt's version at `label` (prompts without it are absent), by name."""
        with self.reading() as conn:
            rows = conn.execute(_versions_at(label).order_by(versions.c.prompt)).all()
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
                previous = self.label_version_in(conn, item.name, LATEST)
                if previous != number:
                    self.set_label_in(conn, item.name, LATEST, number, previous, now)
                    self.record_event(
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

        result: list[PushResult] = self.write_retrying(run)
        return result

    # -- labels -------------------------------------------------------------------------------

    def set_label_in(
        self, conn: Connection, name: str, label: str, to: int, expect: int | None, now: str
    ) -> None:
        """Set `name@label` to `to` by compare-and-swap against `expect` (None: unset), in the
        caller's transaction; LabelConflict when it is elsewhere. Records no event."""
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
            now_at = self.label_version_in(conn, name, label)
            raise LabelConflict(
                f"{name}@{label} moved: expected v{expect}, it is "
                + (f"v{now_at}" if now_at is not None else "unset")
            )

    @staticmethod
    def record_event(
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
        """Append an audit event in the caller's transaction; returns its id (the feed's seq)."""
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
        return new_id(result)

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
                current = self.label_version_in(conn, move.prompt, move.label)
                if current != move.expect:
                    raise LabelConflict(
                        f"{move.prompt}@{move.label} moved: expected "
                        + (f"v{move.expect}" if move.expect is not None else "unset")
                        + ", it is "
                        + (f"v{current}" if current is not None else "unset")
                    )
                if current == move.to_version:
                    continue
                self.set_label_in(conn, move.prompt, move.label, move.to_version, move.expect, now)
                ids.append(
                    self.record_event(
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
            events: list[AuditEvent] = self.write_retrying(run, attempts=5)
        except IntegrityError:
            raise LabelConflict("a label moved under this write; nothing moved") from None
        return events

    def remove_label(
        self, name: str, label: str, *, expect: int | None, actor: str, reason: str
    ) -> AuditEvent:
        """Remove a label (CAS against `expect`), with its audit event."""

        def run(conn: Connection) -> AuditEvent:
            now = utcnow()
            current = self.label_version_in(conn, name, label)
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
                self.record_event(
                    conn, "remove", name, label, current, None, actor, reason, now, {}
                ),
            )

        event_: AuditEvent = self.write_retrying(run, attempts=5)
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
        with self.reading() as conn:
            return [self._event_from_row(r) for r in conn.execute(query)]

    def label_moves(self, name: str, label: str) -> list[AuditEvent]:
        """The label's history, oldest first: every event that set, moved or removed it."""
        return self.audit(prompt=name, label=label, oldest_first=True)

    # -- response cache -----------------------------------------------------------------------

    def cache_get(self, key: str) -> dict[str, Any] | None:
        with self.reading() as conn:
            text = conn.scalar(
                sa.select(response_cache.c.response).where(response_cache.c.key == key)
            )
        return json.loads(text) if text is not None else None

    def cache_get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        with self.reading() as conn:
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
            added += int(self.write_retrying(lambda conn, chunk=chunk: run(conn, chunk)))
        return added

    def cache_entries(self) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
        """Every cached response as (key, model, created_at, response), by key."""
        with self.reading() as conn:
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
            return new_id(result)

        report_id: int = self.write_retrying(run)
        return report_id


def max_seq(store: Store) -> int:
    with store.reading() as conn:
        return int(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(audit_events.c.id), 0))))
