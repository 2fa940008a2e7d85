"""Read-your-writes across replicas (issue 16, item 7): a write answers with its event seq, a
read with ?min_seq= reflects that event or later on any replica, or says 503 with Retry-After.

Two real server replicas over one PostgreSQL registry, in-process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest

from promptgate.server import ServerSettings, create_app
from promptgate.server.thread import ServerThread
from promptgate.store import Store, create_key


@dataclass
class Replicas:
    a: httpx.Client
    b: httpx.Client


@pytest.fixture
def replicas(pg_url: str) -> Iterator[Replicas]:
    store = Store(pg_url, create=True)
    store.migrate()
    key = create_key(store, "ops", "editor")
    store.close()
    headers = {"Authorization": f"Bearer {key}"}
    with ExitStack() as stack:
        servers = [
            stack.enter_context(ServerThread(create_app(ServerSettings(registry=pg_url))))
            for _ in range(2)
        ]
        a, b = (
            stack.enter_context(httpx.Client(base_url=s.url, headers=headers, timeout=30))
            for s in servers
        )
        yield Replicas(a, b)


def _push(c: httpx.Client, i: int) -> httpx.Response:
    r = c.post(
        "/v1/prompts/x/versions",
        json={"content": {"model": {"name": "m"}, "template": f"t{i}"}, "message": "m"},
    )
    assert r.status_code == 201, r.text
    return r


def test_a_read_with_the_moves_seq_never_sees_the_old_version(replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b
    _push(a, 1)
    _push(a, 2)
    assert a.put("/v1/prompts/x/labels/staging", json={"version": 1}).status_code == 200
    for i in range(150):
        # replica B caches the label's current version...
        assert b.get("/v1/prompts/x", params={"label": "staging"}).status_code == 200
        target = 2 if i % 2 == 0 else 1
        moved = a.put("/v1/prompts/x/labels/staging", json={"version": target})
        assert moved.status_code == 200
        body = moved.json()
        assert set(body) == {"prompt", "label", "version", "revision", "seq"}
        # ...and a read carrying the move's seq never gets what B had cached
        got = b.get("/v1/prompts/x", params={"label": "staging", "min_seq": body["seq"]})
        assert got.status_code == 200 and got.json()["version"] == target, (i, got.text)
        assert int(got.headers["x-promptgate-seq"]) >= body["seq"]


def test_every_prompt_read_says_which_seq_it_reflects(replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b
    pushed = _push(a, 1)
    seq = int(pushed.headers["x-promptgate-seq"])
    for _ in range(2):  # a miss, then the cache
        got = b.get("/v1/prompts/x", params={"label": "latest"})
        assert got.status_code == 200 and int(got.headers["x-promptgate-seq"]) >= seq
    tag = got.headers["etag"]
    unchanged = b.get("/v1/prompts/x", params={"min_seq": seq}, headers={"If-None-Match": tag})
    assert unchanged.status_code == 304 and int(unchanged.headers["x-promptgate-seq"]) >= seq


def test_a_seq_this_replica_has_not_seen_is_503_with_retry_after(replicas: Replicas) -> None:
    _push(replicas.a, 1)
    started = time.monotonic()
    r = replicas.b.get("/v1/prompts/x", params={"label": "latest", "min_seq": 10_000})
    waited = time.monotonic() - started
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"] == "unavailable" and "not yet 10000" in r.json()["detail"]
    assert 1.9 <= waited < 5  # it waited (bounded) for the replica to catch up
    bad = replicas.b.get("/v1/prompts/x", params={"min_seq": -1})
    assert bad.status_code == 422
