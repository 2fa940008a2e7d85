"""The test server's HTTP/1.1 plumbing on asyncio: request parsing (keep-alive, pipelining,
chunked bodies), response framing, the OpenAI error and completion JSON shapes, and the
per-connection protocol that hands each request to its server."""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Iterator, Mapping
from typing import Any, Protocol


class _Server(Protocol):
    """What a connection needs from its server (an OpenAITestServer)."""

    _connections: set[_Connection]
    _in_flight: int

    def _handle(self, req: _Request) -> tuple[float, bytes, bool]: ...

    def _loop_spawn(self, coro: Any) -> asyncio.Task[None]: ...


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_ERROR_KINDS = {  # status -> (type, code, message) as the real API reports them
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", None, "You are not allowed to perform this request."),
    404: ("invalid_request_error", "not_found", "Not found."),
    409: ("invalid_request_error", "conflict", "Conflict."),
    422: ("invalid_request_error", None, "Unprocessable entity."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached (injected by OpenAITestServer)."),
    500: ("server_error", None, "The server had an error while processing your request."),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    504: ("server_error", None, "Gateway timeout."),
}

_RESPONSE = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s%s\r\n%s"
_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024
_MALFORMED_BODY = b'{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{'
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_esc = json.encoder.encode_basestring_ascii  # str -> JSON string literal
_COMPLETION = (
    '{"id":"chatcmpl-test%012d","object":"chat.completion","created":%d,"model":%s,'
    '"choices":[%s],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d},'
    '"system_fingerprint":"fp_promptgate_test"}'
)
_CHOICE_REST = (  # after '{"index":N,'
    '"message":{"role":"assistant","content":%s,"refusal":null%s},'
    '"logprobs":null,"finish_reason":%s}'
)


def _error_json(
    status: int, message: str | None = None, *, type_: str | None = None, code: str | None = None
) -> bytes:
    d_type, d_code, d_message = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
    )
    return _dumps(
        {
            "error": {
                "message": message or d_message,
                "type": type_ or d_type,
                "param": None,
                "code": code if code is not None else d_code,
            }
        }
    ).encode()


