"""The immutable `Prompt` a PromptClient serves, built from a registry's version object: its
frozen mappings, the fast render path over compiled templates, and `PromptSnapshot`."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import render as _render
from ..canonical import content_hash
from ..promptfile import prompt_inputs
from ..providers import ENDPOINT_KEYS, ChatRequest
from ..render import render_messages
from ..resolved import Resolution
from .errors import _Transient

# The CLI's compiled-template cache: the same SandboxedEnvironment and StrictUndefined. Should
# render.py be reorganised without it, prompts render through render_messages only.
_compile_template: Any = getattr(_render, "_compiled", None)

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
    _parts: tuple[Any, ...] | None = None

    def render(self, /, **variables: Any) -> list[dict[str, Any]]:
        """The chat messages with `variables` filled in (declared defaults applied), rendered in
        the same Jinja2 sandbox with StrictUndefined as the CLI: a missing variable or an
        attribute escape raises promptgate.errors.RenderError. Fresh dicts on every call."""
        if self._defaults:
            defaults = copy.deepcopy(self._defaults) if self._copy_defaults else self._defaults
            variables = {**defaults, **variables}
        if self.includes:
            return render_messages(self.content, variables, self.name, self.includes)
        parts = self._parts
        if parts is not None:
            try:
                return _render_parts(parts, variables)
            except Exception:  # let the canonical path raise the canonical RenderError
                pass
        return render_messages(self.content, variables, self.name)

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


def _render_parts(parts: tuple[Any, ...], variables: Mapping[str, Any]) -> list[dict[str, Any]]:
    """render_messages, minus Template.render's per-call overhead (which copies the template's
    globals ChainMap): the same compiled template in the same sandboxed environment, given the
    same context a render() call builds. Any failure falls back to render_messages."""
    out = []
    for base, template, text, glob in parts:
        message = dict(base)
        if template is not None:
            env = template.environment
            ctx = env.context_class(env, {**glob, **variables}, template.name, template.blocks)
            text = env.concat(template.root_render_func(ctx))
        message["content"] = text
        out.append(message)
    return out


def _compile_parts(raw: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Per message: (message without content, compiled template or None, static text, globals).
    A message with no Jinja syntax at all renders to a constant, computed once the canonical
    way."""
    if _compile_template is None:
        return None
    try:
        if "template" in raw:
            messages: list[Mapping[str, Any]] = [{"role": "user", "content": raw["template"]}]
        else:
            messages = list(raw["messages"])
        parts: list[tuple[Any, ...]] = []
        for message in messages:
            source = message.get("content")
            base = {k: _thaw(v) for k, v in message.items()}
            if not isinstance(source, str):
                return None
            if "{" not in source:
                static = render_messages({"template": source}, {})[0]["content"]
                parts.append((base, None, static, None))
            else:
                template = _compile_template(source)
                parts.append((base, template, None, dict(template.globals)))
        return tuple(parts)
    except Exception:  # anything unusual: the canonical path only
        return None


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
        includes=_FrozenDict(resolution.texts()),
        _follows=_FrozenDict(follows),
        _defaults=_FrozenDict(defaults) if flat_defaults else _thaw(defaults),
        _copy_defaults=not flat_defaults,
        _kwargs=_freeze(kwargs),
        _source=_freeze(dict(data)),
        _parts=None if resolution.includes else _compile_parts(raw),
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
