"""Template rendering in Jinja2's sandbox.

Templates are user content, edited by people who are not engineers and reviewed in a browser:
they render in a `SandboxedEnvironment` with `StrictUndefined`, so a missing variable or an
attribute escape (`{{ ''.__class__ }}`) is an error, never silently empty; and in a bounded one
(sandbox.py), so a render that would pass `limits.MAX_RENDER_CHARS` fails in one line.

`{% include "tone" %}` (or `"tone@v3"`) is the only way a template reaches another: the
includes a render may use are given to it as a mapping of include name to partial text, which
becomes the environment's only loader (README: partials). Dynamic include names, `extends`,
`import` and `from` are refused when the template is parsed.
"""

from __future__ import annotations

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


@lru_cache(maxsize=4096)
def _compiled(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


@lru_cache(maxsize=256)
def _with_includes(includes: frozenset[tuple[str, str]]) -> SandboxedEnvironment:
    return _environment(jinja2.DictLoader(dict(includes)))


@lru_cache(maxsize=4096)
def _compiled_with(includes: frozenset[tuple[str, str]], source: str) -> jinja2.Template:
    return _with_includes(includes).from_string(source)


def render_text(
    source: str,
    variables: Mapping[str, Any],
    where: str = "template",
    includes: Mapping[str, str] | None = None,
) -> str:
    """Render one template string, its includes served from `includes` (name -> partial text);
    any failure is a RenderError naming `where`."""
    try:
        if includes:
            return _compiled_with(frozenset(includes.items()), source).render(**variables)
        return _compiled(source).render(**variables)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"{where}: include {exc.name!r} is not a partial of this side") from None
    except jinja2.UndefinedError as exc:
        raise RenderError(f"{where}: {exc.message}") from None
    except RenderLimit as exc:
        raise RenderError(f"{where}: {exc}") from None
    except jinja2.exceptions.SecurityError as exc:
        raise RenderError(f"{where}: sandbox refused: {exc}") from None
    except jinja2.TemplateError as exc:
        raise RenderError(f"{where}: {exc}") from None
    except MemoryError:  # a backstop: the sandbox's bounds should come first
        raise RenderError(f"{where}: out of memory while rendering") from None
    except Exception as exc:  # a filter or value raising while rendering
        raise RenderError(f"{where}: {type(exc).__name__}: {exc}") from None


def render_messages(
    content: Mapping[str, Any],
    variables: Mapping[str, Any],
    name: str = "prompt",
    includes: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Render a version's messages (or its single `template`) into chat messages.

    `variables` must already hold defaults; a message keeps any extra keys it declared
    (such as `name`) so that what is sent is exactly what the version says.
    """
    if "template" in content:
        text = render_text(content["template"], variables, f"{name}: template", includes)
        return [{"role": "user", "content": text}]
    out: list[dict[str, Any]] = []
    for i, message in enumerate(content["messages"]):
        rendered = dict(message)
        if isinstance(message.get("content"), str):
            rendered["content"] = render_text(
                message["content"], variables, f"{name}: messages[{i}].content", includes
            )
        out.append(rendered)
    return out
