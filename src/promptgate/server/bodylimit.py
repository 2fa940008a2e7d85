"""One cap on every HTTP request body (README "Limits"), as a small ASGI middleware.

A declared `Content-Length` over the cap is refused before the app runs; a body streamed
without one (chunked) is counted as it arrives and refused as soon as it passes the cap. Either
way the reply is 413 with promptgate's JSON error shape and the limit in the message.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..limits import MAX_BODY_BYTES


def _too_large(max_bytes: int) -> tuple[dict[str, Any], bytes]:
    detail = f"request body is larger than the limit of {max_bytes:,} bytes"
    body = json.dumps({"error": "too_large", "detail": detail}).encode()
    start = {
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, body


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send) -> None:
        start, body = _too_large(self.max_bytes)
        await send(start)
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0  # the server refuses a malformed length itself
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    # an HTTPException passes through FastAPI's body parsing unchanged
                    raise HTTPException(413, "request body too large")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:  # whatever the app answers, the answer is our 413
                if not started:
                    started = True
                    await self._refuse(send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
            if not started:
                await self._refuse(send)
