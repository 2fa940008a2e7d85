"""Opening a registry by URL: a database store directly, or a registry server over HTTP.

`open_backend` gives the CLI one typed record of what it talks to (`Backend`): the registry
(`store.protocol.Registry`), its key admin, and the server when the registry is one (which then
decides protected-label promotions as requests), so no command asks which kind of store it
holds. This is the one place that chooses a backend by URL.

`RemoteStore` speaks the server's /v1 API with `PROMPTGATE_API_KEY` and implements `Registry`,
as `Store` does, so every command works unchanged against a server. Model responses are
cached locally (`.promptgate/cache.db`), since the cache is not part of the server's API.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from .domain import (
    ApiKey,
    AuditEvent,
    Label,
    LabelMove,
    PromotionRequest,
    PromptVersion,
    PushResult,
)
from .errors import (
    BadInput,
    LabelConflict,
    PromptgateError,
    ProtectedLabel,
    RegistryIntegrityError,
    UnknownRef,
)
from .store import LocalKeys, PendingPush, Registry, Store


class RegistryUnavailable(PromptgateError):
    """The registry server could not be reached or failed."""


class KeyAdmin(Protocol):
    """API keys of a registry: `LocalKeys` over a database, `RemoteStore` over a server."""

    def create_key(self, name: str, role: str) -> str: ...
    def list_keys(self) -> list[ApiKey]: ...
    def revoke_key(self, name: str) -> None: ...


@dataclass(frozen=True)
class Backend:
    """What the CLI talks to. `server` is set when the registry is a server: a promotion to a
    protected label is then a request the server gates and approvers decide, and labels move
    only there (`promote --from-report` refuses)."""

    store: Registry
    keys: KeyAdmin
    server: RemoteStore | None


_SERVER_SCHEMES = ("http://", "https://")
_DATABASE_SCHEMES = ("sqlite://", "postgresql://", "postgres://", "postgresql+psycopg://")


def open_backend(url: str, *, create: bool = False) -> Backend:
    """The backend for `url`: sqlite:///..., postgresql://..., or http(s):// (a server).
    (Both `Backend`s built here hold their store as a `Registry`: the type checker holds
    `Store` and `RemoteStore` to the protocol.)"""
    if url.startswith(_SERVER_SCHEMES):
        server = RemoteStore(url, api_key=os.environ.get("PROMPTGATE_API_KEY"))
        return Backend(server, server, server)
    if not url.startswith(_DATABASE_SCHEMES):
        raise BadInput(
            f"bad registry URL {url!r}: use sqlite:///path, postgresql://... or http(s)://server"
        )
    store = Store(url, create=create)
    return Backend(store, LocalKeys(store), None)


def open_store(url: str, *, create: bool = False) -> Registry:
    """The registry at `url`: a `Store` for a database, a `RemoteStore` for a server."""
    return open_backend(url, create=create).store


def open_database(url: str, *, create: bool = False) -> Store:
    """The database registry at `url` (sqlite:///... or postgresql://...): what a registry
    server serves, with the tables only a database has (keys, promotion requests, ...)."""
    if url.startswith(_SERVER_SCHEMES):
        raise BadInput(
            f"{url} is a registry server: a server serves a database "
            "(sqlite:///path or postgresql://...)"
        )
    if not url.startswith(_DATABASE_SCHEMES):
        raise BadInput(f"bad registry URL {url!r}: use sqlite:///path or postgresql://...")
    return Store(url, create=create)


def _error_body(response: Any) -> tuple[str | None, str]:
    """The `error` and `detail` of a server's error response (the text when it is not JSON)."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:200]
    if not isinstance(body, dict):
        return None, response.text[:200]
    error = body.get("error")
    return (error if isinstance(error, str) else None), str(body.get("detail", response.text))


def _version(data: dict[str, Any]) -> PromptVersion:
    return PromptVersion(
        name=data["name"],
        version=data["version"],
        content_hash=data["content_hash"],
        content=data["content"],
        message=data["message"],
        author=data["author"],
        created_at=datetime.fromisoformat(data["created_at"]),
        labels=tuple(data.get("labels", ())),
    )


def _event(data: dict[str, Any]) -> AuditEvent:
    return AuditEvent(
        id=data["seq"],
        type=data["type"],
        prompt=data["prompt"],
        label=data.get("label"),
        from_version=data.get("from"),
        to_version=data.get("to"),
        actor=data["actor"],
        reason=data.get("reason", ""),
        at=datetime.fromisoformat(data["at"]),
        details=data.get("details") or {},
    )


class RemoteStore:
    """A registry server, as the CLI sees it: a `Registry`, plus promotion requests and keys."""

    dialect = "http"

    def __init__(self, url: str, api_key: str | None) -> None:
        import httpx

        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=60)
        self._cache: Store | None = None

    # -- plumbing -----------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"registry {self.url} unreachable: {exc}") from None
        if response.status_code < 300:
            return response.json() if response.content else None
        error, detail = _error_body(response)
        status = response.status_code
        if error == "integrity":
            raise RegistryIntegrityError(f"registry {self.url}: {detail}")
        if status == 401:
            raise BadInput(f"registry {self.url}: {detail} (set PROMPTGATE_API_KEY)")
        if status == 403:
            raise ProtectedLabel(f"registry {self.url}: {detail}")
        if status == 404:
            raise UnknownRef(detail)
        if status in (409, 412):
            raise LabelConflict(detail)
        if status in (400, 422):
            raise BadInput(detail)
        raise RegistryUnavailable(f"registry {self.url}: HTTP {status}: {detail}")

    def close(self) -> None:
        self.http.close()
        if self._cache is not None:
            self._cache.close()

    def migrate(self) -> list[int]:
        self.ensure_ready()
        return []

    def ensure_ready(self) -> None:
        self._call("GET", "/v1/prompts")

    # -- reads --------------------------------------------------------------------------------

    def list_prompts(self) -> list[PromptVersion]:
        return [_version(v) for v in self._call("GET", "/v1/prompts")]

    def history(self, name: str) -> list[PromptVersion]:
        return [_version(v) for v in self._call("GET", f"/v1/prompts/{quote(name)}/versions")]

    def get_version(self, name: str, version: int) -> PromptVersion:
        return _version(
            self._call("GET", f"/v1/prompts/{quote(name)}", params={"version": version})
        )

    def resolve(self, name: str, label: str = "latest") -> PromptVersion:
        return _version(self._call("GET", f"/v1/prompts/{quote(name)}", params={"label": label}))

    def exists(self, name: str) -> bool:
        try:
            self.history(name)
        except UnknownRef:
            return False
        return True

    def label_version(self, name: str, label: str) -> int | None:
        try:
            return self.resolve(name, label).version
        except UnknownRef:
            return None

    def list_at_label(self, label: str) -> list[PromptVersion]:
        snap = self._call("GET", "/v1/snapshot", params={"label": label})
        return [_version(v) for _, v in sorted(snap["prompts"].items())]

    def label_map(self, label: str) -> dict[str, int]:
        return {v.name: v.version for v in self.list_at_label(label)}

    def lock_versions(self, label: str, names: Sequence[str] | None) -> dict[str, dict[str, Any]]:
        params = {"label": label}
        if names:
            params["names"] = ",".join(names)
        return dict(self._call("GET", "/v1/snapshot", params=params)["prompts"])

    def labels(self, name: str | None = None) -> list[Label]:
        raise BadInput("listing label rows is not available through a server")

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
        events: list[AuditEvent] = []
        cursor = before
        while True:
            params: dict[str, Any] = {"limit": min(limit or 1000, 1000)}
            if prompt:
                params["prompt"] = prompt
            if label:
                params["label"] = label
            if cursor:
                params["before"] = cursor
            page = self._call("GET", "/v1/audit", params=params)
            events += [_event(e) for e in page["events"]]
            cursor = page["next"]
            if cursor is None or (limit is not None and len(events) >= limit):
                break
        if since is not None:
            events = [e for e in events if e.id > since]
        if types is not None:
            wanted = set(types)
            events = [e for e in events if e.type in wanted]
        events = events[:limit] if limit is not None else events
        return list(reversed(events)) if oldest_first else events

    def label_moves(self, name: str, label: str) -> list[AuditEvent]:
        return self.audit(prompt=name, label=label, oldest_first=True)

    # -- writes -------------------------------------------------------------------------------

    def push(self, items: Sequence[PendingPush], *, message: str, author: str) -> list[PushResult]:
        """One request per prompt (validated together beforehand): the server records the
        key's name as the author."""
        results = []
        for item in items:
            response = self.http.post(
                f"/v1/prompts/{quote(item.name)}/versions",
                json={"content": item.content, "message": message},
            )
            if response.status_code not in (200, 201):
                self._raise(response)
            results.append(
                PushResult(version=_version(response.json()), created=response.status_code == 201)
            )
        return results

    def _raise(self, response: Any) -> None:
        error, detail = _error_body(response)
        if error == "integrity":
            raise RegistryIntegrityError(f"registry {self.url}: {detail}")
        raise {
            401: BadInput,
            403: ProtectedLabel,
            404: UnknownRef,
            409: LabelConflict,
            412: LabelConflict,
            400: BadInput,
            422: BadInput,
        }.get(response.status_code, RegistryUnavailable)(str(detail))

    def move_labels(
        self,
        moves: Sequence[LabelMove],
        *,
        actor: str,
        details: dict[str, Any] | None = None,
        event_type: str = "move",
    ) -> list[AuditEvent]:
        events = []
        for move in moves:
            if (details or {}).get("rollback"):
                events.append(
                    _event(
                        self._call(
                            "POST",
                            f"/v1/prompts/{quote(move.prompt)}/labels/{quote(move.label)}/rollback",
                            json={"to": move.to_version, "reason": move.reason},
                        )
                    )
                )
                continue
            if move.expect == move.to_version:
                continue
            tag = '"none"' if move.expect is None else f'"{move.expect}"'
            self._call(
                "PUT",
                f"/v1/prompts/{quote(move.prompt)}/labels/{quote(move.label)}",
                json={"version": move.to_version, "reason": move.reason},
                headers={"If-Match": tag},
            )
            latest = self.audit(prompt=move.prompt, label=move.label, limit=1)
            events.extend(latest)
        return events

    def remove_label(
        self, name: str, label: str, *, expect: int | None, actor: str, reason: str
    ) -> AuditEvent:
        return _event(
            self._call(
                "DELETE",
                f"/v1/prompts/{quote(name)}/labels/{quote(label)}",
                json={"reason": reason},
            )
        )

    # -- promotion requests -------------------------------------------------------------------

    def request_promotion(self, refs: Sequence[str], label: str, reason: str) -> PromotionRequest:
        return PromotionRequest.from_json(
            self._call(
                "POST",
                "/v1/promotions",
                json={"refs": list(refs), "label": label, "reason": reason},
            )
        )

    def promotion(self, pid: int) -> PromotionRequest:
        return PromotionRequest.from_json(self._call("GET", f"/v1/promotions/{pid}"))

    # -- keys ---------------------------------------------------------------------------------

    def create_key(self, name: str, role: str) -> str:
        return str(self._call("POST", "/v1/keys", json={"name": name, "role": role})["key"])

    def list_keys(self) -> list[ApiKey]:
        return [ApiKey.from_json(k) for k in self._call("GET", "/v1/keys")]

    def revoke_key(self, name: str) -> None:
        self._call("DELETE", f"/v1/keys/{quote(name)}")

    # -- the local response cache and reports ---------------------------------------------------

    def _local(self) -> Store:
        if self._cache is None:
            path = Path(".promptgate") / "cache.db"
            self._cache = Store(f"sqlite:///{path}", create=True)
            self._cache.migrate()
        return self._cache

    def cache_get(self, key: str) -> dict[str, Any] | None:
        return self._local().cache_get(key)

    def cache_get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        return self._local().cache_get_many(keys)

    def cache_put_many(self, entries: Sequence[tuple[str, str, dict[str, Any]]]) -> int:
        return self._local().cache_put_many(entries)

    def cache_entries(self) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
        return self._local().cache_entries()

    def save_report(self, digest: str, verdict: str, report: dict[str, Any]) -> int:
        return self._local().save_report(digest, verdict, report)
