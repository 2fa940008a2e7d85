"""Server operations: replicas over one PostgreSQL, webhooks, and generated requests
(schemathesis) against the OpenAPI document."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from promptgate.config import Config, Webhook
from promptgate.server import ServerSettings, create_app
from promptgate.server.thread import ServerThread
from promptgate.store import Store, create_key, list_deliveries

REPLICA = """
import sys
from promptgate.server import ServerSettings, create_app
from promptgate.server.thread import ServerThread
server = ServerThread(create_app(ServerSettings(registry=sys.argv[1]))).start()
print(server.url, flush=True)
sys.stdin.read()
server.stop()
"""


def test_two_replicas_over_postgres_share_events(pg_url: str, tmp_path: Path) -> None:
    store = Store(pg_url, create=True)
    store.migrate()
    key = create_key(store, "ops", "editor")
    store.close()
    script = tmp_path / "replica.py"
    script.write_text(REPLICA)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), pg_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        urls = [p.stdout.readline().strip() for p in procs]  # type: ignore[union-attr]
        headers = {"Authorization": f"Bearer {key}"}
        a, b = (httpx.Client(base_url=u, headers=headers, timeout=30) for u in urls)
        a.post(
            "/v1/prompts/x/versions",
            json={"content": {"model": {"name": "m"}, "template": "t"}, "message": "m"},
        )
        seq = b.get("/v1/events", params={"since": 0, "timeout": 0}).json()["events"][-1]["seq"]
        got: dict[str, object] = {}

        def wait_on_b() -> None:
            started = time.monotonic()
            got["events"] = b.get("/v1/events", params={"since": seq, "timeout": 20}).json()
            got["waited"] = time.monotonic() - started

        waiter = threading.Thread(target=wait_on_b)
        waiter.start()
        time.sleep(0.5)
        moved_at = time.monotonic()
        assert a.put("/v1/prompts/x/labels/staging", json={"version": 1}).status_code == 200
        waiter.join(timeout=25)
        events = got["events"]["events"]  # type: ignore[index]
        assert [(e["type"], e["label"]) for e in events] == [("move", "staging")]
        # woken by NOTIFY, not by a timeout: well under the 20 s the poll would wait
        assert time.monotonic() - moved_at < 3
        a.close()
        b.close()
    finally:
        for p in procs:
            p.stdin.close()  # type: ignore[union-attr]
            p.wait(timeout=30)
            p.stdout.close()  # type: ignore[union-attr]


class _Hook(BaseHTTPRequestHandler):
    received: list[tuple[dict, str]] = []  # type: ignore[type-arg]
    fail_first = 0

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Hook.fail_first > 0:
            _Hook.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        _Hook.received.append(
            (
                json.loads(body),
                self.headers.get("X-Promptgate-Signature", "")
                + "|"
                + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest(),
            )
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def test_webhooks_are_signed_retried_and_logged(
    registry_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    _Hook.received = []
    _Hook.fail_first = 1
    hook = Webhook(
        url=f"http://127.0.0.1:{receiver.server_address[1]}/hook",
        events=("move",),
        secret_env="HOOK_SECRET",
    )
    app = create_app(
        ServerSettings(registry=registry_url, config=Config(root=tmp_path, webhooks=(hook,)))
    )
    app.state.pg.store.migrate()
    key = create_key(app.state.pg.store, "ed", "editor")
    try:
        with ServerThread(app) as server:
            app.state.pg.webhooks.backoff_s = 0.05
            c = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"})
            c.post(
                "/v1/prompts/x/versions",
                json={"content": {"model": {"name": "m"}, "template": "t"}, "message": "m"},
            )
            c.put("/v1/prompts/x/labels/staging", json={"version": 1, "reason": "hook me"})
            deadline = time.monotonic() + 10
            while not _Hook.received and time.monotonic() < deadline:
                time.sleep(0.05)
            c.close()
            deliveries = []
            while time.monotonic() < deadline:
                deliveries = list_deliveries(app.state.pg.store)
                if deliveries:
                    break
                time.sleep(0.05)
    finally:
        receiver.shutdown()
        receiver.server_close()
    [(event, sigs)] = _Hook.received  # only the move: pushes were not subscribed
    assert event["type"] == "move" and event["reason"] == "hook me"
    sent, expected = sigs.split("|")
    assert sent == f"sha256={expected}"
    [delivery] = deliveries
    assert delivery.status == 204 and delivery.attempts == 2


def _documented_unavailable(response: Any) -> bool:
    """The one designed 5xx: a min_seq read this replica cannot serve yet, which says so
    and when to retry (README, read-your-writes)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return (
        "min_seq" in str(response.request.url)
        and response.headers.get("retry-after") is not None  # (lowercase keys)
        and isinstance(body, dict)
        and body.get("error") == "unavailable"
    )


def test_schemathesis_finds_no_server_errors(tmp_path: Path) -> None:
    """Generated requests against the OpenAPI document: no 500, ever."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    url = f"sqlite:///{tmp_path / 'r.db'}"
    app = create_app(ServerSettings(registry=url, config=Config(root=tmp_path)))
    key = create_key(app.state.pg.store, "fuzz", "admin")
    with ServerThread(app) as server:
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"})
        client.post(
            "/v1/prompts/a/versions",
            json={"content": {"model": {"name": "m"}, "template": "t"}, "message": "m"},
        )
        schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
        failures: list[str] = []

        def make_test(op: Any) -> Any:
            @settings(
                max_examples=15,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            @given(case=op.as_strategy())
            def run(case: Any) -> None:
                response = case.call(
                    base_url=server.url, headers={"Authorization": f"Bearer {key}"}
                )
                if response.status_code == 503 and _documented_unavailable(response):
                    return  # a read with ?min_seq= past this replica's view: retry, by design
                if response.status_code >= 500:
                    failures.append(
                        f"{op.method.upper()} {op.path}: {response.status_code} "
                        f"{response.text[:200]}"
                    )

            return run

        for operation in schema.get_all_operations():
            op = operation.ok()
            if op.path.endswith("/events"):
                continue  # long-poll: covered by its own tests
            make_test(op)()
        client.close()
    assert not failures, failures[:5]
