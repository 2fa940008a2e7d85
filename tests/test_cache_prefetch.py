"""A cached run reads the response cache in bulk: one query for the keys the run will ask for,
not one per case; misses among them cost no query of their own and are then called for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import EXTRACT, SUMMARIZE

from promptgate.config import Config, GateConfig
from promptgate.gate import check
from promptgate.registry import push_paths
from promptgate.store import Store
from promptgate.testing import OpenAITestServer


@pytest.fixture(scope="module")
def llm() -> Iterator[OpenAITestServer]:
    with OpenAITestServer() as server:
        yield server


def _write_cases(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            ticket = f"order {i} arrived broken"
            fh.write(
                json.dumps(
                    {
                        "id": f"c{i}",
                        "vars": {"ticket": ticket},
                        "assert": [{"type": "contains", "value": ticket}],
                    }
                )
                + "\n"
            )


def _project(root: Path) -> tuple[Store, Config]:
    (root / "prompts").mkdir(parents=True)
    (root / "evals").mkdir()
    (root / "prompts" / "extract.yaml").write_text(EXTRACT, encoding="utf-8")
    (root / "prompts" / "summarize.yaml").write_text(SUMMARIZE, encoding="utf-8")
    (root / "evals" / "extract.yaml").write_text(
        "prompt: extract\ncases: extract_cases.jsonl\n", encoding="utf-8"
    )
    url = f"sqlite:///{root / 'registry.db'}"
    store = Store(url, create=True)
    store.migrate()
    push_paths(store, [root / "prompts"], message="v1", author="tester")
    config = Config(
        root=root,
        registry=url,
        gate=GateConfig(
            concurrency=8, timeout_s=10, retries=1, backoff_s=0.01, allow_missing_suites=True
        ),
    )
    return store, config


class CacheReads:
    """Counts the reads of cached responses that the store's engine executes (not the key
    look-up that a write of new entries makes)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if (
            statement.lstrip().upper().startswith("SELECT")
            and "response_cache.response" in statement
        ):
            self.count += 1


def test_cached_run_reads_the_cache_in_one_query(
    tmp_path: Path, llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    store, config = _project(tmp_path)
    cases = tmp_path / "evals" / "extract_cases.jsonl"
    _write_cases(cases, 120)
    try:
        first = check(store, config, ["extract"], baseline=False)
        assert first.passed and first.report["stats"]["calls"] == 120
        llm.reset()

        reads = CacheReads(store.engine)
        second = check(store, config, ["extract"], baseline=False)
        assert second.passed and llm.call_count == 0
        assert second.report["stats"]["cached"] == 120
        assert reads.count == 1, f"{reads.count} cache queries for 120 cached cases"

        # Five new cases: one bulk read finds 120, the 5 misses are called without a query
        # each, and are cached for the next run.
        _write_cases(cases, 125)
        reads.count = 0
        third = check(store, config, ["extract"], baseline=False)
        assert third.passed and llm.call_count == 5 and third.report["stats"]["cached"] == 120
        assert reads.count == 1
        llm.reset()
        fourth = check(store, config, ["extract"], baseline=False)
        assert fourth.passed and llm.call_count == 0 and fourth.report["stats"]["cached"] == 125
    finally:
        store.close()


def test_chain_upstream_requests_are_read_in_bulk(
    tmp_path: Path, llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """summarize's `facts` come from extract: extract's requests are known before the run and
    read in bulk; summarize's depend on extract's output and are read one by one."""
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    store, config = _project(tmp_path)
    (tmp_path / "evals" / "extract.yaml").unlink()
    (tmp_path / "evals" / "summarize.yaml").write_text(
        "prompt: summarize\ncases: summarize_cases.jsonl\n", encoding="utf-8"
    )
    with open(tmp_path / "evals" / "summarize_cases.jsonl", "w", encoding="utf-8") as fh:
        for i in range(30):
            fh.write(
                json.dumps(
                    {
                        "id": f"s{i}",
                        "vars": {"ticket": f"refund order {i}"},
                        "assert": [{"type": "contains", "value": f"refund order {i}"}],
                    }
                )
                + "\n"
            )
    try:
        first = check(store, config, ["extract", "summarize"], baseline=False)
        assert first.passed and first.report["stats"]["calls"] == 60
        llm.reset()
        reads = CacheReads(store.engine)
        second = check(store, config, ["extract", "summarize"], baseline=False)
        assert second.passed and llm.call_count == 0 and second.report["stats"]["cached"] == 60
        assert reads.count == 1 + 30
    finally:
        store.close()
