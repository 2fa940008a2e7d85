"""The assertion registry: `@assertion(name)` registers `fn(prepared_value, output, spec, ctx)`,
which returns an `_Outcome` (the verdict before `not-` is applied).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._types import AssertContext


@dataclass(frozen=True)
class _Outcome:
    """A verdict before `not-` is applied, with the words for each way it can end."""

    passed: bool
    reason: str = "Assertion failed"  # the assertion as written failed
    not_reason: str = "Assertion failed"  # its not- form failed (the base verdict passed)
    pass_reason: str = "Assertion passed"
    not_pass_reason: str = "Assertion passed"
    score: float | None = None  # None: 1.0 for a pass, 0.0 for a failure
    not_score: float | None = None  # the not- form's score when it is not 1/0 (or `score`)


def _binary(passed: bool, expectation: str) -> _Outcome:
    """`expectation` completes "Expected output to (not) ..."."""
    return _Outcome(
        passed,
        reason=f"Expected output to {expectation}",
        not_reason=f"Expected output to not {expectation}",
    )


Prep = Callable[[Any, Mapping[str, Any]], Any]
Run = Callable[[Any, str, Mapping[str, Any], AssertContext], "_Outcome | Awaitable[_Outcome]"]


@dataclass(frozen=True)
class _Assertion:
    name: str
    run: Callable[..., Any]
    is_async: bool
    prep: Prep  # turns the (rendered) value into what `run` needs; raises _EvalError
    needs_value: bool
    needs_threshold: bool


_REGISTRY: dict[str, _Assertion] = {}


def _identity(value: Any, spec: Mapping[str, Any]) -> Any:
    return value


def assertion(
    name: str,
    *,
    prep: Prep = _identity,
    needs_value: bool = True,
    needs_threshold: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `fn(prepared_value, output, spec, ctx) -> _Outcome` as assertion `name`."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = _Assertion(
            name, fn, inspect.iscoroutinefunction(fn), prep, needs_value, needs_threshold
        )
        return fn

    return register
