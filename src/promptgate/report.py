"""Gate reports. One versioned JSON object is built from a gate run; the Markdown, JUnit XML,
terminal and GitHub-annotation forms are all rendered from that object, so they never disagree.

JSON report, `schema_version` 1 (documented in the README):
  verdict ("pass" | "fail" | "inconclusive" | "nothing-changed"), label, started_at, wall_s,
  tool {name, version},
  candidates [{name, version, ref, content_hash, draft, path}],
  baselines [{name, version, content_hash}] (affected prompts the label points at),
  upstream [{name, version, content_hash}] (unaffected prompts and partials they consume),
  affected [{name, reason, candidate, baseline, new}], graph {nodes, edges},
  diffs [{prompt, from, to, new, text, config}], failures [str], problems [str],
  suites [{prompt, path, digest, version, threshold, repeat, total, passed_cases, pass_rate,
           passed (the threshold held), verdict ("pass" | "fail" | "inconclusive"),
           comparison ({n, regressions, fixes, drop, ci_high, p_value, p_adjusted, margin, alpha,
                        verdict, cases_needed, method, regressed, fixed}, or null without a
                        baseline),
           cases [{id, line, passed, flaky, runs, runs_passed, change, error, output,
                   failed_assertions [{type, value, reason, score, weight, error}],
                   vars {the case's inputs, strings cut at 2,000 characters},
                   assertions [every assertion of the run shown, same shape],
                   upstream [{input, prompt, version, output}] (optional: only on a case whose
                             `from:` inputs were produced by running upstream prompts; what
                             the run shown was fed, outputs cut like `output`)}]}],
  baseline_suites [same shape, for the baseline side], stats {calls, cached, shared, retries,
  errors, prompt_tokens, completion_tokens, cost_usd, wall_s}, settings {...}.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from ._version import __version__
from .canonical import content_hash
from .errors import BadInput
from .runner import CaseResult, RunResult, SuiteResult, excerpt
from .verdict import Judgement, SuiteVerdict, sentence

SCHEMA_VERSION = 1
GITHUB_COMMENT_LIMIT = 65_536
MARKER = "<!-- promptgate-report -->"
VAR_EXCERPT = 2000  # characters kept of a string input


def _assertion_json(a: Any) -> dict[str, Any]:
    return {
        "type": a.type,
        "value": a.value,
        "reason": a.reason,
        "score": round(a.score, 4),
        "weight": a.weight,
        "error": a.error,
    }


_Shared = dict[tuple[Any, ...], dict[str, Any]]


def _shared_assertion_json(a: Any, shared: _Shared) -> dict[str, Any]:
    """`_assertion_json(a)`, one object for every identical result in a report (a suite's
    default assertions give the same result in most cases: 20,000 cases, 20,000 equal dicts).
    Reports are read, never changed in place, so sharing is safe."""
    value = a.value
    if not isinstance(value, (str, int, float, bool, type(None))):
        return _assertion_json(a)
    key = (a.type, type(value), value, a.reason, a.score, a.weight, a.error)
    found = shared.get(key)
    if found is None:
        found = shared[key] = _assertion_json(a)
    return found


def _case_json(
    case: CaseResult, change: str | None, shared: _Shared | None = None
) -> dict[str, Any]:
    failing_run = next((r for r in case.runs if not r.passed), case.runs[0] if case.runs else None)
    results = failing_run.assertions if failing_run else ()
    memo: _Shared = {} if shared is None else shared
    assertions = [_shared_assertion_json(a, memo) for a in results]
    out: dict[str, Any] = {
        "id": case.case_id,
        "line": case.line,
        "passed": case.passed,
        "flaky": case.flaky,
        "runs": len(case.runs),
        "runs_passed": sum(r.passed for r in case.runs),
        "change": change,
        "error": case.error,
        "cached": all(r.cached for r in case.runs),
        "output": failing_run.output if failing_run else "",
        "failed_assertions": [j for j, a in zip(assertions, results, strict=True) if not a.passed],
        # for people reading the report: what the case was given, and every assertion it met
        "vars": _vars_json(case.vars),
        "assertions": assertions,
    }
    if failing_run and failing_run.upstream:  # optional: only a case fed by `from:` inputs has it
        out["upstream"] = [
            {"input": u.input, "prompt": u.prompt, "version": u.version, "output": u.output}
            for u in failing_run.upstream
        ]
    return out


def _vars_json(variables: Mapping[str, Any]) -> Mapping[str, Any]:
    """A case's inputs as the report keeps them: the case's own mapping when nothing in it is
    long enough to cut (most cases: no copy), else a copy with long strings cut."""
    if all(not isinstance(v, str) or len(v) <= VAR_EXCERPT for v in variables.values()):
        return variables
    return {k: _excerpt_value(v) for k, v in variables.items()}


def _excerpt_value(value: Any) -> Any:
    """A case input as a report keeps it: long strings cut (as outputs are), the rest as is."""
    return excerpt(value, VAR_EXCERPT) if isinstance(value, str) else value


def _change(case: CaseResult, before: CaseResult | None) -> str:
    if before is None:
        return "new"
    if case.passed and before.passed:
        return "passing"
    if case.passed:
        return "fixed"
    return "still-failing" if not before.passed else "new-failure"


def suite_summary(sr: SuiteResult) -> dict[str, Any]:
    """A suite object's fields other than its cases and its judgement."""
    return {
        "prompt": sr.prompt,
        "path": sr.path,
        "digest": sr.digest,
        "version": sr.version,
        "threshold": sr.threshold,
        "repeat": sr.repeat,
        "total": sr.total,
        "passed_cases": sr.passed_cases,
        "pass_rate": round(sr.pass_rate, 4),
        "passed": sr.passed,
    }


