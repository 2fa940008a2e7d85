"""The SDK (DESIGN §8) against the real registry server and directly against stores.

Servers run in-process (ServerThread). They are stopped with `force_exit`, as a crash would
stop them: a graceful uvicorn shutdown waits for the SDK's in-flight long-poll to finish.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from promptgate.canonical import content_hash
from promptgate.domain import LabelMove
from promptgate.errors import RenderError, UnknownRef
from promptgate.lockfile import LockfileError, read_lock, write_lock
from promptgate.promptfile import validate_content
from promptgate.providers import ChatRequest
from promptgate.registry import push_specs
from promptgate.render import render_messages
from promptgate.sdk import (
    AsyncPromptClient,
    Prompt,
    PromptAccessError,
    PromptClient,
    PromptNotFound,
    PromptUnavailable,
)
from promptgate.server import ServerSettings, create_app
from promptgate.server.thread import ServerThread
from promptgate.store import Store, create_key, revoke_key

# Test clients long-poll for a few seconds only, so that nothing waits long at teardown.
FAST: dict[str, Any] = {"long_poll_s": 5.0, "max_backoff_s": 0.4}


def content(i: int, *, template: bool = False) -> dict[str, Any]:
    """Version i of a prompt: three messages, a default, parameters, a tool, a format."""
    if template:
        return {"model": {"name": "gpt-4o-mini"}, "template": f"v{i}: say {{{{ word }}}}"}
    return {
        "model": {"name": "gpt-4o-mini-2024-07-18", "temperature": 0.2, "max_tokens": 300},
        "messages": [
            {"role": "system", "content": f"You are a concise analyst (v{i})."},
            {"role": "user", "content": "Summarize in at most {{ max_words }} words:"},
            {"role": "user", "content": "{{ text }}"},
        ],
        "inputs": {"max_words": {"default": 60}},
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
                },
            }
        ],
        "response_format": {"type": "json_object"},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until check() holds; fails the test after `timeout`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.002)
    return time.monotonic() - start


class Registry:
    """A registry database with a server over it that can be stopped and restarted."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.store = Store(url, create=True)
        self.store.migrate()
        self.editor = create_key(self.store, "editor", "editor")
        self.viewer = create_key(self.store, "viewer", "viewer")
        self.server: ServerThread | None = None
        self.app: Any = None
        self.port = 0
        self._http: httpx.Client | None = None

    def start(self, port: int | None = None) -> Registry:
        self.app = create_app(ServerSettings(registry=self.url))
        self.server = ServerThread(self.app, port=self.port if port is None else port).start()
        self.port = int(self.server.url.rsplit(":", 1)[1])
        return self

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop as a crash would (in-flight requests cut), then release what the app holds."""
        if self.server is None:
            return
        if self._http is not None:  # its connections die with the server
            self._http.close()
            self._http = None
        self.server.server.force_exit = True
        self.server.stop()
        state = self.app.state.pg
        if state.listener is not None:
            state.listener.stop()
        state.store.close()
        self.server = None

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self._http is None or self._http.base_url != httpx.URL(self.http_url):
            self._http = httpx.Client(
                base_url=self.http_url,
                timeout=10,
                headers={"Authorization": f"Bearer {self.editor}"},
            )
        response = self._http.request(method, path, **kwargs)
        assert response.status_code < 300, response.text
        return response

    def push(self, name: str, i: int, **kw: Any) -> dict[str, Any]:
        body: dict[str, Any] = self.api(
            "POST",
            f"/v1/prompts/{name}/versions",
            json={"content": content(i, **kw), "message": "m"},
        ).json()
        return body

    def move(self, name: str, label: str, version: int) -> None:
        self.api(
            "PUT", f"/v1/prompts/{name}/labels/{label}", json={"version": version, "reason": "test"}
        )

    def client(self, **kwargs: Any) -> PromptClient:
        return PromptClient(self.http_url, api_key=self.viewer, **{**FAST, **kwargs})

    def close(self) -> None:
        self.stop()
        if self._http is not None:
            self._http.close()
        self.store.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One SQLite-backed server for the tests that do not stop it (each uses its own names)."""
    reg = Registry(f"sqlite:///{tmp_path_factory.mktemp('shared') / 'registry.db'}").start()
    yield reg
    reg.close()


