"""The chain-aware runner: runs suite cases against one side of the gate.

For a case, an input with `from: X` that the case does not set is produced by really running X
(and X's own upstream) on the case's vars, with whatever version of X this side holds. Cases run
on a bounded pool of workers; model calls are bounded separately by the client's semaphore.
Results stream out one case at a time, so memory stays flat however many cases run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .assertions import AssertContext, AssertionResult, score_case
from .costs import CALL_SITE
from .errors import PromptgateError
from .promptfile import prompt_inputs, with_defaults
from .providers import ENDPOINT_KEYS, ChatRequest, ChatResponse, ModelClient
from .render import render_messages
from .suites import Case, Suite

EXCERPT = 400


@dataclass(frozen=True)
class PromptAt:
    """A prompt as one side of the gate runs it: a stored version or a draft."""

    name: str
    version: int | None
    content: Mapping[str, Any]
    content_hash: str
    path: str | None = None

    @property
    def label(self) -> str:
        return f"v{self.version}" if self.version is not None else "draft"


Side = Mapping[str, PromptAt]


@dataclass(frozen=True, slots=True)
class UpstreamOutput:
    """What a case's `from:` input was fed: the upstream prompt's output (an excerpt)."""

    input: str
    prompt: str
    version: str  # the upstream version this side ran, e.g. "v3" or "draft"
    output: str


@dataclass(frozen=True, slots=True)
class RunResult:
    """One run of one case: its output excerpt, assertion results or error."""

    index: int
    passed: bool
    score: float
    output: str
    assertions: tuple[AssertionResult, ...] = ()
    error: str | None = None
    cached: bool = False
    latency_ms: float = 0.0
    upstream: tuple[UpstreamOutput, ...] = ()  # the `from:` inputs this run was fed


@dataclass(frozen=True, slots=True)
class CaseResult:
    """A case over all its runs: passes only if every run passes (pass^k)."""

    suite: str
    case_id: str
    line: int | None
    passed: bool
    flaky: bool
    runs: tuple[RunResult, ...]
    vars: Mapping[str, Any] = field(default_factory=dict)  # the case inputs the suite set

    @property
    def error(self) -> str | None:
        return next((r.error for r in self.runs if r.error), None)


@dataclass
class SuiteResult:
    """A suite's verdict: the share of passing cases against its threshold."""

    prompt: str
    path: str
    digest: str
    version: str
    threshold: float
    repeat: int
    total: int
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def passed_cases(self) -> int:
        return sum(1 for c in self.cases if c.passed)

    @property
    def pass_rate(self) -> float:
        return self.passed_cases / self.total if self.total else 0.0

    @property
    def complete(self) -> bool:
        return len(self.cases) == self.total

    @property
    def passed(self) -> bool:
        return self.complete and self.total > 0 and self.pass_rate >= self.threshold - 1e-12


def excerpt(text: str, limit: int = EXCERPT) -> str:
    return text if len(text) <= limit else text[:limit] + f"… (+{len(text) - limit} chars)"