def judged_fields(judged: SuiteVerdict | None) -> dict[str, Any]:
    """A candidate suite's `verdict`, effective `compare` policy and `comparison`."""
    if judged is None:
        return {}
    return {
        "verdict": judged.verdict,
        "compare": {
            "margin": judged.policy.margin,
            "alpha": judged.policy.alpha,
            "inconclusive": judged.policy.inconclusive,
        },
        "comparison": judged.comparison.to_json() if judged.comparison else None,
    }


def _suite_json(
    sr: SuiteResult,
    baseline: SuiteResult | None,
    judged: SuiteVerdict | None = None,
    shared: _Shared | None = None,
) -> dict[str, Any]:
    before = {c.case_id: c for c in baseline.cases} if baseline else {}
    cases = sorted(sr.cases, key=lambda c: (c.line or 0, c.case_id))
    memo: _Shared = {} if shared is None else shared
    return {
        **suite_summary(sr),
        **judged_fields(judged),
        "cases": [
            _case_json(c, _change(c, before.get(c.case_id)) if baseline else "new", memo)
            for c in cases
        ],
    }


def build_report(
    run: Any, judgement: Judgement, diffs: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The JSON report of a gate run (see the module docstring for the shape)."""
    plan = run.plan
    suites = []
    baseline_suites = []
    shared: _Shared = {}
    for name in plan.affected:
        base_by_path = {b.path: b for b in run.baseline.get(name, [])}
        for sr in run.candidate.get(name, []):
            judged = judgement.for_suite(name, sr.path)
            suites.append(_suite_json(sr, base_by_path.get(sr.path), judged, shared))
        for b in run.baseline.get(name, []):
            baseline_suites.append(_suite_json(b, None, shared=shared))
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "promptgate", "version": __version__},
        "verdict": judgement.verdict,
        "label": plan.label,
        "started_at": run.started_at,
        "wall_s": round(run.wall_s, 3),
        "candidates": [
            {
                "name": c.name,
                "version": c.version,
                "ref": f"{c.name}@{c.label}",
                "content_hash": c.content_hash,
                "draft": c.version is None,
                "path": c.path,
            }
            for c in plan.candidates.values()
        ],
        "baselines": [
            {
                "name": n,
                "version": plan.baseline[n].version,
                "content_hash": plan.baseline[n].content_hash,
            }
            for n in plan.affected
            if n in plan.baseline
        ],
        "upstream": [
            {"name": n, "version": p.version, "content_hash": p.content_hash}
            for n, p in plan.upstream.items()
        ],
        "affected": [
            {
                "name": n,
                "reason": plan.reasons.get(n, ""),
                "candidate": plan.candidate_side[n].label if n in plan.candidate_side else None,
                "baseline": plan.baseline[n].label if n in plan.baseline else None,
                "new": n not in plan.baseline,
            }
            for n in plan.affected
        ],
        "graph": {
            "nodes": list(plan.affected),
            "edges": [[a, b] for a, b in sorted(plan.graph.edges)],
        },
        "diffs": list(diffs),
        "failures": list(judgement.failures),
        "problems": list(plan.problems),
        "suites": suites,
        "baseline_suites": baseline_suites,
        "stats": dict(run.stats),
        "settings": dict(run.settings),
        "shard": {"index": plan.shard[0], "count": plan.shard[1]} if plan.shard else None,
    }


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def suite_result_from_json(
    entry: Mapping[str, Any], *, where: str, path: str, threshold: float, repeat: int
) -> SuiteResult:
    """A report's suite object back into a SuiteResult, judged by `threshold` and `repeat`
    (the suite file's, not the report's): each case's `passed` and the suite's `passed` must be
    what the case's runs give (pass^k: every run passed, no error), else BadInput."""
    cases = entry.get("cases")
    if not isinstance(cases, list) or not all(isinstance(c, Mapping) for c in cases):
        raise BadInput(f"suite {where}: the report has no list of cases")
    case_results = []
    for c in cases:
        runs, runs_passed = _int(c.get("runs")), _int(c.get("runs_passed"))
        if runs is None or runs_passed is None or runs != repeat or not 0 <= runs_passed <= runs:
            raise BadInput(
                f"suite {where}, case {c.get('id')}: {c.get('runs_passed')!r}/"
                f"{c.get('runs')!r} runs, but the suite repeats each case {repeat} time(s)"
            )
        error = c.get("error") or None
        passed = runs_passed == runs and not error
        if c.get("passed") is not passed:
            raise BadInput(
                f"suite {where}, case {c.get('id')}: marked passed={c.get('passed')!r}, "
                f"but {runs_passed}/{runs} runs passed" + (" with an error" if error else "")
            )
        line = c.get("line")
        case_results.append(
            CaseResult(
                suite=path,
                case_id=str(c.get("id")),
                line=line if type(line) is int else None,
                passed=passed,
                flaky=0 < runs_passed < runs,
                vars=dict(c["vars"]) if isinstance(c.get("vars"), Mapping) else {},
                runs=tuple(
                    RunResult(
                        index=i,
                        passed=i < runs_passed,  # an errored run is one of the failing ones
                        score=1.0 if i < runs_passed else 0.0,
                        output=str(c.get("output") or "") if i == runs - 1 else "",
                        error=str(error) if error and i == runs - 1 else None,
                        cached=bool(c.get("cached")),
                    )
                    for i in range(runs)
                ),
            )
        )
    total = entry.get("total")
    result = SuiteResult(
        prompt=str(entry.get("prompt")),
        path=path,
        digest=str(entry.get("digest")),
        version=str(entry.get("version")),
        threshold=threshold,
        repeat=repeat,
        total=total if type(total) is int and total >= len(case_results) else len(case_results),
        cases=case_results,
    )
    if entry.get("passed") is not result.passed:
        raise BadInput(
            f"suite {where}: marked passed={entry.get('passed')!r}, but "
            f"{result.passed_cases}/{result.total} cases passed against its threshold "
            f"{threshold:g}"
        )
    return result


def nothing_changed_report(label: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "promptgate", "version": __version__},
        "verdict": "nothing-changed",
        "label": label,
        "candidates": [],
        "baselines": [],
        "affected": [],
        "graph": {"nodes": [], "edges": []},
        "diffs": [],
        "failures": [],
        "problems": [],
        "suites": [],
        "baseline_suites": [],
        "stats": {
            "calls": 0,
            "cached": 0,
            "shared": 0,
            "retries": 0,
            "errors": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.0,
            "wall_s": 0.0,
        },
        "settings": {},
    }


