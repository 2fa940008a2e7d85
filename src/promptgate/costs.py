"""What a check's model calls may cost, known before they are made: the upper bound of one
call, the budget a check may not cross (`gate.max_cost_usd`, `--max-cost`), and the planning
client behind `check --plan`, which runs the gate's real chain without calling a model.

Bounds need no tokenizer: a BPE token covers at least one byte of UTF-8, so a request's prompt
tokens are at most its messages' bytes plus a few tokens of framing per message; its completion
tokens are at most `max_completion_tokens` / `max_tokens` (times `n`), or DEFAULT_COMPLETION_BOUND
when the prompt sets neither (the plan says so). Spend is reserved at the bound before a call and
settled at the call's real cost after it, so concurrent calls can never cross the budget together.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .errors import ModelError
from .providers import ChatRequest, ChatResponse, ModelClient, ResponseCache, call_cost

DEFAULT_COMPLETION_BOUND = 4096
MESSAGE_FRAMING_TOKENS = 4
REPLY_PRIMING_TOKENS = 3

# who asks for the call in flight, for the plan's per-prompt tally: (side, prompt, upstream)
CALL_SITE: ContextVar[tuple[str, str, bool]] = ContextVar(
    "promptgate_call_site", default=("", "", False)
)


@dataclass(frozen=True)
class CallBound:
    """The most one call can use and cost (cost None: the model has no pricing)."""

    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    completion_bounded: bool
    # the prompt tokens a typical tokenizer would count (about 4 bytes a token): for display
    prompt_tokens_estimate: int


def _text_bytes(content: Any) -> int:
    if isinstance(content, str):
        return len(content.encode("utf-8"))
    return len(json.dumps(content, ensure_ascii=False).encode("utf-8"))


def bound(request: ChatRequest, pricing: Mapping[str, Mapping[str, float]]) -> CallBound:
    """The upper bound of one request's tokens and cost (see the module docstring)."""
    size = sum(
        _text_bytes(m.get("content") or "") + _text_bytes(m.get("tool_calls") or "")
        for m in request.messages
    )
    if request.tools:
        size += _text_bytes(list(request.tools))
    if request.response_format:
        size += _text_bytes(request.response_format)
    framing = MESSAGE_FRAMING_TOKENS * len(request.messages) + REPLY_PRIMING_TOKENS
    params = request.params
    limit = params.get("max_completion_tokens", params.get("max_tokens"))
    bounded = isinstance(limit, int) and not isinstance(limit, bool) and limit > 0
    per_choice = int(limit) if bounded else DEFAULT_COMPLETION_BOUND
    choices = params.get("n", 1)
    choices = choices if isinstance(choices, int) and not isinstance(choices, bool) else 1
    completion = per_choice * max(1, choices)
    prompt = size + framing
    return CallBound(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost_usd=call_cost(pricing, request.model, prompt, completion),
        completion_bounded=bounded,
        prompt_tokens_estimate=math.ceil(size / 4) + framing,
    )


class BudgetExceeded(ModelError):
    """A call was not made: it could have crossed the check's budget."""


@dataclass
class Budget:
    """The spend of one check against its limit; calls reserve their bound first."""

    limit_usd: float
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    not_made: int = 0

    def reserve(self, request: ChatRequest, pricing: Mapping[str, Mapping[str, float]]) -> float:
        """Reserve the call's upper bound, or raise BudgetExceeded (the call is not made)."""
        b = bound(request, pricing)
        if b.cost_usd is None:
            self.not_made += 1
            raise BudgetExceeded(
                f"budget: model {request.model} has no pricing in promptgate.yaml, so its "
                "calls cannot be bounded; add it under `pricing`"
            )
        if self.spent_usd + self.reserved_usd + b.cost_usd > self.limit_usd + 1e-12:
            self.not_made += 1
            raise BudgetExceeded(
                f"budget exceeded: this call could cost up to ${b.cost_usd:.4f}, "
                f"${self.spent_usd:.4f} of ${self.limit_usd:.4f} spent"
            )
        self.reserved_usd += b.cost_usd
        return b.cost_usd

    def settle(self, reserved: float, actual: float | None) -> None:
        self.reserved_usd -= reserved
        self.spent_usd += reserved if actual is None else actual

    def release(self, reserved: float) -> None:
        """A reserved call failed without a response: it costs nothing we know of."""
        self.reserved_usd -= reserved

    def summary(self) -> str:
        return (
            f"budget exceeded: ${self.spent_usd:.4f} of ${self.limit_usd:.4f} spent, "
            f"{self.not_made} call{'' if self.not_made == 1 else 's'} not made"
        )


class _ReadOnly:
    """A cache the plan reads and never writes."""

    def __init__(self, inner: ResponseCache) -> None:
        self.inner = inner

    def get(self, key: str) -> dict[str, Any] | None:
        return self.inner.get(key)

    def put(self, key: str, request: ChatRequest, record: dict[str, Any]) -> None:
        return None

    def flush(self) -> None:
        return None


@dataclass
class SiteTally:
    """The calls one prompt makes on one side of the check."""

    side: str
    prompt: str
    calls: int = 0
    cached: int = 0
    upstream: int = 0
    shared: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0
    unbounded: int = 0


class PlanningClient(ModelClient):
    """A ModelClient that serves what the cache holds and, for everything else, counts the
    call's bound and answers with a stand-in of the bound's length instead of calling, so the
    chain downstream renders (and is bounded) as if the call had been made."""

    def __init__(self, base: ModelClient) -> None:
        ModelClient.__init__(
            self,
            cache=_ReadOnly(base.cache),
            concurrency=base.concurrency,
            pricing=base.pricing,
        )
        self.tallies: dict[tuple[str, str], SiteTally] = {}
        self.unpriced_models: set[str] = set()
        self._planned: set[str] = set()

    def _tally(self) -> SiteTally:
        side, prompt, upstream = CALL_SITE.get()
        key = (side, prompt)
        if key not in self.tallies:
            self.tallies[key] = SiteTally(side=side, prompt=prompt)
        t = self.tallies[key]
        t.calls += 1
        t.upstream += int(upstream)
        return t

    def prepare(self) -> None:
        return None

    async def complete(self, request: ChatRequest) -> ChatResponse:
        cached = self.cache.get(request.key)
        t = self._tally()
        if cached is not None:
            t.cached += 1
            return await ModelClient.complete(self, request)
        b = bound(request, self.pricing)
        if request.key in self._planned:  # the same request made once, shared (as in a run)
            t.shared += 1
        else:
            self._planned.add(request.key)
            self._count(t, b, request.model)
        return ChatResponse(
            content="x" * b.completion_tokens,
            tool_calls=None,
            prompt_tokens=0,
            completion_tokens=0,
            latency_ms=0.0,
            cached=False,
            model=request.model,
        )

    def _count(self, t: SiteTally, b: CallBound, model: str) -> None:
        t.prompt_tokens += b.prompt_tokens
        t.completion_tokens += b.completion_tokens
        t.unbounded += int(not b.completion_bounded)
        if b.cost_usd is None:
            t.unpriced += 1
            self.unpriced_models.add(model)
        else:
            t.cost_usd += b.cost_usd
