"""A real, local, OpenAI-compatible HTTP server for tests, benchmarks and CI.

Why this exists
---------------
promptgate talks to models through the ``openai`` client.  Its own tests, its
benchmarks and its users' CI pipelines need a model endpoint that is fast,
free, deterministic and able to misbehave on demand (errors, rate limits,
garbage bodies, slowness).  Monkeypatching the client would skip exactly the
code we want to exercise (HTTP, retries, timeouts, connection pooling,
response parsing), so instead this module runs a genuine HTTP/1.1 server on
127.0.0.1 that speaks the chat-completions protocol.  Code under test only
ever receives a ``base_url``.

The server is pure standard library: an ``asyncio`` protocol running on its
own event loop in a background daemon thread.  It supports keep-alive,
pipelining, ``Content-Length`` and chunked request bodies, and handles
thousands of requests per second; simulated latency is an ``asyncio.sleep``
so hundreds of slow requests can be in flight at once.

Usage
-----
::

    import re
    import openai
    from promptgate.testing import OpenAITestServer, Reply, tool_call

    with OpenAITestServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        out = client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hello"}]
        )
        assert out.choices[0].message.content == "[gpt-test] hello"

        server.reply("weather", tool_calls=[tool_call("get_weather", {"city": "Paris"})])
        server.reply(re.compile(r"\\bsum\\b"), lambda body: "42")
        server.reply("quiz", chance(0.8, "right", "wrong", seed="trial-1"))
        server.fail(429, retry_after=1)      # the next request is rate limited
        server.malformed()                   # ... then one gets a body that is not JSON
        server.slow(5.0)                     # ... then one stalls for 5 s
        server.latency = 0.2                 # every request takes >= 200 ms
        assert server.call_count == 1 and server.requests[0].body["model"] == "gpt-test"
        server.reset()                       # forget requests, counters, rules and faults
        client.close()

For pytest, start one server per module/session and ``reset()`` it between tests.

From a shell (e.g. in CI)::

    python -m promptgate.testing --port 8000 --latency 0.05 --script rules.yaml
    # prints http://127.0.0.1:8000/v1 on stdout, serves until SIGINT/SIGTERM

``--port 0`` picks a free port.  The ``--script`` file (YAML, or JSON if it ends
in ``.json``) is a list of reply rules, each
``{match, content, tool_calls?, latency?, regex?}`` (``regex: true`` compiles
``match``; without ``match`` a rule matches everything)::

    - match: "capital of France"
      content: "Paris"
    - match: "^weather"
      regex: true
      tool_calls: [{name: get_weather, arguments: {city: Oslo}}]

Endpoints
---------
``POST /v1/chat/completions``
    Non-streaming only: a request with ``"stream": true`` gets a 400 error.
``GET /v1/models`` and ``GET /v1/models/{id}``
    Lists ``OpenAITestServer.models``.

How a chat request is answered
------------------------------
1. The request is logged (:attr:`OpenAITestServer.requests`) and counted.
2. Invalid requests (body not a JSON object, no ``model`` string, no
   ``messages`` list, ``stream: true``) get a 400 error.
3. The first pending fault (:meth:`~OpenAITestServer.fail`,
   :meth:`~OpenAITestServer.malformed`, :meth:`~OpenAITestServer.slow`, in the
   order they were added) whose ``match`` accepts the request is consumed; a
   request consumes at most one fault.
4. The reply comes from the first :meth:`~OpenAITestServer.reply` rule that
   matches, else from the ``responder`` (if it returns ``None`` we fall
   through), else the **default reply**, which is a pure function of the
   request::

       "[" + model + "] " + <text of the last user message>

5. The response is sent after ``latency`` seconds (a rule's own ``latency``
   replaces the server's; a ``slow`` fault adds to it).

Matching (``match=`` everywhere): ``None`` matches everything; a ``str`` is a
substring of the *conversation text* (the text of every message's content,
joined with ``"\\n"``); a compiled regex is ``search``-ed in that text; a
callable receives the parsed request body and returns a bool.

Token usage is deterministic: ``prompt_tokens`` is the number of
whitespace-separated words in the conversation text, ``completion_tokens`` the
number of words in the reply content plus in each tool call's arguments
string; :class:`Reply` can override both.

If a responder, rule callable or matcher raises, the request gets a 500 whose
message names the exception.  If the client disconnects (e.g. it timed out on a
``slow`` request), its pending answer is dropped and stops counting in
:attr:`~OpenAITestServer.in_flight`.

Responders, rule callables and matchers run on the server's event-loop thread:
they must not block (use ``latency``/``slow`` to simulate slowness).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import itertools
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OpenAITestServer",
    "RecordedRequest",
    "Reply",
    "default_reply_text",
    "main",
    "tool_call",
]


# --------------------------------------------------------------------------- public data types


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted assistant answer.

    ``tool_calls`` items are either OpenAI-shaped
    (``{"id", "type": "function", "function": {"name", "arguments"}}``) or the
    shorthand ``{"name": ..., "arguments": dict | str}`` (see :func:`tool_call`);
    missing ids become ``call_0``, ``call_1``...  ``finish_reason`` defaults to
    ``"tool_calls"`` when there are tool calls, else ``"stop"``.
    """

    content: str | None = None
    tool_calls: Sequence[Mapping[str, Any]] | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as received by the server.

    ``body`` is the parsed JSON body (``None`` if empty or not JSON); ``headers``
    is a read-only mapping with lower-cased names and case-insensitive lookup
    (repeated headers joined with ``", "``); ``path`` excludes the query string;
    ``received_at`` is ``time.time()`` when the request was fully read.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    received_at: float


