"""Shared fixtures: stores on both engines (each test isolated), a project folder, the CLI."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from promptgate.store import Store

PG_URL = os.environ.get("PROMPTGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
ENGINES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    """A PostgreSQL connection for creating per-test schemas. Never skipped: CI must run it."""
    engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1),
                              isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    yield engine
    engine.dispose()


def _pg_schema_url(pg_admin: sa.Engine) -> Iterator[str]:
    schema = "t_" + uuid.uuid4().hex[:16]
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with pg_admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=ENGINES)
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty registry URL on each engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        yield from _pg_schema_url(request.getfixturevalue("pg_admin"))


@pytest.fixture
def store(registry_url: str) -> Iterator[Store]:
    s = Store(registry_url, create=True)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'registry.db'}", create=True)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def pg_url(pg_admin: sa.Engine) -> Iterator[str]:
    """A fresh PostgreSQL registry URL (its own schema), for PostgreSQL-only behaviour."""
    yield from _pg_schema_url(pg_admin)
