"""Evaluation: one assertion on an output (`evaluate`, never raises) and a case's weighted score
(`score_case`, aggregated as promptfoo's AssertionsResult).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ._js import _is_number, _js_json, _js_str, _js_to_fixed
from ._pycheck import (
    _FILE_PREFIX,
    _call_python,
    _load_file_value,
    _python_function,
    _split_file_ref,
)
from ._registry import _REGISTRY
from ._template import _render
from ._types import AssertContext, AssertionResult, CaseScore, _EvalError


async def _resolve_value(value: Any, base: str, output: str, ctx: AssertContext) -> Any:
    """promptfoo's runAssertion value handling: file:// references and templates."""
    if isinstance(value, str):
        if value.startswith(_FILE_PREFIX):
            if base == "python":
                return value
            path, _fn = _split_file_ref(value)
            if path.endswith(".py"):
                result = await _call_python(_python_function(ctx, value), output, ctx)
                if isinstance(result, bool) or (isinstance(result, Mapping) and "pass" in result):
                    raise _EvalError(
                        f'Script for "{base}" assertion returned a boolean or a grading result; '
                        "only python assertions can, others must return the expected value"
                    )
                return result
            return _load_file_value(ctx, value)
        return _render(value, ctx.vars)
    if isinstance(value, list):
        return [
            (_load_file_value(ctx, v) if v.startswith(_FILE_PREFIX) else _render(v, ctx.vars))
            if isinstance(v, str)
            else v
            for v in value
        ]
    return value


def _error_result(type_name: str, weight: float, value: Any, message: str) -> AssertionResult:
    return AssertionResult(
        type=type_name,
        passed=False,
        score=0.0,
        reason=f"could not evaluate: {message}",
        weight=weight,
        value=value,
        error=message,
    )


async def evaluate(spec: Mapping[str, Any], output: str, ctx: AssertContext) -> AssertionResult:
    """Run one assertion on `output`. Never raises: a failure to evaluate sets `error`."""
    type_name = str(spec.get("type", "")) if isinstance(spec, Mapping) else ""
    value = spec.get("value") if isinstance(spec, Mapping) else None
    weight_value = spec.get("weight", 1) if isinstance(spec, Mapping) else 1
    weight = float(weight_value) if _is_number(weight_value) else 1.0
    try:
        inverse = type_name.startswith("not-")
        base = type_name[4:] if inverse else type_name
        entry = _REGISTRY.get(base)
        if entry is None:
            raise _EvalError(f"unknown assertion type {type_name!r}")
        if entry.needs_threshold and not _is_number(spec.get("threshold")):
            raise _EvalError(f"{type_name} needs a numeric threshold")
        if not isinstance(output, str):
            output = _js_json(output)
        prepared = entry.prep(await _resolve_value(value, base, output, ctx), spec)
        outcome = entry.run(prepared, output, spec, ctx)
        if entry.is_async:
            outcome = await outcome
    except _EvalError as exc:
        return _error_result(type_name, weight, value, str(exc))
    except Exception as exc:  # an assertion never takes the run down
        return _error_result(type_name, weight, value, f"{type(exc).__name__}: {exc}")
    if inverse:
        passed = not outcome.passed
        reason = outcome.not_pass_reason if passed else outcome.not_reason
        score = outcome.not_score if outcome.not_score is not None else outcome.score
    else:
        passed = outcome.passed
        reason = outcome.pass_reason if passed else outcome.reason
        score = outcome.score
    if score is None:
        score = 1.0 if passed else 0.0
    if weight == 0:
        passed = True  # promptfoo: a weight-0 assertion is a metric only and cannot fail
    return AssertionResult(type_name, passed, score, reason, weight, value)


async def score_case(
    specs: Sequence[Mapping[str, Any]],
    output: str,
    ctx: AssertContext,
    threshold: float | None,
) -> CaseScore:
    """All of a case's assertions, aggregated as promptfoo's AssertionsResult does."""
    if not specs:
        return CaseScore(True, 1.0, (), "No assertions")
    if any(_base_type(s) == "llm-rubric" for s in specs):
        results = tuple(await asyncio.gather(*(evaluate(s, output, ctx) for s in specs)))
    else:
        results = tuple([await evaluate(s, output, ctx) for s in specs])
    total_score = 0.0
    total_weight = 0.0
    failed_reason: str | None = None
    for r in results:
        total_score += r.score * r.weight
        total_weight += r.weight
        if not r.passed:
            failed_reason = r.reason
    score = total_score / total_weight if total_weight > 0 else 0.0
    passed = failed_reason is None
    reason = failed_reason if failed_reason is not None else "All assertions passed"
    if threshold is not None and not math.isnan(threshold):
        # A case threshold replaces the all-must-pass rule with the weighted score.
        passed = score >= threshold
        sign = "≥" if passed else "<"
        reason = f"Aggregate score {_js_to_fixed(score, 2)} {sign} {_js_str(threshold)} threshold"
    errored = next((r for r in results if r.error is not None), None)
    if errored is not None:
        passed = False  # an assertion that could not be evaluated never lets a case pass
        reason = f"{errored.type} could not be evaluated: {errored.error}"
    return CaseScore(passed, score, results, reason)


def _base_type(spec: Mapping[str, Any]) -> str:
    t = spec.get("type") if isinstance(spec, Mapping) else None
    if not isinstance(t, str):
        return ""
    return t[4:] if t.startswith("not-") else t
