"""What the server's routes share: its settings, its state, and how errors become HTTP.

The bottom of the server package: `api`, `promotions`, the `ui*` modules and `app` import it,
and it imports none of them, so the server has no import cycles.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import (
    BadInput,
    GraphError,
    LabelConflict,
    PromptFileError,
    PromptgateError,
    ProtectedLabel,
    RegistryIntegrityError,
    StoreClosed,
    UnknownRef,
)
from ..store import Store
from .auth import KeyCache
from .events import EventHub, PgListener


@dataclass
class ServerSettings:
    """What a server needs: a registry URL; the project config supplies evals, protected labels,
    gate settings and webhooks (defaults when absent)."""

    registry: str
    config: Config = field(default_factory=lambda: Config(root=Path.cwd()))
    public_url: str | None = None
    gate_workers: int = 1


class ApiError(Exception):
    """An HTTP error with promptgate's body shape {error, detail}."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def status_for(exc: PromptgateError) -> tuple[int, str]:
    if isinstance(exc, UnknownRef):
        return 404, "not_found"
    if isinstance(exc, ProtectedLabel):
        return 403, "protected_label"
    if isinstance(exc, LabelConflict):
        return 412, "precondition_failed"
    if isinstance(exc, (PromptFileError, GraphError)):
        return 422, "invalid"
    if isinstance(exc, BadInput):
        return 400, "bad_request"
    if isinstance(exc, StoreClosed):  # a request still running while the server stops
        return 503, "unavailable"
    if isinstance(exc, RegistryIntegrityError):  # a stored row fails its hash: never served
        return 503, "integrity"
    return 500, "error"


class ResolveCache:
    """Resolved prompt bodies by (name, label, version), valid until the next event this
    replica hears of (its own writes, NOTIFY from other replicas) or `ttl_s` at the most,
    which bounds staleness when replicas share SQLite and cannot notify each other."""

    def __init__(self, ttl_s: float = 1.0) -> None:
        self.ttl_s = ttl_s
        self.generation = 0
        self._entries: dict[tuple[Any, ...], tuple[float, Any]] = {}

    def get(self, key: tuple[Any, ...]) -> Any:
        hit = self._entries.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return None
        return hit[1]

    def put(self, key: tuple[Any, ...], value: Any, generation: int) -> None:
        if generation == self.generation:  # nothing moved while it was read
            if len(self._entries) > 50_000:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), value)

    def clear(self) -> None:
        self.generation += 1
        self._entries = {}


@dataclass
class ServerState:
    """Everything the routes share, created by the lifespan."""

    settings: ServerSettings
    store: Store
    hub: EventHub
    keys: KeyCache
    session_secret: str
    gate_pool: ThreadPoolExecutor
    listener: PgListener | None = None
    webhooks: Any = None
    resolved: ResolveCache = field(default_factory=ResolveCache)
    stopping: bool = False
    gates: dict[int, Any] = field(default_factory=dict)  # request id -> its gate's Future