def _http_response(status: int, body: bytes, *, extra: bytes = b"", close: bool = False) -> bytes:
    return _RESPONSE % (
        status,
        _REASONS.get(status, "Status").encode(),
        len(body),
        extra,
        b"Connection: close\r\n" if close else b"",
        body,
    )


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _dechunk(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``buf[start]``; None if incomplete."""
    pos = start
    parts: list[bytes] = []
    size_total = 0
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if len(buf) - pos > 1024:
                raise _BadRequest(400, "bad chunk size line")
            return None
        size_field = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            raise _BadRequest(400, "bad chunk size") from None
        pos = eol + 2
        if size == 0:
            # optional trailers, terminated by an empty line
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return b"".join(parts), eol + 2
                pos = eol + 2
        size_total += size
        if size_total > _MAX_BODY:
            raise _BadRequest(413, "request body too large")
        if len(buf) < pos + size + 2:
            return None
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


def _find_header(lower_head: str, key: str) -> str:
    """Value of the first header ``key`` ("\\r\\nname:") in a lower-cased head, or ""."""
    i = lower_head.find(key)
    if i < 0:
        return ""
    i += len(key)
    j = lower_head.find("\r\n", i)
    return lower_head[i : j if j >= 0 else len(lower_head)].strip()


class _Headers(Mapping[str, str]):
    """Read-only, case-insensitive request headers, parsed on first use.

    Keys are lower-cased; repeated headers are joined with ``", "``."""

    __slots__ = ("_raw", "_parsed")

    def __init__(self, raw: str) -> None:
        self._raw = raw
        self._parsed: dict[str, str] | None = None

    def _dict(self) -> dict[str, str]:
        parsed = self._parsed
        if parsed is None:
            parsed = {}
            for line in self._raw.split("\r\n"):
                i = line.find(":")
                if i <= 0:
                    continue
                name = line[:i].strip().lower()
                value = line[i + 1 :].strip()
                parsed[name] = parsed[name] + ", " + value if name in parsed else value
            self._parsed = parsed
        return parsed

    def __getitem__(self, key: str) -> str:
        return self._dict()[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._dict()

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __repr__(self) -> str:
        return repr(self._dict())


class _Request:
    __slots__ = ("method", "path", "headers", "body", "keep_alive")

    def __init__(
        self, method: str, path: str, headers: _Headers, body: bytes, keep_alive: bool
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: parses requests, answers them in order."""

    __slots__ = ("_srv", "_transport", "_buf", "_head", "_queue", "_busy", "_task")

    def __init__(self, srv: _Server) -> None:
        self._srv = srv
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        # parsed head of the request whose body we are waiting for:
        # (method, path, headers, keep_alive, content_length or -1 if chunked, expect_continue)
        self._head: tuple[str, str, _Headers, bool, int, bool] | None = None
        self._queue: collections.deque[_Request] = collections.deque()
        self._busy = False
        self._task: asyncio.Task[None] | None = None

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._srv._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._srv._connections.discard(self)
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()
        self._transport = None

    def eof_received(self) -> bool:
        # The client went away (HTTP clients do not half-close): drop pending work,
        # e.g. a `slow` request the client timed out on stops counting as in flight.
        return False

    def data_received(self, data: bytes) -> None:
        self._buf += data
        try:
            self._parse()
        except _BadRequest as exc:
            self._queue.clear()
            self._buf.clear()
            if self._transport is not None:
                self._transport.write(
                    _http_response(exc.status, _error_json(exc.status, str(exc)), close=True)
                )
                self._transport.close()
            return
        if not self._busy:
            self._drain()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # -- parsing
    def _parse(self) -> None:
        buf = self._buf
        while buf:
            head = self._head
            if head is None:
                while buf[:2] == b"\r\n":  # tolerate stray CRLFs between requests
                    del buf[:2]
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > _MAX_HEAD:
                        raise _BadRequest(431, "request head too large")
                    return
                head = self._head = self._parse_head(bytes(buf[:end]).decode("latin-1"))
                del buf[: end + 4]
                if head[5] and head[4] != 0 and len(buf) == 0 and self._transport is not None:
                    self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            method, path, headers, keep_alive, length, _ = head
            if length >= 0:
                if len(buf) < length:
                    return
                body = bytes(buf[:length])
                del buf[:length]
            else:
                res = _dechunk(buf, 0)
                if res is None:
                    return
                body, used = res
                del buf[:used]
            self._head = None
            self._queue.append(_Request(method, path, headers, body, keep_alive))
            if not keep_alive:
                buf.clear()
                return

    @staticmethod
    def _parse_head(text: str) -> tuple[str, str, _Headers, bool, int, bool]:
        eol = text.find("\r\n")
        parts = (text if eol < 0 else text[:eol]).split(" ")
        if len(parts) != 3:
            raise _BadRequest(400, "malformed request line")
        method, target, version = parts
        if not version.startswith("HTTP/1."):
            raise _BadRequest(400, "unsupported HTTP version")
        # Only the framing headers are looked up here; the full dict is built lazily.
        lower = text.lower()
        conn = _find_header(lower, "\r\nconnection:")
        keep_alive = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
        if "chunked" in _find_header(lower, "\r\ntransfer-encoding:"):
            length = -1
        else:
            try:
                length = int(_find_header(lower, "\r\ncontent-length:") or "0")
            except ValueError:
                raise _BadRequest(400, "bad content-length") from None
            if length < 0:
                raise _BadRequest(400, "bad content-length")
            if length > _MAX_BODY:
                raise _BadRequest(413, "request body too large")
        q = target.find("?")
        path = target if q < 0 else target[:q]
        expect_continue = _find_header(lower, "\r\nexpect:") == "100-continue"
        headers = _Headers("" if eol < 0 else text[eol + 2 :])
        return method, path, headers, keep_alive, length, expect_continue

    # -- answering
    def _drain(self) -> None:
        srv = self._srv
        queue = self._queue
        while queue and not self._busy:
            transport = self._transport
            if transport is None:
                return
            req = queue.popleft()
            delay, payload, chat = srv._handle(req)
            if delay > 0:
                self._busy = True
                self._task = srv._loop_spawn(self._delayed(delay, payload, chat, req.keep_alive))
                return
            if chat:  # before writing: once the client has its answer, it is not in flight
                srv._in_flight -= 1
            transport.write(payload)
            if not req.keep_alive:
                queue.clear()
                transport.close()
                return

    async def _delayed(self, delay: float, payload: bytes, chat: bool, keep_alive: bool) -> None:
        try:
            await asyncio.sleep(delay)
        finally:  # also on cancellation (client gone, server stopping)
            if chat:
                self._srv._in_flight -= 1
            self._busy = False
            self._task = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(payload)
        if not keep_alive:
            self._queue.clear()
            transport.close()
        elif self._queue:
            self._drain()
