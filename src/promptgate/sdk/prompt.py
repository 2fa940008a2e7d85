"""The immutable `Prompt` a PromptClient serves, built from a registry's version object: its
frozen mappings, its messages compiled once by render.py, and `PromptSnapshot`."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..canonical import content_hash
from ..promptfile import prompt_inputs
from ..providers import ENDPOINT_KEYS, ChatRequest
from ..render import CompiledMessages
from ..resolved import Resolution
from .errors import _Transient

LATEST = "latest"


# -- immutable values -----------------------------------------------------------------------------


class _FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that refuses mutation: JSON-serialisable, hashable by content_hash, shared safely
    between threads. `dict(x)` gives a plain, mutable copy."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a Prompt is immutable: copy it with dict(...) to change it")

    __setitem__ = __delitem__ = _refuse
    clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __reduce__(self) -> Any:
        return (_FrozenDict, (dict(self),))

    def __repr__(self) -> str:
        return dict.__repr__(self)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return _FrozenDict({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value


def _is_flat(value: Any) -> bool:
    return not isinstance(value, (dict, list, tuple))


@dataclass(frozen=True, eq=False, repr=False)
class Prompt:
    """One prompt version as served by a PromptClient. Immutable and safe to share.

    `label` is the label it was fetched by (None when fetched by version). Exactly one of
    `messages` (the raw message templates) and `template` (a single user-message template) is
    set. `parameters` are the model parameters sent to the API (temperature, max_tokens, ...).
    `trace_attributes` = {name, version, label, content_hash, resolved_hash} for spans and
    logs (no `label` key when fetched by version: OpenTelemetry attributes cannot be None);
    `resolved_hash` changes when the prompt or a partial it includes does. `includes` maps
    each `{% include %}` name to the partial text it renders with (at the label, kept current
    like the label; for a version fetch, the partials at `latest` when it was first fetched,
    since a version entry is never re-read). Mappings in a
    Prompt refuse mutation (they are shared between threads); `dict(...)` copies one.
    """

    name: str
    version: int
    label: str | None
    content_hash: str
    content: Mapping[str, Any]
    messages: tuple[Mapping[str, Any], ...] | None
    template: str | None
    model: str
    parameters: Mapping[str, Any]
    tools: tuple[Mapping[str, Any], ...]
    response_format: Mapping[str, Any] | None
    trace_attributes: Mapping[str, Any]
    resolved_hash: str = ""
    includes: Mapping[str, str] = field(default_factory=dict)
    _follows: Mapping[str, int | None] = field(default_factory=dict)  # partial -> version served
    _defaults: Mapping[str, Any] = field(default_factory=dict)
    _copy_defaults: bool = False
    _kwargs: Mapping[str, Any] = field(default_factory=dict)
    _source: Mapping[str, Any] = field(default_factory=dict)
    _compiled: CompiledMessages | None = None  # content and includes, compiled by render.py

    def render(self, /, **variables: Any) -> list[dict[str, Any]]:
        """The chat messages with `variables` filled in (declared defaults applied), rendered by
        render.py, as the CLI and the gate render (render_messages): the Jinja2 sandbox with
        StrictUndefined, so a missing variable or an attribute escape raises
        promptgate.errors.RenderError. Fresh dicts on every call."""
        if self._defaults:
            defaults = copy.deepcopy(self._defaults) if self._copy_defaults else self._defaults
            variables = {**defaults, **variables}
        compiled = self._compiled
        if compiled is None:
            compiled = CompiledMessages(self.content, self.name, self.includes)
        return compiled.render(variables)

    def openai_kwargs(self, /, **variables: Any) -> dict[str, Any]:
        """Keyword arguments for `openai_client.chat.completions.create(**kwargs)`: model,
        rendered messages, parameters, tools and response_format, exactly as the gate sends
        them (providers.ChatRequest). A fresh, plain (mutable) structure on every call."""
        base = self._kwargs
        kwargs: dict[str, Any] = {"model": base["model"], "messages": self.render(**variables)}
        for key, value in base.items():
            if key != "model" and key != "messages":
                kwargs[key] = value if _is_flat(value) else _thaw(value)
        return kwargs

    def to_json(self) -> dict[str, Any]:
        """The version object this prompt was read from (the `show --json` shape)."""
        return _thaw(self._source)  # type: ignore[no-any-return]

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Prompt):
            return NotImplemented
        return (self.name, self.version, self.label, self.resolved_hash) == (
            other.name,
            other.version,
            other.label,
            other.resolved_hash,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.label, self.resolved_hash))

    def __reduce__(self) -> Any:  # pickle / deepcopy: rebuilt from its version object
        return (_make_prompt, (self.to_json(), self.label))

    def __repr__(self) -> str:
        at = f", label={self.label!r}" if self.label is not None else ""
        return (
            f"Prompt(name={self.name!r}, version={self.version}{at}, "
            f"content_hash={self.content_hash[:12]!r}...)"
        )


def _make_prompt(data: Mapping[str, Any], label: str | None) -> Prompt:
    """A Prompt from a version object. One whose content does not hash to its content_hash,
    or that is malformed, is refused like a failed request (the last good one is kept)."""
    try:
        name, version, digest = data["name"], int(data["version"]), data["content_hash"]
        raw = data["content"]
        actual = content_hash(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise _Transient(f"malformed version object from the registry: {exc!r}") from None
    if actual != digest:
        raise _Transient(f"{name}@v{version}: content hash mismatch ({digest} != {actual})")
    try:
        return _build_prompt(name, version, digest, raw, data, label)
    except Exception as exc:
        raise _Transient(f"{name}@v{version}: malformed content: {exc!r}") from None


def _build_prompt(
    name: str,
    version: int,
    digest: str,
    raw: Mapping[str, Any],
    data: Mapping[str, Any],
    label: str | None,
) -> Prompt:
    content = _freeze(raw)
    model = content["model"]
    defaults = {n: s.default for n, s in prompt_inputs(raw).items() if s.has_default}
    flat_defaults = all(_is_flat(v) for v in defaults.values())
    attrs: dict[str, Any] = {"name": name, "version": version}
    if label is not None:
        attrs["label"] = label
    attrs["content_hash"] = digest
    resolution = _resolution_of(data, digest, label)
    attrs["resolved_hash"] = resolution.resolved_hash
    follows: dict[str, int | None] = {m: None for m in resolution.missing}
    follows.update({i.name: i.version for i in resolution.includes if i.include == i.name})
    kwargs = ChatRequest.for_content(_thaw(raw), []).api_kwargs()  # messages filled per call
    texts = resolution.texts()
    return Prompt(
        name=name,
        version=version,
        label=label,
        content_hash=digest,
        content=content,
        messages=content.get("messages"),
        template=content.get("template"),
        model=model["name"],
        parameters=_FrozenDict({k: v for k, v in model.items() if k not in ENDPOINT_KEYS}),
        tools=content.get("tools") or (),
        response_format=content.get("response_format"),
        trace_attributes=_FrozenDict(attrs),
        resolved_hash=resolution.resolved_hash,
        includes=_FrozenDict(texts),
        _follows=_FrozenDict(follows),
        _defaults=_FrozenDict(defaults) if flat_defaults else _thaw(defaults),
        _copy_defaults=not flat_defaults,
        _kwargs=_freeze(kwargs),
        _source=_freeze(dict(data)),
        _compiled=CompiledMessages(_thaw(raw), name, texts),
    )


def _resolution_of(data: Mapping[str, Any], digest: str, label: str | None) -> Resolution:
    """The version object's `resolved` member, its hashes checked (ValueError if one does not
    match); none (a registry older than partials): nothing included."""
    if "resolved" in data:
        return Resolution.from_json(_thaw(data["resolved"]), digest)
    return Resolution(label or LATEST, digest)


def _stated_resolved_hash(data: Mapping[str, Any]) -> Any:
    resolved = data.get("resolved")
    if isinstance(resolved, Mapping):
        return resolved.get("resolved_hash")
    return Resolution(LATEST, str(data.get("content_hash"))).resolved_hash


@dataclass(frozen=True)
class PromptSnapshot(Mapping[str, Prompt]):
    """Prompts at one label read at one event seq: `snap["extract"]`, `for name in snap`.
    `seq` is None when the snapshot came from a lock file."""

    label: str
    seq: int | None
    prompts: Mapping[str, Prompt]

    def __getitem__(self, name: str) -> Prompt:
        return self.prompts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.prompts)

    def __len__(self) -> int:
        return len(self.prompts)


# -- where prompts come from ----------------------------------------------------------------------
