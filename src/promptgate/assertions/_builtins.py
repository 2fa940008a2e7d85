"""The built-in assertions, with promptfoo's names, value forms and verdicts; importing this
module registers them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._js import (
    _JS_SPACE,
    _WORD_RE,
    _excerpt,
    _is_number,
    _js_deep_equal,
    _js_json,
    _js_parse_float,
    _js_str,
    _js_to_number,
    _js_to_precision,
    _js_truthy,
)
from ._jsonscan import _extract_json_objects, _json_parse, _load_yaml
from ._jsregex import _js_regex, _JsRegex, _JsRegexSyntaxError
from ._pycheck import _FILE_PREFIX, _call_python, _inline_python, _python_function, _split_file_ref
from ._registry import _REGISTRY, Prep, _binary, _Outcome, assertion
from ._schema import _compile_schema, _Schema
from ._text import _levenshtein, _parse_csv_values
from ._types import AssertContext, _EvalError


@assertion("equals")
def _equals(value: Any, output: str, spec: Mapping[str, Any], ctx: AssertContext) -> _Outcome:
    if value is None or isinstance(value, (Mapping, list, tuple)):
        # An object value is compared with the output parsed as JSON (deep, strict).
        ok, parsed = _json_parse(output)
        passed = ok and _js_deep_equal(value, parsed)
        expected = _js_json(value)
    else:
        expected = _js_str(value)
        passed = expected == output
    shown = _excerpt(output)
    return _Outcome(
        passed,
        reason=f'Expected output "{shown}" to equal "{_excerpt(expected)}"',
        not_reason=f'Expected output "{shown}" to not equal "{_excerpt(expected)}"',
    )


def _prep_contains(name: str) -> Prep:
    def prep(value: Any, spec: Mapping[str, Any]) -> str:
        if not ((isinstance(value, str) and value) or (_is_number(value) and value == value)):
            raise _EvalError(f'"{name}" assertion type must have a string or number value')
        return _js_str(value)

    return prep


@assertion("contains", prep=_prep_contains("contains"))
def _contains(value: str, output: str, spec: Mapping[str, Any], ctx: AssertContext) -> _Outcome:
    return _binary(value in output, f'contain "{value}"')


@assertion("icontains", prep=_prep_contains("icontains"))
def _icontains(value: str, output: str, spec: Mapping[str, Any], ctx: AssertContext) -> _Outcome:
    return _binary(value.lower() in output.lower(), f'contain "{value}"')


def _prep_list(name: str) -> Prep:
    def prep(value: Any, spec: Mapping[str, Any]) -> tuple[str, ...]:
        if not _js_truthy(value):
            raise _EvalError(f'"{name}" assertion type must have a value')
        if isinstance(value, str):
            try:
                value = _parse_csv_values(value)
            except ValueError as exc:
                raise _EvalError(f'"{name}": {exc}') from None
        if not isinstance(value, (list, tuple)):
            raise _EvalError(f'"{name}" assertion type must have an array value')
        return tuple(_js_str(v) for v in value)

    return prep


def _any(items: tuple[str, ...], output: str) -> _Outcome:
    return _binary(any(v in output for v in items), f'contain one of "{", ".join(items)}"')


def _all(items: tuple[str, ...], output: str, shown: tuple[str, ...]) -> _Outcome:
    missing = [s for v, s in zip(items, shown, strict=True) if v not in output]
    listed = ", ".join(shown)
    return _Outcome(
        not missing,
        reason=f"Expected output to contain all of [{listed}]. Missing: [{', '.join(missing)}]",
        not_reason=f"Expected output to not contain all of [{listed}]. Missing: []",
    )


@assertion("contains-any", prep=_prep_list("contains-any"))
def _contains_any(
    items: tuple[str, ...], output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    return _any(items, output)


@assertion("icontains-any", prep=_prep_list("icontains-any"))
def _icontains_any(
    items: tuple[str, ...], output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    low = output.lower()
    outcome = _any(tuple(v.lower() for v in items), low)
    return _binary(outcome.passed, f'contain one of "{", ".join(items)}"')


@assertion("contains-all", prep=_prep_list("contains-all"))
def _contains_all(
    items: tuple[str, ...], output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    return _all(items, output, items)


@assertion("icontains-all", prep=_prep_list("icontains-all"))
def _icontains_all(
    items: tuple[str, ...], output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    return _all(tuple(v.lower() for v in items), output.lower(), items)


def _prep_nonempty_string(name: str) -> Prep:
    def prep(value: Any, spec: Mapping[str, Any]) -> str:
        if not isinstance(value, str) or not value:
            raise _EvalError(f'"{name}" assertion type must have a string value')
        return value

    return prep


@assertion("starts-with", prep=_prep_nonempty_string("starts-with"))
def _starts_with(value: str, output: str, spec: Mapping[str, Any], ctx: AssertContext) -> _Outcome:
    return _binary(output.startswith(value), f'start with "{value}"')


def _prep_regex(value: Any, spec: Mapping[str, Any]) -> _JsRegex:
    source = _prep_nonempty_string("regex")(value, spec)
    try:
        return _js_regex(source)
    except _JsRegexSyntaxError as exc:
        raise _EvalError(f"Invalid regex pattern: {exc}") from None


@assertion("regex", prep=_prep_regex)
def _regex(rx: _JsRegex, output: str, spec: Mapping[str, Any], ctx: AssertContext) -> _Outcome:
    return _binary(rx.test(output), f'match regex "{rx.source}"')


def _prep_schema(name: str) -> Prep:
    def prep(value: Any, spec: Mapping[str, Any]) -> _Schema | None:
        if not _js_truthy(value):
            return None  # no schema: any JSON will do
        if isinstance(value, str):
            try:
                value = _load_yaml(value)
            except Exception as exc:  # YAML errors
                raise _EvalError(f"{name}: the schema is not valid YAML: {exc}") from None
        elif value is True or _is_number(value):
            raise _EvalError(f"{name} assertion must have a string or object value")
        try:
            return _compile_schema(value)
        except ValueError as exc:
            raise _EvalError(f"Invalid JSON schema: {exc}") from None

    return prep


@assertion("is-json", prep=_prep_schema("is-json"), needs_value=False)
def _is_json(
    schema: _Schema | None, output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    ok, parsed = _json_parse(output)
    if not ok:
        return _Outcome(
            False,
            reason="Expected output to be valid JSON",
            not_reason="Expected output to not be valid JSON",
        )
    if schema is None:
        return _Outcome(True, not_reason="Expected output to not be valid JSON")
    error = schema.first_error(parsed)
    return _Outcome(
        error is None,
        reason=f"JSON does not conform to the provided schema. Errors: {error}",
        not_reason="Output is JSON that conforms to the provided schema",
    )


@assertion("contains-json", prep=_prep_schema("contains-json"), needs_value=False)
def _contains_json(
    schema: _Schema | None, output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    objects = _extract_json_objects(output)
    if not objects:
        return _Outcome(False, reason="Expected output to contain valid JSON")
    if schema is None:
        return _Outcome(True, not_reason="Expected output to not contain JSON")
    error: str | None = None
    for obj in objects:
        error = schema.first_error(obj)
        if error is None:
            return _Outcome(
                True, not_reason="Output contains JSON conforming to the provided schema"
            )
    return _Outcome(False, reason=f"JSON does not conform to the provided schema. Errors: {error}")


_WORD_COUNT_KEYS = frozenset({"min", "max"})


def _prep_word_count(
    value: Any, spec: Mapping[str, Any]
) -> tuple[float | None, float | None, bool]:
    """(min, max, exact): exact means min == max is the one expected count."""
    if value is None:
        raise _EvalError('"word-count" assertion must have a value')
    if isinstance(value, Mapping):
        extra = set(value) - _WORD_COUNT_KEYS
        if extra:
            raise _EvalError(f'"word-count" object takes only min and max, not {sorted(extra)}')
        lo, hi = value.get("min"), value.get("max")
        if lo is None and hi is None:
            raise _EvalError(
                '"word-count" assertion object must have "min" and/or "max" properties'
            )
        for bound in (lo, hi):
            if bound is not None and not _is_number(bound):
                raise _EvalError('"word-count" min and max must be numbers')
        if lo is not None and hi is not None and lo > hi:
            raise _EvalError(
                f'"word-count" assertion: min ({_js_str(lo)}) must be less than or equal to max '
                f"({_js_str(hi)})"
            )
        return lo, hi, False
    number = (
        value
        if _is_number(value)
        else (_js_to_number(value) if isinstance(value, str) else math.nan)
    )
    if math.isnan(number):
        raise _EvalError(
            '"word-count" assertion value must be a number or an object with min/max properties'
        )
    return number, number, True


@assertion("word-count", prep=_prep_word_count)
def _word_count(
    bounds: tuple[float | None, float | None, bool],
    output: str,
    spec: Mapping[str, Any],
    ctx: AssertContext,
) -> _Outcome:
    lo, hi, exact = bounds
    count = len(_WORD_RE.findall(output))
    if exact:
        n = _js_str(lo)
        return _Outcome(
            count == lo,
            reason=f"Word count {count} does not equal expected {n}",
            not_reason=f"Expected word count to not equal {n}, but got {count}",
        )
    if lo is not None and hi is not None:
        a, b = _js_str(lo), _js_str(hi)
        return _Outcome(
            lo <= count <= hi,
            reason=f"Word count {count} is not between {a} and {b}",
            not_reason=f"Expected word count to not be between {a} and {b}, but got {count}",
        )
    if lo is None:
        b = _js_str(hi)
        return _Outcome(
            count <= hi,  # type: ignore[operator]
            reason=f"Word count {count} is greater than maximum {b}",
            not_reason=f"Expected word count to be greater than {b}, but got {count}",
        )
    a = _js_str(lo)
    return _Outcome(
        count >= lo,
        reason=f"Word count {count} is less than minimum {a}",
        not_reason=f"Expected word count to be less than {a}, but got {count}",
    )


def _prep_levenshtein(value: Any, spec: Mapping[str, Any]) -> str:
    if not isinstance(value, str):
        raise _EvalError('"levenshtein" assertion type must have a string value')
    return value


@assertion("levenshtein", prep=_prep_levenshtein)
def _levenshtein_assertion(
    value: str, output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    threshold = spec.get("threshold")
    limit = 5 if threshold is None else threshold
    distance = _levenshtein(output, value)
    shown = _js_str(limit)
    return _Outcome(
        distance <= limit,
        reason=f"Levenshtein distance {distance} is greater than threshold {shown}",
        not_reason=f"Levenshtein distance {distance} is less than or equal to threshold {shown}",
    )


@assertion("latency", needs_value=False, needs_threshold=True)
def _latency(value: Any, output: str, spec: Mapping[str, Any], ctx: AssertContext) -> _Outcome:
    if ctx.latency_ms is None:
        raise _EvalError("the response latency is unknown (a cached response?)")
    ms, limit = _js_str(ctx.latency_ms), _js_str(spec["threshold"])
    return _Outcome(
        ctx.latency_ms <= spec["threshold"],
        reason=f"Latency {ms}ms is greater than threshold {limit}ms",
        not_reason=f"Latency {ms}ms is less than or equal to threshold {limit}ms",
    )


@assertion("cost", needs_value=False, needs_threshold=True)
def _cost(value: Any, output: str, spec: Mapping[str, Any], ctx: AssertContext) -> _Outcome:
    if ctx.cost is None:
        raise _EvalError("the cost of this response is unknown (no pricing for the model?)")
    cost, limit = _js_to_precision(ctx.cost, 2), _js_str(spec["threshold"])
    return _Outcome(
        ctx.cost <= spec["threshold"],
        reason=f"Cost {cost} is greater than threshold {limit}",
        not_reason=f"Cost {cost} is less than or equal to threshold {limit}",
    )


# promptfoo's DEFAULT_GRADING_PROMPT (src/prompts/grading.ts), system part.
RUBRIC_SYSTEM_PROMPT = (
    "You are grading output according to a user-specified rubric. If the statement in the "
    "rubric is true, then the output passes the test. You respond with a JSON object with this "
    "structure: {reason: string, pass: boolean, score: number}\n"
    "\n"
    "Examples:\n"
    "\n"
    "<Output>Hello world</Output>\n"
    "<Rubric>Content contains a greeting</Rubric>\n"
    '{"reason": "the content contains the word \'Hello\'", "pass": true, "score": 1.0}\n'
    "\n"
    "<Output>Avast ye swabs, repel the invaders!</Output>\n"
    "<Rubric>Does not speak like a pirate</Rubric>\n"
    '{"reason": "\'avast ye\' is a common pirate term", "pass": false, "score": 0.0}'
)


def _template_text(value: Any) -> str:
    """How promptfoo's grading template prints a value (objects as JSON, arrays joined)."""
    if isinstance(value, Mapping):
        return _js_json(value)
    if isinstance(value, (list, tuple)):
        return ",".join(
            _js_json(v)
            if isinstance(v, (Mapping, list, tuple))
            else ("" if v is None else _js_str(v))
            for v in value
        )
    return "" if value is None else _js_str(value)


