"""Eval assertions with promptfoo's names and verdicts.

Every assertion type, its value forms, its `not-` form and the way a case's weighted score is
aggregated follow promptfoo 0.121.20 (`src/assertions/*.ts`, `src/assertions/index.ts`,
`src/assertions/assertionsResult.ts`), so that promptfoo suites port unchanged. Where promptfoo
leans on JavaScript (regular expressions, `String(x)`, `JSON.parse`, js-yaml, ajv), this module
reproduces the JavaScript behaviour in Python rather than substituting Python's:

* **Regular expressions** (`regex`, and JSON-schema `pattern` / `format: regex`) are parsed with
  ECMAScript syntax (web-compat Annex B grammar, as `new RegExp(value)` uses) and translated into
  an equivalent Python `re` pattern: `\\d`, `\\w`, `\\b` are ASCII-only, `\\s` is JavaScript's
  whitespace set, `.` excludes the four line terminators, `$` matches only at the very end,
  `(?<name>...)` / `\\k<name>` become Python groups, a backreference to a group that has not
  matched matches the empty string, `\\a`-style identity escapes, legacy octal escapes and
  literal `{` / `}` / `]` behave as in JavaScript, and syntax JavaScript rejects (`(?i)`,
  possessive `a*+`, `a{,3}` used as a quantifier...) is rejected. Without the `u` flag JavaScript
  matches UTF-16 code units, so the subject and the pattern are matched as UTF-16 code units too.
  Not reproducible with Python's `re`: variable-width lookbehind (rejected with a clear error),
  `\\p{...}` property escapes in `u` patterns (rejected), and the reset of captures between
  iterations of a quantified group (only observable through a backreference to such a capture).
* **JSON**: `is-json` / `equals` parse like `JSON.parse` (no `NaN`/`Infinity`); `contains-json`
  scans the output like promptfoo's `extractJsonObjects` (brace counting, auto-closing an
  unterminated object, `//` comments, YAML flow syntax as js-yaml's core schema reads it).
* **JSON schema**: validated like promptfoo's strict ajv with ajv-formats: unknown keywords and
  unknown formats are load-time errors, every ajv-formats format is checked with ajv-formats' own
  definitions, `pattern` uses JavaScript regex semantics (`u` flag) and `nullable` is honoured.

Deliberate differences, all fail-closed: assertion values are templated with Jinja2 (promptfoo:
Nunjucks) and an undefined variable is an error instead of an empty string; an `llm-rubric`
verdict without a `pass` field is an error (promptfoo assumes a pass); an assertion that could not
be evaluated (no judge, unknown latency or cost, a Python check that raised...) fails its case even
when the case has a `threshold`; Python checks run in-process (loaded once per file version,
their folder put on `sys.path` as promptfoo's wrapper does). As in promptfoo, a python check that
returns a bare number or a `{pass, score, reason}` object keeps that score even outside 0..1.
Known gaps of the lenient `contains-json` scan: YAML timestamps stay strings (js-yaml makes Dates),
and on malformed non-JSON text PyYAML and js-yaml can disagree (e.g. a plain `-` before `}`).

The package, one concern per module (all private; this module is the API):
`_types` (the records), `_js` (JavaScript value semantics), `_jsregex` (the regex translator),
`_jsonscan` (`JSON.parse` and the lenient JSON scan), `_schema` (ajv-style schema checks),
`_text` (comma-separated values, Levenshtein), `_template` (templated values), `_pycheck`
(`file://` values and Python checks), `_registry` (`@assertion`), `_builtins` (the assertions),
`_validate` (load-time checks) and `_evaluate` (running them and scoring a case).
"""

from __future__ import annotations

from ._builtins import ASSERTION_TYPES, RUBRIC_SYSTEM_PROMPT, rubric_messages
from ._evaluate import evaluate, score_case
from ._js import _js_num as _js_num
from ._js import _js_to_fixed as _js_to_fixed
from ._jsonscan import _extract_json_objects as _extract_json_objects
from ._jsregex import _js_regex as _js_regex
from ._registry import assertion
from ._text import _levenshtein as _levenshtein
from ._text import _parse_csv_values as _parse_csv_values
from ._types import AssertContext, AssertionResult, AssertionSpecError, CaseScore, Judge
from ._validate import validate_assertion

__all__ = [
    "ASSERTION_TYPES",
    "RUBRIC_SYSTEM_PROMPT",
    "AssertContext",
    "AssertionResult",
    "AssertionSpecError",
    "CaseScore",
    "Judge",
    "assertion",
    "evaluate",
    "rubric_messages",
    "score_case",
    "validate_assertion",
]
