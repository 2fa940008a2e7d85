"""`create_app(settings)`: the FastAPI application, its lifespan and its error mapping."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
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
from ..remote import open_store
from ..store import NOTIFY_CHANNEL, Store, engine_url, get_setting
from .auth import KeyCache
from .bodylimit import BodyLimit
from .events import EventHub, PgListener

log = logging.getLogger("promptgate.server")


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


def _status_for(exc: PromptgateError) -> tuple[int, str]:
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
        import time

        hit = self._entries.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return None
        return hit[1]

    def put(self, key: tuple[Any, ...], value: Any, generation: int) -> None:
        import time

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


def _shutdown(state: ServerState) -> None:
    """Stop every thread that uses the store, then close it (joins and writes: off the event
    loop). A gate still running is failed, never left `gating`; its thread stops at its next
    case."""
    from .promotions import abandon_gates

    if state.listener is not None:
        state.listener.stop()
    if state.webhooks is not None:
        state.webhooks.stop()
    state.gate_pool.shutdown(wait=False, cancel_futures=True)
    abandon_gates(state)
    state.store.close()


def create_app(settings: ServerSettings) -> FastAPI:
    """The registry server over `settings.registry` (SQLite or PostgreSQL)."""
    store = open_store(settings.registry, create=True)
    store.migrate()
    state = ServerState(
        settings=settings,
        store=store,
        hub=EventHub(),
        keys=KeyCache(store),
        session_secret=get_setting(store, "session_secret", lambda: secrets.token_hex(32)),
        gate_pool=ThreadPoolExecutor(
            max_workers=settings.gate_workers, thread_name_prefix="promptgate-gate"
        ),
    )

    state.hub.listeners.append(state.resolved.clear)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.hub.bind(asyncio.get_running_loop())
        if store.dialect == "postgresql":
            dsn = engine_url(settings.registry).replace("postgresql+psycopg://", "postgresql://")
            state.listener = PgListener(dsn, NOTIFY_CHANNEL, state.hub)
            state.listener.start()
        if settings.config.webhooks:
            from .webhooks import WebhookPump

            state.webhooks = WebhookPump(store, settings.config.webhooks, state.hub)
            state.webhooks.start()
        try:
            yield
        finally:
            state.stopping = True
            await asyncio.to_thread(_shutdown, state)

    app = FastAPI(title="promptgate registry", version=__version__, lifespan=lifespan)
    app.state.pg = state
    app.add_middleware(BodyLimit)  # request bodies over limits.MAX_BODY_BYTES are 413

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.error, "detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(PromptgateError)
    async def _domain_error(request: Request, exc: PromptgateError) -> JSONResponse:
        status, error = _status_for(exc)
        return JSONResponse({"error": error, "detail": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return JSONResponse(
            {"error": "invalid", "detail": f"{where}: {first.get('msg', '')}"}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": "http_error", "detail": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal", "detail": type(exc).__name__}, status_code=500)

    from .api import router

    app.include_router(router)
    try:
        from .ui import mount_ui
        from .ui_workflow import mount_workflow
    except ImportError:  # the UI module is optional while it is being built
        pass
    else:
        mount_ui(app)
        mount_workflow(app)
    return app
