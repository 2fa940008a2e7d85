"""Model calls: canonical requests, the response cache, retries and the concurrency bound.

Every call goes through the official `openai` client (AsyncOpenAI) to any OpenAI-compatible
endpoint (`OPENAI_BASE_URL`, `OPENAI_API_KEY`, or a prompt's `model.base_url` /
`model.api_key_env`). A request's cache key is the SHA-256 of its canonical form (provider,
model, messages, parameters, tools, response_format, run index): neither the endpoint nor the
key is in it, so a committed recording replays anywhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol

from .canonical import content_hash
from .errors import BadInput, ModelError, ReplayMiss

# Keys of a prompt's `model` block that choose the endpoint rather than the behaviour.
ENDPOINT_KEYS = frozenset({"provider", "name", "base_url", "api_key_env"})


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completions request, exactly as it will be sent."""

    model: str
    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    tools: tuple[Mapping[str, Any], ...] = ()
    response_format: Mapping[str, Any] | None = None
    run_index: int = 0
    provider: str = "openai"
    base_url: str | None = None
    api_key_env: str | None = None

    @classmethod
    def for_content(
        cls, content: Mapping[str, Any], messages: list[dict[str, Any]], run_index: int = 0
    ) -> ChatRequest:
        model = content["model"]
        return cls(
            model=model["name"],
            messages=tuple(messages),
            params={k: v for k, v in model.items() if k not in ENDPOINT_KEYS},
            tools=tuple(content.get("tools") or ()),
            response_format=content.get("response_format"),
            run_index=run_index,
            provider=model.get("provider", "openai"),
            base_url=model.get("base_url"),
            api_key_env=model.get("api_key_env"),
        )

    def canonical(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "messages": list(self.messages),
            "parameters": dict(self.params),
            "tools": list(self.tools),
            "response_format": self.response_format,
            "run_index": self.run_index,
        }

    @property
    def key(self) -> str:
        return content_hash(self.canonical())

    def api_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": list(self.messages),
            **self.params,
        }
        if self.tools:
            kwargs["tools"] = list(self.tools)
        if self.response_format is not None:
            kwargs["response_format"] = dict(self.response_format)
        return kwargs