def rubric_messages(rubric: Any, output: str) -> list[dict[str, str]]:
    """The judge's chat messages, as promptfoo's default llm-rubric prompt renders them."""
    ok, parsed = _json_parse(output)
    shown = _template_text(parsed) if ok else output
    user = f"<Output>\n{shown}\n</Output>\n<Rubric>\n{_template_text(rubric)}\n</Rubric>"
    return [{"role": "system", "content": RUBRIC_SYSTEM_PROMPT}, {"role": "user", "content": user}]


_PASS_WORD_RE = re.compile(r"(?:true|yes|pass|y)", re.IGNORECASE)


def _prep_rubric(value: Any, spec: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and value.strip(_JS_SPACE):
        return value
    if isinstance(value, (Mapping, list)) and value:
        return value
    raise _EvalError('"llm-rubric" assertion type must have a rubric (a string or an object)')


@assertion("llm-rubric", prep=_prep_rubric)
async def _llm_rubric(
    rubric: Any, output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    if ctx.judge is None:
        raise _EvalError("llm-rubric needs a judge model and none is configured")
    try:
        text = await ctx.judge(rubric_messages(rubric, output))
    except Exception as exc:  # the judge's transport errors
        raise _EvalError(f"the judge call failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(text, str) or not text:
        raise _EvalError("the judge returned no output")
    objects = _extract_json_objects(text)
    verdict = objects[0] if objects else None
    if not isinstance(verdict, Mapping):
        raise _EvalError(f"could not parse a JSON verdict from the judge: {_excerpt(text, 300)!r}")
    if "pass" not in verdict:
        raise _EvalError(f"the judge's verdict has no 'pass': {_excerpt(_js_json(verdict), 300)}")
    raw_pass = verdict["pass"]
    passed = (
        raw_pass if isinstance(raw_pass, bool) else bool(_PASS_WORD_RE.fullmatch(_js_str(raw_pass)))
    )
    raw_score: Any = verdict.get("score")
    if _is_number(raw_score):
        score = float(raw_score)
    else:
        number = _js_to_number(raw_score) if "score" in verdict else math.nan
        score = number if math.isfinite(number) else float(passed)
    threshold = spec.get("threshold")
    limit = _js_to_number(threshold) if threshold is not None else math.nan
    if math.isfinite(limit):
        passed = passed and score >= limit
    reason_value = verdict.get("reason")
    if _js_truthy(reason_value):
        reason = _js_str(reason_value)
    elif passed:
        reason = "Grading passed"
    else:
        reason = f"Score {_js_str(score)} below threshold {_js_str(threshold) if threshold is not None else 'undefined'}"  # noqa: E501
    not_score = min(1.0, max(0.0, 1.0 - (score if math.isfinite(score) else 0.0)))
    return _Outcome(
        passed,
        reason=reason,
        not_reason=reason,
        pass_reason=reason,
        not_pass_reason=reason,
        score=score,
        not_score=not_score,
    )


def _prep_python(value: Any, spec: Mapping[str, Any]) -> tuple[str, str]:
    if not isinstance(value, str) or not value.strip():
        raise _EvalError("python assertion must have a string value")
    if value.startswith(_FILE_PREFIX):
        path, _fn = _split_file_ref(value)
        if not path.endswith(".py"):
            raise _EvalError(f"python assertion file must be a .py file, not {path!r}")
        return "file", value
    try:
        _inline_python(value)
    except SyntaxError as exc:
        raise _EvalError(f"python assertion code does not compile: {exc}") from None
    return "inline", value


def _is_grading_result(obj: Mapping[str, Any]) -> bool:
    def absent_or(key: str, check: Callable[[Any], bool]) -> bool:
        return key not in obj or check(obj[key])

    return (
        isinstance(obj.get("pass"), bool)
        and _is_number(obj.get("score"))
        and isinstance(obj.get("reason"), str)
        and absent_or("namedScores", lambda v: v is None or isinstance(v, Mapping))
        and absent_or("tokensUsed", lambda v: v is None or isinstance(v, Mapping))
        and absent_or("componentResults", lambda v: isinstance(v, list))
        and absent_or("assertion", lambda v: v is None or isinstance(v, Mapping))
        and absent_or("comment", lambda v: isinstance(v, str))
    )


def _script_object(obj: Any, threshold: float | None) -> _Outcome:
    data = dict(obj) if isinstance(obj, Mapping) else None
    if data is not None and "pass_" in data and "pass" not in data:
        data["pass"] = data["pass_"]
    if data is None or not _is_grading_result(data):
        raise _EvalError(
            "Python assertion must return a boolean, number, or {pass, score, reason} object. "
            f"Got instead: {_excerpt(_js_json(obj), 300)}"
        )
    passed, score, reason = data["pass"], float(data["score"]), data["reason"]
    if threshold is not None and score < threshold:
        passed = False
        note = f"Python score {_js_str(score)} is less than threshold {_js_str(threshold)}"
        reason = f"{note}: {reason}" if reason else note
    return _Outcome(
        passed,
        reason=reason,
        pass_reason=reason,
        not_reason="Python code returned true",
        score=score,
        not_score=score,
    )


def _script_outcome(result: Any, threshold: float | None, source: str) -> _Outcome:
    """promptfoo's normalizeScriptResult for what a python check returned."""
    suffix = f"\n{source}" if source else ""
    low = result.lower() if isinstance(result, str) else None
    if result is True or low == "true":
        return _Outcome(True, not_reason=f"Python code returned true{suffix}")
    if result is False or low == "false":
        return _Outcome(False, reason=f"Python code returned false{suffix}")
    if isinstance(result, str) and result.startswith("{"):
        ok, parsed = _json_parse(result)
        if not ok:
            raise _EvalError(f"Invalid JSON when parsing result: {_excerpt(result, 300)}")
        return _script_object(parsed, threshold)
    if isinstance(result, (Mapping, list, tuple)):
        return _script_object(result, threshold)
    score = _js_parse_float(_js_str(result))
    if math.isnan(score):
        raise _EvalError(
            "Python assertion must return a boolean, number, or {pass, score, reason} object. "
            f"Instead got: {_excerpt(repr(result), 300)}"
        )
    raw_pass = score > 0 if threshold is None else score >= threshold
    return _Outcome(
        raw_pass,
        reason=f"Python code returned false{suffix}",
        not_reason=f"Python code returned true{suffix}",
        score=score,
        not_score=score,
    )


@assertion("python", prep=_prep_python)
async def _python(
    prepared: tuple[str, str], output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    kind, source = prepared
    fn = _python_function(ctx, source) if kind == "file" else _inline_python(source)
    result = await _call_python(fn, output, ctx)
    return _script_outcome(result, spec.get("threshold"), source)


ASSERTION_TYPES: frozenset[str] = frozenset(_REGISTRY)
