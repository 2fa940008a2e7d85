"""Template rendering in Jinja2's sandbox.

Templates are user content, edited by people who are not engineers and reviewed in a browser:
they render in a `SandboxedEnvironment` with `StrictUndefined`, so a missing variable or an
attribute escape (`{{ ''.__class__ }}`) is an error, never silently empty; and in a bounded one
(sandbox.py), so a render that would pass `limits.MAX_RENDER_CHARS` fails in one line.

`{% include "tone" %}` (or `"tone@v3"`) is the only way a template reaches another: the
includes a render may use are given to it as a mapping of include name to partial text, which
becomes the environment's only loader (README: partials). Dynamic include names, `extends`,
`import` and `from` are refused when the template is parsed.

This module is the one place templates are compiled and rendered (the gate, the CLI, the server
and the SDK all come here). A template is compiled once per (text, includes) into an LRU cache,
each set of includes having one environment; `CompiledMessages` keeps a version's compiled
messages for a caller that renders it many times (the SDK's `Prompt`), and `render_messages`
is that, built per call. Every failure becomes a RenderError naming where it happened.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from .errors import RenderError
from .sandbox import BoundedSandbox, RenderLimit


class _StrictSandbox(BoundedSandbox):
    """The sandbox, raising at an unsafe attribute instead of handing back an Undefined: filters
    such as `map(attribute='__class__')` keep what they get and print it as "Undefined",
    which StrictUndefined cannot stop (it raises on use, and a list's repr is no use)."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe."
        )


def _environment(loader: jinja2.BaseLoader | None = None) -> SandboxedEnvironment:
    return _StrictSandbox(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        loader=loader,
    )


_ENV = _environment()


class TemplateProblem(ValueError):
    """A template that does not parse or reaches for private attributes."""


def _private_access(ast: nodes.Template) -> Iterator[str]:
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            yield node.attr
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
            and node.arg.value.startswith("_")
        ):
            yield node.arg.value


def _includes(ast: nodes.Template) -> Iterator[str]:
    for node in ast.find_all((nodes.Extends, nodes.Import, nodes.FromImport)):
        raise TemplateProblem(
            f'line {node.lineno} of the template: only {{% include "name" %}} may use '
            "another prompt's text"
        )
    for node in ast.find_all(nodes.Include):
        if not isinstance(node.template, nodes.Const) or not isinstance(node.template.value, str):
            raise TemplateProblem(
                f"line {node.lineno} of the template: an include must name a partial in "
                'quotes ({% include "tone" %}), not an expression'
            )
        yield node.template.value


_INCLUDE_TAG = re.compile(r"""\{%(-?)\s*include\s+(["'])([^"']+)\2\s*(-?)%\}""")


def expand_includes(source: str, texts: Mapping[str, str], _depth: int = 0) -> str:
    """The template with each `{% include "name" %}` replaced by the partial's text (itself
    expanded), whitespace control (`{%-`, `-%}`) applied as Jinja applies it: the resolved
    prompt people read (`show --resolved`). Includes not in `texts` stay as they are."""
    if _depth > 32 or "include" not in source:
        return source
    out: list[str] = []
    pos = 0
    strip_next = False
    for m in _INCLUDE_TAG.finditer(source):
        name = m.group(3)
        if name not in texts:
            continue
        before = source[pos : m.start()]
        if strip_next:
            before = before.lstrip()
        if m.group(1):
            before = before.rstrip()
        out.append(before)
        out.append(expand_includes(texts[name], texts, _depth + 1))
        pos = m.end()
        strip_next = bool(m.group(4))
    rest = source[pos:]
    out.append(rest.lstrip() if strip_next else rest)
    return "".join(out)


@lru_cache(maxsize=4096)
def template_includes(source: str) -> frozenset[str]:
    """The include names (`tone`, `tone@v3`) a template uses; TemplateProblem if unsafe."""
    try:
        ast = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"line {exc.lineno} of the template: {exc.message}") from None
    return frozenset(_includes(ast))


@lru_cache(maxsize=4096)
def template_variables(source: str) -> frozenset[str]:
    """The undeclared variables a template uses; raises TemplateProblem if it is unsafe or bad.

    Access to an attribute or key starting with `_` is refused statically: the sandbox would
    refuse it at render time anyway, and refusing at push keeps such a version out of the store.
    """
    try:
        ast = _ENV.parse(source)
        private = sorted(set(_private_access(ast)))
        if private:
            raise TemplateProblem(f"access to private attribute {private[0]!r} is not allowed")
        for _ in _includes(ast):
            pass
        # compiles the template: an unknown filter or test is found here, not by parse()
        return frozenset(meta.find_undeclared_variables(ast))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"line {exc.lineno} of the template: {_plain(exc)}") from None


def _plain(exc: jinja2.TemplateSyntaxError) -> str:
    """Jinja's message, with a hint where it names an unknown filter or test."""
    message = exc.message or str(exc)
    if message.startswith(("No filter named", "No test named")):
        return message.rstrip(".") + ": check its spelling, or remove it"
    return message


IncludesKey = frozenset[tuple[str, str]]  # the includes of a render, hashable: (name, text)


def includes_key(includes: Mapping[str, str] | None) -> IncludesKey:
    """What the compiled-template cache is keyed on besides the template's own text."""
    return frozenset(includes.items()) if includes else frozenset()


