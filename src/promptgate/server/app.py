"""`create_app(settings)`: the FastAPI application, its lifespan and its error mapping."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..errors import PromptgateError
from ..remote import open_database
from ..store import NOTIFY_CHANNEL, engine_url, get_setting
from .api import router
from .auth import KeyCache
from .bodylimit import BodyLimit
from .events import EventHub, PgListener
from .promotions import abandon_gates
from .state import ApiError, ServerSettings, ServerState, status_for
from .ui import mount_ui
from .ui_workflow import mount_workflow
from .webhooks import WebhookPump

log = logging.getLogger("promptgate.server")


def _shutdown(state: ServerState) -> None:
    """Stop every thread that uses the store, then close it (joins and writes: off the event
    loop). A gate still running is failed, never left `gating`; its thread stops at its next
    case."""
    if state.listener is not None:
        state.listener.stop()
    if state.webhooks is not None:
        state.webhooks.stop()
    state.gate_pool.shutdown(wait=False, cancel_futures=True)
    abandon_gates(state)
    state.store.close()


def create_app(settings: ServerSettings) -> FastAPI:
    """The registry server over `settings.registry` (SQLite or PostgreSQL)."""
    store = open_database(settings.registry, create=True)
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
        status, error = status_for(exc)
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

    app.include_router(router)
    mount_ui(app)
    mount_workflow(app)
    return app
