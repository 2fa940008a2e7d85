"""Lock files (`promptgate.lock.json`): a label's prompts frozen into a file for cold starts.

    {"schema_version": 1, "label": "production", "created_at": "...",
     "prompts": {"summarize": {name, version, content_hash, labels, message, author,
                               created_at, content}, ...}}

Each entry is the `show --json` version object. The prompts are read at one event seq (one
transaction), so a chain in a lock file never mixes a new parent with an old child.
`read_lock` verifies every entry's content hash (and the shape of its content); a file that
fails is refused with `LockfileError`, never half-used. `PromptClient(..., fallback=path)`
serves from the file when the registry cannot be reached at start.

The versions are read through one small interface, `VersionSource.lock_versions`, which
`Store`, `RemoteStore` and `PromptClient` implement: the SDK imports this module, never the
reverse.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from .canonical import content_hash
from .errors import BadInput, UnknownRef
from .files import write_atomically
from .resolved import Resolution

SCHEMA_VERSION = 1
DEFAULT_LOCK_PATH = "promptgate.lock.json"

__all__ = [
    "DEFAULT_LOCK_PATH",
    "SCHEMA_VERSION",
    "LockfileError",
    "VersionSource",
    "read_lock",
    "write_lock",
]


class LockfileError(BadInput, ValueError):
    """A lock file is missing, malformed, or was edited (a content hash does not match)."""


class VersionSource(Protocol):
    """What a lock file is read from. `Store`, `RemoteStore` and `PromptClient` all have it."""

    def lock_versions(self, label: str, names: Sequence[str] | None) -> dict[str, dict[str, Any]]:
        """Version objects (`show --json`) of `names` (all when None) at `label`, read at one
        event seq."""
        ...


def _read_versions(
    source: VersionSource | str | os.PathLike[str], names: Sequence[str] | None, label: str
) -> dict[str, dict[str, Any]]:
    wanted = list(dict.fromkeys(names)) if names else None
    if isinstance(source, (str, os.PathLike)):
        # lazy: the store pulls in SQLAlchemy, which `import promptgate.sdk` must not load
        from .remote import open_store

        store = open_store(str(source))
        try:
            found: dict[str, dict[str, Any]] = store.lock_versions(label, wanted)
        finally:
            store.close()
    else:
        found = source.lock_versions(label, wanted)
    missing = [n for n in wanted or () if n not in found]
    if missing:
        raise UnknownRef(f"unknown ref {missing[0]}@{label}")
    return found


def write_lock(
    store_or_client: VersionSource | str | os.PathLike[str],
    names: Sequence[str] | None,
    label: str,
    path: str | os.PathLike[str] = DEFAULT_LOCK_PATH,
) -> dict[str, Any]:
    """Write the lock file for `names` (every prompt at the label when None or empty) at `label`.

    `store_or_client`: a `promptgate.store.Store`, a `promptgate.remote.RemoteStore`, a
    `PromptClient`, or a registry URL. The versions are read in one transaction (one event
    seq). The file is replaced atomically. Returns the document written. Raises UnknownRef
    (a BadInput: exit 2) when a named prompt has no version at the label, or when no prompt
    has the label at all.
    """
    versions = _read_versions(store_or_client, names, label)
    if not versions:
        raise UnknownRef(f"no prompt has label {label!r}: nothing to lock")
    document = {
        "schema_version": SCHEMA_VERSION,
        "label": label,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "prompts": {name: versions[name] for name in sorted(versions)},
    }
    _check(document, str(path))  # never write a file that read_lock would refuse
    target = Path(path)
    text = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    try:
        write_atomically(target, lambda fh: fh.write(text))
    except OSError as exc:
        raise LockfileError(
            f"{target}: cannot write the lock file: {exc.strerror or exc}"
        ) from None
    return document


def read_lock(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and verify a lock file; returns the document.

    Every entry's `content_hash` must equal `canonical.content_hash(content)` and its content
    must be a valid prompt; anything else raises LockfileError.
    """
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise LockfileError(f"{where}: cannot read the lock file: {exc.strerror or exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise LockfileError(f"{where}: not JSON: {exc}") from None
    _check(document, where)
    return document  # type: ignore[no-any-return]


def _check(document: Any, where: str) -> None:
    if not isinstance(document, Mapping):
        raise LockfileError(f"{where}: a lock file is a JSON object")
    if document.get("schema_version") != SCHEMA_VERSION:
        raise LockfileError(
            f"{where}: schema_version must be {SCHEMA_VERSION}, "
            f"not {document.get('schema_version')!r}"
        )
    label = document.get("label")
    if not isinstance(label, str) or not label:
        raise LockfileError(f"{where}: `label` must be a label name")
    prompts = document.get("prompts")
    if not isinstance(prompts, Mapping):
        raise LockfileError(f"{where}: `prompts` must be an object of name -> version")
    for name, entry in prompts.items():
        at = f"{where}: prompts.{name}"
        if not isinstance(entry, Mapping):
            raise LockfileError(f"{at}: must be a version object")
        if entry.get("name") != name:
            raise LockfileError(f"{at}: name {entry.get('name')!r} does not match its key")
        version = entry.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise LockfileError(f"{at}: version must be a positive integer")
        content = entry.get("content")
        if not isinstance(content, Mapping):
            raise LockfileError(f"{at}: content must be an object")
        try:
            actual = content_hash(content)
        except (TypeError, ValueError):
            raise LockfileError(f"{at}: content is not plain JSON") from None
        if entry.get("content_hash") != actual:
            raise LockfileError(
                f"{at}: content hash mismatch (the file says {entry.get('content_hash')!r}, "
                f"the content hashes to {actual!r}): the lock file was edited"
            )
        model = content.get("model")
        if content.get("partial") is True:  # shared text: no model of its own
            if not isinstance(content.get("template"), str):
                raise LockfileError(f"{at}: a partial's content.template is missing")
        elif not isinstance(model, Mapping) or not isinstance(model.get("name"), str):
            raise LockfileError(f"{at}: content.model.name is missing")
        if ("messages" in content) == ("template" in content):
            raise LockfileError(f"{at}: content needs exactly one of messages or template")
        if "resolved" in entry:  # the partials it renders with: each hash checked too
            try:
                Resolution.from_json(entry["resolved"], actual)
            except ValueError as exc:
                raise LockfileError(f"{at}: {exc}: the lock file was edited") from None
