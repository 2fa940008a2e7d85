"""Storage contract: the same behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from promptgate.canonical import content_hash
from promptgate.domain import LabelMove
from promptgate.errors import LabelConflict, StoreClosed, UnknownRef
from promptgate.store import PendingPush, Store


def pending(name: str, text: str) -> PendingPush:
    content = {"model": {"name": "m", "provider": "openai"}, "template": text}
    return PendingPush(name, content, content_hash(content))


def test_versions_are_numbered_densely_and_latest_moves(store: Store) -> None:
    for i in range(3):
        [r] = store.push([pending("a", f"t{i}")], message=f"m{i}", author="ann")
        assert r.created and r.version.version == i + 1
    assert [v.version for v in store.history("a")] == [1, 2, 3]
    latest = store.resolve("a")
    assert latest.version == 3 and latest.labels == ("latest",)
    assert latest.author == "ann" and latest.message == "m2"


def test_identical_content_is_stored_once(store: Store) -> None:
    store.push([pending("a", "x")], message="one", author="a")
    [again] = store.push([pending("a", "x")], message="two", author="b")
    assert not again.created and again.version.version == 1 and again.version.message == "one"
    assert len(store.history("a")) == 1
    assert [e.type for e in store.audit()] == ["push"]


def test_pushing_older_content_moves_latest_back_without_new_version(store: Store) -> None:
    store.push([pending("a", "x")], message="1", author="a")
    store.push([pending("a", "y")], message="2", author="a")
    [r] = store.push([pending("a", "x")], message="revert", author="a")
    assert not r.created and store.resolve("a").version == 1
    assert store.audit(label="latest")[0].from_version == 2


def test_content_round_trips(store: Store) -> None:
    p = pending("a", "héllo {{ x }}")
    store.push([p], message="m", author="a")
    v = store.get_version("a", 1)
    assert v.content == p.content and v.content_hash == p.content_hash


def test_multi_push_is_all_or_nothing(store: Store) -> None:
    unserialisable = PendingPush("b", {"x": {1, 2}}, "h" * 64)  # fails after `a` was written
    with pytest.raises(TypeError):
        store.push([pending("a", "1"), unserialisable], message="m", author="a")
    assert not store.exists("a") and store.audit() == []


def test_label_cas_and_audit(store: Store) -> None:
    store.push([pending("a", "1")], message="m", author="a")
    store.push([pending("a", "2")], message="m", author="a")
    [e] = store.move_labels([LabelMove("a", "production", 1, None, "ship")], actor="bob")
    assert (e.type, e.from_version, e.to_version, e.actor, e.reason) == (
        "move",
        None,
        1,
        "bob",
        "ship",
    )
    with pytest.raises(LabelConflict):
        store.move_labels([LabelMove("a", "production", 2, None, "")], actor="x")
    with pytest.raises(LabelConflict):
        store.move_labels([LabelMove("a", "production", 2, 2, "")], actor="x")
    assert store.label_version("a", "production") == 1
    store.move_labels([LabelMove("a", "production", 2, 1, "")], actor="x")
    assert store.resolve("a", "production").version == 2
    assert store.move_labels([LabelMove("a", "production", 2, 2, "")], actor="x") == []


def test_multi_label_move_is_atomic(store: Store) -> None:
    for name in ("a", "b"):
        store.push([pending(name, "1")], message="m", author="a")
    before = len(store.audit())
    with pytest.raises(LabelConflict):
        store.move_labels(
            [LabelMove("a", "production", 1, None, ""), LabelMove("b", "production", 1, 7, "")],
            actor="x",
        )
    assert store.label_version("a", "production") is None
    assert len(store.audit()) == before


def test_unknown_refs(store: Store) -> None:
    with pytest.raises(UnknownRef, match="unknown prompt"):
        store.resolve("nope")
    store.push([pending("a", "1")], message="m", author="a")
    with pytest.raises(UnknownRef, match="not set"):
        store.resolve("a", "production")
    with pytest.raises(UnknownRef):
        store.get_version("a", 9)
    with pytest.raises(UnknownRef):
        store.move_labels([LabelMove("a", "x", 9, None, "")], actor="x")


def test_remove_label(store: Store) -> None:
    store.push([pending("a", "1")], message="m", author="a")
    store.move_labels([LabelMove("a", "beta", 1, None, "")], actor="x")
    e = store.remove_label("a", "beta", expect=None, actor="x", reason="done")
    assert (e.type, e.from_version, e.to_version) == ("remove", 1, None)
    assert store.label_version("a", "beta") is None


@pytest.mark.parametrize("table", ["versions", "audit_events"])
@pytest.mark.parametrize("statement", ["UPDATE {t} SET prompt = 'z'", "DELETE FROM {t}"])
def test_raw_sql_cannot_change_history(store: Store, table: str, statement: str) -> None:
    store.push([pending("a", "1")], message="m", author="a")
    with pytest.raises(sa.exc.DBAPIError, match="immutable"):
        with store.engine.begin() as conn:
            conn.exec_driver_sql(statement.format(t=table))
    assert store.history("a")[0].name == "a"
    assert len(store.audit()) == 1


def test_truncate_is_refused_on_postgres(pg_url: str) -> None:
    store = Store(pg_url, create=True)
    store.migrate()
    with pytest.raises(sa.exc.DBAPIError, match="immutable"):
        with store.engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE versions CASCADE")
    store.close()


def test_migrate_is_idempotent(store: Store) -> None:
    assert store.migrate() == []
    from promptgate.store.schema import MIGRATIONS

    assert store.schema_version() == MIGRATIONS[-1][0]


def test_cache_round_trip(store: Store) -> None:
    assert store.cache_get("k") is None
    assert store.cache_put_many([("k", "m", {"a": 1}), ("k", "m", {"a": 1})]) == 1
    assert store.cache_put_many([("k", "m", {"a": 2})]) == 0
    assert store.cache_get("k") == {"a": 1}
    assert store.cache_get_many(["k", "zz"]) == {"k": {"a": 1}}


def test_close_is_final_even_with_a_connection_out(store: Store) -> None:
    """A thread still holding a connection when the store closes gets it closed on return
    (not left open in a discarded pool), and nothing reopens one afterwards."""
    held = store.engine.connect()
    held.exec_driver_sql("SELECT 1")
    raw = held.connection.dbapi_connection
    store.close()
    store.close()  # twice is fine
    held.close()
    if store.dialect == "postgresql":
        assert raw.closed
    else:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            raw.execute("SELECT 1")
    with pytest.raises(StoreClosed):
        store.history("a")
    assert store.closed