def report_digest(report: Mapping[str, Any]) -> str:
    return content_hash(report)


# -- Markdown -------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fence(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}\n{text}\n{fence}"


def _stats_line(stats: Mapping[str, Any]) -> str:
    cost = stats.get("cost_usd")
    cost_text = f"${cost:.4f}" if isinstance(cost, (int, float)) else "unknown"
    return (
        f"{stats.get('calls', 0)} model calls, {stats.get('cached', 0)} served from cache, "
        f"{stats.get('prompt_tokens', 0) + stats.get('completion_tokens', 0)} tokens, "
        f"cost {cost_text}, wall {stats.get('wall_s', 0):.2f}s"
    )


_RESULT = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "⚠️ inconclusive"}


def _suite_verdict(s: Mapping[str, Any]) -> str:
    return str(s.get("verdict") or ("pass" if s["passed"] else "fail"))


def comparison_lines(report: Mapping[str, Any]) -> list[str]:
    """The `### Comparison with LABEL` section: one plain sentence per suite."""
    lines = ["", f"### Comparison with `{report['label']}`", ""]
    for s in report["suites"]:
        c = s.get("comparison")
        reading = sentence(c) if c else "no baseline at the label: judged by its threshold alone"
        lines.append(f"- `{s['prompt']}` `{s['path']}`: {_md_escape(reading)}")
        if c and c.get("regressed"):
            shown = ", ".join(c["regressed"][:20])
            more = f" (+{len(c['regressed']) - 20} more)" if len(c["regressed"]) > 20 else ""
            lines.append(f"  - regressed: {_md_escape(shown)}{more}")
    return lines if report["suites"] else []


