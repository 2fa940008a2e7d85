"""Shared fixtures: stores on both engines (each test isolated), a project folder, the CLI."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from promptgate.cli import cli
from promptgate.store import Store

PG_URL = os.environ.get("PROMPTGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
ENGINES = ["sqlite", "postgresql"]


@pytest.fixture(autouse=True)
def _not_in_github_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite itself may run under GitHub Actions: keep its gate runs out of the job's
    step summary and annotations (tests that want them set them explicitly)."""
    for var in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    """A PostgreSQL connection for creating per-test schemas. Never skipped: CI must run it."""
    engine = sa.create_engine(
        PG_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
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


EXTRACT = """\
name: extract
description: Pull the facts out of a support ticket.
model: {name: gpt-4o-mini, temperature: 0}
messages:
  - role: system
    content: You extract facts.
  - role: user
    content: "Ticket: {{ ticket }}"
"""

SUMMARIZE = """\
name: summarize
model: {name: gpt-4o-mini, temperature: 0.2, max_tokens: 300}
template: "Summarize in at most {{ max_words }} words: {{ facts }}"
inputs:
  facts: {from: extract}
  max_words: {default: 60}
"""


@dataclass
class Project:
    """A project folder with prompts/, a registry, and a way to run the CLI in it."""

    root: Path
    registry: str

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(
            cli,
            ["--registry", self.registry, *args],
            env={"PROMPTGATE_AUTHOR": "tester", **(env or {})},
            catch_exceptions=False,
        )

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    def store(self) -> Store:
        return Store(self.registry)


@pytest.fixture
def project(registry_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    p = Project(root=root, registry=registry_url)
    assert p.run("init").exit_code == 0
    p.write("prompts/extract.yaml", EXTRACT)
    p.write("prompts/summarize.yaml", SUMMARIZE)
    return p