@dataclass(frozen=True)
class ChatResponse:
    """What the model said, with what it cost; `cached` if no call was made."""

    content: str
    tool_calls: tuple[Mapping[str, Any], ...] | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    cached: bool
    model: str

    @property
    def output(self) -> str:
        """The text assertions see: the content exactly as returned, or the tool calls as JSON
        when the model answered only with tool calls (as promptfoo does)."""
        if self.content or not self.tool_calls:
            return self.content
        return json.dumps(list(self.tool_calls))

    def to_record(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "tool_calls": list(self.tool_calls or []) or None,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_ms": round(self.latency_ms, 3),
            "model": self.model,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ChatResponse:
        return cls(
            content=record.get("content") or "",
            tool_calls=tuple(record["tool_calls"]) if record.get("tool_calls") else None,
            prompt_tokens=int(record.get("prompt_tokens") or 0),
            completion_tokens=int(record.get("completion_tokens") or 0),
            latency_ms=float(record.get("latency_ms") or 0.0),
            cached=True,
            model=str(record.get("model") or ""),
        )


class ResponseCache(Protocol):
    """Where successful responses are kept, keyed by `ChatRequest.key`."""

    def get(self, key: str) -> dict[str, Any] | None: ...
    def put(self, key: str, request: ChatRequest, record: dict[str, Any]) -> None: ...
    def flush(self) -> None: ...


class NoCache:
    """`--no-cache`: neither reads nor writes."""

    def get(self, key: str) -> dict[str, Any] | None:
        return None

    def put(self, key: str, request: ChatRequest, record: dict[str, Any]) -> None:
        return None

    def flush(self) -> None:
        return None


class StoreCache:
    """The registry's response cache: reads go straight to the store, writes are batched."""

    def __init__(self, store: Any, batch: int = 200) -> None:
        self.store = store
        self.batch = batch
        self._pending: list[tuple[str, str, dict[str, Any]]] = []

    def get(self, key: str) -> dict[str, Any] | None:
        for k, _, record in self._pending:
            if k == key:
                return record
        result: dict[str, Any] | None = self.store.cache_get(key)
        return result

    def put(self, key: str, request: ChatRequest, record: dict[str, Any]) -> None:
        self._pending.append(
            (key, request.model, {"request": request.canonical(), "response": record})
        )
        if len(self._pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self.store.cache_put_many(pending)


def _unwrap(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    response = entry.get("response", entry)
    return response if isinstance(response, dict) else None


class ReplayCache:
    """`--replay FILE`: serve only from a recording; a miss is an error, never a call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries = dict((k, r) for k, r in read_recording(path))

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, request: ChatRequest, record: dict[str, Any]) -> None:
        return None

    def flush(self) -> None:
        return None


def read_recording(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, response record) pairs of a recording file (JSON Lines; a line whose key is "#"
    is a comment)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{path}: cannot read recording: {exc.strerror}") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if entry.get("key") == "#":  # a comment line, e.g. where the responses came from
                continue
            key, response = entry["key"], entry["response"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise BadInput(f"{path}:{n}: not a recording line (need key and response)") from None
        yield key, response


def recording_line(key: str, model: str, created_at: str, entry: Mapping[str, Any]) -> str:
    """One line of a recording: key, model, date, the request (for reviewers) and response."""
    return json.dumps(
        {
            "key": key,
            "model": model,
            "recorded_at": created_at,
            "request": entry.get("request"),
            "response": _unwrap(dict(entry)),
        },
        ensure_ascii=False,
        sort_keys=True,
    )


@dataclass
class CallStats:
    """Counters for the report: calls made vs served from cache, tokens, cost."""

    calls: int = 0
    cached: int = 0
    shared: int = 0
    retries: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "cached": self.cached,
            "shared": self.shared,
            "retries": self.retries,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6) if self.cost_known else None,
        }


def call_cost(
    pricing: Mapping[str, Mapping[str, float]],
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> float | None:
    """USD for one call by the pricing table (per million tokens); None for unknown models."""
    price = pricing.get(model)
    if price is None:
        return None
    return (
        prompt_tokens * price.get("input", 0.0) + completion_tokens * price.get("output", 0.0)
    ) / 1_000_000


def _retry_after(exc: Exception) -> float | None:
    """The server's Retry-After in seconds (delta-seconds or an HTTP date), or None."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _wait_refused(asked: float | None, delay: float, waited: float, cap: float) -> str | None:
    """Why the next retry's wait is refused (one call waits at most `cap` before one retry and
    2 x `cap` in all), or None when it may wait `delay`."""
    if asked is not None and asked > cap:
        return f"rate limited: server asked to wait {asked:g} s, more than the {cap:g} s cap"
    if waited + delay > 2 * cap:
        return (
            f"rate limited: retrying would wait {waited + delay:.0f} s in all, "
            f"more than the {2 * cap:g} s cap"
        )
    return None


class SpendGuard(Protocol):
    """A budget: reserves a call's upper bound before it is made (raising if it could cross
    the limit), then settles it at the call's real cost (costs.Budget)."""

    def reserve(
        self, request: ChatRequest, pricing: Mapping[str, Mapping[str, float]]
    ) -> float: ...
    def settle(self, reserved: float, actual: float | None) -> None: ...
    def release(self, reserved: float) -> None: ...


class ModelClient:
    """Bounded, retrying, caching chat-completions calls shared by a whole gate run."""

    def __init__(
        self,
        *,
        cache: ResponseCache | None = None,
        concurrency: int = 16,
        timeout_s: float = 60.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        max_retry_wait_s: float = 30.0,
        pricing: Mapping[str, Mapping[str, float]] | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        budget: SpendGuard | None = None,
    ) -> None:
        self.cache = cache or NoCache()
        self.budget = budget
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_retry_wait_s = max_retry_wait_s
        self.pricing = pricing or {}
        # an empty variable (an unset GitHub secret) counts as unset
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        self.stats = CallStats()
        self._semaphore: asyncio.Semaphore | None = None
        self._clients: dict[tuple[str | None, str | None], Any] = {}
        self._inflight: dict[str, asyncio.Future[ChatResponse]] = {}

    def _client(self, request: ChatRequest) -> Any:
        base_url = request.base_url or self.base_url
        api_key = (
            (os.environ.get(request.api_key_env) or None) if request.api_key_env else self.api_key
        )
        if base_url is None and api_key is None:
            raise ModelError(
                "no model endpoint: set OPENAI_API_KEY (and OPENAI_BASE_URL for another "
                "OpenAI-compatible server), or run from a recording with --replay"
            )
        client_key = (base_url, api_key)
        if client_key not in self._clients:
            # Lazy on purpose: `openai` (its pydantic types) costs ~0.6 s to import, and a run
            # served wholly from the cache or a recording never needs it. The client is built
            # on the first uncached call, not at check start.
            self._clients[client_key] = openai_client(
                base_url,
                api_key or "not-needed",
                timeout_s=self.timeout_s,
                concurrency=self.concurrency,
            )
        return self._clients[client_key]

    def prepare(self) -> None:
        """Build the default endpoint's client now (imports openai), rather than on the first
        cache miss. The gate does not call it: a fully cached run must not pay for openai."""
        if self.base_url is not None or self.api_key is not None:
            self._client(ChatRequest(model="", messages=()))

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        self.cache.flush()

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """The response to `request`: from the cache, from an identical call in flight, or
        from the model (with retries). Raises ModelError when it cannot be had."""
        key = request.key
        cached = _unwrap(self.cache.get(key))
        if cached is not None:
            self.stats.cached += 1  # tokens and cost count only what this run paid for
            return ChatResponse.from_record(cached)
        if isinstance(self.cache, ReplayCache):
            raise ReplayMiss(
                f"request not in the recording {self.cache.path.name} "
                f"(model {request.model}, key {key[:12]})"
            )
        running = self._inflight.get(key)
        if running is not None:
            self.stats.shared += 1
            return await asyncio.shield(running)
        # reserve before the call (may raise: the call is not made)
        reserved = self.budget.reserve(request, self.pricing) if self.budget else 0.0
        future: asyncio.Future[ChatResponse] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            response = await self._call_with_retries(request)
        except BaseException as exc:
            if self.budget:
                self.budget.release(reserved)
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it
            raise
        finally:
            self._inflight.pop(key, None)
        if self.budget:
            self.budget.settle(reserved, self.response_cost(response))
        future.set_result(response)
        self.cache.put(key, request, response.to_record())
        return response

    def _count_tokens(self, response: ChatResponse) -> None:
        self.stats.prompt_tokens += response.prompt_tokens
        self.stats.completion_tokens += response.completion_tokens
        cost = call_cost(
            self.pricing, response.model, response.prompt_tokens, response.completion_tokens
        )
        if cost is None:
            self.stats.cost_known = False
        else:
            self.stats.cost_usd += cost

    def response_cost(self, response: ChatResponse) -> float | None:
        return call_cost(
            self.pricing, response.model, response.prompt_tokens, response.completion_tokens
        )

    async def _call_with_retries(self, request: ChatRequest) -> ChatResponse:
        import openai  # lazy: only uncached calls need it (see _client)

        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrency)
        client = self._client(request)
        attempt = 0
        waited = 0.0
        while True:
            try:
                async with self._semaphore:
                    self.stats.calls += 1
                    started = time.perf_counter()
                    # The client's own POST to the chat-completions route: the same auth,
                    # timeouts, error classes and connection pool as `chat.completions.create`,
                    # without its per-call TypedDict transform and pydantic parse, which cost
                    # ~1.5 ms of CPU per call here (measured; see benchmarks/README.md).
                    completion = await client.post(
                        "/chat/completions", body=request.api_kwargs(), cast_to=object
                    )
                    latency = (time.perf_counter() - started) * 1000
                response = self._parse(completion, request, latency)
                self._count_tokens(response)
                return response
            except (
                openai.RateLimitError,
                openai.InternalServerError,
                openai.APITimeoutError,
                openai.APIConnectionError,
                openai.APIResponseValidationError,
                _Malformed,
                json.JSONDecodeError,
            ) as exc:
                retryable = True
                error: Exception = exc
            except openai.APIStatusError as exc:
                retryable = exc.status_code in (408, 409, 429) or exc.status_code >= 500
                error = exc
            if not retryable or attempt >= self.retries:
                self.stats.errors += 1
                raise ModelError(
                    f"model {request.model}: {_describe(error)}"
                    + (f" after {attempt + 1} attempts" if attempt else "")
                ) from None
            asked = _retry_after(error)
            delay = asked if asked is not None else random.uniform(0, self.backoff_s * 2**attempt)
            refused = _wait_refused(asked, delay, waited, self.max_retry_wait_s)
            if refused is not None:  # fail now rather than sleep for minutes
                self.stats.errors += 1
                raise ModelError(
                    f"model {request.model}: {refused} (after {attempt + 1} "
                    f"attempt{'s' if attempt else ''}; gate.max_retry_wait_s)"
                ) from None
            attempt += 1
            self.stats.retries += 1
            waited += delay
            await asyncio.sleep(delay)

    @staticmethod
    def _parse(completion: Any, request: ChatRequest, latency: float) -> ChatResponse:
        """Read a chat.completion body (plain JSON); anything unexpected is malformed."""
        try:
            message = completion["choices"][0]["message"]
            content = message.get("content") or ""
            if not isinstance(content, str):
                raise TypeError("message content is not a string")
            tool_calls = tuple(message["tool_calls"]) if message.get("tool_calls") else None
            usage = completion.get("usage") or {}
            return ChatResponse(
                content=content,
                tool_calls=tool_calls,
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                latency_ms=latency,
                cached=False,
                model=request.model,
            )
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise _Malformed(f"malformed completion: {exc}") from None


def openai_client(base_url: str | None, api_key: str, *, timeout_s: float, concurrency: int) -> Any:
    """The official AsyncOpenAI client as the gate builds it: no retries of its own (the
    gate's retry loop owns them) and aiohttp under the client's httpx interface
    (`openai[aiohttp]`), which costs 1.2 ms of CPU per call here against 2.1 ms for the
    default transport (benchmarks/README.md), with its pool sized to the run's concurrency.
    Imports openai, so call it only when a call is to be made."""
    import openai

    # The Limits class is the one the installed client is built on (httpx2 since openai 3).
    limits = type(openai.DEFAULT_CONNECTION_LIMITS)(
        max_connections=concurrency, max_keepalive_connections=concurrency
    )
    return openai.AsyncOpenAI(
        base_url=base_url,
        api_key=api_key,
        max_retries=0,
        timeout=timeout_s,
        http_client=openai.DefaultAioHttpClient(limits=limits, timeout=timeout_s),
    )


class _Malformed(Exception):
    pass


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    message = str(getattr(exc, "message", None) or exc).splitlines()[0][:200]
    if status:
        return f"{name} (HTTP {status}): {message}"
    # A connection error's own message is generic ("Connection error.", and the aiohttp
    # transport reports a refused connection as a connect timeout): name what happened.
    root = _root_cause(exc)
    detail = str(root).splitlines()[0][:200] if root is not exc and str(root) else ""
    return f"{name}: {message} ({detail})" if detail and detail != message else f"{name}: {message}"


def _root_cause(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while True:
        cause = exc.__cause__ or exc.__context__
        if cause is None or id(cause) in seen:
            return exc
        seen.add(id(cause))
        exc = cause


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
