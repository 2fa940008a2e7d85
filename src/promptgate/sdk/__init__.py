"""The application SDK (README: SDK): prompts from a registry, cached in process.

    from promptgate import PromptClient
    client = PromptClient("http://registry:8700", api_key=..., fallback="promptgate.lock.json")
    p = client.get("summarize", label="production")      # no I/O after the first fetch
    resp = openai.OpenAI().chat.completions.create(**p.openai_kwargs(text=doc))

How it works:
- The cache is one dict from (name, label, version) to an immutable `Prompt` (or to a marker
  for "label removed" / "access refused"). `get` is a plain dict read: no I/O and no lock after
  the first fetch. A refresh builds a new `Prompt` and swaps the dict entry (one atomic store),
  so a reader sees either the old or the new prompt, never a mixture.
- Version-pinned entries never expire. Label entries are refreshed by ONE daemon thread per
  client: `refresh="events"` long-polls `/v1/events` and re-reads the labels an event touches
  (a move is visible within about a second), plus a full re-read every 10 x ttl_s as a safety
  net; `refresh="poll"` sends conditional GETs (If-None-Match) every ttl_s. A direct store
  (sqlite:///, postgresql://) is polled every ttl_s.
- Failures: registry down / timeout / 5xx -> keep serving the last good prompt, log ONE warning
  per outage (logger "promptgate.sdk"), retry with exponential backoff and jitter, re-read every
  label when it answers again. 404 (label removed) -> the next `get` raises PromptNotFound.
  401/403 -> every `get` raises PromptAccessError until the registry accepts the key again.
- Never backwards: a label entry keeps the event seq its answer reflects (a snapshot's seq,
  or X-Promptgate-Seq on a poll) and ignores an older answer, such as a replica's that has
  not heard of the last move yet.
- Partials: a version object carries `resolved`, the partial versions its `{% include %}`s
  are served by at the label; `render` uses them, `trace_attributes["resolved_hash"]` names
  the combination, and a move of a partial re-reads every watched prompt that includes it.
- Fork-safe: a forked child gets fresh connections and its own refresher thread.
  `close()` cuts a long-poll in flight: the refresher thread ends within milliseconds.

Importing this module loads neither the server nor the CLI (no FastAPI, uvicorn or click);
httpx is imported for http(s) registries, SQLAlchemy only for a direct store.
"""

from __future__ import annotations

from ..lockfile import LockfileError
from .client import AsyncPromptClient, PromptClient
from .errors import PromptAccessError, PromptError, PromptNotFound, PromptUnavailable
from .prompt import LATEST as LATEST
from .prompt import Prompt, PromptSnapshot

# Where a Prompt pickled before the split says to rebuild it from (promptgate.sdk._make_prompt).
from .prompt import _FrozenDict as _FrozenDict
from .prompt import _make_prompt as _make_prompt

__all__ = [
    "AsyncPromptClient",
    "LockfileError",
    "Prompt",
    "PromptAccessError",
    "PromptClient",
    "PromptError",
    "PromptNotFound",
    "PromptSnapshot",
    "PromptUnavailable",
]
