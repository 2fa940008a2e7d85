"""The gate: evaluate a candidate set and everything downstream of it; move labels only if
every suite passes.

`plan_check` resolves refs into a `Plan` (pure given the store's reads), `run_plan` runs it into
a report, `decide` is the pure verdict (`judge_report` applies it again to a report made
elsewhere), and `apply_promotion` moves the labels by compare-and-swap against what they
pointed at when the check began.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import networkx as nx

from .config import Config
from .domain import AuditEvent, LabelMove, PromptVersion
from .errors import BadInput, GateFailed
from .graph import affected as affected_nodes
from .graph import reasons as affected_reasons
from .prefetch import PrefetchingStoreCache, planned_keys
from .promptfile import load_prompt_file
from .providers import ModelClient, NoCache, ReplayCache, ResponseCache
from .refs import Ref, check_label_name, parse_ref
from .registry import config_diff, text_diff
from .runner import CaseResult, Job, PromptAt, Runner, SuiteResult, run_jobs
from .store import LATEST, Store
from .suites import Suite, load_suites


@dataclass(frozen=True)
class Plan:
    """What a check will run: candidates, baselines, the affected set and its suites."""

    label: str
    candidates: dict[str, PromptAt]
    baseline: dict[str, PromptAt]
    candidate_side: dict[str, PromptAt]
    affected: list[str]
    reasons: dict[str, str]
    graph: nx.DiGraph
    suites: dict[str, list[Suite]]
    problems: list[str]
    expectations: dict[str, int | None]
    allow_missing_suites: bool = False

    @property
    def missing_suites(self) -> list[str]:
        return [n for n in self.affected if not self.suites.get(n)]


def _at(v: PromptVersion) -> PromptAt:
    return PromptAt(name=v.name, version=v.version, content=v.content, content_hash=v.content_hash)


def resolve_candidates(store: Store, refs: Sequence[str]) -> dict[str, PromptAt]:
    """Refs to candidates; drafts are validated files, never stored. One ref per prompt."""
    out: dict[str, PromptAt] = {}
    for text in refs:
        ref: Ref = parse_ref(text)
        if ref.is_draft:
            assert ref.path is not None
            spec = load_prompt_file(ref.path)
            at = PromptAt(
                name=spec.name,
                version=None,
                content=spec.content,
                content_hash=spec.content_hash,
                path=str(ref.path),
            )
        else:
            assert ref.name is not None
            v = (
                store.get_version(ref.name, ref.version)
                if ref.version is not None
                else store.resolve(ref.name, ref.label or LATEST)
            )
            at = _at(v)
        if at.name in out:
            raise BadInput(f"{text}: two candidates for {at.name!r} in one set")
        out[at.name] = at
    return out


def changed_refs(store: Store, label: str) -> list[str]:
    """`--changed`: every prompt whose `latest` differs from what `label` points at."""
    at_label = store.label_map(label)
    return [
        f"{v.name}@v{v.version}"
        for v in store.list_at_label(LATEST)
        if at_label.get(v.name) != v.version
    ]


def plan_check(
    store: Store,
    refs: Sequence[str],
    *,
    label: str,
    suites_dir: Path,
    allow_missing_suites: bool = False,
) -> Plan:
    """Resolve the candidate set against the label into a plan. Raises BadInput for refs,
    files or graphs that are wrong before anything runs."""
    check_label_name(label)
    candidates = resolve_candidates(store, refs)
    baseline = {v.name: _at(v) for v in store.list_at_label(label)}
    expectations = {
        name: (baseline[name].version if name in baseline else None) for name in candidates
    }
    side = {**baseline, **candidates}
    graph = _graph_with_gaps(side)
    affected = affected_nodes(graph, candidates)
    reasons = affected_reasons(graph, list(candidates))
    problems = []
    for name in affected:
        for up in nx.ancestors(graph, name):
            if up not in side:
                problems.append(
                    f"{name}: upstream {up} has no version at {label} and is not "
                    "a candidate: its output cannot be produced"
                )
    all_suites = load_suites(suites_dir)
    suites = {n: all_suites.get(n, []) for n in affected}
    for name in affected:
        if not suites[name]:
            problems.append(
                f"{name}: no eval suite"
                + (" (allowed by allow_missing_suites)" if allow_missing_suites else "")
            )
    return Plan(
        label=label,
        candidates=candidates,
        baseline=baseline,
        candidate_side=side,
        affected=affected,
        reasons=reasons,
        graph=graph.subgraph(affected).copy(),
        suites=suites,
        problems=problems,
        expectations=expectations,
        allow_missing_suites=allow_missing_suites,
    )


def _graph_with_gaps(side: Mapping[str, PromptAt]) -> nx.DiGraph:
    """The graph when some `from:` names a prompt with no version at the label: the edge is
    kept (so the gap is reported and fails the gate) but the node has no version."""
    from .graph import check_acyclic
    from .promptfile import upstream_names

    graph = nx.DiGraph()
    graph.add_nodes_from(side)
    for name, p in side.items():
        for up in upstream_names(p.content):
            graph.add_edge(up, name)
    check_acyclic(graph)
    return graph


@dataclass
class GateRun:
    """The outcome of running a plan: suite results per side, stats and timing."""

    plan: Plan
    candidate: dict[str, list[SuiteResult]]
    baseline: dict[str, list[SuiteResult]]
    stats: dict[str, Any]
    started_at: str
    wall_s: float
    settings: dict[str, Any] = field(default_factory=dict)


def decide(plan: Plan, candidate: Mapping[str, Sequence[SuiteResult]]) -> tuple[bool, list[str]]:
    """Pure verdict: passed only if every affected prompt has suites that all passed, no
    upstream gap exists, and (unless allowed) no suite is missing. Returns (passed, reasons)."""
    failures: list[str] = []
    for problem in plan.problems:
        if "no eval suite" in problem and plan.allow_missing_suites:
            continue
        failures.append(problem)
    for name in plan.affected:
        for sr in candidate.get(name, []):
            if not sr.complete:
                failures.append(f"{name}: suite {sr.path} did not finish")
            elif not sr.passed:
                failures.append(
                    f"{name}: suite {sr.path} passed {sr.passed_cases}/{sr.total} "
                    f"cases, below its threshold {sr.threshold:g}"
                )
    return not failures, failures


def judge_report(plan: Plan, report: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """Re-judge a JSON report made elsewhere (a CI job's upload) against a plan made here.

    The report must hold every suite of the plan's affected prompts, each with the plan's digest
    and exactly its case ids, and nothing else; each case's verdict is derived again from its
    runs (pass^k: every one of the suite's `repeat` runs passed, no error), each suite's from the
    plan's own threshold, and the verdict from `decide`, the rule `check` uses. A report whose
    own flags or verdict disagree with what its cases give is refused (BadInput), as is one that
    is not a report of this plan. Returns `decide`'s (passed, failures)."""
    entries = report.get("suites")
    if not isinstance(entries, list):
        raise BadInput("the report has no list of suites")
    by_key: dict[tuple[Any, Any], Mapping[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise BadInput("the report's suites must be objects")
        key = (entry.get("prompt"), entry.get("digest"))
        if key in by_key:
            raise BadInput(f"suite {entry.get('path')} appears twice in the report")
        by_key[key] = entry
    expected = {(n, s.digest): s for n in plan.affected for s in plan.suites.get(n, [])}
    missing = sorted(
        f"{n} ({s.path.name})" for (n, d), s in expected.items() if (n, d) not in by_key
    )
    if missing:
        raise BadInput("the report leaves out affected suites: " + ", ".join(missing))
    extra = sorted(str(e.get("path")) for k, e in by_key.items() if k not in expected)
    if extra:
        raise BadInput(
            "the report has suites that this request does not affect or whose files differ "
            "from the server's: " + ", ".join(extra)
        )
    results: dict[str, list[SuiteResult]] = {}
    for (name, digest), suite in expected.items():
        entry = by_key[(name, digest)]
        where = f"{name} ({suite.path.name})"
        cases = entry.get("cases")
        if not isinstance(cases, list) or not all(isinstance(c, Mapping) for c in cases):
            raise BadInput(f"suite {where}: the report has no list of cases")
        ids = sorted(str(c.get("id")) for c in cases)
        if ids != sorted(c.id for c in suite.cases):
            raise BadInput(f"suite {where}: the report's cases are not the suite's cases")
        case_results = []
        for c in cases:
            runs, runs_passed = c.get("runs"), c.get("runs_passed")
            if (
                type(runs) is not int
                or type(runs_passed) is not int
                or runs != suite.repeat
                or not 0 <= runs_passed <= runs
            ):
                raise BadInput(
                    f"suite {where}, case {c.get('id')}: {runs_passed!r}/{runs!r} runs, "
                    f"but the suite repeats each case {suite.repeat} time(s)"
                )
            passed = runs_passed == runs and not c.get("error")
            if c.get("passed") is not passed:
                raise BadInput(
                    f"suite {where}, case {c.get('id')}: marked passed={c.get('passed')!r}, "
                    f"but {runs_passed}/{runs} runs passed"
                    + (" with an error" if c.get("error") else "")
                )
            case_results.append(
                CaseResult(
                    suite=str(suite.path),
                    case_id=str(c.get("id")),
                    line=None,
                    passed=passed,
                    flaky=False,
                    runs=(),
                )
            )
        result = SuiteResult(
            prompt=name,
            path=str(suite.path),
            digest=digest,
            version=str(entry.get("version")),
            threshold=suite.threshold,
            repeat=suite.repeat,
            total=len(suite.cases),
            cases=case_results,
        )
        if entry.get("passed") is not result.passed:
            raise BadInput(
                f"suite {where}: marked passed={entry.get('passed')!r}, but "
                f"{result.passed_cases}/{result.total} cases passed against its threshold "
                f"{suite.threshold:g}"
            )
        results.setdefault(name, []).append(result)
    passed, failures = decide(plan, results)
    verdict = "pass" if passed else "fail"
    if report.get("verdict") != verdict:
        raise BadInput(
            f"the report's verdict {report.get('verdict')!r} is not what its cases give "
            f"({verdict}" + (f": {failures[0]}" if failures else "") + ")"
        )
    return passed, failures


def make_cache(store: Store | None, *, no_cache: bool, replay: Path | None) -> ResponseCache:
    if replay is not None:
        return ReplayCache(replay)
    if no_cache or store is None:
        return NoCache()
    return PrefetchingStoreCache(store)


async def _run_async(
    plan: Plan,
    client: ModelClient,
    judge: Mapping[str, Any],
    baseline: bool,
    on_case: Callable[..., Any] | None,
    workers: int,
) -> tuple[dict[str, list[SuiteResult]], dict[str, list[SuiteResult]]]:
    runner = Runner(client, judge)
    jobs = []
    for name in plan.affected:
        if name not in plan.candidate_side:
            continue
        for suite in plan.suites.get(name, []):
            jobs.append(
                Job(
                    key=f"candidate:{name}",
                    suite=suite,
                    side=plan.candidate_side,
                    version=plan.candidate_side[name].label,
                )
            )
            if baseline and name in plan.baseline and _baseline_runnable(plan, name):
                jobs.append(
                    Job(
                        key=f"baseline:{name}",
                        suite=suite,
                        side=plan.baseline,
                        version=plan.baseline[name].label,
                    )
                )
    if isinstance(client.cache, PrefetchingStoreCache):
        client.cache.prefetch(planned_keys(jobs))
    try:
        results = await run_jobs(runner, jobs, workers=workers, on_case=on_case)
    finally:
        await client.aclose()
    cand = {k.split(":", 1)[1]: v for k, v in results.items() if k.startswith("candidate:")}
    base = {k.split(":", 1)[1]: v for k, v in results.items() if k.startswith("baseline:")}
    return cand, base


def _baseline_runnable(plan: Plan, name: str) -> bool:
    return all(up in plan.baseline for up in _all_ancestors(plan, name))


def _all_ancestors(plan: Plan, name: str) -> set[str]:
    from .promptfile import upstream_names

    seen: set[str] = set()
    stack = [name]
    while stack:
        p = plan.baseline.get(stack.pop())
        if p is None:
            continue
        for up in upstream_names(p.content):
            if up not in seen:
                seen.add(up)
                stack.append(up)
    return seen


def run_plan(
    plan: Plan,
    client: ModelClient,
    *,
    judge: Mapping[str, Any],
    baseline: bool = True,
    on_case: Callable[..., Any] | None = None,
    workers: int | None = None,
) -> GateRun:
    """Run every affected suite on the candidate side (and the baseline side where it exists)."""
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    cand, base = asyncio.run(
        _run_async(
            plan, client, judge, baseline, on_case, workers or max(8, client.concurrency * 4)
        )
    )
    wall = time.perf_counter() - t0
    return GateRun(
        plan=plan,
        candidate=cand,
        baseline=base,
        stats={**client.stats.to_json(), "wall_s": round(wall, 3)},
        started_at=started,
        wall_s=wall,
        settings={
            "concurrency": client.concurrency,
            "allow_missing_suites": plan.allow_missing_suites,
        },
    )


def diffs(plan: Plan) -> list[dict[str, Any]]:
    """Candidate vs baseline for each candidate: text diff and config diff."""
    out = []
    for name, cand in plan.candidates.items():
        base = plan.baseline.get(name)
        if base is None:
            out.append(
                {
                    "prompt": name,
                    "from": None,
                    "to": cand.label,
                    "new": True,
                    "text": "",
                    "config": {},
                }
            )
            continue
        out.append(
            {
                "prompt": name,
                "from": base.label,
                "to": cand.label,
                "new": False,
                "text": text_diff(base, cand, f"{name}@{base.label}", f"{name}@{cand.label}"),  # type: ignore[arg-type]
                "config": config_diff(dict(base.content), dict(cand.content)),
            }
        )
    return out


def promotion_moves(plan: Plan, reason: str) -> list[LabelMove]:
    """The CAS moves a passed promote makes: each candidate's label from where it was at the
    start of the check to the candidate version."""
    moves = []
    for name, cand in plan.candidates.items():
        if cand.version is None:
            raise BadInput(f"{cand.path}: a draft cannot be promoted: push it first")
        moves.append(
            LabelMove(
                prompt=name,
                label=plan.label,
                to_version=cand.version,
                expect=plan.expectations[name],
                reason=reason,
            )
        )
    return moves


def apply_promotion(
    store: Store, plan: Plan, *, reason: str, actor: str, report_ref: Mapping[str, Any]
) -> list[AuditEvent]:
    """Move every label of the set in one transaction (LabelConflict if any moved)."""
    return store.move_labels(
        promotion_moves(plan, reason),
        actor=actor,
        details={"report": dict(report_ref)},
        event_type="move",
    )


def ensure_passed(passed: bool, failures: Sequence[str]) -> None:
    if not passed:
        raise GateFailed(
            "gate failed: "
            + "; ".join(failures[:3])
            + (f" (+{len(failures) - 3} more)" if len(failures) > 3 else "")
        )


def client_from_config(
    config: Config, *, cache: ResponseCache, concurrency: int | None = None
) -> ModelClient:
    return ModelClient(
        cache=cache,
        concurrency=concurrency or config.gate.concurrency,
        timeout_s=config.gate.timeout_s,
        retries=config.gate.retries,
        backoff_s=config.gate.backoff_s,
        pricing=config.pricing,
    )


def _display_path(path: Path) -> Path:
    """Relative to the working directory when under it: reports and annotations name files as
    the repository does."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


@dataclass(frozen=True)
class CheckOutcome:
    """A finished check: its plan (None when nothing changed), report and verdict."""

    plan: Plan | None
    report: dict[str, Any]
    passed: bool


def check(
    store: Store,
    config: Config,
    refs: Sequence[str],
    *,
    label: str | None = None,
    changed: bool = False,
    concurrency: int | None = None,
    no_cache: bool = False,
    replay: Path | None = None,
    baseline: bool = True,
    on_plan: Callable[[Plan], None] | None = None,
    on_case: Callable[..., Any] | None = None,
) -> CheckOutcome:
    """Plan and run the gate for `refs` (or every changed prompt) against `label`."""
    from .report import build_report, nothing_changed_report

    label = label or config.gate.label
    if changed:
        if refs:
            raise BadInput("give refs or --changed, not both")
        refs = changed_refs(store, label)
        if not refs:
            return CheckOutcome(plan=None, report=nothing_changed_report(label), passed=True)
    if not refs:
        raise BadInput("nothing to check: give at least one ref, or --changed")
    suites_dir = _display_path(config.root / config.evals)
    plan = plan_check(
        store,
        refs,
        label=label,
        suites_dir=suites_dir,
        allow_missing_suites=config.gate.allow_missing_suites,
    )
    if on_plan is not None:
        on_plan(plan)
    cache = make_cache(store, no_cache=no_cache, replay=replay)
    client = client_from_config(config, cache=cache, concurrency=concurrency)
    run = run_plan(plan, client, judge=config.judge, baseline=baseline, on_case=on_case)
    passed, failures = decide(plan, run.candidate)
    report = build_report(run, passed, failures, diffs(plan))
    return CheckOutcome(plan=plan, report=report, passed=passed)
