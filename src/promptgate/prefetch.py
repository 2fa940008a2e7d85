"""One read of the response cache for a whole run, instead of one query per case.

Before a run starts, the request of every case whose prompt's inputs the case itself sets (and,
for a chain, of each upstream prompt that it reaches first) is rendered and its cache key taken;
those keys are read from the store in one query per 500 keys. During the run, `get` answers
from that read: a key found is handed out once, a key known to be absent needs no query. Keys
not known in advance (a downstream prompt's request depends on its upstream's output, judge
calls) fall back to the store's per-key read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .errors import PromptgateError
from .providers import StoreCache
from .runner import Job, build_request, upstream_inputs
from .store import Registry


class PrefetchingStoreCache(StoreCache):
    """The registry's response cache, read in bulk for the keys a run will ask for."""

    def __init__(self, store: Registry, batch: int = 200) -> None:
        super().__init__(store, batch)
        self._fetched: dict[str, dict[str, Any]] = {}
        self._absent: set[str] = set()

    def prefetch(self, keys: Iterable[str]) -> int:
        """Read these keys in bulk; returns how many were found."""
        todo = [k for k in dict.fromkeys(keys) if k not in self._fetched and k not in self._absent]
        if not todo:
            return 0
        found: dict[str, dict[str, Any]] = self.store.cache_get_many(todo)
        self._fetched.update(found)
        self._absent.update(k for k in todo if k not in found)
        return len(found)

    def get(self, key: str) -> dict[str, Any] | None:
        hit = self._fetched.pop(key, None)  # handed out once: memory stays flat
        if hit is not None:
            return hit
        if key in self._absent and not self.has_pending(key):
            return None
        return super().get(key)

    def has_pending(self, key: str) -> bool:
        """Whether this run has already answered `key` (written at the next flush)."""
        return any(k == key for k, _, _ in self._pending)


def planned_keys(jobs: Iterable[Job]) -> Iterator[str]:
    """The cache keys the jobs' cases will ask for first, as far as they are known before
    the run: each case's prompt when the case sets all its inputs, else the first prompts
    up its chain whose inputs it does set. A case that fails to render is skipped here (the
    run reports it)."""
    for job in jobs:
        for case in job.suite.cases:
            for index in range(job.suite.repeat):
                yield from _keys(job, job.suite.prompt, case.vars, index, set())


def _keys(
    job: Job, name: str, variables: Mapping[str, Any], index: int, seen: set[str]
) -> Iterator[str]:
    side = job.side
    prompt = side.get(name)
    if prompt is None or name in seen:
        return
    seen.add(name)
    needs = upstream_inputs(prompt.content, variables)
    if needs:
        for source, _ in needs:
            yield from _keys(job, source, variables, index, seen)
        return
    try:
        yield build_request(name, prompt.content, variables, index, job.includes).key
    except PromptgateError:
        return
