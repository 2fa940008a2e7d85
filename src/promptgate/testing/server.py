"""`OpenAITestServer`: the local OpenAI-compatible chat-completions server, its lifecycle on a
background event-loop thread, its request log and counters, and how it answers (rules, faults,
responder, default reply). See the package docstring for the full story."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .http import (
    _CHOICE_REST,
    _COMPLETION,
    _MALFORMED_BODY,
    _Connection,
    _dumps,
    _error_json,
    _esc,
    _http_response,
    _Request,
)
from .rules import (
    Body,
    Content,
    Matcher,
    RecordedRequest,
    Reply,
    Responder,
    _compile_matcher,
    _Fault,
    _normalize_tool_calls,
    _Rule,
    _TextCache,
    default_reply_text,
)


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
