"""`Registry`: what the CLI, the gate and the registry operations read and write, whichever
backend holds the prompts.

`Store` (a database, `store.core`) and `RemoteStore` (a registry server over HTTP,
`promptgate.remote`) both implement it, and `promptgate.remote.open_store` returns one. Code
written against `Registry` never asks which of the two it holds. What only a database has (its
transactions, the server's tables) stays on `Store`; what only a server has (promotion
requests) on `RemoteStore`.

This module imports only domain values, so every layer may depend on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from ..domain import AuditEvent, LabelMove, PendingPush, PromptVersion, PushResult


class Registry(Protocol):
    """A prompt registry: versions, labels, the audit log, the response cache and reports."""

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Release what the registry holds (connections); safe to call twice."""
        ...

    def migrate(self) -> list[int]:
        """Bring the schema up to date; the migrations applied (none through a server)."""
        ...

    def ensure_ready(self) -> None:
        """BadInput unless the registry is initialised and reachable."""
        ...

    # -- reads --------------------------------------------------------------------------------

    def get_version(self, name: str, version: int) -> PromptVersion: ...

    def resolve(self, name: str, label: str = ...) -> PromptVersion:
        """The version `label` (default `latest`) points at; UnknownRef when unset."""
        ...

    def label_version(self, name: str, label: str) -> int | None: ...

    def exists(self, name: str) -> bool: ...

    def history(self, name: str) -> list[PromptVersion]:
        """Every version of `name`, oldest first."""
        ...

    def list_prompts(self) -> list[PromptVersion]:
        """Every prompt's latest version, by name."""
        ...

    def list_at_label(self, label: str) -> list[PromptVersion]:
        """Every prompt's version at `label` (prompts without it are absent), by name."""
        ...

    def label_map(self, label: str) -> dict[str, int]: ...

    def lock_versions(self, label: str, names: Sequence[str] | None) -> dict[str, dict[str, Any]]:
        """Version objects (`show --json`, with their resolution) at `label`, read at one
        event seq: what `promptgate.lockfile` writes."""
        ...

    def audit(
        self,
        *,
        prompt: str | None = None,
        label: str | None = None,
        before: int | None = None,
        since: int | None = None,
        limit: int | None = None,
        oldest_first: bool = False,
        types: Iterable[str] | None = None,
    ) -> list[AuditEvent]:
        """Audit events, newest first unless `oldest_first`."""
        ...

    def label_moves(self, name: str, label: str) -> list[AuditEvent]:
        """The label's history, oldest first."""
        ...

    # -- writes -------------------------------------------------------------------------------

    def push(
        self, items: Sequence[PendingPush], *, message: str, author: str
    ) -> list[PushResult]: ...

    def move_labels(
        self,
        moves: Sequence[LabelMove],
        *,
        actor: str,
        details: dict[str, Any] | None = None,
        event_type: str = "move",
    ) -> list[AuditEvent]:
        """Move every label by compare-and-swap (LabelConflict if one moved meanwhile)."""
        ...

    def remove_label(
        self, name: str, label: str, *, expect: int | None, actor: str, reason: str
    ) -> AuditEvent: ...

    # -- the response cache and reports ---------------------------------------------------------

    def cache_get(self, key: str) -> dict[str, Any] | None: ...

    def cache_get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def cache_put_many(self, entries: Sequence[tuple[str, str, dict[str, Any]]]) -> int: ...

    def cache_entries(self) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
        """Every cached response as (key, model, created_at, response), by key."""
        ...

    def save_report(self, digest: str, verdict: str, report: dict[str, Any]) -> int:
        """Keep a gate report by its digest (idempotent); returns its id."""
        ...
