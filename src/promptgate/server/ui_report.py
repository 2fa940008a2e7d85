"""The gate report rendered for people (README: web UI), from the same JSON report as every form.

Pure helpers for report.html: each case paired with production's run of the same case (from
`baseline_suites`), assertions in words, and a configuration problem (no model endpoint, a key
the provider refuses) recognised once for the whole report instead of on every case.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

QUOTE_LIMIT = 80

# type -> (verb phrase, how the value reads); "not-" types read "must not <phrase>"
_PHRASES: dict[str, str] = {
    "contains": "contain {v}",
    "icontains": "contain {v} (any case)",
    "contains-all": "contain all of {v}",
    "icontains-all": "contain all of {v} (any case)",
    "contains-any": "contain at least one of {v}",
    "icontains-any": "contain at least one of {v} (any case)",
    "equals": "be exactly {v}",
    "starts-with": "start with {v}",
    "regex": "match the pattern {v}",
    "is-json": "be valid JSON",
    "contains-json": "contain JSON",
    "levenshtein": "be within a few edits of {v}",
    "word-count": "have {v} words",
    "llm-rubric": "satisfy a judge model asked: {v}",
    "python": "pass the Python check {v}",
    "latency": "answer within {v} ms",
    "cost": "cost at most ${v}",
}


def _quoted(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= QUOTE_LIMIT else value[: QUOTE_LIMIT - 1] + "…"
        return f"'{text}'"
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return ", ".join(_quoted(x) for x in value[:8]) + (" …" if len(value) > 8 else "")
    if isinstance(value, Mapping) and set(value) <= {"min", "max"}:
        low, high = value.get("min"), value.get("max")
        if low is not None and high is not None:
            return f"between {low} and {high}"
        return f"at least {low}" if low is not None else f"at most {high}"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= QUOTE_LIMIT else text[: QUOTE_LIMIT - 1] + "…"


def assertion_words(assertion: Mapping[str, Any]) -> str:
    """`{type: not-contains, value: As an AI}` -> "must not contain 'As an AI'"."""
    kind = str(assertion.get("type") or "")
    negated = kind.startswith("not-")
    base = kind[4:] if negated else kind
    value = assertion.get("value")
    phrase = _PHRASES.get(base)
    if phrase is None:
        phrase = f"pass the {base} check" + (f" {_quoted(value)}" if value is not None else "")
    elif base == "is-json" and value is not None:
        phrase = "be JSON matching its schema"
    elif base == "word-count" and isinstance(value, int | float):
        phrase = f"have exactly {value} words"
    else:
        shown = value if base in ("latency", "cost") else _quoted(value)
        phrase = phrase.format(v=shown)
    return ("must not " if negated else "must ") + phrase


@dataclass(frozen=True)
class CaseView:
    """One case of a suite: the candidate's run and production's run of the same case."""

    suite: Mapping[str, Any]
    case: Mapping[str, Any]
    baseline: Mapping[str, Any] | None
    baseline_version: str | None = None


def case_views(report: Mapping[str, Any]) -> list[CaseView]:
    """Every candidate case, failing ones first (in report order), each with its baseline."""
    base: dict[tuple[str, str, str], tuple[Mapping[str, Any], str]] = {}
    for suite in report.get("baseline_suites") or []:
        for case in suite.get("cases") or []:
            key = (str(suite.get("prompt")), str(suite.get("path")), str(case.get("id")))
            base[key] = (case, str(suite.get("version")))
    views = []
    for s in report.get("suites") or []:
        for c in s.get("cases") or []:
            found = base.get((str(s.get("prompt")), str(s.get("path")), str(c.get("id"))))
            views.append(CaseView(s, c, *(found or (None, None))))
    failing = [v for v in views if not v.case.get("passed")]
    return failing + [v for v in views if v.case.get("passed")]


@dataclass(frozen=True)
class ConfigProblem:
    """Every case of the report errored for one reason a person fixes on the server."""

    what: str  # the sentence saying what to set
    cases: int
    detail: str  # one of the errors, verbatim


def _kind(error: str) -> str | None:
    if error.startswith("no model endpoint") or "no model endpoint:" in error:
        return "endpoint"
    if "(HTTP 401)" in error or "(HTTP 403)" in error or "AuthenticationError" in error:
        return "auth"
    return None


def config_problem(report: Mapping[str, Any]) -> ConfigProblem | None:
    """The one banner to show instead of N failing cases, or None."""
    cases: Sequence[Mapping[str, Any]] = [
        c for s in report.get("suites") or [] for c in s.get("cases") or []
    ]
    if not cases:
        return None
    kinds = {_kind(str(c.get("error") or "")) for c in cases}
    if len(kinds) != 1 or None in kinds:
        return None
    [kind] = kinds
    detail = str(cases[0].get("error"))
    if kind == "endpoint":
        what = (
            "No model is configured on this server, so no case could run. Set OPENAI_API_KEY "
            "(and OPENAI_BASE_URL for another OpenAI-compatible server) in the server's "
            "environment, restart it, and file the request again."
        )
    else:
        what = (
            "The model provider refused the server's API key, so no case could run. Check "
            "OPENAI_API_KEY (or the prompt's api_key_env) in the server's environment, "
            "restart it, and file the request again."
        )
    return ConfigProblem(what=what, cases=len(cases), detail=detail)