def upstream_inputs(
    content: Mapping[str, Any], variables: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """(source prompt, input name) of each `from:` input that `variables` does not set: what
    must run first to render this prompt."""
    return [
        (spec.source, spec.name)
        for spec in prompt_inputs(content).values()
        if spec.source and spec.name not in variables
    ]


def build_request(
    name: str,
    content: Mapping[str, Any],
    values: Mapping[str, Any],
    run_index: int,
    includes: Mapping[str, str] | None = None,
) -> ChatRequest:
    """The request a prompt makes on fully known input values (`includes`: the side's
    partials' text)."""
    messages = render_messages(content, with_defaults(content, values), name, includes)
    return ChatRequest.for_content(content, messages, run_index)


class UpstreamMissing(PromptgateError):
    """An input comes from a prompt this side has no version of."""

    exit_code = 1


class Runner:
    """Runs cases for one gate: shares the model client (cache, bound, stats) and the judge."""

    def __init__(self, client: ModelClient, judge: Mapping[str, Any] | None = None) -> None:
        self.client = client
        self.judge_model = dict(judge or {})
        self._upstream: dict[str, ChatResponse] = {}

    async def judge(self, messages: list[dict[str, str]]) -> str:
        """The judge model's raw reply, for llm-rubric."""
        if not self.judge_model.get("name"):
            raise PromptgateError("llm-rubric needs a judge model (promptgate.yaml `judge`)")
        request = ChatRequest(
            model=self.judge_model["name"],
            messages=tuple(messages),
            params={k: v for k, v in self.judge_model.items() if k not in ENDPOINT_KEYS},
            base_url=self.judge_model.get("base_url"),
            api_key_env=self.judge_model.get("api_key_env"),
        )
        return (await self.client.complete(request)).content

    async def output(
        self,
        side: Side,
        name: str,
        variables: Mapping[str, Any],
        run_index: int,
        upstream: bool = False,
        includes: Mapping[str, str] | None = None,
    ) -> ChatResponse:
        """Run `name` on `variables`, producing its `from:` inputs by running upstream first;
        `{% include %}` is served from `includes` (the side's partials)."""
        prompt = side.get(name)
        if prompt is None:
            raise UpstreamMissing(f"{name} has no version to run (needed as an upstream input)")
        response, _ = await self._run(side, prompt, variables, run_index, upstream, includes)
        return response

    async def output_fed(
        self,
        side: Side,
        name: str,
        variables: Mapping[str, Any],
        run_index: int,
        includes: Mapping[str, str] | None = None,
    ) -> tuple[ChatResponse, tuple[UpstreamOutput, ...]]:
        """`output` for a case's own prompt, with the upstream outputs its inputs were fed."""
        prompt = side.get(name)
        if prompt is None:
            raise UpstreamMissing(f"{name} has no version to run (needed as an upstream input)")
        return await self._run(side, prompt, variables, run_index, False, includes)

    async def _run(
        self,
        side: Side,
        prompt: PromptAt,
        variables: Mapping[str, Any],
        run_index: int,
        upstream: bool,
        includes: Mapping[str, str] | None,
    ) -> tuple[ChatResponse, tuple[UpstreamOutput, ...]]:
        name, content = prompt.name, prompt.content
        values = dict(variables)
        fed: list[UpstreamOutput] = []
        for source, input_name in upstream_inputs(content, variables):
            produced = await self.output(side, source, variables, run_index, True, includes)
            values[input_name] = produced.output
            fed.append(
                UpstreamOutput(input_name, source, side[source].label, excerpt(produced.output))
            )
        request = build_request(name, content, values, run_index, includes)
        site = CALL_SITE.set((CALL_SITE.get()[0], name, upstream))
        try:
            if upstream:
                key = request.key
                memo = self._upstream.get(key)
                if memo is not None:
                    return memo, tuple(fed)
                response = await self.client.complete(request)
                self._upstream[key] = response
                return response, tuple(fed)
            return await self.client.complete(request), tuple(fed)
        finally:
            CALL_SITE.reset(site)

    async def run_once(
        self,
        suite: Suite,
        case: Case,
        side: Side,
        index: int,
        includes: Mapping[str, str] | None = None,
    ) -> RunResult:
        try:
            response, fed = await self.output_fed(side, suite.prompt, case.vars, index, includes)
        except PromptgateError as exc:
            return RunResult(index=index, passed=False, score=0.0, output="", error=str(exc))
        ctx = AssertContext(
            vars=case.vars,
            prompt=suite.prompt,
            suite_dir=suite.folder,
            latency_ms=response.latency_ms,
            cost=self.client.response_cost(response),
            judge=self.judge,
        )
        output = response.output
        try:
            score = await score_case(case.asserts, output, ctx, case.threshold)
        except Exception as exc:  # an assertion engine failure fails the case, never passes
            return RunResult(
                index=index,
                passed=False,
                score=0.0,
                output=excerpt(output),
                error=f"assertion error: {type(exc).__name__}: {exc}",
                upstream=fed,
            )
        error = next((r.error for r in score.results if r.error), None)
        return RunResult(
            index=index,
            passed=score.passed and error is None,
            score=score.score,
            output=excerpt(output),
            assertions=score.results,
            error=error,
            cached=response.cached,
            latency_ms=response.latency_ms,
            upstream=fed,
        )

    async def run_case(
        self, suite: Suite, case: Case, side: Side, includes: Mapping[str, str] | None = None
    ) -> CaseResult:
        if suite.repeat == 1:
            runs = [await self.run_once(suite, case, side, 0, includes)]
        else:
            runs = list(
                await asyncio.gather(
                    *(self.run_once(suite, case, side, i, includes) for i in range(suite.repeat))
                )
            )
        passes = sum(r.passed for r in runs)
        return CaseResult(
            suite=str(suite.path),
            case_id=case.id,
            line=case.line,
            passed=passes == len(runs),
            flaky=0 < passes < len(runs),
            runs=tuple(runs),
            vars=case.vars,
        )


@dataclass(frozen=True)
class Job:
    """One suite to run against one side; `key` says which results it feeds."""

    key: str
    suite: Suite
    side: Side
    version: str
    includes: Mapping[str, str] = field(default_factory=dict)  # the side's partials' text


async def run_jobs(
    runner: Runner,
    jobs: Iterable[Job],
    *,
    workers: int,
    on_case: Callable[[Job, CaseResult], Awaitable[None] | None] | None = None,
    timeout_s: float | None = None,
) -> dict[str, list[SuiteResult]]:
    """Run every case of every job on `workers` workers; results grouped by job key.

    A case that exceeds `timeout_s` (if given) fails with a timeout error.
    """
    jobs = list(jobs)
    results: dict[str, list[SuiteResult]] = {}
    queue: asyncio.Queue[tuple[Job, SuiteResult, Case] | None] = asyncio.Queue()
    for job in jobs:
        sr = SuiteResult(
            prompt=job.suite.prompt,
            path=str(job.suite.path),
            digest=job.suite.digest,
            version=job.version,
            threshold=job.suite.threshold,
            repeat=job.suite.repeat,
            total=len(job.suite.cases),
        )
        results.setdefault(job.key, []).append(sr)
        for case in job.suite.cases:
            queue.put_nowait((job, sr, case))

    async def worker() -> None:
        while True:
            item = queue.get_nowait() if not queue.empty() else None
            if item is None:
                return
            job, sr, case = item
            CALL_SITE.set((job.key.split(":", 1)[0], job.suite.prompt, False))
            started = time.perf_counter()
            try:
                if timeout_s is None:
                    result = await runner.run_case(job.suite, case, job.side, job.includes)
                else:
                    result = await asyncio.wait_for(
                        runner.run_case(job.suite, case, job.side, job.includes), timeout_s
                    )
            except asyncio.TimeoutError:
                elapsed = time.perf_counter() - started
                result = CaseResult(
                    suite=str(job.suite.path),
                    case_id=case.id,
                    line=case.line,
                    passed=False,
                    flaky=False,
                    vars=case.vars,
                    runs=(
                        RunResult(
                            index=0,
                            passed=False,
                            score=0.0,
                            output="",
                            error=f"timed out after {elapsed:.1f}s",
                        ),
                    ),
                )
            sr.cases.append(result)
            if on_case is not None:
                maybe = on_case(job, result)
                if maybe is not None:
                    await maybe

    await asyncio.gather(*(worker() for _ in range(max(1, workers))))
    return results
