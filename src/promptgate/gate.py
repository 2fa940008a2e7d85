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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import networkx as nx

from .config import Config
from .costs import DEFAULT_COMPLETION_BOUND, Budget, PlanningClient, SiteTally
from .domain import AuditEvent, LabelMove, PromptVersion
from .errors import BadInput, GateFailed, LabelConflict
from .graph import Graph, add_edges, check_acyclic, dependencies
from .graph import affected as affected_nodes
from .graph import reasons as affected_reasons
from .policy import CompareSettings
from .prefetch import PrefetchingStoreCache, planned_keys
from .promptfile import includes, is_partial, load_prompt_file
from .providers import ModelClient, NoCache, ReplayCache, ResponseCache
from .refs import Ref, check_label_name, parse_ref
from .registry import config_diff, text_diff
from .report import build_report, nothing_changed_report, report_digest, suite_result_from_json
from .runner import Job, PromptAt, Runner, SuiteResult, run_jobs
from .shards import select
from .store import LATEST, Registry
from .suites import Suite, load_suites
from .verdict import Judgement, judge, policies


@dataclass(frozen=True)
class Plan:
    """What a check will run: candidates, baselines, the affected set and its suites."""

    label: str
    candidates: dict[str, PromptAt]
    baseline: dict[str, PromptAt]
    candidate_side: dict[str, PromptAt]
    affected: list[str]
    reasons: dict[str, str]
    graph: Graph
    suites: dict[str, list[Suite]]
    problems: list[str]
    expectations: dict[str, int | None]
    allow_missing_suites: bool = False
    compare: CompareSettings = field(default_factory=CompareSettings)
    shard: tuple[int, int] | None = None  # (index, count): only that shard's cases run
    pinned: dict[str, str] = field(default_factory=dict)  # "tone@v3" -> its text
    # the unaffected prompts and partials the affected ones consume (from:, include), at the
    # label: part of what a report judged, so a move of one of them makes a report stale
    upstream: dict[str, PromptAt] = field(default_factory=dict)

    @property
    def missing_suites(self) -> list[str]:
        return [n for n in self.affected if not self.suites.get(n)]


def _at(v: PromptVersion) -> PromptAt:
    return PromptAt(name=v.name, version=v.version, content=v.content, content_hash=v.content_hash)


def resolve_candidates(store: Registry, refs: Sequence[str]) -> dict[str, PromptAt]:
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


def changed_refs(store: Registry, label: str) -> list[str]:
    """`--changed`: every prompt whose `latest` differs from what `label` points at."""
    at_label = store.label_map(label)
    return [
        f"{v.name}@v{v.version}"
        for v in store.list_at_label(LATEST)
        if at_label.get(v.name) != v.version
    ]


def plan_check(
    store: Registry,
    refs: Sequence[str],
    *,
    label: str,
    suites_dir: Path,
    allow_missing_suites: bool = False,
    compare: CompareSettings | None = None,
    shard: tuple[int, int] | None = None,
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
                    "a candidate: its output (or text) cannot be produced"
                )
    pinned = pinned_partials(store, side.values())
    above = set().union(*(nx.ancestors(graph, n) for n in affected)) - set(affected)
    upstream = {n: side[n] for n in sorted(above) if n in side}
    all_suites = load_suites(suites_dir)
    suites = {n: all_suites.get(n, []) for n in affected}
    if shard is not None:
        suites = {n: select(ss, *shard) for n, ss in suites.items()}
    for name in affected:
        if not suites[name] and not is_partial(side[name].content if name in side else {}):
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
        compare=compare or CompareSettings(),
        shard=shard,
        pinned=pinned,
        upstream=upstream,
    )


def pinned_partials(store: Registry, prompts: Iterable[PromptAt]) -> dict[str, str]:
    """The text of every pinned include (`tone@v3`) the side's prompts and partials reach."""
    out: dict[str, str] = {}
    todo = [p.content for p in prompts]
    while todo:
        for name, version in includes(todo.pop()):
            key = f"{name}@v{version}"
            if version is None or key in out:
                continue
            v = store.get_version(name, version)
            if not is_partial(v.content):
                raise BadInput(f'{{% include "{key}" %}}: {key} is not a partial')
            out[key] = v.content["template"]
            todo.append(v.content)
    return out


