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


# -- the registry server's records ----------------------------------------------------------------
# Timestamps are the ISO 8601 UTC text the database holds, served as they are stored.


@dataclass(frozen=True)
class PromotionRequest:
    """A request to move a protected label to frozen candidate versions (README: "The registry
    server and web UI"). `candidates` maps each prompt to its {version, content_hash}; `baseline`
    to the version the label pointed at when the gate judged it (None: not set); `state` is
    gating | passed | failed | approved | rejected | stale | withdrawn."""

    id: int
    refs: tuple[str, ...]
    label: str
    reason: str
    author: str
    state: str
    candidates: dict[str, dict[str, Any]]
    baseline: dict[str, int | None]
    report_id: int | None  # the gate's report, once there is one
    progress: dict[str, int]  # {done, total}: candidate cases run while gating
    decided_by: str | None
    comment: str | None
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        """The /v1/promotions shape."""
        return {
            "id": self.id,
            "refs": list(self.refs),
            "label": self.label,
            "reason": self.reason,
            "author": self.author,
            "state": self.state,
            "candidates": {n: dict(c) for n, c in self.candidates.items()},
            "baseline": dict(self.baseline),
            "report": self.report_id,
            "progress": dict(self.progress),
            "decided_by": self.decided_by,
            "comment": self.comment,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PromotionRequest:
        return cls(
            id=data["id"],
            refs=tuple(data["refs"]),
            label=data["label"],
            reason=data["reason"],
            author=data["author"],
            state=data["state"],
            candidates=dict(data["candidates"]),
            baseline=dict(data["baseline"]),
            report_id=data.get("report"),
            progress=dict(data.get("progress") or {}),
            decided_by=data.get("decided_by"),
            comment=data.get("comment"),
            created_at=data["created_at"],
            updated_at=data["updated_at"],
        )


@dataclass(frozen=True)
class ApiKey:
    """An API key as it is listed: its name, role and dates, never the key (only its hash is
    stored, and the key is shown once, when made)."""

    name: str
    role: str  # viewer | editor | approver | admin
    created_at: str
    revoked_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The /v1/keys and `keys list --json` shape."""
        return {
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApiKey:
        return cls(
            name=data["name"],
            role=data["role"],
            created_at=data["created_at"],
            revoked_at=data.get("revoked_at"),
        )


@dataclass(frozen=True)
class WebhookDelivery:
    """One attempt to deliver an audit event to a webhook: `status` is the HTTP status of the
    last try (None when none answered), `error` what went wrong, if anything."""

    id: int
    url: str
    event_seq: int
    event_type: str
    status: int | None
    attempts: int
    error: str | None
    at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "event_seq": self.event_seq,
            "event_type": self.event_type,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WebhookDelivery:
        return cls(
            id=data["id"],
            url=data["url"],
            event_seq=data["event_seq"],
            event_type=data["event_type"],
            status=data.get("status"),
            attempts=data["attempts"],
            error=data.get("error"),
            at=data["at"],
        )
