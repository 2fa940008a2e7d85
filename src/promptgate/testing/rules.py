"""What the test server answers with and what it records: `Reply`, `RecordedRequest`, the
`tool_call` and `chance` helpers, and the matching of requests to reply rules and faults."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


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