def side_includes(side: Mapping[str, PromptAt], pinned: Mapping[str, str]) -> dict[str, str]:
    """What `{% include %}` serves on one side: its partials by name, and the pinned ones."""
    own = {n: p.content["template"] for n, p in side.items() if is_partial(p.content)}
    return {**own, **pinned}


def _graph_with_gaps(side: Mapping[str, PromptAt]) -> Graph:
    """The graph when some `from:` or include names a prompt with no version at the label: the
    edge is kept (so the gap is reported and fails the gate) but the node has no version."""
    graph: Graph = nx.DiGraph()
    graph.add_nodes_from(side)
    for name, p in side.items():
        add_edges(graph, name, p.content)
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


def decide(
    plan: Plan,
    candidate: Mapping[str, Sequence[SuiteResult]],
    baseline: Mapping[str, Sequence[SuiteResult]],
) -> Judgement:
    """The pure verdict of a run (see `verdict`): an upstream gap or (unless allowed) a missing
    suite fails it, and every suite is judged by its threshold and its paired comparison."""
    problems = [
        p for p in plan.problems if not ("no eval suite" in p and plan.allow_missing_suites)
    ]
    return judge(problems, policies(plan.suites, plan.compare), candidate, baseline)


def _results_from_report(
    plan: Plan,
    entries: Any,
    *,
    side: str,
    at: Mapping[str, PromptAt],
    required: set[tuple[str, str]],
) -> dict[str, list[SuiteResult]]:
    """The suite results a report's `suites` (or `baseline_suites`) list holds, checked against
    the plan: the plan's digests, versions and case ids, each case's flags derived again from
    its runs (`report.suite_result_from_json`)."""
    if not isinstance(entries, list):
        raise BadInput(f"the report has no list of {side}")
    by_key: dict[tuple[Any, Any], Mapping[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise BadInput(f"the report's {side} must be objects")
        key = (entry.get("prompt"), entry.get("digest"))
        if key in by_key:
            raise BadInput(f"{side}: suite {entry.get('path')} appears twice in the report")
        by_key[key] = entry
    expected = {(n, s.digest): s for n in plan.affected for s in plan.suites.get(n, [])}
    changed = sorted(
        f"{n} ({expected[(n, d)].path.name})"
        for n, d in required - set(by_key)
        if any(k[0] == n and k not in expected for k in by_key)
    )
    if changed:
        raise BadInput(
            "the suite files differ from those the report judged (another digest): "
            + ", ".join(changed)
        )
    missing = sorted(f"{n} ({expected[(n, d)].path.name})" for n, d in required - set(by_key))
    if missing:
        what = "affected suites" if side == "suites" else "the baseline's runs of affected suites"
        raise BadInput(f"the report leaves out {what}: " + ", ".join(missing))
    extra = sorted(str(e.get("path")) for k, e in by_key.items() if k not in expected)
    if extra:
        raise BadInput(
            f"the report's {side} hold suites that this request does not affect or whose "
            "files differ from the server's: " + ", ".join(extra)
        )
    results: dict[str, list[SuiteResult]] = {}
    for (name, digest), entry in by_key.items():
        suite = expected[(name, digest)]
        where = f"{side}: {name} ({suite.path.name})"
        if name not in at or entry.get("version") != at[name].label:
            raise BadInput(
                f"suite {where}: the report ran {name}@{entry.get('version')}, "
                f"not {name}@{at[name].label if name in at else '(none)'}"
            )
        cases = entry.get("cases")
        if isinstance(cases, list) and sorted(
            str(c.get("id")) for c in cases if isinstance(c, Mapping)
        ) != sorted(c.id for c in suite.cases):
            raise BadInput(f"suite {where}: the report's cases are not the suite's cases")
        result = suite_result_from_json(
            entry, where=where, path=str(suite.path), threshold=suite.threshold, repeat=suite.repeat
        )
        results.setdefault(name, []).append(result)
    return results


def judge_report(plan: Plan, report: Mapping[str, Any]) -> Judgement:
    """Re-judge a JSON report made elsewhere (a CI job's upload) against a plan made here.

    The report must hold every suite of the plan's affected prompts, each with the plan's digest
    and exactly its case ids, and nothing else, and the baseline's run of every suite whose
    prompt the label has (and can run); each case's verdict is derived again from its runs
    (pass^k: every one of the suite's `repeat` runs passed, no error), each suite's from the
    plan's own threshold and comparison policy, and the verdict by `decide`, the rule `check`
    uses. A report whose own flags or verdicts disagree with what its cases give is refused
    (BadInput), as is one that is not a report of this plan."""
    judged_upstream = {
        str(u.get("name")): (u.get("version"), u.get("content_hash"))
        for u in report.get("upstream") or []
        if isinstance(u, Mapping)
    }
    now_upstream = {n: (p.version, p.content_hash) for n, p in plan.upstream.items()}
    if judged_upstream != now_upstream:
        changed = sorted(set(judged_upstream.items()) ^ set(now_upstream.items()))
        name = changed[0][0]
        raise LabelConflict(
            f"{plan.label} moved since the report was made: the report ran with upstream "
            f"{name} at {_version_text(judged_upstream.get(name))}, {plan.label} has "
            f"{_version_text(now_upstream.get(name))}: check again"
        )
    shard = report.get("shard")
    if shard:
        where = f"{shard.get('index')}/{shard.get('count')}" if isinstance(shard, Mapping) else "?"
        raise BadInput(
            f"the report is shard {where} of a check: merge the shards first "
            "(promptgate report merge)"
        )
    every = {(n, s.digest) for n in plan.affected for s in plan.suites.get(n, [])}
    candidate = _results_from_report(
        plan, report.get("suites"), side="suites", at=plan.candidate_side, required=every
    )
    with_baseline = {(n, d) for n, d in every if n in plan.baseline and _baseline_runnable(plan, n)}
    baseline = _results_from_report(
        plan,
        report.get("baseline_suites", []),
        side="baseline_suites",
        at=plan.baseline,
        required=with_baseline,
    )
    judgement = decide(plan, candidate, baseline)
    paths = {(n, s.digest): str(s.path) for n in plan.affected for s in plan.suites.get(n, [])}
    for entry in report.get("suites") or []:
        name = str(entry.get("prompt"))
        sv = judgement.for_suite(name, paths.get((name, str(entry.get("digest"))), ""))
        claimed = entry.get("verdict")
        if sv is not None and claimed is not None and claimed != sv.verdict:
            raise BadInput(
                f"suite {entry.get('path')}: marked {claimed!r}, but its cases give {sv.verdict}"
            )
    if report.get("verdict") != judgement.verdict:
        first = judgement.failures[0] if judgement.failures else ""
        raise BadInput(
            f"the report's verdict {report.get('verdict')!r} is not what its cases give "
            f"({judgement.verdict}" + (f": {first}" if first else "") + ")"
        )
    return judgement


def make_cache(store: Registry | None, *, no_cache: bool, replay: Path | None) -> ResponseCache:
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
    includes_of = {
        "candidate": side_includes(plan.candidate_side, plan.pinned),
        "baseline": side_includes(plan.baseline, plan.pinned),
    }
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
                    includes=includes_of["candidate"],
                )
            )
            if baseline and name in plan.baseline and _baseline_runnable(plan, name):
                jobs.append(
                    Job(
                        key=f"baseline:{name}",
                        suite=suite,
                        side=plan.baseline,
                        version=plan.baseline[name].label,
                        includes=includes_of["baseline"],
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
    seen: set[str] = set()
    stack = [name]
    while stack:
        p = plan.baseline.get(stack.pop())
        if p is None:
            continue
        for up, _kind in dependencies(p.content):
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
            "compare": {
                "margin": plan.compare.margin,
                "alpha": plan.compare.alpha,
                "inconclusive": plan.compare.inconclusive,
            },
        },
    )