@pytest.fixture
def own_sqlite(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    yield reg
    reg.close()


def seed(
    reg: Registry, name: str, versions: int = 3, label: str = "staging", at: int = 1
) -> dict[int, str]:
    """Push `versions` versions of `name`, point `label` at `at`; version -> content hash."""
    hashes = {}
    for i in range(1, versions + 1):
        body = reg.push(name, i)
        hashes[body["version"]] = body["content_hash"]
    reg.move(name, label, at)
    return hashes


# -- propagation ------------------------------------------------------------------------------


def test_events_move_is_visible_within_a_second(registry_url: str) -> None:
    """On both engines (PostgreSQL: the server wakes long-polls with LISTEN/NOTIFY)."""
    reg = Registry(registry_url).start()
    try:
        hashes = seed(reg, "summarize")
        with PromptClient(reg.http_url, api_key=reg.viewer) as client:  # default long-poll
            first = client.get("summarize", label="staging")
            assert (first.version, first.label, first.content_hash) == (1, "staging", hashes[1])
            for target in (2, 3, 1):
                time.sleep(0.1)  # the next long-poll is parked (see the server's EventHub race)
                reg.move("summarize", "staging", target)
                lag = wait_for(
                    lambda t=target: client.get("summarize", label="staging").version == t,
                    timeout=1.0,
                )
                assert lag < 1.0
            # a write made straight to the database (another process, say) is seen too
            reg.store.move_labels([LabelMove("summarize", "staging", 2, 1)], actor="ops")
            wait_for(lambda: client.get("summarize", label="staging").version == 2, timeout=2.0)
            # `latest` (no label, no version) follows pushes
            assert client.get("summarize").version == 3
            reg.push("summarize", 4)
            wait_for(lambda: client.get("summarize").version == 4, timeout=2.0)
            # version-pinned entries never change
            assert client.get("summarize", version=1).content_hash == hashes[1]
    finally:
        reg.close()


def test_poll_mode_uses_conditional_gets(shared: Registry) -> None:
    seed(shared, "poll-me")
    with shared.client(refresh="poll", ttl_s=0.1) as client:
        first = client.get("poll-me", label="staging")
        time.sleep(0.35)  # a few 304s: the cached object is kept, not rebuilt
        assert client.get("poll-me", label="staging") is first
        shared.move("poll-me", "staging", 2)
        lag = wait_for(lambda: client.get("poll-me", label="staging").version == 2, 2.0)
        assert lag < 1.0
        shared.api("DELETE", "/v1/prompts/poll-me/labels/staging", json={"reason": "x"})

        def gone() -> bool:
            try:
                client.get("poll-me", label="staging")
            except PromptNotFound:
                return True
            return False

        wait_for(gone, timeout=2.0)


class NoIO:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"I/O on a cached get ({name})")


