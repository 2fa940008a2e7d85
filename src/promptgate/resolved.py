"""A prompt with its includes resolved: the partial versions it renders with at one label.

`{% include "tone" %}` follows the includer's label (`summarize@production` renders with
`tone@production`); `{% include "tone@v3" %}` is pinned. A Resolution records, for one stored
version read at one label, which partial version each include name was served by, and
`resolved_hash`: the SHA-256 of the canonical JSON of
`[content_hash, [[include, partial content_hash], ...sorted], [missing include, ...sorted]]`,
which changes when the prompt or any partial it renders with changes, and only then (it goes
into the SDK's `trace_attributes`).

Reading: `snapshot_resolved` reads a label's prompts and every partial they include in one
store snapshot (one event seq: the server's GET and the SDK reading a database);
`resolution_of` reads version by version (the CLI, on either backend).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .canonical import canonical_json, content_hash
from .domain import PromptVersion
from .errors import BadInput, UnknownRef
from .promptfile import PromptSpec, includes, is_partial

# (name, None) -> the version at the label, or None when the label is not set on it;
# (name, N) -> version N (UnknownRef when there is none)
Lookup = Callable[[str, "int | None"], "PromptVersion | None"]


@dataclass(frozen=True)
class Included:
    """One include name and the partial version that serves it."""

    include: str  # as written: "tone" or "tone@v3"
    name: str
    version: int
    content_hash: str
    content: Mapping[str, Any]

    @property
    def template(self) -> str:
        return str(self.content["template"])

    def to_json(self) -> dict[str, Any]:
        return {
            "include": self.include,
            "name": self.name,
            "version": self.version,
            "content_hash": self.content_hash,
            "content": dict(self.content),
        }


@dataclass(frozen=True)
class Resolution:
    """What one prompt version renders with at `label`."""

    label: str
    content_hash: str  # the includer's
    includes: tuple[Included, ...] = ()
    missing: tuple[str, ...] = ()  # label-following includes with no partial at the label

    @property
    def resolved_hash(self) -> str:
        return resolved_hash(self.content_hash, self.includes, self.missing)

    def texts(self) -> dict[str, str]:
        """Include name -> partial text: what the renderer's loader serves."""
        return {i.include: i.template for i in self.includes}

    def require(self, ref: str) -> dict[str, str]:
        """`texts()`, or BadInput naming the first include that has no version here."""
        if self.missing:
            raise BadInput(
                f'{ref}: {{% include "{self.missing[0]}" %}}: {self.missing[0]} has no '
                f"partial version at {self.label}"
            )
        return self.texts()

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "resolved_hash": self.resolved_hash,
            "includes": [i.to_json() for i in self.includes],
            "missing": list(self.missing),
        }

    @classmethod
    def from_json(cls, data: Any, includer_hash: str) -> Resolution:
        """The `resolved` member of a version object, every partial's content checked against
        its hash; ValueError when it is malformed or a hash does not match."""
        if not isinstance(data, Mapping):
            raise ValueError("resolved: expected an object")
        try:
            label = str(data["label"])
            items = []
            for raw in data.get("includes") or []:
                content = raw["content"]
                if content_hash(content) != raw["content_hash"] or not is_partial(content):
                    raise ValueError(f"resolved: include {raw['include']!r}: hash mismatch")
                items.append(
                    Included(
                        str(raw["include"]),
                        str(raw["name"]),
                        int(raw["version"]),
                        str(raw["content_hash"]),
                        content,
                    )
                )
            missing = tuple(str(m) for m in data.get("missing") or [])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"resolved: malformed ({exc!r})") from None
        return cls(label, includer_hash, tuple(sorted(items, key=_by_include)), missing)


def _by_include(item: Included) -> str:
    return item.include


def resolved_hash(
    includer_hash: str, items: Iterable[Included], missing: Iterable[str] = ()
) -> str:
    pairs = sorted([i.include, i.content_hash] for i in items)
    body = canonical_json([includer_hash, pairs, sorted(missing)])
    return hashlib.sha256(body).hexdigest()


def resolve(
    content: Mapping[str, Any], includer_hash: str, label: str, lookup: Lookup
) -> Resolution:
    """Follow `content`'s includes, transitively, through `lookup`. A label-following include
    with no version at `label`, or whose version there is not a partial, is `missing`; a pinned
    include of a non-partial is BadInput."""
    found: dict[str, Included] = {}
    missing: set[str] = set()
    todo = [content]
    while todo:
        for name, version in sorted(includes(todo.pop()), key=str):
            key = name if version is None else f"{name}@v{version}"
            if key in found or key in missing:
                continue
            v = lookup(name, version)
            if v is None or (version is None and not is_partial(v.content)):
                # nothing this label can serve: that one prompt cannot render here, and says
                # so when rendered; never an error for the whole label's read
                missing.add(key)
                continue
            if not is_partial(v.content):  # pinned: push refuses this, so only a bad store
                raise BadInput(f'{{% include "{key}" %}}: {v.ref} is not a partial')
            found[key] = Included(key, v.name, v.version, v.content_hash, v.content)
            todo.append(v.content)
    items = tuple(sorted(found.values(), key=_by_include))
    return Resolution(label, includer_hash, items, tuple(sorted(missing)))


def resolve_version(v: PromptVersion, label: str, lookup: Lookup) -> Resolution:
    return resolve(v.content, v.content_hash, label, lookup)


def with_resolution(data: dict[str, Any], resolution: Resolution) -> dict[str, Any]:
    """A version object (`show --json` shape) with its `resolved` member."""
    return {**data, "resolved": resolution.to_json()}


class _Reads(Protocol):
    def get_version(self, name: str, version: int) -> PromptVersion: ...
    def resolve(self, name: str, label: str = ...) -> PromptVersion: ...


class _Snapshots(Protocol):
    def get_version(self, name: str, version: int) -> PromptVersion: ...
    def snapshot(
        self, label: str, names: Sequence[str] | None = None
    ) -> tuple[int, dict[str, PromptVersion]]: ...


def resolution_of(store: _Reads, v: PromptVersion | PromptSpec, label: str) -> Resolution:
    """`v`'s includes at `label` (a stored version, or a draft file's), read one by one."""

    def lookup(name: str, version: int | None) -> PromptVersion | None:
        if version is not None:
            return store.get_version(name, version)
        try:
            return store.resolve(name, label)
        except UnknownRef:
            return None

    return resolve(v.content, v.content_hash, label, lookup)


def _in_snapshot(store: _Snapshots, found: Mapping[str, PromptVersion]) -> Lookup:
    def lookup(name: str, version: int | None) -> PromptVersion | None:
        return found.get(name) if version is None else store.get_version(name, version)

    return lookup


def snapshot_resolved(
    store: _Snapshots, label: str, names: Sequence[str] | None = None
) -> tuple[int, dict[str, PromptVersion], dict[str, Resolution]]:
    """(seq, versions at `label` of `names` or of all, their resolutions), the versions and
    the partials they include at the label read in one snapshot: read again, with the partials
    the last read found it needed, until the read holds them all."""
    wanted = sorted(set(names)) if names else None
    while True:
        seq, found = store.snapshot(label, wanted)
        lookup = _in_snapshot(store, found)
        asked = [n for n in (names if names else found) if n in found]
        out = {n: resolve_version(found[n], label, lookup) for n in asked}
        if wanted is None:
            return seq, {n: found[n] for n in asked}, out
        more = {m for r in out.values() for m in r.missing} - set(wanted)
        if not more:
            return seq, {n: found[n] for n in asked}, out
        wanted = sorted(set(wanted) | more)