def diffs(plan: Plan) -> list[dict[str, Any]]:
    """Candidate vs baseline for each candidate: text diff and config diff."""
    out: list[dict[str, Any]] = []
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
    store: Registry, plan: Plan, *, reason: str, actor: str, report_ref: Mapping[str, Any]
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
    config: Config,
    *,
    cache: ResponseCache,
    concurrency: int | None = None,
    budget: Budget | None = None,
) -> ModelClient:
    return ModelClient(
        cache=cache,
        concurrency=concurrency or config.gate.concurrency,
        timeout_s=config.gate.timeout_s,
        retries=config.gate.retries,
        backoff_s=config.gate.backoff_s,
        max_retry_wait_s=config.gate.max_retry_wait_s,
        pricing=config.pricing,
        budget=budget,
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


def _plan_for(
    store: Registry,
    config: Config,
    refs: Sequence[str],
    *,
    label: str,
    changed: bool,
    shard: tuple[int, int] | None = None,
) -> Plan | None:
    """The plan of `refs` (or of every changed prompt; None when nothing changed)."""
    if changed:
        if refs:
            raise BadInput("give refs or --changed, not both")
        refs = changed_refs(store, label)
        if not refs:
            return None
    if not refs:
        raise BadInput("nothing to check: give at least one ref, or --changed")
    return plan_check(
        store,
        refs,
        label=label,
        suites_dir=_display_path(config.root / config.evals),
        allow_missing_suites=config.gate.allow_missing_suites,
        compare=config.gate.compare,
        shard=shard,
    )


def check(
    store: Registry,
    config: Config,
    refs: Sequence[str],
    *,
    label: str | None = None,
    changed: bool = False,
    concurrency: int | None = None,
    no_cache: bool = False,
    replay: Path | None = None,
    baseline: bool = True,
    max_cost_usd: float | None = None,
    shard: tuple[int, int] | None = None,
    on_plan: Callable[[Plan], None] | None = None,
    on_case: Callable[..., Any] | None = None,
) -> CheckOutcome:
    """Plan and run the gate for `refs` (or every changed prompt) against `label`. A budget
    (`max_cost_usd`, else `gate.max_cost_usd`) stops new model calls before one could cross it,
    and a check that stopped so fails closed."""
    label = label or config.gate.label
    plan = _plan_for(store, config, refs, label=label, changed=changed, shard=shard)
    if plan is None:
        return CheckOutcome(plan=None, report=nothing_changed_report(label), passed=True)
    if on_plan is not None:
        on_plan(plan)
    limit = max_cost_usd if max_cost_usd is not None else config.gate.max_cost_usd
    budget = Budget(limit_usd=limit) if limit is not None else None
    cache = make_cache(store, no_cache=no_cache, replay=replay)
    client = client_from_config(config, cache=cache, concurrency=concurrency, budget=budget)
    run = run_plan(plan, client, judge=config.judge, baseline=baseline, on_case=on_case)
    judgement = decide(plan, run.candidate, run.baseline)
    if budget is not None and budget.not_made:
        judgement = replace(
            judgement,
            verdict="fail",
            passed=False,
            failures=(budget.summary(), *judgement.failures),
        )
    if budget is not None:
        run.settings["max_cost_usd"] = budget.limit_usd
    report = build_report(run, judgement, diffs(plan))
    return CheckOutcome(plan=plan, report=report, passed=judgement.passed)


@dataclass(frozen=True)
class CallPlan:
    """What a check would call, before it calls anything (`check --plan`)."""

    plan: Plan
    sites: tuple[SiteTally, ...]
    unpriced_models: tuple[str, ...]
    max_cost_usd: float | None

    def to_json(self) -> dict[str, Any]:
        sites = [
            {
                "prompt": t.prompt,
                "side": t.side,
                "version": (
                    self.plan.candidate_side if t.side == "candidate" else self.plan.baseline
                )[t.prompt].label
                if t.prompt
                in (self.plan.candidate_side if t.side == "candidate" else self.plan.baseline)
                else None,
                "requests": t.calls,
                "cached": t.cached,
                "shared": t.shared,
                "calls": t.calls - t.cached - t.shared,
                "upstream_requests": t.upstream,
                "prompt_tokens_max": t.prompt_tokens,
                "completion_tokens_max": t.completion_tokens,
                "cost_usd_max": None if t.unpriced else round(t.cost_usd, 6),
                "unbounded_completions": t.unbounded,
            }
            for t in self.sites
        ]
        cost = None if self.unpriced_models else round(sum(t.cost_usd for t in self.sites), 6)
        return {
            "label": self.plan.label,
            "candidates": [f"{c.name}@{c.label}" for c in self.plan.candidates.values()],
            "affected": list(self.plan.affected),
            "problems": list(self.plan.problems),
            "prompts": sites,
            "requests": sum(t.calls for t in self.sites),
            "cached": sum(t.cached for t in self.sites),
            "calls": sum(t.calls - t.cached - t.shared for t in self.sites),
            "prompt_tokens_max": sum(t.prompt_tokens for t in self.sites),
            "completion_tokens_max": sum(t.completion_tokens for t in self.sites),
            "cost_usd_max": cost,
            "unpriced_models": list(self.unpriced_models),
            "completion_bound_default": DEFAULT_COMPLETION_BOUND,
            "max_cost_usd": self.max_cost_usd,
            "within_budget": None
            if self.max_cost_usd is None or cost is None
            else cost <= self.max_cost_usd,
        }


def plan_calls(
    store: Registry,
    config: Config,
    refs: Sequence[str],
    *,
    label: str | None = None,
    changed: bool = False,
    no_cache: bool = False,
    replay: Path | None = None,
    baseline: bool = True,
    max_cost_usd: float | None = None,
    shard: tuple[int, int] | None = None,
) -> CallPlan | None:
    """The calls `check` would make with these arguments, without calling a model: the real
    chain runs on a planning client that serves the cache and counts every miss at its upper
    bound. None when nothing changed."""
    label = label or config.gate.label
    plan = _plan_for(store, config, refs, label=label, changed=changed, shard=shard)
    if plan is None:
        return None
    cache = make_cache(store, no_cache=no_cache, replay=replay)
    client = PlanningClient(client_from_config(config, cache=cache))
    run_plan(plan, client, judge=config.judge, baseline=baseline)
    order = {n: i for i, n in enumerate(plan.affected)}
    sites = sorted(
        client.tallies.values(),
        key=lambda t: (order.get(t.prompt, len(order)), t.side != "candidate", t.prompt),
    )
    limit = max_cost_usd if max_cost_usd is not None else config.gate.max_cost_usd
    return CallPlan(
        plan=plan,
        sites=tuple(sites),
        unpriced_models=tuple(sorted(client.unpriced_models)),
        max_cost_usd=limit,
    )


def promote_from_report(
    store: Registry,
    config: Config,
    report: Mapping[str, Any],
    *,
    label: str,
    reason: str,
    actor: str,
) -> list[AuditEvent]:
    """Move `label` to a report's candidates without re-running anything (README: shards):
    only if the report is whole (unsharded or merged), judged these stored versions against
    what `label` points at now, with the suite files as they are now, and passed by the gate's
    own rules. BadInput for a report that does not match, LabelConflict if the label moved
    since, GateFailed if it did not pass."""
    if not isinstance(report, Mapping) or report.get("schema_version") != 1:
        raise BadInput("not a promptgate JSON report (schema_version 1)")
    if report.get("label") != label:
        raise BadInput(f"the report judged against {report.get('label')!r}, not {label!r}")
    candidates = report.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise BadInput("the report has no candidates")
    refs = []
    for c in candidates:
        if not isinstance(c, Mapping) or type(c.get("version")) is not int:
            raise BadInput("the report judged a draft: push it, check it, then promote")
        stored = store.get_version(str(c.get("name")), c["version"])
        if stored.content_hash != c.get("content_hash"):
            raise BadInput(f"{stored.name}@v{stored.version}: the report judged other content")
        refs.append(f"{stored.name}@v{stored.version}")
    plan = plan_check(
        store,
        refs,
        label=label,
        suites_dir=_display_path(config.root / config.evals),
        allow_missing_suites=config.gate.allow_missing_suites,
        compare=config.gate.compare,
    )
    judged_baseline: dict[str, tuple[Any, Any]] = {
        str(b.get("name")): (b.get("version"), b.get("content_hash"))
        for b in report.get("baselines") or []
        if isinstance(b, Mapping)
    }
    now = {
        n: (plan.baseline[n].version, plan.baseline[n].content_hash)
        for n in plan.affected
        if n in plan.baseline
    }
    if judged_baseline != now:
        moved = sorted(set(judged_baseline.items()) ^ set(now.items()))
        name = moved[0][0] if moved else "?"
        raise LabelConflict(
            f"{label} moved since the report was made ({name}: the report judged "
            f"{_version_text(judged_baseline.get(name))}, {label} is at "
            f"{_version_text(now.get(name))}): check again"
        )
    judgement = judge_report(plan, report)
    ensure_passed(judgement.passed, judgement.failures)
    digest = report_digest(dict(report))
    report_id = store.save_report(digest, str(report["verdict"]), dict(report))
    return apply_promotion(
        store, plan, reason=reason, actor=actor, report_ref={"id": report_id, "digest": digest}
    )


def _version_text(entry: Any) -> str:
    return f"v{entry[0]}" if entry else "unset"
