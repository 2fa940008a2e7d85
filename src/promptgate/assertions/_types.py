"""The records the assertions share: a result, a case's score, the evaluation context, and the
two errors (a bad spec at load time, an assertion that cannot be evaluated at run time).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class AssertionResult:
    type: str  # as written, e.g. "not-contains"
    passed: bool
    score: float  # 0..1 (a python check returning a bare number keeps it, as promptfoo does)
    reason: str  # what was expected vs found
    weight: float
    value: Any  # the configured value, for reports
    error: str | None = None  # the assertion could not be evaluated (counts as failed)


@dataclass(frozen=True, slots=True)
class CaseScore:
    passed: bool
    score: float  # weighted score
    results: tuple[AssertionResult, ...]
    reason: str


Judge = Callable[[list[dict[str, str]]], Awaitable[str]]


@dataclass(frozen=True)
class AssertContext:
    vars: Mapping[str, Any]  # the case vars
    prompt: str  # prompt name
    suite_dir: Path  # python file:// paths are relative to this
    latency_ms: float | None = None
    cost: float | None = None  # USD, None if unknown -> cost assertion errors (fail closed)
    judge: Judge | None = None  # async: chat messages -> the judge model's raw text


class AssertionSpecError(ValueError):
    """A bad assertion spec, found when the suite is loaded."""


class _EvalError(Exception):
    """The assertion could not be evaluated (becomes AssertionResult.error)."""
