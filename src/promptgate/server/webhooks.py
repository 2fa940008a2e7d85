"""Webhooks: every new request, decision and move event is POSTed to the configured URLs,
signed with HMAC-SHA256 (`X-Promptgate-Signature: sha256=HEX`), retried with backoff, and each
delivery is logged in the registry."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Sequence

import httpx

from ..config import Webhook
from ..domain import AuditEvent
from ..errors import StoreClosed
from ..store import Store, max_seq, record_delivery
from .events import EventHub

log = logging.getLogger("promptgate.server")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookPump(threading.Thread):
    """Tails the audit log by seq and delivers matching events."""

    def __init__(
        self,
        store: Store,
        hooks: Sequence[Webhook],
        hub: EventHub,
        retries: int = 4,
        backoff_s: float = 0.5,
    ) -> None:
        super().__init__(daemon=True, name="promptgate-webhooks")
        self.store, self.hooks, self.hub = store, list(hooks), hub
        self.retries, self.backoff_s = retries, backoff_s
        self._halt = threading.Event()
        self.seq = max_seq(store)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop and wait: the store closes right after this (a delivery in flight ends)."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        try:
            self._pump()
        except StoreClosed:  # the server closed the store after stop() gave up waiting
            pass

    def _pump(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self._halt.is_set():
                events = self.store.audit(since=self.seq, oldest_first=True, limit=200)
                for event in events:
                    self.seq = event.id
                    for hook in self.hooks:
                        if self._halt.is_set():
                            return
                        if event.type in hook.events:
                            self.deliver(client, hook, event)
                if not events:
                    self._halt.wait(0.2)

    def deliver(self, client: httpx.Client, hook: Webhook, event: AuditEvent) -> None:
        body = json.dumps(event.to_json(), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "X-Promptgate-Event": event.type}
        secret = os.environ.get(hook.secret_env) if hook.secret_env else None
        if secret:
            headers["X-Promptgate-Signature"] = signature(secret, body)
        status: int | None = None
        error: str | None = None
        attempt = 0
        for attempt in range(1, self.retries + 2):
            try:
                response = client.post(hook.url, content=body, headers=headers)
                status = response.status_code
                if status < 500 and status != 429:
                    error = None if status < 300 else f"HTTP {status}"
                    break
                error = f"HTTP {status}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if self._halt.wait(self.backoff_s * 2 ** (attempt - 1)):
                break
        record_delivery(
            self.store,
            url=hook.url,
            event_seq=event.id,
            event_type=event.type,
            status=status,
            attempts=attempt,
            error=error,
        )
        if error:
            log.warning("webhook %s for event %s failed: %s", hook.url, event.id, error)