def test_get_after_the_first_fetch_does_no_io(
    shared: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(shared, "no-io")
    with shared.client() as client:
        p = client.get("no-io", label="staging")
        pinned = client.get("no-io", version=2)
        with monkeypatch.context() as m:
            m.setattr(client, "_source", NoIO())
            for _ in range(1000):
                assert client.get("no-io", label="staging") is p
                assert client.get("no-io", version=2) is pinned


# -- failures ---------------------------------------------------------------------------------


def test_outage_serves_last_good_warns_once_and_recovers(
    own_sqlite: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    reg = own_sqlite.start()
    hashes = seed(reg, "summarize")
    caplog.set_level(logging.INFO, logger="promptgate.sdk")
    with reg.client() as client:
        good = client.get("summarize", label="staging")
        pinned = client.get("summarize", version=3)
        reg.stop()

        def sdk_warnings() -> list[logging.LogRecord]:
            return [
                r
                for r in caplog.records
                if r.name == "promptgate.sdk" and r.levelno >= logging.WARNING
            ]

        wait_for(lambda: len(sdk_warnings()) == 1, timeout=5.0)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # retries with backoff meanwhile
            assert client.get("summarize", label="staging") is good
            assert client.get("summarize", version=3) is pinned
            time.sleep(0.01)
        with pytest.raises(PromptUnavailable):
            client.get("summarize", label="production")  # never fetched: nothing to serve
        # the label moves while the client cannot see the registry ...
        reg.store.move_labels([LabelMove("summarize", "staging", 2, 1)], actor="ops")
        reg.start()  # same port
        # ... and it catches up when the registry answers again
        wait_for(lambda: client.get("summarize", label="staging").version == 2, timeout=5.0)
        assert client.get("summarize", label="staging").content_hash == hashes[2]
        reg.move("summarize", "staging", 3)  # the events feed is followed again
        wait_for(lambda: client.get("summarize", label="staging").version == 3, timeout=2.0)
        assert len(sdk_warnings()) == 1, [r.getMessage() for r in sdk_warnings()]
        assert any(
            "answers again" in r.getMessage() for r in caplog.records if r.name == "promptgate.sdk"
        )


def test_removed_label_raises_not_found_on_next_get(shared: Registry) -> None:
    seed(shared, "removable")
    with shared.client() as client:
        assert client.get("removable", label="staging").version == 1
        time.sleep(0.1)  # the refresher's long-poll is parked
        shared.api("DELETE", "/v1/prompts/removable/labels/staging", json={"reason": "retire"})

        def gone() -> bool:
            try:
                client.get("removable", label="staging")
            except PromptNotFound:
                return True
            return False

        assert wait_for(gone, timeout=1.0) < 1.0
        with pytest.raises(PromptNotFound, match="removed"):
            client.get("removable", label="staging")
        shared.move("removable", "staging", 2)  # set again: served again
        wait_for(lambda: not gone(), timeout=2.0)
        assert client.get("removable", label="staging").version == 2
        with pytest.raises(PromptNotFound):
            client.get("no-such-prompt", label="staging")
        with pytest.raises(PromptNotFound):
            client.get("removable", version=99)
        with pytest.raises(PromptNotFound):
            client.get("removable", label="never-set")


def test_bad_key_raises_and_a_revoked_key_is_never_served_around(shared: Registry) -> None:
    seed(shared, "guarded")
    with PromptClient(shared.http_url, api_key="pg_wrong") as bad:
        with pytest.raises(PromptAccessError, match="401"):
            bad.get("guarded", label="staging")
    key = create_key(shared.store, "app-guarded", "viewer")
    with PromptClient(shared.http_url, api_key=key, **FAST) as client:
        assert client.get("guarded", label="staging").version == 1
        assert client.get("guarded", version=2).version == 2
        revoke_key(shared.store, "app-guarded")
        time.sleep(1.1)  # the server caches key lookups for a second
        shared.move("guarded", "staging", 3)  # wakes the refresher, whose re-read gets 401

        def refused() -> bool:
            try:
                client.get("guarded", label="staging")
            except PromptAccessError:
                return True
            return False

        wait_for(refused, timeout=2.0)
        with pytest.raises(PromptAccessError):
            client.get("guarded", version=2)


# -- lock files -------------------------------------------------------------------------------


def test_lockfile_fallback_when_the_registry_is_down_at_start(
    own_sqlite: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = own_sqlite.start()
    seed(reg, "extract", versions=2)
    seed(reg, "summarize", versions=2)
    lock = tmp_path / "promptgate.lock.json"
    doc = write_lock(reg.store, ["summarize", "extract"], "staging", lock)
    assert doc["schema_version"] == 1 and doc["label"] == "staging"
    assert list(doc["prompts"]) == ["extract", "summarize"]
    assert read_lock(lock) == json.loads(lock.read_text())
    with reg.client() as via_client:  # the same prompts read through a client
        assert (
            write_lock(via_client, None, "staging", tmp_path / "b.json")["prompts"]
            == doc["prompts"]
        )
    with pytest.raises(UnknownRef):
        write_lock(reg.store, ["extract", "nope"], "staging", tmp_path / "c.json")
    reg.move("summarize", "staging", 2)  # the registry moves on after the lock was written
    reg.stop()

    caplog.set_level(logging.INFO, logger="promptgate.sdk")
    with PromptClient(reg.http_url, api_key=reg.viewer, fallback=lock, **FAST) as client:
        p = client.get("summarize", label="staging")
        assert (p.version, p.content_hash) == (1, doc["prompts"]["summarize"]["content_hash"])
        assert client.get("extract", label="staging").version == 1
        assert client.get("extract", version=1).version == 1
        with pytest.raises(PromptUnavailable):
            client.get("summarize", label="production")  # not what the file locked
        warnings = [
            r for r in caplog.records if r.name == "promptgate.sdk" and r.levelno >= logging.WARNING
        ]
        assert len(warnings) == 1 and "lock file" in warnings[0].getMessage()
        snap = client.snapshot(["extract", "summarize"], label="staging")
        assert snap.seq is None and snap["summarize"].version == 1
        reg.start()  # same port: the client switches to the registry
        wait_for(lambda: client.get("summarize", label="staging").version == 2, timeout=5.0)
        assert (
            len(
                [
                    r
                    for r in caplog.records
                    if r.name == "promptgate.sdk" and r.levelno >= logging.WARNING
                ]
            )
            == 1
        )


def test_lockfile_tampering_is_detected(shared: Registry, tmp_path: Path) -> None:
    seed(shared, "tamper")
    lock = tmp_path / "promptgate.lock.json"
    write_lock(shared.store, ["tamper"], "staging", lock)
    doc = json.loads(lock.read_text())
    doc["prompts"]["tamper"]["content"]["model"]["temperature"] = 1.5
    lock.write_text(json.dumps(doc))
    with pytest.raises(LockfileError, match="content hash mismatch"):
        read_lock(lock)
    with pytest.raises(ValueError):  # LockfileError is a ValueError
        PromptClient(shared.http_url, fallback=lock)
    doc["prompts"]["tamper"]["content_hash"] = content_hash(doc["prompts"]["tamper"]["content"])
    doc["prompts"]["tamper"]["name"] = "other"
    lock.write_text(json.dumps(doc))
    with pytest.raises(LockfileError, match="does not match"):
        read_lock(lock)
    lock.write_text("{not json")
    with pytest.raises(LockfileError):
        read_lock(lock)
    with pytest.raises(LockfileError):
        read_lock(tmp_path / "missing.json")


# -- direct stores ----------------------------------------------------------------------------


def test_direct_store_mode(registry_url: str) -> None:
    store = Store(registry_url, create=True)
    store.migrate()
    try:
        specs = [validate_content("summarize", content(i)) for i in (1, 2)]
        for spec in specs:
            push_specs(store, [spec], message="m", author="me")
        push_specs(
            store,
            [validate_content("extract", content(9, template=True))],
            message="m",
            author="me",
        )
        store.move_labels(
            [LabelMove("summarize", "staging", 1, None), LabelMove("extract", "staging", 1, None)],
            actor="me",
        )
        with PromptClient(registry_url, ttl_s=0.1) as client:
            p = client.get("summarize", label="staging")
            assert (p.version, p.content_hash) == (1, specs[0].content_hash)
            assert client.get("summarize", version=2).content_hash == specs[1].content_hash
            assert client.get("extract", label="staging").template is not None
            store.move_labels([LabelMove("summarize", "staging", 2, 1)], actor="me")
            assert (
                wait_for(lambda: client.get("summarize", label="staging").version == 2, timeout=2.0)
                < 1.0
            )
            snap = client.snapshot(["summarize", "extract"], label="staging")
            assert {n: v.version for n, v in snap.items()} == {"summarize": 2, "extract": 1}
            assert snap.seq == max(e.id for e in store.audit())
            with pytest.raises(PromptNotFound):
                client.snapshot(["summarize", "nope"], label="staging")
            store.remove_label("summarize", "staging", expect=2, actor="me", reason="x")
            with pytest.raises(PromptNotFound):
                wait_for(lambda: client.get("summarize", label="staging") is None, timeout=2.0)
    finally:
        store.close()


# -- concurrency, fork, asyncio ---------------------------------------------------------------


def test_32_threads_never_see_a_torn_prompt(shared: Registry) -> None:
    hashes = seed(shared, "hot")
    with shared.client() as client:
        client.get("hot", label="staging")
        stop = threading.Event()
        errors: list[str] = []
        seen: set[int] = set()

        def reader() -> None:
            n = 0
            while not stop.is_set():
                p = client.get("hot", label="staging")
                n += 1
                if p.content_hash != hashes[p.version] or p.label != "staging":
                    errors.append(f"torn: {p!r}")
                if n % 200 == 0:
                    if content_hash(p.content) != p.content_hash:
                        errors.append(f"content does not hash to its hash: {p!r}")
                    seen.add(p.version)
                if n % 50 == 0:  # the server runs in this process: leave it some GIL
                    time.sleep(0.001)
            seen.add(p.version)

        threads = [threading.Thread(target=reader) for _ in range(32)]
        for t in threads:
            t.start()
        try:
            for i in range(12):
                shared.move("hot", "staging", i % 3 + 1)
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not errors, errors[:3]
        assert len(seen) >= 2  # refreshes happened while the readers read
        wait_for(lambda: client.get("hot", label="staging").version == 3, timeout=2.0)


def test_entries_first_fetched_while_labels_move_converge(shared: Registry) -> None:
    """A first fetch racing the refresher's event batch never leaves a stale entry behind."""
    names = [f"conv{i}" for i in range(12)]
    for name in names:
        seed(shared, name, versions=2)
    final: dict[str, int] = {}
    with shared.client() as client:
        client.get(names[0], label="staging")  # the refresher is running from here on

        def mover() -> None:
            for round_ in range(4):
                for name in names:
                    final[name] = round_ % 2 + 1 if round_ < 3 else 2
                    shared.move(name, "staging", final[name])

        moving = threading.Thread(target=mover)
        moving.start()
        for name in names:  # first fetches interleaved with the moves
            client.get(name, label="staging")
            time.sleep(0.01)
        moving.join()
        wait_for(
            lambda: all(client.get(n, label="staging").version == 2 for n in names), timeout=2.0
        )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_restarts_the_refresher(shared: Registry) -> None:
    seed(shared, "forky")
    with shared.client() as client:
        assert client.get("forky", label="staging").version == 1
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():  # Python 3.12+ warns about forking with threads
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: must leave through os._exit whatever happens
            code = 1
            try:
                os.close(read_end)
                os.write(write_end, b"r")  # ready
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    if client.get("forky", label="staging").version == 2:
                        code = 0
                        break
                    time.sleep(0.005)
            finally:
                os._exit(code)
        os.close(write_end)
        assert os.read(read_end, 1) == b"r"
        os.close(read_end)
        time.sleep(0.2)  # let the child's refresher start its long-poll
        shared.move("forky", "staging", 2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child never saw the move"
        wait_for(lambda: client.get("forky", label="staging").version == 2, timeout=2.0)


SERVER_PROCESS = """
import sys
from promptgate.server import ServerSettings, create_app
from promptgate.server.thread import ServerThread
server = ServerThread(create_app(ServerSettings(registry=sys.argv[1]))).start()
print(server.url, flush=True)
sys.stdin.read()
"""


def _refreshers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "promptgate-sdk-refresh"]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_close_ends_the_refresher_and_its_long_poll_at_once(tmp_path: Path) -> None:
    """close() cuts the refresher's long-poll in flight: 50 create/close cycles leave no
    thread and no socket behind (each used to linger for the whole long-poll, ~25 s). The
    server runs in its own process, so that only the SDK's threads and sockets are counted."""
    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    reg.store.close()
    script = tmp_path / "server.py"
    script.write_text(SERVER_PROCESS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, str(script), reg.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        reg.port = int(url.rsplit(":", 1)[1])
        seed(reg, "closy")
        reg._http.close()  # type: ignore[union-attr]
        reg._http = None
        with reg.client() as warm:  # imports and first connections out of the count
            warm.get("closy", label="staging")
        wait_for(lambda: not _refreshers(), timeout=2.0)
        threads, fds = threading.active_count(), _open_fds()
        started = time.monotonic()
        for i in range(50):
            client = reg.client(long_poll_s=25.0)
            assert client.get("closy", label="staging").version == 1
            if i % 10 == 0:  # some closes land mid long-poll for sure, the others anywhere
                time.sleep(0.1)
            client.close()
        took = time.monotonic() - started
        wait_for(lambda: threading.active_count() <= threads and not _refreshers(), timeout=1.0)
        wait_for(lambda: _open_fds() <= fds, timeout=1.0)
        assert took < 15, f"50 cycles took {took:.1f} s"
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()  # type: ignore[union-attr]


class RoundRobin:
    """A TCP front for two servers: each connection goes to the next one, and is the only
    request on it (Connection: close), as behind a load balancer without sticky sessions."""

    def __init__(self, ports: list[int]) -> None:
        self.ports, self.count = ports, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            port = self.ports[self.count % len(self.ports)]
            self.count += 1
            threading.Thread(target=self._serve, args=(conn, port), daemon=True).start()

    @staticmethod
    def _serve(conn: socket.socket, port: int) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            kept = [x for x in lines if not x.lower().startswith(b"connection:")]
            request = b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n"
            try:
                with socket.create_connection(("127.0.0.1", port)) as backend:
                    backend.sendall(request)
                    while chunk := backend.recv(65536):
                        conn.sendall(chunk)
            except OSError:  # either side went away (a client closing, a server stopping)
                pass

    def close(self) -> None:
        self.sock.close()


def test_poll_mode_never_goes_back_to_a_lagging_replicas_answer(tmp_path: Path) -> None:
    """Two replicas over one SQLite registry behind a round-robin front: replica B answers
    from its cache (up to 1 s old) after a move through A. The client takes A's newer answer
    and ignores B's older one (its X-Promptgate-Seq is lower): a label never goes backwards."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    store = Store(url, create=True)
    store.migrate()
    viewer = create_key(store, "viewer", "viewer")
    editor = {"Authorization": f"Bearer {create_key(store, 'editor', 'editor')}"}
    for i in (1, 2):
        push_specs(store, [validate_content("x", content(i))], message="m", author="t")
    store.move_labels([LabelMove("x", "staging", 1, None, "r")], actor="t")
    with ExitStack() as stack:
        a, b = (
            stack.enter_context(ServerThread(create_app(ServerSettings(registry=url))))
            for _ in range(2)
        )
        front = RoundRobin([int(s.url.rsplit(":", 1)[1]) for s in (a, b)])
        stack.callback(front.close)
        client = stack.enter_context(
            PromptClient(front.url, api_key=viewer, refresh="poll", ttl_s=0.02, **FAST)
        )
        assert client.get("x", label="staging").version == 1
        at_b = f"{b.url}/v1/prompts/x"
        assert httpx.get(at_b, params={"label": "staging"}, headers=editor).json()["version"] == 1
        moved = httpx.put(
            f"{a.url}/v1/prompts/x/labels/staging", json={"version": 2}, headers=editor
        )
        assert moved.status_code == 200
        # B lags: its cached answer is the old version, with an older seq
        lagging = httpx.get(at_b, params={"label": "staging"}, headers=editor)
        assert lagging.json()["version"] == 1
        assert int(lagging.headers["x-promptgate-seq"]) < moved.json()["seq"]
        seen: list[int] = []
        deadline = time.monotonic() + 0.6  # within B's cache lifetime
        while time.monotonic() < deadline:
            seen.append(client.get("x", label="staging").version)
            time.sleep(0.002)
        assert 2 in seen, "the client never saw the move"
        assert 1 not in seen[seen.index(2) :], "the client went back to the old version"
        assert front.count > 10  # both replicas answered polls


def test_async_client(shared: Registry) -> None:
    seed(shared, "asyncy")

    async def main() -> None:
        async with AsyncPromptClient(shared.http_url, api_key=shared.viewer, **FAST) as client:
            first = await client.get("asyncy", label="staging")
            assert first.version == 1
            assert await client.get("asyncy", label="staging") is first
            got = await asyncio.gather(*(client.get("asyncy", version=2) for _ in range(20)))
            assert {p.version for p in got} == {2}
            snap = await client.snapshot(["asyncy"], label="staging")
            assert snap["asyncy"] == first
            shared.move("asyncy", "staging", 3)
            for _ in range(500):
                if (await client.get("asyncy", label="staging")).version == 3:
                    break
                await asyncio.sleep(0.002)
            assert (await client.get("asyncy", label="staging")).version == 3
            with pytest.raises(PromptNotFound):
                await client.get("asyncy", label="gone")

    asyncio.run(main())


# -- the Prompt value -------------------------------------------------------------------------


def test_prompt_renders_like_the_cli_and_builds_openai_kwargs(shared: Registry) -> None:
    seed(shared, "valued", versions=1)
    shared.push("valued-t", 1, template=True)
    with shared.client() as client:
        p = client.get("valued", label="staging")
        raw = content(1)
        assert isinstance(p, Prompt) and p.template is None and len(p.messages or ()) == 3
        assert p.model == "gpt-4o-mini-2024-07-18"
        assert dict(p.parameters) == {"temperature": 0.2, "max_tokens": 300}
        assert p.tools[0]["function"]["name"] == "lookup"
        assert p.response_format == {"type": "json_object"}
        assert p.trace_attributes == {
            "name": "valued",
            "version": 1,
            "label": "staging",
            "content_hash": p.content_hash,
            # no includes: SHA-256 of [content hash, no included hashes, nothing missing]
            "resolved_hash": hashlib.sha256(
                json.dumps([p.content_hash, [], []], separators=(",", ":")).encode()
            ).hexdigest(),
        }
        assert p.render(text="T") == render_messages(raw, {"max_words": 60, "text": "T"})
        assert p.render(text="T", max_words=5)[1]["content"] == "Summarize in at most 5 words:"
        kwargs = p.openai_kwargs(text="T")
        assert (
            kwargs
            == ChatRequest.for_content(
                raw, render_messages(raw, {"max_words": 60, "text": "T"})
            ).api_kwargs()
        )
        assert kwargs["temperature"] == 0.2 and kwargs["response_format"] == {"type": "json_object"}
        kwargs["tools"][0]["function"]["name"] = "changed"  # a fresh copy every call
        assert p.openai_kwargs(text="T")["tools"][0]["function"]["name"] == "lookup"
        with pytest.raises(RenderError, match="text"):
            p.render()  # StrictUndefined: a missing variable is an error
        with pytest.raises(TypeError):
            p.content["model"]["temperature"] = 1
        with pytest.raises(AttributeError):
            p.version = 2  # type: ignore[misc]
        assert content_hash(p.content) == p.content_hash
        clone = pickle.loads(pickle.dumps(p))
        assert clone == p and clone.render(text="T") == p.render(text="T")
        assert json.loads(json.dumps(p.parameters)) == {"temperature": 0.2, "max_tokens": 300}
        t = client.get("valued-t")  # no label, no version: latest
        assert t.label == "latest" and t.messages is None
        assert t.render(word="hi") == [{"role": "user", "content": "v1: say hi"}]
        assert t.openai_kwargs(word="hi") == {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "v1: say hi"}],
        }
        pinned = client.get("valued", version=1)
        assert pinned.label is None and "label" not in pinned.trace_attributes
        with pytest.raises(ValueError):
            client.get("valued", label="staging", version=1)


def test_render_matches_the_cli_renderer_exactly(shared: Registry) -> None:
    """Prompt.render (compiled once) and render_messages agree, outputs and errors alike."""
    raw = {
        "model": {"name": "m"},
        "messages": [
            {"role": "system", "content": "Static line one\r\nline two, no braces."},
            {
                "role": "user",
                "name": "agent",
                "content": "{% for i in range(n) %}{{ i }}{{ sep }}{% endfor %}{{ items | join('/') }}"
                "{# a comment #} {{ '%s!' % word | upper }}",
            },
        ],
        "inputs": {"sep": {"default": ","}, "items": {"default": ["a", "b"]}},
    }
    shared.api("POST", "/v1/prompts/parity/versions", json={"content": raw, "message": "m"})
    with shared.client() as client:
        p = client.get("parity")
        cases: list[dict[str, Any]] = [
            {"n": 3, "word": "hi"},
            {"n": 0, "word": "", "sep": ";"},
            {"n": 2, "word": "x", "items": []},
        ]
        for given in cases:
            full = {"sep": ",", "items": ["a", "b"], **given}
            assert p.render(**given) == render_messages(raw, full)
        failing: list[dict[str, Any]] = [
            {"n": 1},
            {"n": 10**6, "word": "x"},
            {"n": "x", "word": "y"},
        ]
        for given in failing:
            full = {"sep": ",", "items": ["a", "b"], **given}
            with pytest.raises(RenderError) as ours:
                p.render(**given)
            with pytest.raises(RenderError) as cli:
                render_messages(raw, full, "parity")
            assert str(ours.value) == str(cli.value)
        with pytest.raises(RenderError, match="sandbox blocks ranges"):
            p.render(n=10**6, word="x")


def test_importing_the_sdk_loads_no_server_or_cli() -> None:
    code = (
        "import sys, promptgate.sdk, promptgate.lockfile; "
        "bad = [m for m in ('fastapi', 'uvicorn', 'click', 'starlette') if m in sys.modules];"
        " assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
