"""Assertions: promptfoo's names and verdicts (promptfoo 0.121.20 semantics)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from promptgate.assertions import (
    ASSERTION_TYPES,
    RUBRIC_SYSTEM_PROMPT,
    AssertContext,
    AssertionResult,
    AssertionSpecError,
    CaseScore,
    _extract_json_objects,
    _js_num,
    _js_regex,
    _js_to_fixed,
    _levenshtein,
    _parse_csv_values,
    evaluate,
    rubric_messages,
    score_case,
    validate_assertion,
)

CTX = AssertContext(vars={"name": "Ann", "n": 3}, prompt="summarize", suite_dir=Path("."))


def run(spec: Mapping[str, Any], output: str, ctx: AssertContext = CTX) -> AssertionResult:
    validate_assertion(spec)
    return asyncio.run(evaluate(spec, output, ctx))


def case(
    specs: list[dict[str, Any]],
    output: str,
    threshold: float | None = None,
    ctx: AssertContext = CTX,
) -> CaseScore:
    for spec in specs:
        validate_assertion(spec)
    return asyncio.run(score_case(specs, output, ctx, threshold))


def test_assertion_types_are_promptfoos() -> None:
    assert ASSERTION_TYPES == {
        "equals", "contains", "icontains", "contains-any", "contains-all", "icontains-any",
        "icontains-all", "starts-with", "regex", "is-json", "contains-json", "word-count",
        "levenshtein", "latency", "cost", "llm-rubric", "python",
    }  # fmt: skip


# --------------------------------------------------------------------------------------------
# Verdicts, table-driven: (type, value, output, expected pass). Each row also checks `not-`.
# --------------------------------------------------------------------------------------------

VERDICTS: list[tuple[str, Any, str, bool]] = [
    # equals: exact string, no stripping; objects compare as parsed JSON (deep, strict)
    ("equals", "Hello", "Hello", True),
    ("equals", "Hello", "Hello\n", False),
    ("equals", "Hello", " Hello", False),
    ("equals", 42, "42", True),
    ("equals", 1.0, "1", True),  # String(1.0) is "1" in JavaScript
    ("equals", 1.5, "1.50", False),
    ("equals", True, "true", True),
    ("equals", {"a": 1, "b": [1, 2]}, '{"b": [1, 2], "a": 1}', True),
    ("equals", {"a": 1}, '{"a": 1, "b": 2}', False),
    ("equals", {"a": 1}, '{"a": true}', False),  # true !== 1
    ("equals", {"a": 1}, '{"a": 1.0}', True),
    ("equals", [1, 2], "[1,2]", True),
    ("equals", [1, 2], "[2,1]", False),
    ("equals", {"a": 1}, "not json", False),
    ("equals", None, "null", True),
    # contains / icontains
    ("contains", "world", "hello world", True),
    ("contains", "World", "hello world", False),
    ("contains", 42, "The answer is 42", True),
    ("icontains", "WORLD", "hello world", True),
    ("icontains", "WoRlD", "Hello WORLD", True),
    ("icontains", "planet", "Hello WORLD", False),
    # -any / -all, lists and promptfoo's comma-separated strings
    ("contains-any", ["world", "universe"], "hello world", True),
    ("contains-any", ["mars", "venus"], "hello world", False),
    ("contains-any", "world,universe", "hello world", True),
    ("contains-any", '"hello, world",universe', "hello, world", True),
    ("contains-any", '"hello, dear world", "goodbye, universe", simple', "hello, dear world", True),
    ("contains-any", '"hello, world",universe', "hello", False),  # the quoted comma is kept
    ("contains-any", '"hello\\"world,test", "x"', 'hello"world,test', True),
    ("contains-any", [], "anything", False),
    ("contains-all", ["hello", "world"], "hello world", True),
    ("contains-all", ["hello", "mars"], "hello world", False),
    ("contains-all", "hello, world", "hello world", True),
    ("contains-all", [], "anything", True),
    ("icontains-any", "WORLD,UNIVERSE", "hello world", True),
    ("icontains-any", "HELLO,  WORLD  ,  UNIVERSE", "hello", True),
    ("icontains-any", ",WORLD,,", "a world", True),  # repeated commas make no empty field
    ("icontains-any", ",WORLD,,", "", False),
    ("icontains-all", ["HELLO", "World"], "hello world", True),
    ("icontains-all", "HELLO, MARS", "hello world", False),
    ("contains-any", [1, 2.0], "got 2", True),  # String(2.0) is "2"
    # starts-with
    ("starts-with", "Hello", "Hello world", True),
    ("starts-with", "hello", "Hello world", False),
    ("starts-with", "Hello", " Hello", False),
    # regex: JavaScript semantics
    ("regex", r"\b1182\b", "Order 1182 arrived", True),
    ("regex", r"\b118\b", "Order 1182 arrived", False),
    ("regex", r"^\d+$", "١٢٣", False),  # \d is ASCII-only in JavaScript
    ("regex", r"^\d+$", "123", True),
    ("regex", r"^abc$", "abc\n", False),  # $ is the very end, not before a final newline
    ("regex", r"^a.c$", "a\nc", False),
    ("regex", r"^a.c$", "a\u2028c", False),  # . excludes all four line terminators
    ("regex", r"^\s$", "\u00a0", True),  # \s is JavaScript's whitespace
    ("regex", r"^\s$", "\x1c", False),
    ("regex", r"(?<year>\d{4})-\k<year>", "2024-2024", True),
    ("regex", r"(?<year>\d{4})-\k<year>", "2024-2025", False),
    ("regex", r"(a)|\1b", "b", True),  # an unset group's backreference matches ""
    ("regex", r"\p{L}", "p{L}", True),  # without the u flag \p is just p
    ("regex", r"a{,3}", "a{,3}", True),  # not a quantifier in JavaScript
    ("regex", r"\a\Z", "aZ", True),  # identity escapes, not bell / end-of-string
    ("regex", r"[\d-z]", "-", True),
    ("regex", r"\101", "A", True),  # legacy octal escape
    ("regex", r"^.$", "😀", False),  # UTF-16 code units without the u flag
    ("regex", r"^..$", "😀", True),
    ("regex", r"[]", "anything", False),
    ("regex", r"[^]", "\n", True),
    ("regex", r"\B", "", True),
    ("regex", r"(?=a)*b", "b", True),  # a quantified lookahead is legal (Annex B)
    ("regex", r"(?<=\$)\d+", "costs $12", True),
    # is-json / contains-json
    ("is-json", None, '{"a": 1}', True),
    ("is-json", None, "[1, 2]", True),
    ("is-json", None, "42", True),
    ("is-json", None, "NaN", False),
    ("is-json", None, "{'a': 1}", False),
    ("is-json", None, '{"a": 1,}', False),
    ("is-json", None, 'Sure: {"a": 1}', False),
    ("contains-json", None, 'Sure! {"key": "value", "k2": {"k3": ["v"]}} bye', True),
    ("contains-json", None, "Not valid JSON", False),
    ("contains-json", None, '```json\n{"a": 1,}\n```', True),  # trailing comma tolerated
    ("contains-json", None, 'x {"a": 1, // note\n "b": 2} y', True),
    ("contains-json", None, '{"summary": "cut off', False),
    ("contains-json", None, '{"a": 1, "b": [1, 2', False),
    ("contains-json", None, 'x {"a": "}"} y', False),  # promptfoo counts braces in strings
    ("contains-json", None, "{", False),
    # word-count
    ("word-count", 3, "one two three", True),
    ("word-count", 3, "  one   two\tthree\n", True),
    ("word-count", 3, "one two", False),
    ("word-count", "2", "one two", True),
    ("word-count", 2, "one\u00a0two", True),  # NBSP separates words in JavaScript
    ("word-count", 1, "one\x1ctwo", True),  # \x1c does not (Python's str.split would split)
    ("word-count", 0, "", True),
    ("word-count", {"min": 2, "max": 3}, "one two", True),
    ("word-count", {"min": 2, "max": 3}, "one two three four", False),
    ("word-count", {"min": 2}, "one", False),
    ("word-count", {"max": 2}, "one two three", False),
    ("word-count", {"max": 2}, "one two", True),
    # levenshtein: distance <= threshold, default 5
    ("levenshtein", "kitten", "sitting", True),
    ("levenshtein", "hello world", "hello", False),
    ("levenshtein", "abcdef", "abcdef", True),
    ("levenshtein", "", "12345", True),
    ("levenshtein", "", "123456", False),
]


@pytest.mark.parametrize(("kind", "value", "output", "expected"), VERDICTS)
def test_verdicts_and_not(kind: str, value: Any, output: str, expected: bool) -> None:
    spec = (
        {"type": kind}
        if value is None and kind in ("is-json", "contains-json")
        else {
            "type": kind,
            "value": value,
        }
    )
    result = run(spec, output)
    assert result.error is None, result.error
    assert result.passed is expected, result.reason
    assert result.score == (1.0 if expected else 0.0)
    assert result.type == kind and result.weight == 1.0
    assert result.value == spec.get("value")
    if not expected:
        assert result.reason != "Assertion passed"
    negated = run({**spec, "type": f"not-{kind}"}, output)
    assert negated.error is None
    assert negated.passed is (not expected), negated.reason
    assert negated.score == (0.0 if expected else 1.0)
    assert negated.type == f"not-{kind}"


def test_reasons_say_what_was_expected() -> None:
    assert run({"type": "contains", "value": "refund"}, "x").reason == (
        'Expected output to contain "refund"'
    )
    assert run({"type": "not-contains", "value": "x"}, "x").reason == (
        'Expected output to not contain "x"'
    )
    assert run({"type": "contains-all", "value": ["a", "b", "c"]}, "b").reason == (
        "Expected output to contain all of [a, b, c]. Missing: [a, c]"
    )
    assert run({"type": "word-count", "value": {"max": 1}}, "a b").reason == (
        "Word count 2 is greater than maximum 1"
    )
    assert run({"type": "levenshtein", "value": "abcdefgh"}, "").reason == (
        "Levenshtein distance 8 is greater than threshold 5"
    )
    reason = run({"type": "equals", "value": {"a": 1}}, '{"a":2}').reason
    assert reason == 'Expected output "{"a":2}" to equal "{"a":1}"'


def test_levenshtein_threshold_is_respected_including_zero() -> None:
    assert run({"type": "levenshtein", "value": "abc", "threshold": 0}, "abd").passed is False
    assert run({"type": "levenshtein", "value": "abc", "threshold": 1}, "abd").passed is True
    assert run({"type": "levenshtein", "value": "a" * 10, "threshold": 10}, "").passed is True
    assert run({"type": "levenshtein", "value": "a" * 10}, "").passed is False


def test_levenshtein_distance_matches_dynamic_programming() -> None:
    def reference(a: str, b: str) -> int:
        prev = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            cur = [i]
            for j, cb in enumerate(b, 1):
                cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
            prev = cur
        return prev[-1]

    rng = random.Random(7)
    for _ in range(500):
        a = "".join(rng.choice("abc") for _ in range(rng.randint(0, 70)))
        b = "".join(rng.choice("abcd") for _ in range(rng.randint(0, 70)))
        assert _levenshtein(a, b) == reference(a, b), (a, b)
    assert _levenshtein("😀", "a") == 2  # UTF-16 code units, as fastest-levenshtein counts


# --------------------------------------------------------------------------------------------
# JSON schemas (ajv strict + ajv-formats)
# --------------------------------------------------------------------------------------------

PERSON = {
    "type": "object",
    "required": ["email", "born", "seen"],
    "properties": {
        "email": {"type": "string", "format": "email"},
        "born": {"type": "string", "format": "date"},
        "seen": {"type": "string", "format": "date-time"},
        "site": {"type": "string", "format": "uri"},
        "id": {"type": "string", "format": "uuid"},
        "nick": {"type": "string", "nullable": True},
        "code": {"type": "string", "pattern": "^\\d{3}$"},
    },
}
GOOD = {"email": "ann@example.com", "born": "2000-02-29", "seen": "2024-01-01T10:00:00Z"}


@pytest.mark.parametrize(
    ("patch", "expected", "error"),
    [
        ({}, True, None),
        ({"nick": None, "code": "123", "site": "https://x.y/z"}, True, None),
        ({"id": "123e4567-e89b-12d3-a456-426614174000"}, True, None),
        ({"email": "not-an-email"}, False, 'data/email must match format "email"'),
        ({"born": "2001-02-29"}, False, 'data/born must match format "date"'),
        ({"seen": "2024-01-01T10:00:00"}, False, 'data/seen must match format "date-time"'),
        ({"seen": "2024-12-31T23:59:60Z"}, True, None),  # leap second
        ({"site": "not a uri"}, False, 'data/site must match format "uri"'),
        ({"code": "١٢٣"}, False, 'data/code must match pattern "^\\d{3}$"'),
        ({"code": 123}, False, "data/code must be string"),
        ({"email": None}, False, "data/email must be string"),
    ],
)
def test_is_json_schema_with_formats(
    patch: dict[str, Any], expected: bool, error: str | None
) -> None:
    output = json.dumps({**GOOD, **patch})
    result = run({"type": "is-json", "value": PERSON}, output)
    assert result.passed is expected, result.reason
    if error:
        assert result.reason == f"JSON does not conform to the provided schema. Errors: {error}"
    assert run({"type": "not-is-json", "value": PERSON}, output).passed is (not expected)


def test_is_json_schema_missing_property_and_yaml_string_schema() -> None:
    spec = {"type": "is-json", "value": "{type: object, required: [summary]}"}
    assert run(spec, '{"summary": "x"}').passed
    result = run(spec, '{"other": 1}')
    assert not result.passed
    assert result.reason.endswith("data must have required property 'summary'")
    assert not run(spec, "not json").passed
    assert run({**spec, "type": "not-is-json"}, "not json").passed


def test_contains_json_with_schema_checks_every_object() -> None:
    schema = {"type": "object", "required": ["latitude", "longitude"]}
    spec = {"type": "contains-json", "value": schema}
    output = 'here:\n```{"foo": 1}``` and {"latitude": 80.1, "longitude": -1}'
    assert run(spec, output).passed
    assert not run({**spec, "type": "not-contains-json"}, output).passed
    bad = run(spec, 'here {"latitude": "medium"}')
    assert not bad.passed
    assert "must have required property 'longitude'" in bad.reason
    assert run({**spec, "type": "not-contains-json"}, 'here {"latitude": "x"}').passed
    assert run({**spec, "type": "not-contains-json"}, "no json at all").passed


def test_extract_json_objects_follows_promptfoo() -> None:
    assert _extract_json_objects('{"a": 1} and {"b": {"c": 2}}') == [{"a": 1}, {"b": {"c": 2}}]
    assert _extract_json_objects("{a: b, 'c': [1, 2,]}") == [{"a": "b", "c": [1, 2]}]
    assert _extract_json_objects('{"a": "x", "b": [1, 2') == []
    assert _extract_json_objects('{"a": {"b": 1}') == [{"a": {"b": 1}}]  # auto-closed
    assert _extract_json_objects('{"url": "http://x.y//z"} // c') == [{"url": "http://x.y//z"}]
    assert _extract_json_objects("{x: 012, y: yes, z: 0x1F, w: ~}") == [
        {"x": 12, "y": "yes", "z": 31, "w": None}  # YAML 1.2 core schema, as js-yaml
    ]
    assert _extract_json_objects('{"e": "\\ud83d\\ude00",}') == [{"e": "😀"}]
    assert _extract_json_objects("{1: a, true: b}") == [{"1": "a", "true": "b"}]


# --------------------------------------------------------------------------------------------
# JavaScript details
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fields"),
    [
        ("a,b", ("a", "b")),
        ('"hello, world",universe', ("hello, world", "universe")),
        (
            '"hello, dear world", "goodbye, universe", simple',
            ("hello, dear world", "goodbye, universe", "simple"),
        ),
        ('"",', ("",)),
        ('"a""b"', ('a"b',)),
        ('"test\\\\test"', ("test\\test",)),
        ("  ,  ,  ", ()),
        ("HELLO,,,,WORLD", ("HELLO", "WORLD")),
        ("  HELLO  ", ("HELLO",)),
    ],
)
def test_comma_separated_values(value: str, fields: tuple[str, ...]) -> None:
    assert _parse_csv_values(value) == fields


def test_comma_separated_value_errors() -> None:
    with pytest.raises(ValueError, match="Expected comma after quoted field"):
        _parse_csv_values('"a" b')
    with pytest.raises(AssertionSpecError, match="Expected comma"):
        validate_assertion({"type": "contains-any", "value": '"a" b'})


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"),
        (-2.5, "-2.5"),
        (2**53, "9007199254740992"),
    ],
)
def test_js_number_formatting(number: float, text: str) -> None:
    assert _js_num(number) == text


def test_js_to_fixed_rounds_half_up_on_the_exact_value() -> None:
    assert _js_to_fixed(0.125, 2) == "0.13"
    assert _js_to_fixed(0.7, 2) == "0.70"
    assert _js_to_fixed(1.005, 2) == "1.00"  # 1.005 is slightly below in binary


@pytest.mark.parametrize(
    "pattern",
    ["(?i)abc", "a*+", "x{2}{3}", "(", "[z-a]", "(?<a>x)(?<a>y)", r"\k<missing>(?<n>x)",
     "a{2,1}", "(?<=a)*", "(?P<n>x)", "*a"],
)  # fmt: skip
def test_regexes_javascript_rejects_are_spec_errors(pattern: str) -> None:
    with pytest.raises(AssertionSpecError, match="Invalid regex pattern"):
        validate_assertion({"type": "regex", "value": pattern})


def test_variable_width_lookbehind_is_refused_clearly() -> None:
    with pytest.raises(AssertionSpecError, match="lookbehind must be fixed-width"):
        validate_assertion({"type": "regex", "value": "(?<=a+)b"})


def test_regex_flags_for_schema_patterns() -> None:
    assert _js_regex(r"^\u{1F600}$", "u").test("😀")
    assert _js_regex(r"^.$", "u").test("😀")
    assert _js_regex("^a$", "m").test("x\na\ny")
    assert _js_regex("^abc$", "i").test("ABC")
    with pytest.raises(ValueError, match="Invalid escape"):
        _js_regex(r"\a", "u")


# --------------------------------------------------------------------------------------------
# Templated values, latency, cost
# --------------------------------------------------------------------------------------------


def test_string_values_are_rendered_with_the_case_vars() -> None:
    assert run({"type": "contains", "value": "Dear {{ name }}"}, "Dear Ann,").passed
    assert run({"type": "equals", "value": "{{ n * 2 }}"}, "6").passed
    assert run({"type": "contains-any", "value": ["{{ name }}", "Bob"]}, "Hi Ann").passed
    missing = run({"type": "contains", "value": "{{ nope }}"}, "x")
    assert not missing.passed and missing.error and "nope" in missing.error
    with pytest.raises(AssertionSpecError, match="bad template"):
        validate_assertion({"type": "contains", "value": "{{ unclosed"})


def test_latency_and_cost_thresholds() -> None:
    ctx = AssertContext(vars={}, prompt="p", suite_dir=Path("."), latency_ms=120.0, cost=0.0012)
    assert run({"type": "latency", "threshold": 200}, "x", ctx).passed
    slow = run({"type": "latency", "threshold": 100}, "x", ctx)
    assert not slow.passed and slow.reason == "Latency 120ms is greater than threshold 100ms"
    assert run({"type": "not-latency", "threshold": 100}, "x", ctx).passed
    assert run({"type": "cost", "threshold": 0.002}, "x", ctx).passed
    costly = run({"type": "cost", "threshold": 0.001}, "x", ctx)
    assert not costly.passed and costly.reason == "Cost 0.0012 is greater than threshold 0.001"
    assert run({"type": "not-cost", "threshold": 0.001}, "x", ctx).passed


def test_unknown_latency_or_cost_fails_closed() -> None:
    for kind in ("latency", "not-latency", "cost", "not-cost"):
        result = run({"type": kind, "threshold": 1e9}, "x")  # CTX knows neither
        assert not result.passed and result.error and result.score == 0.0


# --------------------------------------------------------------------------------------------
# Spec validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "containz", "value": "x"}, "unknown assertion type 'containz'"),
        ({"type": "not-not-contains", "value": "x"}, "unknown assertion type"),
        ({"value": "x"}, "has no type"),
        ({"type": "contains"}, "needs a value"),
        ({"type": "contains", "value": ""}, "string or number value"),
        ({"type": "contains", "value": True}, "string or number value"),
        ({"type": "contains", "value": "x", "transform": "y"}, "unknown key(s) transform"),
        ({"type": "contains", "value": "x", "weight": -1}, "weight must be a number >= 0"),
        ({"type": "contains", "value": "x", "weight": "2"}, "weight must be a number"),
        ({"type": "levenshtein", "value": "x", "threshold": "5"}, "threshold must be a number"),
        ({"type": "contains-any", "value": ""}, "must have a value"),
        ({"type": "contains-all", "value": {"a": 1}}, "must have an array value"),
        ({"type": "contains-any", "value": '"test'}, "Unterminated quoted field"),
        ({"type": "starts-with", "value": 5}, "must have a string value"),
        ({"type": "regex", "value": ""}, "must have a string value"),
        ({"type": "levenshtein", "value": 5}, "must have a string value"),
        ({"type": "word-count", "value": "many"}, "must be a number or an object"),
        ({"type": "word-count", "value": {}}, '"min" and/or "max"'),
        ({"type": "word-count", "value": {"min": 5, "max": 2}}, "min (5) must be less than"),
        ({"type": "word-count", "value": {"maximum": 2}}, "only min and max"),
        ({"type": "latency"}, "needs a threshold"),
        ({"type": "cost", "value": 1}, "needs a threshold"),
        ({"type": "is-json", "value": True}, "must have a string or object value"),
        ({"type": "is-json", "value": {"type": "strin"}}, "schema is invalid"),
        ({"type": "is-json", "value": {"type": "object", "foo": 1}}, 'unknown keyword: "foo"'),
        ({"type": "contains-json", "value": {"format": "phone"}}, 'unknown format "phone"'),
        ({"type": "is-json", "value": {"pattern": "\\p{L}"}}, "property escapes"),
        ({"type": "is-json", "value": "[unclosed"}, "not valid YAML"),
        ({"type": "llm-rubric", "value": ""}, "must have a rubric"),
        ({"type": "python", "value": "return ("}, "does not compile"),
        ({"type": "python", "value": "file://checks.txt"}, "must be a .py file"),
        ({"type": "python", "value": 3}, "must have a string value"),
    ],
)
def test_bad_specs_are_refused_with_one_line(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(AssertionSpecError) as excinfo:
        validate_assertion(spec)
    assert message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_good_specs_pass_validation() -> None:
    for spec in [
        {"type": "contains", "value": 3, "weight": 2, "metric": "m"},
        {"type": "not-icontains", "value": "As an AI"},
        {"type": "is-json"},
        {"type": "is-json", "value": {"type": "object", "required": ["summary"]}},
        {"type": "contains-json", "value": "file://schema.json"},
        {"type": "word-count", "value": {"max": 60}},
        {"type": "levenshtein", "value": "x", "threshold": 0},
        {"type": "latency", "threshold": 5000},
        {"type": "llm-rubric", "value": "States the refund deadline", "weight": 2},
        {"type": "llm-rubric", "value": "x", "threshold": "0.5"},
        {"type": "python", "value": "file://checks.py:mentions_deadline"},
        {"type": "python", "value": "len(output) < {{ n }}"},
        {"type": "regex", "value": "{{ name }}+"},
    ]:
        validate_assertion(spec)


# --------------------------------------------------------------------------------------------
# Weights and the case threshold (promptfoo's AssertionsResult)
# --------------------------------------------------------------------------------------------


def test_all_must_pass_without_a_threshold() -> None:
    result = case([{"type": "contains", "value": "a"}, {"type": "contains", "value": "b"}], "a")
    assert not result.passed
    assert result.score == 0.5
    assert result.reason == 'Expected output to contain "b"'
    assert len(result.results) == 2
    ok = case([{"type": "contains", "value": "a"}], "a")
    assert ok.passed and ok.score == 1.0 and ok.reason == "All assertions passed"


def test_weighted_score_and_threshold() -> None:
    specs = [
        {"type": "contains", "value": "a", "weight": 3},
        {"type": "contains", "value": "zzz", "weight": 1},
    ]
    assert case(specs, "a").score == 0.75
    passing = case(specs, "a", threshold=0.75)
    assert passing.passed and passing.reason == "Aggregate score 0.75 ≥ 0.75 threshold"
    failing = case(specs, "a", threshold=0.8)
    assert not failing.passed and failing.reason == "Aggregate score 0.75 < 0.8 threshold"
    assert not case(specs, "a", threshold=None).passed


def test_threshold_zero_counts_and_no_assertions_pass() -> None:
    assert case([{"type": "contains", "value": "zzz"}], "a", threshold=0).passed
    empty = case([], "anything", threshold=0.9)
    assert empty.passed and empty.score == 1.0 and empty.reason == "No assertions"


def test_weight_zero_is_a_metric_that_cannot_fail() -> None:
    result = case([{"type": "contains", "value": "zzz", "weight": 0}], "a")
    assert result.passed
    assert result.results[0].passed and result.results[0].score == 0.0
    assert result.score == 0.0  # no weight at all: promptfoo scores 0
    mixed = case(
        [{"type": "contains", "value": "zzz", "weight": 0}, {"type": "contains", "value": "a"}],
        "a",
    )
    assert mixed.passed and mixed.score == 1.0


def test_an_assertion_that_cannot_be_evaluated_fails_the_case_even_with_threshold() -> None:
    specs = [
        {"type": "contains", "value": "a", "weight": 9},
        {"type": "llm-rubric", "value": "polite"},  # CTX has no judge
    ]
    result = case(specs, "a", threshold=0.5)
    assert result.score == 0.9
    assert not result.passed
    assert "llm-rubric could not be evaluated" in result.reason


def test_a_raising_assertion_becomes_an_error_result() -> None:
    spec = {"type": "regex", "value": "{{ name }}("}  # valid template, invalid regex once rendered
    result = run(spec, "Ann(")
    assert not result.passed and result.score == 0.0
    assert result.error is not None and "Invalid regex pattern" in result.error
    negated = run({**spec, "type": "not-regex"}, "Ann(")
    assert not negated.passed and negated.error is not None  # an error is never inverted


def test_evaluate_never_raises_on_garbage() -> None:
    for spec in [{"type": 3}, {"type": "nope"}, {"type": "contains", "value": object()}]:
        result = asyncio.run(evaluate(spec, "x", CTX))
        assert not result.passed and result.error


# --------------------------------------------------------------------------------------------
# llm-rubric with a fake judge
# --------------------------------------------------------------------------------------------


class FakeJudge:
    def __init__(self, reply: str | Exception) -> None:
        self.reply = reply
        self.calls: list[list[dict[str, str]]] = []

    async def __call__(self, messages: list[dict[str, str]]) -> str:
        self.calls.append(messages)
        await asyncio.sleep(0)
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def judged(reply: str | Exception) -> tuple[AssertContext, FakeJudge]:
    judge = FakeJudge(reply)
    return AssertContext(vars={"d": "Friday"}, prompt="p", suite_dir=Path("."), judge=judge), judge


def test_rubric_prompt_is_promptfoos_default() -> None:
    ctx, judge = judged('{"reason": "it does", "pass": true, "score": 1}')
    spec = {"type": "llm-rubric", "value": "States the deadline ({{ d }})"}
    result = run(spec, "By Friday.", ctx)
    assert result.passed and result.score == 1.0 and result.reason == "it does"
    assert judge.calls == [
        [
            {"role": "system", "content": RUBRIC_SYSTEM_PROMPT},
            {
                "role": "user",
                "content": "<Output>\nBy Friday.\n</Output>\n<Rubric>\nStates the deadline "
                "(Friday)\n</Rubric>",
            },
        ]
    ]
    assert RUBRIC_SYSTEM_PROMPT.startswith("You are grading output according to a user-specified")
    assert RUBRIC_SYSTEM_PROMPT.endswith('"pass": false, "score": 0.0}')


def test_rubric_shows_json_output_as_promptfoo_renders_it() -> None:
    assert (
        "<Output>\n" + '{"a":1.5,"b":[1,2]}'
        in rubric_messages("r", '{ "a": 1.50, "b": [1, 2] }')[1]["content"]
    )
    assert "<Output>\nnull-less\n" in rubric_messages("r", "null-less")[1]["content"]
    assert "<Output>\n\n</Output>" in rubric_messages("r", "null")[1]["content"]


@pytest.mark.parametrize(
    ("reply", "threshold", "passed", "score"),
    [
        ('{"reason": "ok", "pass": true, "score": 0.9}', None, True, 0.9),
        ('{"reason": "no", "pass": false, "score": 0.1}', None, False, 0.1),
        ('Sure:\n```json\n{"reason": "ok", "pass": true, "score": 0.6}\n```', 0.7, False, 0.6),
        ('{"reason": "ok", "pass": true, "score": 0.8}', 0.7, True, 0.8),
        ('{"reason": "ok", "pass": "yes"}', None, True, 1.0),
        ('{"reason": "ok", "pass": "nope", "score": 1}', None, False, 1.0),
        ('{"reason": "ok", "pass": true, "score": "0.4"}', None, True, 0.4),
    ],
)
def test_rubric_verdicts(reply: str, threshold: float | None, passed: bool, score: float) -> None:
    ctx, _ = judged(reply)
    spec: dict[str, Any] = {"type": "llm-rubric", "value": "polite"}
    if threshold is not None:
        spec["threshold"] = threshold
    result = run(spec, "out", ctx)
    assert result.error is None
    assert (result.passed, result.score) == (passed, score)
    negated = run({**spec, "type": "not-llm-rubric"}, "out", ctx)
    assert negated.passed is (not passed)
    assert negated.score == pytest.approx(min(1.0, max(0.0, 1.0 - score)))


@pytest.mark.parametrize(
    "reply",
    [
        "I think it passes.",
        "",
        '{"reason": "no pass field", "score": 1}',
        "[true]",
        RuntimeError("HTTP 500"),
    ],
)
def test_unusable_verdicts_are_errors_never_passes(reply: str | Exception) -> None:
    for kind in ("llm-rubric", "not-llm-rubric"):
        ctx, _ = judged(reply)
        result = run({"type": kind, "value": "polite"}, "out", ctx)
        assert not result.passed and result.score == 0.0
        assert result.error


def test_no_judge_is_an_error() -> None:
    result = run({"type": "llm-rubric", "value": "polite"}, "out")
    assert not result.passed and result.error and "judge" in result.error


def test_rubrics_run_concurrently_in_a_case() -> None:
    started: list[int] = []
    gate = asyncio.Event()

    async def judge(messages: list[dict[str, str]]) -> str:
        started.append(1)
        if len(started) == 2:
            gate.set()
        await asyncio.wait_for(gate.wait(), 1)
        return '{"reason": "ok", "pass": true, "score": 1}'

    ctx = AssertContext(vars={}, prompt="p", suite_dir=Path("."), judge=judge)
    specs = [{"type": "llm-rubric", "value": "a"}, {"type": "llm-rubric", "value": "b"}]
    assert case(specs, "out", ctx=ctx).passed


# --------------------------------------------------------------------------------------------
# python assertions
# --------------------------------------------------------------------------------------------

CHECKS = """
import helper

