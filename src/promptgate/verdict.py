"""The gate's verdict: each suite against its threshold and, where the label has a baseline,
against the baseline on the same cases (README: paired), then the check as a whole.

A suite **fails** when it did not finish, misses its threshold, or shows a drop significantly
above 0 (Holm-adjusted across the suites of one check); it **passes** when the one-sided upper
bound of the drop is below its margin; otherwise it is **inconclusive**. A suite without a
baseline (a new prompt) is judged by its threshold alone. The check fails if any suite or any
plan problem fails it, is inconclusive if any suite is, and passes otherwise; `passed` (exit 0,
labels may move) also holds for an inconclusive check whose inconclusive suites all `warn`.

This is the one owner of these rules: `check` applies them to a run, `judge_report` to a report
made elsewhere, and every report form prints what they decided.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import stats
from .policy import CompareSettings
from .runner import CaseResult, SuiteResult
from .suites import Suite

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


def case_score(case: CaseResult) -> float:
    """A case's score for the comparison: 0/1 with one run, the share of passing runs with
    `repeat: k` (an errored run counts as failing)."""
    if not case.runs:
        return 1.0 if case.passed else 0.0
    if len(case.runs) == 1:
        return 1.0 if case.passed else 0.0
    return sum(1 for r in case.runs if r.passed) / len(case.runs)


@dataclass(frozen=True)
class Comparison:
    """Candidate vs baseline on the same cases, as the report's `comparison` object."""

    n: int
    regressions: int
    fixes: int
    drop: float
    ci_high: float
    p_value: float
    p_adjusted: float
    margin: float
    alpha: float
    verdict: str
    cases_needed: int | None
    method: str
    regressed: tuple[str, ...]
    fixed: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "regressions": self.regressions,
            "fixes": self.fixes,
            "drop": round(self.drop, 6),
            "ci_high": round(self.ci_high, 6),
            "p_value": round(self.p_value, 6),
            "p_adjusted": round(self.p_adjusted, 6),
            "margin": self.margin,
            "alpha": self.alpha,
            "verdict": self.verdict,
            "cases_needed": self.cases_needed,
            "method": self.method,
            "regressed": list(self.regressed),
            "fixed": list(self.fixed),
        }


def sentence(c: Mapping[str, Any]) -> str:
    """The plain reading of a comparison (the JSON object's fields), one line."""
    n, reg, fix = c["n"], c["regressions"], c["fixes"]
    drop, high, margin = 100 * c["drop"], 100 * c["ci_high"], 100 * c["margin"]
    conf = f"{100 * (1 - c['alpha']):g}%"
    counts = (
        f"{reg} regression{'' if reg == 1 else 's'}, {fix} fix{'' if fix == 1 else 'es'} "
        f"on {n} case{'' if n == 1 else 's'}"
    )
    change = f"a drop of {drop:.1f} points" if drop >= 0 else f"a gain of {-drop:.1f} points"
    bound = f"at most a drop of {high:.1f} with {conf} confidence"
    if c["verdict"] == FAIL:
        return (
            f"{counts}: {change}, significantly worse than the baseline "
            f"(p = {c['p_adjusted']:.3g}, Holm-adjusted)"
        )
    if c["verdict"] == PASS:
        return f"{counts}: {change}, {bound} — within the {margin:g}-point margin"
    needed = c.get("cases_needed")
    return (
        f"{counts}: {change}, {bound} — not shown to be within the {margin:g}-point margin "
        f"nor significantly worse: inconclusive"
        + (f", about {needed} paired cases would settle it" if needed else "")
    )


@dataclass(frozen=True)
class SuiteVerdict:
    prompt: str
    path: str
    verdict: str
    inconclusive: str
    policy: CompareSettings
    comparison: Comparison | None
    failure: str | None


@dataclass(frozen=True)
class Judgement:
    """The check's verdict, whether it lets labels move, and why."""

    verdict: str
    passed: bool
    failures: tuple[str, ...]
    suites: Mapping[tuple[str, str], SuiteVerdict]

    def for_suite(self, prompt: str, path: str) -> SuiteVerdict | None:
        return self.suites.get((prompt, path))


def _threshold_failure(name: str, sr: SuiteResult) -> str | None:
    if not sr.complete:
        return f"{name}: suite {sr.path} did not finish"
    if not sr.passed:
        return (
            f"{name}: suite {sr.path} passed {sr.passed_cases}/{sr.total} "
            f"cases, below its threshold {sr.threshold:g}"
        )
    return None


