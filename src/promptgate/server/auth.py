"""API keys and roles. Roles are cumulative: viewer < editor < approver < admin."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from ..store import ROLES, Store, lookup_key

RANK = {role: i for i, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (the audit actor) and its role."""

    name: str
    role: str

    def can(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


class KeyCache:
    """Key lookups cached for a second, so a hot read path does not hash into the database on
    every request; revocations through this process drop the cache at once."""

    def __init__(self, store: Store, ttl_s: float = 1.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    def peek(self, key: str) -> tuple[bool, Principal | None]:
        """A fresh cached answer without I/O: (found, principal)."""
        hit = self._entries.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
            return True, hit[1]
        return False, None

    def lookup(self, key: str) -> Principal | None:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        found = lookup_key(self.store, key)
        principal = Principal(*found) if found else None
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (now, principal)
        return principal

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