def get_assert(output, context):
    return "refund" in output

def score(output, context):
    return len(output) / 10

def graded(output, context):
    return {"pass": output.startswith("ok"), "score": 0.7, "reason": "graded " + context["prompt"]}

def snake(output, context):
    return {"pass_": True, "score": 1, "reason": "snake"}

def uses_vars(output, context):
    return context["vars"]["ticket"] in output

async def slow(output, context):
    return "true"

def boom(output, context):
    raise RuntimeError("kaboom")

def bad_shape(output, context):
    return {"pass": True}

def nothing(output, context):
    return None

def expected(output, context):
    return helper.WORD

class Checks:
    @staticmethod
    def method(output, context):
        return 0
"""


@pytest.fixture
def suite(tmp_path: Path) -> AssertContext:
    (tmp_path / "checks.py").write_text(CHECKS, encoding="utf-8")
    (tmp_path / "helper.py").write_text("WORD = 'refund'\n", encoding="utf-8")
    (tmp_path / "schema.json").write_text('{"type": "object", "required": ["a"]}', "utf-8")
    (tmp_path / "expected.txt").write_text("  refund \n", encoding="utf-8")
    return AssertContext(vars={"ticket": "1182"}, prompt="summarize", suite_dir=tmp_path)


@pytest.mark.parametrize(
    ("ref", "output", "passed", "score"),
    [
        ("file://checks.py", "a refund", True, 1.0),  # default function: get_assert
        ("file://checks.py:get_assert", "nothing", False, 0.0),
        ("file://checks.py:score", "12345", True, 0.5),  # a number: pass when > 0
        ("file://checks.py:score", "", False, 0.0),
        ("file://checks.py:graded", "ok then", True, 0.7),
        ("file://checks.py:graded", "nope", False, 0.7),
        ("file://checks.py:snake", "x", True, 1.0),
        ("file://checks.py:uses_vars", "ticket 1182", True, 1.0),
        ("file://checks.py:slow", "x", True, 1.0),
        ("file://checks.py:Checks.method", "x", False, 0.0),
    ],
)
def test_python_file_checks(
    suite: AssertContext, ref: str, output: str, passed: bool, score: float
) -> None:
    result = run({"type": "python", "value": ref}, output, suite)
    assert result.error is None, result.error
    assert (result.passed, result.score) == (passed, score), result.reason
    negated = run({"type": "not-python", "value": ref}, output, suite)
    assert negated.passed is (not passed)


def test_python_dict_reason_and_threshold(suite: AssertContext) -> None:
    graded = run({"type": "python", "value": "file://checks.py:graded"}, "ok", suite)
    assert graded.reason == "graded summarize"
    strict_spec = {"type": "python", "value": "file://checks.py:graded", "threshold": 0.8}
    strict = run(strict_spec, "ok", suite)
    assert not strict.passed
    assert strict.reason == "Python score 0.7 is less than threshold 0.8: graded summarize"
    scored_spec = {"type": "python", "value": "file://checks.py:score", "threshold": 0.6}
    scored = run(scored_spec, "12345", suite)
    assert not scored.passed and scored.score == 0.5


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("file://checks.py:boom", "RuntimeError: kaboom"),
        ("file://checks.py:bad_shape", "must return a boolean, number, or {pass, score, reason}"),
        ("file://checks.py:nothing", "must return a boolean, number"),
        ("file://checks.py:missing", "no function 'missing'"),
        ("file://nowhere.py", "cannot read"),
    ],
)
def test_python_failures_are_errors(suite: AssertContext, ref: str, fragment: str) -> None:
    for kind in ("python", "not-python"):
        result = run({"type": kind, "value": ref}, "x", suite)
        assert not result.passed and result.score == 0.0
        assert result.error is not None and fragment in result.error


def test_python_file_is_loaded_once_per_version(suite: AssertContext) -> None:
    path = suite.suite_dir / "counted.py"
    path.write_text(
        "import builtins\nbuiltins.__dict__.setdefault('_pg_loads', []).append(1)\n"
        "def get_assert(output, context):\n    return True\n",
        encoding="utf-8",
    )
    import builtins

    builtins.__dict__.pop("_pg_loads", None)
    for _ in range(3):
        assert run({"type": "python", "value": "file://counted.py"}, "x", suite).passed
    assert builtins.__dict__["_pg_loads"] == [1]
    path.write_text("def get_assert(output, context):\n    return False\n\n\n", encoding="utf-8")
    assert not run({"type": "python", "value": "file://counted.py"}, "x", suite).passed
    builtins.__dict__.pop("_pg_loads", None)


@pytest.mark.parametrize(
    ("code", "output", "passed", "score"),
    [
        ("'refund' in output", "a refund", True, 1.0),
        ("'refund' in output", "nope", False, 0.0),
        ("len(output) / 10", "12345", True, 0.5),
        ("output.upper() == context['vars']['ticket']", "1182", True, 1.0),
        ("json.loads(output)['ok']", '{"ok": true}', True, 1.0),
        ("x = output.count('a')\nreturn x >= 2", "banana", True, 1.0),
        (
            "  if 'a' in output:\n"
            "    return {'pass': True, 'score': 0.5, 'reason': 'has a'}\n"
            "  return False",
            "a",
            True,
            0.5,
        ),
        ("len(output) < {{ n }}", "ab", True, 1.0),
    ],
)
def test_inline_python(
    suite: AssertContext, code: str, output: str, passed: bool, score: float
) -> None:
    ctx = AssertContext(vars={"ticket": "1182", "n": 3}, prompt="p", suite_dir=suite.suite_dir)
    result = run({"type": "python", "value": code}, output, ctx)
    assert result.error is None, result.error
    assert (result.passed, result.score) == (passed, score), result.reason


def test_file_values_for_other_types(suite: AssertContext) -> None:
    schema = {"type": "is-json", "value": "file://schema.json"}
    assert run(schema, '{"a": 1}', suite).passed
    assert not run(schema, '{"b": 1}', suite).passed
    assert run({"type": "equals", "value": "file://expected.txt"}, "refund", suite).passed
    assert run({"type": "contains", "value": "file://checks.py:expected"}, "a refund", suite).passed
    bool_script = run({"type": "contains", "value": "file://checks.py:get_assert"}, "x", suite)
    assert bool_script.error is not None
    missing = run({"type": "is-json", "value": "file://nope.json"}, "{}", suite)
    assert not missing.passed and missing.error


# --------------------------------------------------------------------------------------------
# Output is never altered
# --------------------------------------------------------------------------------------------


def test_output_is_seen_exactly_as_returned() -> None:
    output = "  Answer: 42\n\n"
    assert not run({"type": "equals", "value": "Answer: 42"}, output).passed
    assert run({"type": "equals", "value": output}, output).passed
    assert not run({"type": "starts-with", "value": "Answer"}, output).passed
    assert run({"type": "regex", "value": "^  Answer"}, output).passed
    assert not run({"type": "is-json"}, "\ufeff{}").passed  # a BOM is not JSON whitespace