def to_markdown(report: Mapping[str, Any], limit: int = GITHUB_COMMENT_LIMIT - 2_000) -> str:
    """GitHub-flavoured Markdown: verdict first; kept under GitHub's comment limit."""
    verdict = report["verdict"]
    icon = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️", "nothing-changed": "⚪"}[verdict]
    cands = ", ".join(f"`{c['ref']}`" for c in report["candidates"]) or "nothing"
    head = [
        MARKER,
        f"## {icon} promptgate: {verdict.upper()} for {cands} against `{report['label']}`",
        "",
    ]
    if verdict == "nothing-changed":
        head.append(f"No prompt differs from `{report['label']}`: nothing to evaluate.")
        return "\n".join(head) + "\n"
    head.append(_stats_line(report["stats"]))
    head.append("")
    if report["failures"]:
        head.append("**Why it failed**" if verdict == "fail" else "**Why it did not pass**")
        head += [f"- {_md_escape(f)}" for f in report["failures"]]
        head.append("")
    body = [
        "### Affected prompts",
        "",
        "| prompt | candidate | baseline | why |",
        "|---|---|---|---|",
    ]
    for a in report["affected"]:
        body.append(
            f"| `{a['name']}` | {a['candidate'] or '-'} | "
            f"{a['baseline'] or 'new'} | {_md_escape(a['reason'])} |"
        )
    body += [
        "",
        "### Suites",
        "",
        "| prompt | suite | version | passed | threshold | result |",
        "|---|---|---|---|---|---|",
    ]
    for s in report["suites"]:
        flaky = sum(1 for c in s["cases"] if c["flaky"])
        result = _RESULT[_suite_verdict(s)]
        if flaky:
            result += f" ({flaky} flaky)"
        body.append(
            f"| `{s['prompt']}` | `{s['path']}` | {s['version']} | "
            f"{s['passed_cases']}/{s['total']} | {s['threshold']:g} | {result} |"
        )
    body += comparison_lines(report)
    failing = [(s, c) for s in report["suites"] for c in s["cases"] if not c["passed"]]
    failing.sort(key=lambda sc: sc[1].get("change") != "new-failure")  # regressions first
    flaky_cases = [(s, c) for s in report["suites"] for c in s["cases"] if c["flaky"]]
    if failing:
        body += ["", "### Failing cases", ""]
        for s, c in failing:
            change = f" — {c['change']}" if c.get("change") else ""
            body.append(
                f"<details><summary><code>{s['prompt']}</code> / <b>{c['id']}</b>"
                f"{change} ({c['runs_passed']}/{c['runs']} runs passed)</summary>"
            )
            body.append("")
            if c["error"]:
                body.append(f"**Error:** {_md_escape(c['error'])}")
            for a in c["failed_assertions"]:
                body.append(
                    f"- `{a['type']}` expected {_md_escape(json.dumps(a['value']))[:300]}"
                    f": {_md_escape(a['reason'] or '')[:500]}"
                )
            for u in c.get("upstream") or ():  # what its `from:` inputs were fed
                body += [
                    "",
                    f"Input `{u['input']}`, from `{u['prompt']}` {u['version']}:",
                    "",
                    _fence(u["output"]),
                ]
            if c["output"]:
                body += ["", "Output:", "", _fence(c["output"])]
            body += ["", "</details>", ""]
    if flaky_cases:
        body += ["", "### Flaky cases", ""]
        body += [
            f"- `{s['prompt']}` / {c['id']}: {c['runs_passed']}/{c['runs']} runs passed"
            for s, c in flaky_cases
        ]
    if report["problems"]:
        body += ["", "### Problems", ""] + [f"- {_md_escape(p)}" for p in report["problems"]]
    if report["diffs"]:
        body += ["", "### Changes", ""]
        for d in report["diffs"]:
            title = f"`{d['prompt']}` {d['from'] or '(new)'} → {d['to']}"
            body.append(f"<details><summary>{title}</summary>\n")
            if d["text"]:
                body.append(_fence("diff\n" + d["text"]).replace("```\ndiff\n", "```diff\n", 1))
            for path, change in d["config"].items():
                body.append(
                    f"- config `{path}`: `{json.dumps(change.get('from'))}` → "
                    f"`{json.dumps(change.get('to'))}`"
                )
            body.append("\n</details>\n")
    if report["graph"]["edges"]:
        body += ["", "### Graph", "", "```mermaid", "graph LR"]
        body += [f"  {a} --> {b}" for a, b in report["graph"]["edges"]]
        body += ["```"]
    text = "\n".join(head + body) + "\n"
    if len(text) > limit:
        note = (
            f"\n\n_Report cut at {limit:,} characters to fit a GitHub comment; "
            "the full report is in the JSON artifact._\n"
        )
        text = text[: limit - len(note)] + note
    return text


