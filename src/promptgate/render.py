"""Template rendering in Jinja2's sandbox.

Templates are user content, edited by people who are not engineers and reviewed in a browser:
they render in a `SandboxedEnvironment` with `StrictUndefined`, so a missing variable or an
attribute escape (`{{ ''.__class__ }}`) is an error, never silently empty.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from .errors import RenderError

_ENV = SandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)


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


def render_text(source: str, variables: Mapping[str, Any], where: str = "template") -> str:
    """Render one template string; any failure is a RenderError naming `where`."""
    try:
        return _compiled(source).render(**variables)
    except jinja2.UndefinedError as exc:
        raise RenderError(f"{where}: {exc.message}") from None
    except jinja2.exceptions.SecurityError as exc:
        raise RenderError(f"{where}: sandbox refused: {exc}") from None
    except jinja2.TemplateError as exc:
        raise RenderError(f"{where}: {exc}") from None
    except Exception as exc:  # a filter or value raising while rendering
        raise RenderError(f"{where}: {type(exc).__name__}: {exc}") from None


def render_messages(
    content: Mapping[str, Any], variables: Mapping[str, Any], name: str = "prompt"
) -> list[dict[str, Any]]:
    """Render a version's messages (or its single `template`) into chat messages.

    `variables` must already hold defaults; a message keeps any extra keys it declared
    (such as `name`) so that what is sent is exactly what the version says.
    """
    if "template" in content:
        text = render_text(content["template"], variables, f"{name}: template")
        return [{"role": "user", "content": text}]
    out: list[dict[str, Any]] = []
    for i, message in enumerate(content["messages"]):
        rendered = dict(message)
        if isinstance(message.get("content"), str):
            rendered["content"] = render_text(
                message["content"], variables, f"{name}: messages[{i}].content"
            )
        out.append(rendered)
    return out