@lru_cache(maxsize=256)
def _environment_for(includes: IncludesKey) -> SandboxedEnvironment:
    return _environment(jinja2.DictLoader(dict(includes))) if includes else _ENV


class _Compiled:
    """One template compiled in its environment, with what each render needs worked out once:
    `Template.render` copies the template's globals (a ChainMap) into a new dict twice per call,
    which costs more than rendering a short message."""

    __slots__ = ("blocks", "environment", "globals", "root")

    def __init__(self, template: jinja2.Template) -> None:
        self.environment = template.environment
        self.root = template.root_render_func
        self.blocks = template.blocks
        self.globals: dict[str, Any] = dict(template.globals)

    def render(self, variables: Mapping[str, Any]) -> str:
        """`Template.render(**variables)`: the same context, built from a dict of the globals
        (`dict(..., **variables)` refuses a key that is not a string, as a call does)."""
        return self.run(dict(self.globals, **variables))

    def run(self, parent: dict[str, Any]) -> str:
        """Render with `parent` (globals and variables) as the context's parent, which Jinja
        only reads. Its `globals_keys` stay empty: Jinja reads them only to import a template
        whose globals differ from the importer's, and every template of an environment here
        has just the environment's globals."""
        env = self.environment
        ctx = env.context_class(env, parent, None, self.blocks)
        try:
            return env.concat(self.root(ctx))
        except Exception:
            env.handle_exception()  # as Template.render: Jinja's own traceback and messages


@lru_cache(maxsize=4096)
def _compiled(source: str, includes: IncludesKey) -> _Compiled:
    return _Compiled(_environment_for(includes).from_string(source))


def render_text(
    source: str,
    variables: Mapping[str, Any],
    where: str = "template",
    includes: Mapping[str, str] | None = None,
) -> str:
    """Render one template string, its includes served from `includes` (name -> partial text);
    any failure is a RenderError naming `where`."""
    try:
        return _compiled(source, includes_key(includes)).render(variables)
    except Exception as exc:
        raise _failure(exc, where) from None


def _failure(exc: Exception, where: str) -> RenderError:
    """The RenderError for a template that failed to compile or render, naming `where`."""
    if isinstance(exc, jinja2.TemplateNotFound):
        return RenderError(f"{where}: include {exc.name!r} is not a partial of this side")
    if isinstance(exc, jinja2.UndefinedError):
        return RenderError(f"{where}: {exc.message}")
    if isinstance(exc, RenderLimit):
        return RenderError(f"{where}: {exc}")
    if isinstance(exc, SecurityError):
        return RenderError(f"{where}: sandbox refused: {exc}")
    if isinstance(exc, jinja2.TemplateError):
        return RenderError(f"{where}: {exc}")
    if isinstance(exc, MemoryError):  # a backstop: the sandbox's bounds should come first
        return RenderError(f"{where}: out of memory while rendering")
    return RenderError(f"{where}: {type(exc).__name__}: {exc}")  # a filter or value raising


class CompiledMessages:
    """A version's messages (or its single `template`) compiled once, with its includes: what
    `render_messages` renders, for a caller that renders the same version many times (the SDK's
    `Prompt`). Immutable and safe to share between threads."""

    __slots__ = ("_key", "_parts")

    def __init__(
        self,
        content: Mapping[str, Any],
        name: str = "prompt",
        includes: Mapping[str, str] | None = None,
    ) -> None:
        key = includes_key(includes)
        if "template" in content:
            messages: list[Mapping[str, Any]] = [{"role": "user", "content": content["template"]}]
            wheres = [f"{name}: template"]
        else:
            messages = list(content["messages"])
            wheres = [f"{name}: messages[{i}].content" for i in range(len(messages))]
        parts: list[tuple[dict[str, Any], bool, _Compiled | str | None, str]] = []
        for message, where in zip(messages, wheres, strict=True):
            base = dict(message)
            source = base.get("content")
            nested = any(isinstance(v, (dict, list, tuple)) for v in base.values())
            if not isinstance(source, str):
                parts.append((base, nested, None, where))
                continue
            try:
                parts.append((base, nested, _compiled(source, key), where))
            except Exception:  # compiled again at render time, to fail in order, as it should
                parts.append((base, nested, source, where))
        self._key = key
        self._parts = tuple(parts)

    def render(self, variables: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The chat messages, `variables` filled in (defaults must be in them already): fresh
        dicts on every call, exactly what `render_messages` returns."""
        out: list[dict[str, Any]] = []
        parent: dict[str, Any] | None = None  # the globals (one environment) and variables
        for base, nested, template, where in self._parts:
            message = copy.deepcopy(base) if nested else dict(base)
            if template is not None:
                try:
                    if isinstance(template, str):
                        template = _compiled(template, self._key)
                    if parent is None:  # built once, where Template.render would first refuse
                        parent = dict(template.globals, **variables)
                    message["content"] = template.run(parent.copy())
                except Exception as exc:
                    raise _failure(exc, where) from None
            out.append(message)
        return out


def render_messages(
    content: Mapping[str, Any],
    variables: Mapping[str, Any],
    name: str = "prompt",
    includes: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Render a version's messages (or its single `template`) into chat messages.

    `variables` must already hold defaults; a message keeps any extra keys it declared
    (such as `name`) so that what is sent is exactly what the version says. Templates are
    compiled once per (text, includes) and kept in an LRU cache; `CompiledMessages` also keeps
    the per-version work for a caller that renders one version many times.
    """
    return CompiledMessages(content, name, includes).render(variables)
