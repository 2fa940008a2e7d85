"""Templated assertion values: promptfoo renders string values with Nunjucks and the case vars;
here a sandboxed Jinja2 where an undefined variable is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from ._js import _js_str
from ._types import AssertionSpecError, _EvalError


def _is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def _template_finalize(value: Any) -> Any:
    # Nunjucks prints null/undefined as "" and other values as JavaScript's String(x) does.
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return _js_str(value)


@lru_cache(maxsize=1)
def _jinja_env() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_template_finalize,
    )


@lru_cache(maxsize=1024)
def _template(text: str) -> Any:
    return _jinja_env().from_string(text)


def _render(text: str, variables: Mapping[str, Any]) -> str:
    if not _is_template(text):
        return text
    try:
        return str(_template(text).render(dict(variables)))
    except Exception as exc:  # jinja2 raises many types
        raise _EvalError(f"could not render {text!r}: {exc}") from None


def _check_template(text: str, where: str) -> None:
    if not _is_template(text):
        return
    try:
        _template(text)
    except Exception as exc:
        message = " ".join(str(exc).split())
        raise AssertionSpecError(f"{where}: bad template {text!r}: {message}") from None
