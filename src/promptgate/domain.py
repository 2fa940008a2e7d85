"""The domain values: plain frozen dataclasses with no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class PromptVersion:
    """An immutable snapshot of a prompt's content, numbered per prompt."""

    name: str
    version: int
    content_hash: str
    content: dict[str, Any]
    message: str
    author: str
    created_at: datetime
    labels: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    def to_json(self) -> dict[str, Any]:
        """The `show --json` shape, shared by the CLI and the server API."""
        return {
            "name": self.name,
            "version": self.version,
            "content_hash": self.content_hash,
            "labels": list(self.labels),
            "message": self.message,
            "author": self.author,
            "created_at": self.created_at.isoformat(),
            "content": self.content,
        }


@dataclass(frozen=True)
class Label:
    """A movable pointer from a prompt to one of its versions."""

    prompt: str
    label: str
    version: int
    revision: int
    updated_at: datetime


@dataclass(frozen=True)
class AuditEvent:
    """One append-only audit record: a push, a label move or a removal."""

    id: int
    type: str  # push | move | remove | request | decision
    prompt: str
    label: str | None
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.id,
            "type": self.type,
            "prompt": self.prompt,
            "version": self.to_version,
            "label": self.label,
            "from": self.from_version,
            "to": self.to_version,
            "actor": self.actor,
            "reason": self.reason,
            "at": self.at.isoformat(),
            "details": self.details,
        }


@dataclass(frozen=True)
class LabelMove:
    """A requested compare-and-swap move: `expect` None means the label must not be set."""

    prompt: str
    label: str
    to_version: int
    expect: int | None
    reason: str = ""


@dataclass(frozen=True)
class PendingPush:
    """A validated prompt to push: its name, normalised content and content hash."""

    name: str
    content: dict[str, Any]
    content_hash: str


@dataclass(frozen=True)
class PushResult:
    """What a push did for one prompt: a new version, or the identical existing one."""

    version: PromptVersion
    created: bool