# -- JUnit ----------------------------------------------------------------------------------


def to_junit(report: Mapping[str, Any]) -> str:
    """One <testsuite> per suite, one <testcase> per case, <failure> when it fails."""
    root = ET.Element("testsuites", name="promptgate", tests="0", failures="0", errors="0")
    total = failures = errors = 0
    for s in report["suites"]:
        n_fail = sum(1 for c in s["cases"] if not c["passed"] and not c["error"])
        n_err = sum(1 for c in s["cases"] if not c["passed"] and c["error"])
        suite = ET.SubElement(
            root,
            "testsuite",
            name=s["prompt"],
            tests=str(len(s["cases"])),
            failures=str(n_fail),
            errors=str(n_err),
            file=s["path"],
        )
        c = s.get("comparison")
        if c is not None:
            props = ET.SubElement(suite, "properties")
            for key in ("verdict", "regressions", "fixes", "drop", "ci_high", "cases_needed"):
                ET.SubElement(props, "property", name=f"comparison.{key}", value=str(c[key]))
        total += len(s["cases"])
        failures += n_fail
        errors += n_err
        for c in s["cases"]:
            tc = ET.SubElement(
                suite, "testcase", name=c["id"], classname=s["prompt"], file=s["path"]
            )
            if c["line"]:
                tc.set("line", str(c["line"]))
            if not c["passed"]:
                message = (
                    c["error"]
                    or "; ".join(f"{a['type']}: {a['reason']}" for a in c["failed_assertions"])[
                        :1000
                    ]
                )
                tag = "error" if c["error"] else "failure"
                el = ET.SubElement(
                    tc, tag, message=message or "failed", type="flaky" if c["flaky"] else tag
                )
                el.text = c["output"]
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", str(errors))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# -- GitHub annotations and terminal ------------------------------------------------------