def tool_call(
    name: str, arguments: Mapping[str, Any] | str | None = None, *, id: str | None = None
) -> dict[str, Any]:
    """Build an OpenAI-shaped tool call for :meth:`OpenAITestServer.reply` / :class:`Reply`."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    call: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": args}}
    if id is not None:
        call["id"] = id
    return call


Body = dict[str, Any]  # a chat-completions request body, as parsed JSON


def chance(p: float, right: str, wrong: str, *, seed: str = "") -> Callable[[Body], str]:
    """A seeded random reply for :meth:`OpenAITestServer.reply`: ``right`` with probability
    ``p``, else ``wrong``, decided by SHA-256 of ``seed`` and the conversation, so the same
    request always gets the same answer and different seeds are independent trials."""

    def answer(body: Body) -> str:
        text = f"{seed}\0{body.get('model')}\0{_conversation_text(body)}"
        draw = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64
        return right if draw < p else wrong

    return answer


Matcher = None | str | re.Pattern[str] | Callable[[Body], bool]
Responder = Callable[[Body], Reply | str | None]
Content = None | str | Reply | Callable[[Body], Reply | str]


# --------------------------------------------------------------------------- request helpers


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal parts: keep the text ones
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return ""


def _conversation_text(body: Mapping[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    return "\n".join(_content_text(m.get("content")) for m in messages if isinstance(m, Mapping))


def default_reply_text(body: Mapping[str, Any]) -> str:
    """The reply used when no rule matches and there is no responder:
    ``"[" + model + "] " + <text of the last user message>`` ("" if none)."""
    last = ""
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in reversed(messages):
            if isinstance(m, Mapping) and m.get("role") == "user":
                last = _content_text(m.get("content"))
                break
    return f"[{body.get('model')}] {last}"


def _normalize_tool_calls(calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tc in enumerate(calls):
        fn = tc.get("function")
        if isinstance(fn, Mapping):
            name, args = fn.get("name"), fn.get("arguments", "{}")
        else:
            name, args = tc.get("name"), tc.get("arguments", {})
        if not isinstance(args, str):
            args = json.dumps(args)
        out.append(
            {
                "id": tc.get("id") or f"call_{i}",
                "type": "function",
                "function": {"name": name, "arguments": args},
            }
        )
    return out


def _compile_matcher(match: Matcher) -> Callable[[Body, _TextCache], bool]:
    if match is None:
        return lambda body, text: True
    if isinstance(match, str):
        needle = match
        return lambda body, text: needle in text.get(body)
    if isinstance(match, re.Pattern):
        pattern = match
        return lambda body, text: pattern.search(text.get(body)) is not None
    if callable(match):
        fn = match
        return lambda body, text: bool(fn(body))
    raise TypeError(f"match must be None, str, a compiled regex or a callable, not {match!r}")


class _TextCache:
    """Computes the conversation text of one request at most once."""

    __slots__ = ("_text",)

    def __init__(self) -> None:
        self._text: str | None = None

    def get(self, body: Mapping[str, Any]) -> str:
        if self._text is None:
            self._text = _conversation_text(body)
        return self._text


@dataclass(slots=True)
class _Rule:
    matches: Callable[[Body, _TextCache], bool]
    content: Content
    tool_calls: Any
    latency: float | None


@dataclass(slots=True)
class _Fault:
    kind: str  # "fail" | "malformed" | "slow"
    matches: Callable[[Body, _TextCache], bool]
    remaining: int
    status: int = 500
    retry_after: float | None = None
    body: str | None = None
    delay: float = 0.0


# --------------------------------------------------------------------------- HTTP plumbing

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

    def __init__(self, srv: OpenAITestServer) -> None:
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


# --------------------------------------------------------------------------- the server


class OpenAITestServer:
    """A local OpenAI chat-completions server running in a background thread.

    ``responder(body)`` (optional) answers requests no :meth:`reply` rule
    matched; it returns a :class:`Reply`, a ``str`` (the content) or ``None``
    (use the default reply).  See the module docstring for the full story.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Sequence[str] = ("gpt-test", "gpt-4o-mini", "gpt-4o"),
    ) -> None:
        self.responder = responder
        self.latency = float(latency)
        self.host = host
        self.port = port
        self.models = list(models)
        self._lock = threading.Lock()
        self._log: list[RecordedRequest] = []
        self._call_count = 0
        self._in_flight = 0  # only touched on the loop thread
        self._max_in_flight = 0
        self._rules: tuple[_Rule, ...] = ()
        self._faults: tuple[_Fault, ...] = ()
        self._ids = itertools.count(1)
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: asyncio.Event | None = None
        self._bound_port: int | None = None

    # -- lifecycle
    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1`` (only valid once started)."""
        if self._bound_port is None:
            raise RuntimeError("OpenAITestServer is not running; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._bound_port}/v1"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> OpenAITestServer:
        """Bind and start serving in a daemon thread; returns ``self``."""
        if self._thread is not None:
            raise RuntimeError("OpenAITestServer already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self._serve(ready))
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                failure.append(exc)
                ready.set()

        thread = threading.Thread(target=run, name="OpenAITestServer", daemon=True)
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._thread = thread
        return self

    def stop(self) -> None:
        """Close every connection and stop the server thread (idempotent)."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None or loop is None or stop_event is None:
            return
        if threading.current_thread() is thread:
            raise RuntimeError("stop() cannot be called from the server thread")
        try:
            loop.call_soon_threadsafe(stop_event.set)
        except RuntimeError:  # loop already closed
            pass
        thread.join()
        self._thread = None
        self._loop = None
        self._stop_event = None
        self._bound_port = None

    def __enter__(self) -> OpenAITestServer:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._bound_port is not None else "stopped"
        return f"<OpenAITestServer {where} calls={self.call_count}>"

    async def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        server = await loop.create_server(
            lambda: _Connection(self), self.host, self.port, reuse_address=True, backlog=2048
        )
        try:
            self._bound_port = server.sockets[0].getsockname()[1]
            self._loop = loop
            ready.set()
            await self._stop_event.wait()
        finally:
            server.close()
            for conn in list(self._connections):
                conn.abort()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()
            # let the transports' connection_lost callbacks run (closes sockets)
            for _ in range(3):
                await asyncio.sleep(0)
            self._connections.clear()
            self._in_flight = 0

    def _loop_spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- inspection
    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received since start/:meth:`reset` (all paths)."""
        with self._lock:
            return list(self._log)

    @property
    def call_count(self) -> int:
        """Number of ``POST /v1/chat/completions`` requests received."""
        return self._call_count

    @property
    def max_in_flight(self) -> int:
        """Highest number of chat requests being handled at the same time."""
        return self._max_in_flight

    @property
    def in_flight(self) -> int:
        """Chat requests currently being handled."""
        return self._in_flight

    def reset(self) -> None:
        """Clear the request log, counters, pending faults and reply rules."""
        with self._lock:
            self._log = []
            self._call_count = 0
            self._max_in_flight = self._in_flight
            self._rules = ()
            self._faults = ()

    # -- scripting
    def reply(
        self,
        match: Matcher,
        content: Content = None,
        *,
        tool_calls: Sequence[Mapping[str, Any]] | Callable[[Body], Any] | None = None,
        latency: float | None = None,
    ) -> None:
        """Add a reply rule; the first matching rule (in order added) answers.

        ``content`` is a str, a :class:`Reply`, or ``callable(body)`` returning
        either.  ``tool_calls`` (list or ``callable(body)``) are added to a str
        content.  ``latency`` replaces the server latency for matching requests.
        """
        rule = _Rule(_compile_matcher(match), content, tool_calls, latency)
        with self._lock:
            self._rules = (*self._rules, rule)

    def fail(
        self,
        status: int = 500,
        *,
        times: int = 1,
        retry_after: float | None = None,
        match: Matcher = None,
        body: str | None = None,
    ) -> None:
        """The next ``times`` matching chat requests get an error ``status``.

        The body is an OpenAI error object unless ``body`` is given (sent
        verbatim).  ``retry_after`` adds a ``Retry-After`` header (seconds).
        """
        self._add_fault(
            _Fault(
                "fail",
                _compile_matcher(match),
                times,
                status=status,
                retry_after=retry_after,
                body=body,
            )
        )

    def malformed(self, *, times: int = 1, match: Matcher = None) -> None:
        """The next ``times`` matching chat requests get a 200 whose body is not valid JSON."""
        self._add_fault(_Fault("malformed", _compile_matcher(match), times))

    def slow(self, seconds: float, *, times: int = 1, match: Matcher = None) -> None:
        """The next ``times`` matching chat requests wait ``seconds`` (on top of the
        latency) before being answered normally - handy to trigger client timeouts."""
        self._add_fault(_Fault("slow", _compile_matcher(match), times, delay=float(seconds)))

    def _add_fault(self, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults = (*self._faults, fault)

    # -- request handling (event-loop thread)
    def _handle(self, req: _Request) -> tuple[float, bytes, bool]:
        """Return (delay, response bytes, is_chat_request)."""
        raw = req.body
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
            bad_json = True
        else:
            bad_json = False
        path = req.path
        record = RecordedRequest(req.method, path, req.headers, body, time.time())
        is_chat = path == "/v1/chat/completions" or path == "/chat/completions"
        with self._lock:
            self._log.append(record)
            if is_chat:
                self._call_count += 1
                self._in_flight += 1
                if self._in_flight > self._max_in_flight:
                    self._max_in_flight = self._in_flight
        close = not req.keep_alive
        if is_chat:
            if req.method != "POST":
                return 0.0, _http_response(405, _error_json(405, "Use POST."), close=close), True
            if bad_json:
                return (
                    0.0,
                    _http_response(
                        400,
                        _error_json(400, "We could not parse the JSON body of your request."),
                        close=close,
                    ),
                    True,
                )
            try:
                return self._chat(body, close)
            except Exception as exc:  # noqa: BLE001 - a bug in a user callable: report it
                msg = f"OpenAITestServer: {type(exc).__name__}: {exc}"
                return 0.0, _http_response(500, _error_json(500, msg), close=close), True
        if req.method == "GET" and (path.startswith("/v1/models") or path.startswith("/models")):
            return 0.0, self._models(path, close), False
        return (
            0.0,
            _http_response(
                404,
                _error_json(404, f"Unknown request URL: {req.method} {path}.", code="unknown_url"),
                close=close,
            ),
            False,
        )

    def _models(self, path: str, close: bool) -> bytes:
        rest = path.split("/models", 1)[1].strip("/")
        if rest:
            if rest not in self.models:
                return _http_response(
                    404,
                    _error_json(404, f"The model '{rest}' does not exist", code="model_not_found"),
                    close=close,
                )
            return _http_response(200, _dumps(self._model_obj(rest)).encode(), close=close)
        data = {"object": "list", "data": [self._model_obj(m) for m in self.models]}
        return _http_response(200, _dumps(data).encode(), close=close)

    @staticmethod
    def _model_obj(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 1700000000, "owned_by": "promptgate"}

    def _chat(self, body: Any, close: bool) -> tuple[float, bytes, bool]:
        if not isinstance(body, dict):
            return (
                0.0,
                _http_response(
                    400, _error_json(400, "The request body must be a JSON object."), close=close
                ),
                True,
            )
        model = body.get("model")
        if not isinstance(model, str):
            return (
                0.0,
                _http_response(
                    400,
                    _error_json(
                        400, "you must provide a model parameter", code="missing_required_parameter"
                    ),
                    close=close,
                ),
                True,
            )
        if not isinstance(body.get("messages"), list):
            return (
                0.0,
                _http_response(
                    400,
                    _error_json(
                        400, "'messages' is a required property", code="missing_required_parameter"
                    ),
                    close=close,
                ),
                True,
            )
        if body.get("stream"):
            return (
                0.0,
                _http_response(
                    400,
                    _error_json(
                        400,
                        "Streaming is not supported by OpenAITestServer.",
                        code="stream_not_supported",
                    ),
                    close=close,
                ),
                True,
            )

        text = _TextCache()
        delay = self.latency
        fault = None
        for f in self._faults:
            if f.remaining > 0 and f.matches(body, text):
                with self._lock:
                    if f.remaining <= 0:
                        continue
                    f.remaining -= 1
                fault = f
                break
        if fault is not None:
            if fault.kind == "fail":
                extra = b""
                if fault.retry_after is not None:
                    ra = fault.retry_after
                    extra = (
                        b"Retry-After: %s\r\n"
                        % (str(int(ra)) if float(ra).is_integer() else repr(float(ra))).encode()
                    )
                payload = (
                    fault.body.encode() if fault.body is not None else _error_json(fault.status)
                )
                return delay, _http_response(fault.status, payload, extra=extra, close=close), True
            if fault.kind == "malformed":
                return delay, _http_response(200, _MALFORMED_BODY, close=close), True
            delay += fault.delay  # slow: answer normally, later

        reply = None
        for rule in self._rules:
            if rule.matches(body, text):
                if rule.latency is not None:
                    delay = delay - self.latency + rule.latency
                reply = self._rule_reply(rule, body)
                break
        else:
            if self.responder is not None:
                r = self.responder(body)
                if r is not None:
                    reply = r if isinstance(r, Reply) else Reply(content=str(r))
        if reply is None:
            reply = Reply(content=default_reply_text(body))
        return (
            delay,
            _http_response(200, self._completion(body, model, reply, text), close=close),
            True,
        )

    @staticmethod
    def _rule_reply(rule: _Rule, body: Body) -> Reply:
        content = rule.content
        if callable(content):
            content = content(body)
        if isinstance(content, Reply):
            return content
        tool_calls = rule.tool_calls
        if callable(tool_calls):
            tool_calls = tool_calls(body)
        if content is None and not tool_calls:
            content = ""
        return Reply(content=None if content is None else str(content), tool_calls=tool_calls)

    def _completion(self, body: Body, model: str, reply: Reply, text: _TextCache) -> bytes:
        content = reply.content
        completion_tokens = len(content.split()) if content else 0
        tool_calls_json = ""
        if reply.tool_calls:
            calls = _normalize_tool_calls(reply.tool_calls)
            tool_calls_json = ',"tool_calls":' + _dumps(calls)
            for c in calls:
                completion_tokens += len(c["function"]["arguments"].split())
            finish = reply.finish_reason or "tool_calls"
        else:
            finish = reply.finish_reason or "stop"
        if reply.completion_tokens is not None:
            completion_tokens = reply.completion_tokens
        prompt_tokens = (
            reply.prompt_tokens if reply.prompt_tokens is not None else len(text.get(body).split())
        )
        n = body.get("n")
        n = n if isinstance(n, int) and 1 < n <= 128 else 1
        # Hand-rolled JSON (every string goes through the json escaper): several times
        # faster than json.dumps of the equivalent dict, which matters for benchmarks.
        choice_rest = _CHOICE_REST % (
            "null" if content is None else _esc(content),
            tool_calls_json,
            _esc(finish),
        )
        choices = ",".join([f'{{"index":{i},' + choice_rest for i in range(n)])
        return (
            _COMPLETION
            % (
                next(self._ids),
                int(time.time()),
                _esc(model),
                choices,
                prompt_tokens,
                completion_tokens * n,
                prompt_tokens + completion_tokens * n,
            )
        ).encode()


# --------------------------------------------------------------------------- CLI


def _load_script(server: OpenAITestServer, path: str) -> int:
    """Load reply rules from a YAML/JSON file: a list of
    ``{match, content, tool_calls?, latency?, regex?}`` (or ``{"rules": [...]}``)."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if path.endswith(".json"):
        data = json.loads(text)
    else:
        from .yamlload import parse_yaml  # lazy: only the CLI needs it

        data = parse_yaml(text, path).data
    if isinstance(data, Mapping):
        data = data.get("rules", [])
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of rules")
    for i, item in enumerate(data):
        if not isinstance(item, Mapping):
            raise ValueError(f"{path}: rule #{i} is not a mapping")
        match = item.get("match")
        if match is not None and item.get("regex"):
            match = re.compile(str(match))
        elif match is not None:
            match = str(match)
        content = item.get("content")
        server.reply(
            match,
            None if content is None else str(content),
            tool_calls=item.get("tool_calls"),
            latency=item.get("latency"),
        )
    return len(data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m promptgate.testing",
        description="Run a local OpenAI-compatible chat-completions server (for tests and CI). "
        "Prints its base_url on stdout and serves until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (default 8000)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each reply")
    parser.add_argument("--script", help="YAML/JSON file of reply rules: [{match, content}, ...]")
    args = parser.parse_args(argv)

    server = OpenAITestServer(latency=args.latency, host=args.host, port=args.port)
    if args.script:
        n = _load_script(server, args.script)
        print(f"loaded {n} rule(s) from {args.script}", file=sys.stderr)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with server:
        print(server.base_url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
