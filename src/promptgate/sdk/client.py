"""`PromptClient` and `AsyncPromptClient`: the in-process cache of prompts, its first fetches,
the lock-file fallback, and the one refresher thread per client that keeps label entries current
(event long-poll, conditional polls, or store polls), with its outage and fork handling."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from ..lockfile import read_lock
from .errors import (
    PromptAccessError,
    PromptError,
    PromptNotFound,
    PromptUnavailable,
    _Failure,
    _NotFound,
    _Transient,
)
from .prompt import LATEST, Prompt, PromptSnapshot, _FrozenDict, _make_prompt, _stated_resolved_hash
from .sources import _HttpSource, _StoreSource

# The package's logger, whichever submodule logs: users configure "promptgate.sdk".
log = logging.getLogger("promptgate.sdk")

_NO_LABEL_MOVE = frozenset({"request", "decision"})  # event types that never move a label
_BEHIND_GRACE_S = 10.0  # answers older than a label entry's are ignored for this long


_Key = tuple[str, "str | None", "int | None"]

_LIVE: weakref.WeakSet[PromptClient] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_LIVE):
        try:
            client._after_fork()
        except Exception:  # never break a fork
            log.exception("promptgate: restarting the prompt refresher after fork failed")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _refresher_main(
    ref: weakref.ref[PromptClient],
    source: _HttpSource | _StoreSource,
    stop: threading.Event,
    gen: int,
    delay: float,
) -> None:
    """The refresher thread. It holds the client only weakly between steps, so an unreferenced
    client can be collected (and its thread ends). Its own connections are closed here, when
    it ends; `close()` only cuts a long-poll in flight (socket shutdown), which ends it."""
    failures = 0
    try:
        while not (delay > 0 and stop.wait(delay)) and not stop.is_set():
            client = ref()
            if client is None or client._gen != gen:
                return
            try:
                delay = client._step()
                failures = 0
            except Exception as exc:
                if stop.is_set() or client._gen != gen:  # closed (or forked) mid-request
                    return
                failures += 1
                if isinstance(exc, PromptAccessError):
                    client._denied(exc)
                    delay = client._backoff(failures, cap=max(client._max_backoff_s, 30.0))
                else:  # _Transient, or a surprising answer: keep serving, keep trying
                    why = (
                        str(exc) if isinstance(exc, _Transient) else f"{type(exc).__name__}: {exc}"
                    )
                    client._went_down(why)
                    delay = client._backoff(failures)
            del client
    finally:
        if stop.is_set():
            source.close(front=False, back=True)


class PromptClient:
    """Prompts from a registry, cached in process and kept current by one background thread.

    registry: a registry server's http(s):// URL, or a sqlite:///... / postgresql://... URL
      read directly (then polled every ttl_s).
    api_key: for a server; defaults to $PROMPTGATE_API_KEY.
    refresh: "events" (long-poll the server's event feed: moves visible within ~1 s) or
      "poll" (conditional GETs every ttl_s).
    fallback: a lock file (promptgate.lock.json, see promptgate.lockfile) served when the
      registry cannot be reached at start; the registry takes over when it answers.
    """

    def __init__(
        self,
        registry: str,
        api_key: str | None = None,
        refresh: str = "events",
        ttl_s: float = 30.0,
        fallback: str | os.PathLike[str] | None = None,
        *,
        timeout_s: float = 5.0,
        max_backoff_s: float = 10.0,
        long_poll_s: float = 25.0,
    ) -> None:
        if refresh not in ("events", "poll"):
            raise ValueError(f"refresh must be 'events' or 'poll', not {refresh!r}")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.registry = registry
        self.refresh = refresh
        self.ttl_s = float(ttl_s)
        self._max_backoff_s = float(max_backoff_s)
        self._long_poll_s = float(long_poll_s)
        self._source: _HttpSource | _StoreSource
        if registry.startswith(("http://", "https://")):
            key = api_key if api_key is not None else os.environ.get("PROMPTGATE_API_KEY")
            self._source = _HttpSource(registry, key, timeout_s)
            self._events = refresh == "events"
        elif registry.startswith(("sqlite:", "postgresql:", "postgres:", "postgresql+psycopg:")):
            self._source = _StoreSource(registry)
            self._events = False
        else:
            raise ValueError(
                f"bad registry URL {registry!r}: use http(s)://server, "
                "sqlite:///path or postgresql://..."
            )
        self._fallback_path = str(fallback) if fallback is not None else None
        self._lock_doc = read_lock(fallback) if fallback is not None else None

        # The hot path reads only _cache. Everything else is the refresher's bookkeeping.
        self._cache: dict[_Key, Prompt | _Failure] = {}
        self._good: dict[_Key, Prompt] = {}  # last good prompt per key (kept while refused)
        self._watched: dict[_Key, str] = {}  # label entries -> effective label
        self._etags: dict[_Key, str | None] = {}
        self._seqs: dict[_Key, int] = {}  # label entries -> the event seq their answer reflects
        self._behind_since: dict[_Key, float] = {}  # entries answered older since then
        self._watch_gen = 0  # bumped whenever a label entry starts being watched
        self._from_lock: set[_Key] = set()
        self._snapshots: dict[tuple[str, tuple[str, ...] | None], PromptSnapshot] = {}
        self._cursor: int | None = None
        self._down = False
        self._down_since = 0.0
        self._refused = False
        self._needs_resync = False
        self._next_resync = 0.0
        self._closed = False
        self._gen = 0
        self._thread: threading.Thread | None = None
        self._init_locks()
        _LIVE.add(self)

    def _init_locks(self) -> None:
        self._wlock = threading.Lock()  # writers only; readers never lock
        self._key_locks: dict[_Key, threading.Lock] = {}
        self._stop = threading.Event()

    # -- reading ----------------------------------------------------------------------------

    def get(self, name: str, label: str | None = None, version: int | None = None) -> Prompt:
        """The prompt at `label` (default "latest"), or at `version`. After the first fetch of
        a (name, label|version) this is a dict read: no I/O, no lock."""
        entry = self._cache.get((name, label, version))
        if entry.__class__ is Prompt:
            return entry
        return self._get_slow((name, label, version), entry)

    def _get_slow(self, key: _Key, entry: Prompt | _Failure | None) -> Prompt:
        if isinstance(entry, _Failure):
            return entry.raise_()  # type: ignore[no-any-return]
        name, label, version = key
        if label is not None and version is not None:
            raise ValueError("give label or version, not both")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise TypeError(f"version must be an int, not {type(version).__name__}")
        lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            entry = self._cache.get(key)
            if entry is not None:  # another thread fetched it meanwhile
                if isinstance(entry, _Failure):
                    return entry.raise_()  # type: ignore[no-any-return]
                return entry
            if self._closed:
                raise PromptError("this PromptClient is closed")
            return self._first_fetch(key)

    def _first_fetch(self, key: _Key) -> Prompt:
        name, label, version = key
        effective = None if version is not None else (label or LATEST)
        if self._down and self._lock_doc is not None:
            locked = self._from_lockfile(key)  # a known outage: don't wait on the network
            if locked is not None:
                return locked
        try:
            if version is not None:
                prompt = _make_prompt(self._source.version(name, version), None)
                etag, read_at = None, None
            elif self._events:
                assert effective is not None
                for attempt in range(4):
                    seq, found = self._source.snapshot(effective, [name])
                    if name not in found:
                        raise _NotFound(f"unknown ref {name}@{effective}")
                    prompt = _make_prompt(found[name], effective)
                    with self._wlock:
                        if self._cursor is None:
                            self._cursor = seq
                        if self._cursor <= seq or attempt == 3:
                            # every event after `seq` is yet to be matched against _watched
                            self._install(key, prompt, effective, None, seq)
                            if self._cursor > seq:
                                self._needs_resync = True
                            break
                    # the refresher consumed events past `seq` without this key: read again
                self._mark_up()
                self._ensure_refresher()
                return prompt
            else:
                data, etag, read_at = self._source.label(name, effective)  # type: ignore[arg-type]
                assert data is not None
                prompt = _make_prompt(data, effective)
        except _NotFound as exc:
            raise PromptNotFound(str(exc)) from None
        except _Transient as exc:
            locked = self._from_lockfile(key, reason=str(exc))
            if locked is not None:
                return locked
            raise PromptUnavailable(
                f"registry {self.registry} unreachable and {self._describe(key)} is not cached"
                + (" or locked" if self._lock_doc is not None else "")
                + f": {exc}"
            ) from None
        with self._wlock:
            self._install(key, prompt, effective, etag, read_at)
        self._mark_up()
        if effective is not None:
            self._ensure_refresher()
        return prompt

    def _install(
        self,
        key: _Key,
        prompt: Prompt,
        effective: str | None,
        etag: str | None,
        seq: int | None = None,
    ) -> None:
        """A first fetch's result into the cache (caller holds _wlock)."""
        self._put(key, prompt)
        self._from_lock.discard(key)
        if effective is not None:
            self._watched[key] = effective
            self._etags[key] = etag
            self._watch_gen += 1
            if seq is not None:
                self._seqs[key] = seq

    @staticmethod
    def _describe(key: _Key) -> str:
        name, label, version = key
        return f"{name}@v{version}" if version is not None else f"{name}@{label or LATEST}"

    def _from_lockfile(self, key: _Key, reason: str | None = None) -> Prompt | None:
        """Serve `key` from the lock file, if it holds it; the first use warns (once)."""
        doc = self._lock_doc
        if doc is None:
            return None
        name, label, version = key
        entry = doc["prompts"].get(name)
        if entry is None:
            return None
        if version is not None:
            if entry["version"] != version:
                return None
            effective = None
        else:
            effective = label or LATEST
            if effective != doc["label"]:
                return None
        prompt = _make_prompt(entry, effective)
        with self._wlock:
            announce = not self._down
            if announce:
                self._down, self._down_since, self._needs_resync = True, time.monotonic(), True
            self._install(key, prompt, effective, None)
            self._from_lock.add(key)
        if announce:
            log.warning(
                "promptgate: registry %s unreachable (%s); serving prompts from lock "
                "file %s (label %s, written %s) until it answers",
                self.registry,
                reason or "at start",
                self._fallback_path,
                doc["label"],
                doc.get("created_at"),
            )
        self._ensure_refresher()
        return prompt

    def snapshot(self, names: Sequence[str] | None = None, label: str = LATEST) -> PromptSnapshot:
        """The versions of `names` (every prompt at the label when None) at `label`, read at
        one event seq: a chain never mixes a new parent with an old child. Reads the registry
        on every call; when it cannot be reached, the last snapshot of the same names and label
        (or the lock file) is served."""
        wanted = tuple(dict.fromkeys(names)) if names else None
        key = (label, wanted)
        try:
            seq, found = self._source.snapshot(label, wanted)
        except _NotFound as exc:
            raise PromptNotFound(str(exc)) from None
        except _Transient as exc:
            stale = self._snapshots.get(key) or self._snapshot_from_lock(label, wanted)
            if stale is None:
                raise PromptUnavailable(f"registry {self.registry} unreachable: {exc}") from None
            self._went_down(str(exc))
            return stale
        missing = [n for n in wanted or () if n not in found]
        if missing:
            raise PromptNotFound(f"unknown ref {missing[0]}@{label}")
        snap = PromptSnapshot(
            label=label,
            seq=seq,
            prompts=_FrozenDict({n: _make_prompt(found[n], label) for n in sorted(found)}),
        )
        self._snapshots[key] = snap
        self._mark_up()
        return snap

    def lock_versions(self, label: str, names: Sequence[str] | None) -> dict[str, dict[str, Any]]:
        """`snapshot` as version objects: what `promptgate.lockfile` writes."""
        return {name: p.to_json() for name, p in self.snapshot(names, label=label).prompts.items()}

    def _snapshot_from_lock(
        self, label: str, wanted: tuple[str, ...] | None
    ) -> PromptSnapshot | None:
        doc = self._lock_doc
        if doc is None or doc["label"] != label:
            return None
        names = wanted or tuple(doc["prompts"])
        if any(n not in doc["prompts"] for n in names):
            return None
        return PromptSnapshot(
            label=label,
            seq=None,
            prompts=_FrozenDict({n: _make_prompt(doc["prompts"][n], label) for n in sorted(names)}),
        )

    # -- cache writes (refresher and first fetches; always under _wlock) ---------------------

    def _put(self, key: _Key, value: Prompt | _Failure) -> None:
        self._cache[key] = value
        if isinstance(value, Prompt):
            self._good[key] = value

    def _older(self, key: _Key, seq: int | None) -> bool:
        """Whether an answer read at `seq` is older than what `key` holds (caller holds _wlock).
        Such an answer (a replica that has not seen the last move yet) is ignored, so a label
        entry never goes backwards; a registry whose seq stays lower for _BEHIND_GRACE_S (one
        restored from a backup) is believed."""
        known = self._seqs.get(key)
        if seq is None or known is None or seq >= known:
            self._behind_since.pop(key, None)
            return False
        since = self._behind_since.setdefault(key, time.monotonic())
        if time.monotonic() - since < _BEHIND_GRACE_S:
            return True
        self._behind_since.pop(key, None)
        return False

    def _swap(
        self,
        key: _Key,
        data: dict[str, Any] | None,
        label: str,
        etag: str | None = None,
        seq: int | None = None,
    ) -> None:
        """Install what the registry says `key` is now: a version object, or None (gone),
        unless the answer is older (`seq`) than what `key` holds."""
        with self._wlock:
            if key not in self._watched or self._older(key, seq):
                return
            if seq is not None:
                self._seqs[key] = seq
            self._etags[key] = etag
            self._from_lock.discard(key)
            current = self._cache.get(key)
            if data is None:
                if not isinstance(current, _Failure) or current.cls is not PromptNotFound:
                    name = key[0]
                    self._put(
                        key,
                        _Failure(
                            PromptNotFound,
                            f"unknown ref {name}@{label}: label {label!r} is "
                            "not set (it was removed)",
                        ),
                    )
                return
            if (
                isinstance(current, Prompt)
                and current.version == data.get("version")
                and current.content_hash == data.get("content_hash")
                and current.resolved_hash == _stated_resolved_hash(data)
            ):
                return
        prompt = _make_prompt(data, label)  # outside the lock: hashing and parsing
        with self._wlock:
            if key in self._watched and (seq is None or self._seqs.get(key, seq) <= seq):
                self._put(key, prompt)

    # -- the refresher ------------------------------------------------------------------------

    def _ensure_refresher(self) -> None:
        if self._thread is not None or self._closed:
            return
        with self._wlock:
            if self._thread is not None or self._closed:
                return
            self._next_resync = time.monotonic() + self._resync_every()
            self._thread = threading.Thread(
                target=_refresher_main,
                args=(weakref.ref(self), self._source, self._stop, self._gen, self._first_delay()),
                name="promptgate-sdk-refresh",
                daemon=True,
            )
            self._thread.start()

    def _first_delay(self) -> float:
        if self._needs_resync:  # serving a lock file: try the registry soon
            return self._backoff(1)
        return 0.0 if self._events else self.ttl_s

    def _resync_every(self) -> float:
        return 10 * self.ttl_s

    def _backoff(self, failures: int, cap: float | None = None) -> float:
        cap = self._max_backoff_s if cap is None else cap
        delay = min(cap, 0.25 * 2 ** min(failures - 1, 16))
        return random.uniform(delay / 2, delay)  # equal jitter: never 0, never in lockstep

    def _step(self) -> float:
        """One refresher step; returns how long to wait before the next."""
        if not self._events:
            self._poll_all()
            self._mark_up()
            return self.ttl_s
        now = time.monotonic()
        if self._needs_resync or self._cursor is None or now >= self._next_resync:
            self._resync()
            self._needs_resync = False
            self._next_resync = now + self._resync_every()
            self._mark_up()
        self._follow_events()
        self._mark_up()
        return 0.0

    def _groups(self) -> dict[str, dict[str, list[_Key]]]:
        """Watched label entries: label -> name -> cache keys."""
        return self._groups_gen()[0]

    def _groups_gen(self) -> tuple[dict[str, dict[str, list[_Key]]], int]:
        out: dict[str, dict[str, list[_Key]]] = {}
        with self._wlock:
            for key, label in self._watched.items():
                out.setdefault(label, {}).setdefault(key[0], []).append(key)
            return out, self._watch_gen

    def _poll_all(self) -> None:
        if isinstance(self._source, _StoreSource):
            self._poll_store()
            return
        for label, by_name in self._groups().items():
            for name, keys in by_name.items():
                for key in keys:
                    etag = None if key in self._from_lock else self._etags.get(key)
                    try:
                        data, new_tag, seq = self._source.label(name, label, etag, back=True)
                    except _NotFound:
                        self._swap(key, None, label)
                        continue
                    if data is None:  # 304: unchanged
                        continue
                    self._swap(key, data, label, new_tag, seq)

    def _poll_store(self) -> None:
        source = self._source
        assert isinstance(source, _StoreSource)
        for label, by_name in self._groups().items():
            at = source.label_map(label)
            for name, keys in by_name.items():
                version = at.get(name)
                data: dict[str, Any] | None = None
                for key in keys:
                    current = self._cache.get(key)
                    if (
                        version is not None
                        and isinstance(current, Prompt)
                        and current.version == version
                        and all(at.get(p) == v for p, v in current._follows.items())
                        and key not in self._from_lock
                    ):
                        continue
                    if version is not None and data is None:
                        try:
                            data, _tag, _seq = source.label(name, label)
                        except _NotFound:  # the label moved off it meanwhile: next round
                            continue
                    self._swap(key, data, label)

    def _fetch_labels(
        self, label: str, names: Sequence[str]
    ) -> tuple[int | None, dict[str, dict[str, Any] | None], dict[str, int]]:
        """Each name's version object at `label` (None when not set), the lowest seq read at,
        and each name's seq; one request for the group unless some label is gone."""
        found: dict[str, dict[str, Any] | None] = {}
        at: dict[str, int] = {}
        for i in range(0, len(names), 50):
            chunk = list(names[i : i + 50])
            try:
                seq, got = self._source.snapshot(label, chunk, back=True)
                found.update({n: got.get(n) for n in chunk})
                at.update({n: seq for n in chunk})
            except _NotFound:
                for name in chunk:
                    try:
                        seq, got = self._source.snapshot(label, [name], back=True)
                        found[name], at[name] = got.get(name), seq
                    except _NotFound:
                        found[name] = None
        return (min(at.values()) if at else None), found, at

    def _resync(self) -> None:
        """Re-read every watched label (after an outage, at start, and as a safety net)."""
        low: int | None = None
        for label, by_name in self._groups().items():
            seq, found, at = self._fetch_labels(label, sorted(by_name))
            if seq is not None:
                low = seq if low is None else min(low, seq)
            for name, keys in by_name.items():
                for key in keys:
                    self._swap(key, found.get(name), label, seq=at.get(name))
        with self._wlock:
            if low is not None and (self._cursor is None or low < self._cursor):
                self._cursor = low  # (a registry restored from a backup has a lower seq)

    def _follow_events(self) -> None:
        cursor = self._cursor
        assert cursor is not None
        events = self._source.events(cursor, self._long_poll_s)  # type: ignore[union-attr]
        top = max([cursor] + [e["seq"] for e in events if isinstance(e.get("seq"), int)])
        moved = {
            (e.get("label"), e.get("prompt")) for e in events if e.get("type") not in _NO_LABEL_MOVE
        }
        done: set[tuple[str, str]] = set()
        while True:
            groups, gen = self._groups_gen()
            touched: dict[str, set[str]] = {}
            for label, name in moved | self._includers(moved, groups):
                if label in groups and name in groups[label] and (label, name) not in done:
                    touched.setdefault(label, set()).add(name)
            for label, names in touched.items():
                _seq, found, at = self._fetch_labels(label, sorted(names))
                for name in names:
                    for key in groups[label][name]:
                        self._swap(key, found.get(name), label, seq=at.get(name))
                    done.add((label, name))
            with self._wlock:
                if self._watch_gen == gen:  # no entry started being watched meanwhile
                    if self._cursor == cursor:
                        self._cursor = top
                    return
            # entries fetched while this batch was in flight may be touched by it: look again

    def _includers(
        self, moved: set[tuple[Any, Any]], groups: dict[str, dict[str, list[_Key]]]
    ) -> set[tuple[Any, Any]]:
        """(label, name) of the watched prompts that include a partial whose label moved."""
        out: set[tuple[Any, Any]] = set()
        for label, by_name in groups.items():
            for name, keys in by_name.items():
                for key in keys:
                    current = self._cache.get(key)
                    follows = current._follows if isinstance(current, Prompt) else {}
                    if any((label, partial) in moved for partial in follows):
                        out.add((label, name))
        return out

    # -- health -------------------------------------------------------------------------------

    def _went_down(self, why: str) -> None:
        with self._wlock:
            if self._down:
                return
            self._down, self._down_since, self._needs_resync = True, time.monotonic(), True
        log.warning(
            "promptgate: registry %s unreachable (%s); serving the last good prompts "
            "and retrying with backoff",
            self.registry,
            why,
        )

    def _mark_up(self) -> None:
        if not self._down and not self._refused:
            return
        with self._wlock:
            was_down, was_refused = self._down, self._refused
            self._down = self._refused = False
            if was_refused:  # the key works again: restore what the refusal hid
                for key, prompt in self._good.items():
                    entry = self._cache.get(key)
                    if isinstance(entry, _Failure) and entry.cls is PromptAccessError:
                        self._cache[key] = prompt
                self._needs_resync = True
        if was_down:
            log.info(
                "promptgate: registry %s answers again after %.1f s; re-reading prompts",
                self.registry,
                time.monotonic() - self._down_since,
            )

    def _denied(self, exc: PromptAccessError) -> None:
        with self._wlock:
            first = not self._refused
            self._refused = True
            self._needs_resync = True
            for key in list(self._cache):
                self._cache[key] = _Failure(PromptAccessError, str(exc))
        if first:
            log.error(
                "promptgate: %s; every get raises PromptAccessError until it is accepted", exc
            )

    # -- lifecycle ----------------------------------------------------------------------------

    def _after_fork(self) -> None:
        """In a forked child: new locks and connections, and a refresher of its own."""
        self._init_locks()
        self._thread = None
        self._gen += 1
        if self._closed:
            return
        self._source.after_fork()
        if self._watched:
            self._needs_resync = True
            self._ensure_refresher()

    def close(self) -> None:
        """Stop the refresher and close connections. Cached prompts stay readable."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._gen += 1
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._source.close()
        else:  # the refresher closes its own connection when its request returns
            self._source.close(front=True, back=False)
            self._source.interrupt()  # a long-poll in flight returns now, not in ~25 s
            if thread is not threading.current_thread():
                thread.join(timeout=2.0)
            if isinstance(self._source, _StoreSource):
                self._source.close()
        _LIVE.discard(self)

    def __enter__(self) -> PromptClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PromptClient({self.registry!r}, refresh={self.refresh!r}, ttl_s={self.ttl_s})"


class AsyncPromptClient:
    """PromptClient for asyncio apps: the same arguments and cache. `await client.get(...)`
    answers from the cache without I/O after the first fetch; a first fetch runs in a worker
    thread, so the event loop never blocks on the registry."""

    def __init__(
        self,
        registry: str,
        api_key: str | None = None,
        refresh: str = "events",
        ttl_s: float = 30.0,
        fallback: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> None:
        self.sync = PromptClient(
            registry, api_key=api_key, refresh=refresh, ttl_s=ttl_s, fallback=fallback, **options
        )

    async def get(self, name: str, label: str | None = None, version: int | None = None) -> Prompt:
        entry = self.sync._cache.get((name, label, version))
        if entry.__class__ is Prompt:
            return entry
        if isinstance(entry, _Failure):
            return entry.raise_()  # type: ignore[no-any-return]
        return await asyncio.to_thread(self.sync.get, name, label, version)

    async def snapshot(
        self, names: Sequence[str] | None = None, label: str = LATEST
    ) -> PromptSnapshot:
        return await asyncio.to_thread(self.sync.snapshot, names, label)

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncPromptClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return "Async" + repr(self.sync)