def _gh_escape(text: str) -> str:
    """A workflow command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(text: str) -> str:
    """A workflow command's property value (file=, title=): also `,` and `:`."""
    return _gh_escape(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(report: Mapping[str, Any]) -> list[str]:
    """`::error file=...,line=...::` lines for failing cases (GitHub Actions workflow commands)."""
    out = []
    for s in report["suites"]:
        for c in s["cases"]:
            if c["passed"]:
                continue
            where = f"file={_gh_prop(s['path'])}" + (f",line={c['line']}" if c["line"] else "")
            why = c["error"] or "; ".join(
                f"{a['type']}: {a['reason']}" for a in c["failed_assertions"]
            )
            title = f"promptgate {s['prompt']}/{c['id']}"
            out.append(f"::error {where},title={_gh_prop(title)}::{_gh_escape(why[:900])}")
    for problem in report["problems"]:
        out.append(f"::error title=promptgate::{_gh_escape(problem)}")
    return out


SUMMARY_COLUMNS = ("prompt", "why", "suite", "version", "passed", "threshold", "result")


def _headline(report: Mapping[str, Any]) -> str:
    cands = ", ".join(c["ref"] for c in report["candidates"]) or "nothing"
    return f"{report['verdict'].upper()} {cands} against {report['label']}"


def _summary_rows(report: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """One row per suite (the SUMMARY_COLUMNS cells; the last holds only the flaky note) with
    that suite's verdict."""
    reasons = {a["name"]: a["reason"] for a in report["affected"]}
    rows: list[tuple[tuple[str, ...], str]] = []
    for s in report["suites"]:
        flaky = sum(1 for c in s["cases"] if c["flaky"])
        cells = (
            s["prompt"],
            reasons.get(s["prompt"], ""),
            s["path"],
            s["version"],
            f"{s['passed_cases']}/{s['total']}",
            f"{s['threshold']:g}",
            f" ({flaky} flaky)" if flaky else "",  # the result column, after the verdict
        )
        rows.append((cells, _suite_verdict(s)))
    return rows


def _detail_lines(report: Mapping[str, Any]) -> list[str]:
    """Each suite's comparison sentence, failing cases, the gate's failures, the stats line."""
    out = []
    for s in report["suites"]:
        c = s.get("comparison")
        reading = sentence(c) if c else "no baseline: judged by its threshold alone"
        out.append(f"  {s['prompt']}: {reading}")
    for s in report["suites"]:
        for c in s["cases"]:
            if not c["passed"]:
                why = c["error"] or "; ".join(
                    f"{a['type']}: {a['reason']}" for a in c["failed_assertions"]
                )
                change = f" ({c['change']})" if c.get("change") else ""
                out.append(f"  ✗ {s['prompt']}/{c['id']}{change}: {why}")
    out += [f"  • {f}" for f in report["failures"]]
    out.append(_stats_line(report["stats"]))
    return out


_STYLE = {"pass": "green", "fail": "red", "inconclusive": "yellow"}


def print_terminal(report: Mapping[str, Any], console: Any) -> None:
    """A summary table for people at a terminal (rich)."""
    from rich.table import Table

    verdict = report["verdict"]
    style = f"bold {_STYLE[verdict]}" if verdict in _STYLE else "bold"
    head, _, rest = _headline(report).partition(" ")
    console.print(f"[{style}]{head}[/] {rest}")
    if verdict == "nothing-changed":
        return
    table = Table()
    for col in SUMMARY_COLUMNS:
        table.add_column(col, no_wrap=col not in ("why", "suite"))
    for cells, judged in _summary_rows(report):
        table.add_row(*cells[:-1], f"[{_STYLE.get(judged, 'bold')}]{judged}[/]" + cells[-1])
    console.print(table)
    for line in _detail_lines(report):
        console.print(line, markup=False, highlight=False)


def format_plain(report: Mapping[str, Any]) -> str:
    """The same summary as print_terminal in plain text, for logs and pipes (no rich)."""
    lines = [_headline(report)]
    if report["verdict"] != "nothing-changed":
        rows = [
            SUMMARY_COLUMNS,
            *((*c[:-1], judged + c[-1]) for c, judged in _summary_rows(report)),
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(SUMMARY_COLUMNS))]
        for n, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines += _detail_lines(report)
    return "\n".join(lines) + "\n"
