"""Waking long-polls when events are written: in-process writes signal directly; on PostgreSQL
a LISTEN thread wakes every replica; a periodic re-check covers SQLite shared by processes."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

log = logging.getLogger("promptgate.server")


class EventHub:
    """Lets async waiters sleep until some thread says new events may exist."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self.listeners: list[Any] = []  # called at once, from the notifying thread

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Safe from any thread."""
        for listener in self.listeners:
            listener()
        loop, event = self._loop, self._event
        if loop is None or event is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._pulse)

    def _pulse(self) -> None:
        assert self._event is not None
        self._event.set()
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event | None:
        """Take this before reading the store, then `wait(timeout, it)`: a notify between the
        read and the wait is not missed."""
        return self._event

    async def wait(self, timeout: float, event: asyncio.Event | None = None) -> None:
        event = event or self._event
        if event is None:
            await asyncio.sleep(timeout)
            return
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass


class PgListener(threading.Thread):
    """LISTEN on the registry's channel and wake the hub on every NOTIFY."""

    def __init__(self, dsn: str, channel: str, hub: EventHub) -> None:
        super().__init__(daemon=True, name="promptgate-listen")
        self.dsn, self.channel, self.hub = dsn, channel, hub
        self._halt = threading.Event()
        self._conn: Any = None

    def run(self) -> None:
        import psycopg

        while not self._halt.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    self._conn = conn
                    conn.execute(f"LISTEN {self.channel}")
                    while not self._halt.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self.hub.notify()
            except Exception as exc:  # reconnect: a replica must survive a database restart
                if not self._halt.is_set():
                    log.warning("events listener: %s; reconnecting", exc)
                    self._halt.wait(1.0)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and wait for the connection to close (it wakes at least every 0.5 s)."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout)
