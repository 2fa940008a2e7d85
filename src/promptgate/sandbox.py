"""A Jinja sandbox whose renders cannot exhaust memory (README "Limits").

`SandboxedEnvironment` stops attribute escapes but not `{{ 'a' * 10**9 }}`. This one bounds
every way a template can build a big value before it exists: string and list repetition and
concatenation (`*`, `+`, `~`), integer powers and products, printf (`%`, `|format`) and
`str.format` widths, padding methods and filters (`center`, `ljust`, `indent`, `batch`, ...),
`replace` and `join`; and the rendered text itself (also `{% set %}` blocks) is counted as it
is produced. Past `MAX_RENDER_CHARS` a render fails with RenderLimit, one line.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Sized
from typing import Any

from jinja2 import Environment, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from .limits import MAX_RENDER_CHARS

MAX_INT_BITS = 100_000  # about 30,000 digits: larger integers are refused, not computed
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = re.compile(r"\d+")
_WIDTH_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs"}
_WIDTH_FILTERS = {"center", "indent", "batch", "slice", "wordwrap"}


class RenderLimit(SecurityError):
    """A render refused because what it builds would pass MAX_RENDER_CHARS."""


def _refuse(what: str) -> RenderLimit:
    return RenderLimit(f"{what} would exceed the render limit of {MAX_RENDER_CHARS:,} characters")


def _check_size(value: Any, what: str = "a value") -> Any:
    if isinstance(value, (str, list, tuple, dict, bytes)) and len(value) > MAX_RENDER_CHARS:
        raise _refuse(what)
    return value


def _check_ints(values: Iterable[Any], what: str) -> None:
    for v in values:
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_RENDER_CHARS:
            raise _refuse(what)


def _check_printf(fmt: str, args: Any) -> None:
    for width, precision in _PRINTF.findall(fmt):
        for n in (width, precision):
            if n.isdigit() and int(n) > MAX_RENDER_CHARS:
                raise _refuse("a % format width")
            if n == "*":
                _check_ints(args if isinstance(args, tuple) else (args,), "a % format width")


def _check_format_spec(fmt: str, args: Iterable[Any]) -> None:
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format will raise its own error
    for _, _, spec, _ in parsed:
        if spec:
            if any(int(n) > MAX_RENDER_CHARS for n in _DIGITS.findall(spec)):
                raise _refuse("a format width")
            if "{" in spec:
                _check_ints(args, "a format width")


def _seq_len(value: Any) -> int | None:
    return len(value) if isinstance(value, (str, list, tuple)) else None


def _binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be too big, before computing it."""
    lsize, rsize = _seq_len(left), _seq_len(right)
    lint = isinstance(left, int) and not isinstance(left, bool)
    rint = isinstance(right, int) and not isinstance(right, bool)
    if operator == "*":
        if lsize is not None and rint and lsize * right > MAX_RENDER_CHARS:
            raise _refuse("repeating a value")
        if rsize is not None and lint and rsize * left > MAX_RENDER_CHARS:
            raise _refuse("repeating a value")
        if lint and rint and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise _refuse("an integer product")
    elif operator == "**":
        if lint and rint and abs(left) > 1 and right > 0:
            if right * max(abs(left).bit_length() - 1, 1) > MAX_INT_BITS:
                raise _refuse("an integer power")
    elif operator == "+":
        if lsize is not None and rsize is not None and lsize + rsize > MAX_RENDER_CHARS:
            raise _refuse("concatenating")
    elif operator == "%" and isinstance(left, str):
        _check_printf(left, right)


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        values = [a for a in args if not isinstance(a, (Environment, Context, EvalContext))]
        if name in _WIDTH_FILTERS:
            _check_ints([*values[1:], *kwargs.values()], f"the {name} filter")
        elif name == "format" and values and isinstance(values[0], str):
            _check_printf(values[0], tuple(values[1:]))
        elif name == "replace" and len(values) >= 3:
            _check_replace(values[0], values[1], values[2])
        elif name == "join" and values and isinstance(values[0], (list, tuple)):
            _check_join(values[0], values[1] if len(values) > 1 else "")
        return _check_size(function(*args, **kwargs), f"the {name} filter")

    for attr in ("jinja_pass_arg", "__name__", "__doc__"):
        if hasattr(function, attr):
            setattr(bounded, attr, getattr(function, attr))
    return bounded


def _check_replace(value: Any, old: Any, new: Any) -> None:
    if isinstance(value, str) and isinstance(old, str) and isinstance(new, str):
        count = value.count(old) if old else len(value) + 1
        if len(value) + count * (len(new) - len(old)) > MAX_RENDER_CHARS:
            raise _refuse("replace")


def _check_join(items: Sized | Iterable[Any], sep: Any) -> None:
    total = 0
    for item in items:  # type: ignore[union-attr]
        total += len(item) if isinstance(item, str) else 32
        total += len(sep) if isinstance(sep, str) else 0
        if total > MAX_RENDER_CHARS:
            raise _refuse("join")


class _CodeGenerator(CodeGenerator):
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # `a ~ b` builds its string through the environment, where it is counted
        self.write("environment.concat(map(str, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(")))")


class BoundedSandbox(SandboxedEnvironment):
    """SandboxedEnvironment plus the bounds above."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def concat(self, parts: Iterable[Any]) -> str:
        """What a template (or a `{% set %}` block, or `~`) renders, counted as it comes."""
        out: list[str] = []
        total = 0
        for part in parts:
            total += len(part)
            if total > MAX_RENDER_CHARS:
                raise _refuse("the rendered text")
            out.append(part)
        return "".join(out)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _binop(operator, left, right)
        return _check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        target = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(target, "__self__", None)
        name = getattr(target, "__name__", "")
        if isinstance(owner, str):
            if name in _WIDTH_METHODS:
                _check_ints([*args, *kwargs.values()], f"str.{name}")
            elif name == "replace" and len(args) >= 2:
                _check_replace(owner, args[0], args[1])
            elif name == "join" and args:
                items = list(args[0])
                _check_join(items, owner)
                args = (items, *args[1:])
            elif name in ("format", "format_map"):
                _check_format_spec(owner, [*args, *kwargs.values()])
        return _check_size(super().call(__context, __obj, *args, **kwargs), f"calling {name}")