def _paired(sr: SuiteResult, base: SuiteResult) -> tuple[list[str], list[float], list[float]]:
    before = {c.case_id: c for c in base.cases}
    ids, b, c = [], [], []
    for case in sorted(sr.cases, key=lambda x: x.case_id):
        other = before.get(case.case_id)
        if other is not None:
            ids.append(case.case_id)
            b.append(case_score(other))
            c.append(case_score(case))
    return ids, b, c


def policies(
    suites: Mapping[str, Sequence[Suite]], settings: CompareSettings
) -> Callable[[str, str], CompareSettings]:
    """Each suite's comparison policy: the check's settings with the suite's `compare:`."""
    by_path = {(n, str(s.path)): s for n, ss in suites.items() for s in ss}

    def policy(name: str, path: str) -> CompareSettings:
        suite = by_path.get((name, path))
        return settings.with_overrides(suite.compare if suite else {})

    return policy


def judge(
    problems: Sequence[str],
    policy_of: Callable[[str, str], CompareSettings],
    candidate: Mapping[str, Sequence[SuiteResult]],
    baseline: Mapping[str, Sequence[SuiteResult]],
) -> Judgement:
    """Apply the rules of the module docstring. `problems` are the plan's failing problems."""
    raw: dict[
        tuple[str, str], tuple[stats.Paired, CompareSettings, list[str], list[float], list[float]]
    ] = {}
    threshold: dict[tuple[str, str], str | None] = {}
    order: list[tuple[str, str]] = []
    for name, results in candidate.items():
        bases = {b.path: b for b in baseline.get(name, [])}
        for sr in results:
            key = (name, sr.path)
            order.append(key)
            policy = policy_of(name, sr.path)
            threshold[key] = _threshold_failure(name, sr)
            base = bases.get(sr.path)
            if base is None or not sr.complete or not base.complete:
                continue
            ids, b, c = _paired(sr, base)
            if not ids:  # nothing to pair (a shard holding none of this suite's cases)
                continue
            seed = f"{name}\0{sr.digest}".encode()
            raw[key] = (stats.paired(b, c, alpha=policy.alpha, seed=seed), policy, ids, b, c)
    adjusted = stats.holm({f"{k[0]}\0{k[1]}": v[0].p_value for k, v in raw.items()})
    verdicts: dict[tuple[str, str], SuiteVerdict] = {}
    failures = list(problems)
    for key in order:
        name, path = key
        fail_line = threshold[key]
        policy = policy_of(name, path)
        comparison = None
        if key in raw:
            p, policy, ids, b, c = raw[key]
            p_adj = adjusted[f"{name}\0{path}"]
            verdict = stats.verdict(
                p_adjusted=p_adj,
                ci_high=p.ci_high,
                alpha=policy.alpha,
                margin=policy.margin,
                threshold_ok=fail_line is None,
            )
            conclusive = p_adj < policy.alpha or p.ci_high < policy.margin
            comparison = Comparison(
                n=p.n,
                regressions=p.regressions,
                fixes=p.fixes,
                drop=p.drop,
                ci_high=p.ci_high,
                p_value=p.p_value,
                p_adjusted=p_adj,
                margin=policy.margin,
                alpha=policy.alpha,
                verdict=verdict,
                cases_needed=None
                if conclusive
                else stats.cases_needed(
                    replace(p, p_value=p_adj), margin=policy.margin, alpha=policy.alpha
                ),
                method="mcnemar-exact" if p.binary else "paired-bootstrap",
                regressed=tuple(i for i, x, y in zip(ids, b, c, strict=True) if y < x),
                fixed=tuple(i for i, x, y in zip(ids, b, c, strict=True) if y > x),
            )
            if fail_line is None and verdict == FAIL:
                fail_line = f"{name}: suite {path}: {sentence(comparison.to_json())}"
        else:
            verdict = PASS if fail_line is None else FAIL
        if fail_line is not None:
            verdict = FAIL
            failures.append(fail_line)
        verdicts[key] = SuiteVerdict(
            prompt=name,
            path=path,
            verdict=verdict,
            inconclusive=policy.inconclusive,
            policy=policy,
            comparison=comparison,
            failure=fail_line,
        )
    if failures:
        overall = FAIL
    elif any(v.verdict == INCONCLUSIVE for v in verdicts.values()):
        overall = INCONCLUSIVE
    else:
        overall = PASS
    blocking = [
        v for v in verdicts.values() if v.verdict == INCONCLUSIVE and v.inconclusive == "fail"
    ]
    passed = overall == PASS or (overall == INCONCLUSIVE and not blocking)
    for v in blocking:
        assert v.comparison is not None
        failures.append(
            f"{v.prompt}: suite {v.path}: {sentence(v.comparison.to_json())} "
            "(compare.inconclusive is fail)"
        )
    return Judgement(verdict=overall, passed=passed, failures=tuple(failures), suites=verdicts)
