"""The statistical gate end to end (DESIGN section 9): candidate and baseline paired on the same
cases, the third verdict, `check --plan` and the budget, against the real local
OpenAI-compatible server scripted to answer right with a fixed probability per version."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Project

from promptgate import stats
from promptgate.config import load_config
from promptgate.gate import check
from promptgate.store import Store
from promptgate.testing import OpenAITestServer, chance

CONFIG = """\
registry: sqlite:///.promptgate/registry.db
protected_labels: []
gate: {label: production, concurrency: 16, timeout_s: 5, retries: 0, backoff_s: 0.01}
pricing:
  quiz-model: {input: 1.0, output: 2.0}
"""

QUIZ = """\
name: quiz
model: {name: quiz-model, max_tokens: 5}
template: "Quiz {{ i }} (MARKER)"
"""

SUITE = """\
prompt: quiz
threshold: {threshold}
{extra}cases: quiz.jsonl
"""

QUESTION = re.compile(r"Quiz (\d+) \((\w+)\)")


def _draw(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def shared_answers(rates: dict[str, float]) -> Callable[[dict[str, Any]], str]:
    """Right when one draw per case (the same for every version) is below the version's rate:
    a better version gets right every case a worse one does (paired, as real cases are)."""

    def answer(body: dict[str, Any]) -> str:
        m = QUESTION.search(body["messages"][-1]["content"])
        assert m is not None
        return "right" if _draw(f"case-{m.group(1)}") < rates[m.group(2)] else "wrong"

    return answer


@pytest.fixture(scope="module")
def llm() -> Iterator[OpenAITestServer]:
    with OpenAITestServer() as server:
        yield server


@pytest.fixture
def quiz(tmp_path: Path, llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> Project:
    llm.reset()
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    p = Project(root=root, registry=f"sqlite:///{root}/.promptgate/registry.db")
    assert p.run("init").exit_code == 0
    p.write("promptgate.yaml", CONFIG)
    return p


def _setup(
    p: Project,
    llm: OpenAITestServer,
    n: int,
    rates: dict[str, float] | None = None,
    *,
    threshold: float = 0.5,
    extra: str = "",
    answers: Callable[[dict[str, Any]], str] | None = None,
) -> None:
    """quiz@v1 (marker A) at production, quiz@v2 (marker B) pushed as the candidate."""
    p.write("evals/quiz.yaml", SUITE.format(threshold=threshold, extra=extra))
    lines = [
        json.dumps(
            {"id": f"q{i}", "vars": {"i": i}, "assert": [{"type": "equals", "value": "right"}]}
        )
        for i in range(n)
    ]
    p.write("evals/quiz.jsonl", "\n".join(lines) + "\n")
    llm.reply("Quiz", answers or shared_answers(rates or {}))
    p.write("prompts/quiz.yaml", QUIZ.replace("MARKER", "A"))
    assert p.run("push", "-m", "v1").exit_code == 0
    assert p.run("label", "set", "quiz@v1", "production", "--reason", "first").exit_code == 0
    p.write("prompts/quiz.yaml", QUIZ.replace("MARKER", "B"))
    assert p.run("push", "-m", "v2").exit_code == 0


def _check(p: Project, *args: str) -> tuple[int, dict[str, Any], str]:
    out = p.root / "report.json"
    md = p.root / "report.md"
    result = p.run("check", "quiz@v2", "--report-json", str(out), "--report-md", str(md), *args)
    assert result.exit_code in (0, 1), result.stdout + result.stderr
    return result.exit_code, json.loads(out.read_text()), md.read_text()


def test_an_equally_good_candidate_passes(quiz: Project, llm: OpenAITestServer) -> None:
    _setup(quiz, llm, 300, {"A": 0.85, "B": 0.85})
    code, report, md = _check(quiz)
    [suite] = report["suites"]
    c = suite["comparison"]
    assert code == 0 and report["verdict"] == "pass" and suite["verdict"] == "pass"
    assert c["n"] == 300 and c["regressions"] == c["fixes"] == 0 and c["drop"] == 0
    assert 0 < c["ci_high"] < c["margin"] and c["cases_needed"] is None
    assert c["method"] == "mcnemar-exact" and c["p_value"] == 1.0
    assert "within the 5-point margin" in md


def test_a_worse_candidate_that_clears_the_threshold_fails(
    quiz: Project, llm: OpenAITestServer
) -> None:
    _setup(quiz, llm, 300, {"A": 0.95, "B": 0.83}, threshold=0.7)
    code, report, md = _check(quiz)
    [suite] = report["suites"]
    c = suite["comparison"]
    assert suite["passed"] is True  # the threshold alone would have shipped it
    assert code == 1 and report["verdict"] == "fail" and suite["verdict"] == "fail"
    assert c["fixes"] == 0 and c["regressions"] > 20
    assert c["p_value"] == pytest.approx(stats.mcnemar_p(c["regressions"], 0), abs=1e-6)
    assert c["p_value"] < 0.001 and len(c["regressed"]) == c["regressions"]
    assert any("significantly worse" in f for f in report["failures"])
    # the regressed cases come first among the failing ones
    failing = md.split("### Failing cases", 1)[1]
    first = re.search(r"<b>(q\d+)</b> — (\S+)", failing)
    assert first is not None and first.group(2) == "new-failure"
    # nothing moves on a failed comparison
    result = quiz.run("promote", "quiz@v2", "--to", "production", "--reason", "try")
    assert result.exit_code == 1
    assert Store(quiz.registry).label_version("quiz", "production") == 1


def test_a_small_suite_is_inconclusive_and_says_how_many_cases_it_needs(
    quiz: Project, llm: OpenAITestServer
) -> None:
    _setup(quiz, llm, 20, answers=chance(0.8, "right", "wrong", seed="small"), threshold=0.3)
    code, report, md = _check(quiz)
    [suite] = report["suites"]
    c = suite["comparison"]
    assert report["verdict"] == "inconclusive" and suite["verdict"] == "inconclusive"
    assert code == 0  # inconclusive: warn is the default
    assert c["cases_needed"] is not None and c["cases_needed"] > 20
    assert f"about {c['cases_needed']} paired cases would settle it" in md
    assert "⚠️" in md.splitlines()[1]
    # under warn, promote moves the label
    result = quiz.run("promote", "quiz@v2", "--to", "production", "--reason", "ok")
    assert result.exit_code == 0, result.stderr
    assert Store(quiz.registry).label_version("quiz", "production") == 2


def test_inconclusive_fail_exits_1_from_config_or_suite(
    quiz: Project, llm: OpenAITestServer
) -> None:
    _setup(quiz, llm, 20, {"A": 0.8, "B": 0.8}, threshold=0.3)
    config = quiz.root / "promptgate.yaml"
    config.write_text(
        CONFIG.replace("backoff_s: 0.01}", "backoff_s: 0.01, compare: {inconclusive: fail}}")
    )
    code, report, _ = _check(quiz)
    assert code == 1 and report["verdict"] == "inconclusive"
    assert any("compare.inconclusive is fail" in f for f in report["failures"])
    result = quiz.run("promote", "quiz@v2", "--to", "production", "--reason", "no")
    assert result.exit_code == 1
    # a suite may override it back
    config.write_text(CONFIG)
    quiz.write(
        "evals/quiz.yaml",
        SUITE.format(threshold=0.3, extra="compare: {inconclusive: fail, margin: 0.5}\n"),
    )
    code, report, _ = _check(quiz)
    assert report["suites"][0]["comparison"]["margin"] == 0.5
    assert code == 0 and report["verdict"] == "pass"  # 20 identical cases are within 50 points


@pytest.mark.parametrize(
    ("where", "text", "message"),
    [
        ("suite", "compare: {margins: 0.1}\n", "unknown key 'margins'"),
        ("suite", "compare: {alpha: 0.9}\n", "compare.alpha: must be a number"),
        ("config", "compare: {inconclusive: maybe}", "gate.compare.inconclusive: must be warn"),
        ("config", "max_cost_usd: -1", "gate.max_cost_usd: must be a number"),
    ],
)
def test_bad_compare_settings_are_one_line_errors(
    quiz: Project, llm: OpenAITestServer, where: str, text: str, message: str
) -> None:
    _setup(quiz, llm, 3, {"A": 1.0, "B": 1.0})
    if where == "suite":
        quiz.write("evals/quiz.yaml", SUITE.format(threshold=0.5, extra=text))
    else:
        quiz.write(
            "promptgate.yaml", CONFIG.replace("backoff_s: 0.01}", f"backoff_s: 0.01, {text}}}")
        )
    llm.reset()
    result = quiz.run("check", "quiz@v2")
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert llm.call_count == 0


def test_an_unchanged_candidate_is_rarely_failed_and_a_drop_is_caught(
    quiz: Project, llm: OpenAITestServer
) -> None:
    """Many seeded trials through the whole gate: candidate and baseline answer right with the
    same probability, independently (a nondeterministic model): the gate fails at most about
    alpha of them; with a 15-point drop it fails most of them."""
    _setup(quiz, llm, 100, {"A": 0.8, "B": 0.8}, threshold=0.5)
    config = load_config(quiz.root / "promptgate.yaml")
    store = Store(quiz.registry)
    outcomes: dict[str, list[str]] = {"same": [], "drop": []}
    for trial in range(10):
        for kind, rate in (("same", 0.8), ("drop", 0.65)):
            llm.reset()
            llm.reply("(A)", chance(0.8, "right", "wrong", seed=f"{trial}"))
            llm.reply("(B)", chance(rate, "right", "wrong", seed=f"{trial}-{kind}"))
            outcome = check(store, config, ["quiz@v2"], no_cache=True)
            outcomes[kind].append(outcome.report["verdict"])
    false_alarms = outcomes["same"].count("fail")
    detected = outcomes["drop"].count("fail")
    # P(X >= 3) for X ~ Binomial(10, 0.05) is 1.2%: more would mean a miscalibrated test;
    # the power at this drop and size is about 75%
    assert false_alarms <= 2, outcomes["same"]
    assert detected >= 5, outcomes["drop"]


def test_plan_makes_no_call_and_counts_right(quiz: Project, llm: OpenAITestServer) -> None:
    _setup(quiz, llm, 10, {"A": 1.0, "B": 1.0})
    llm.reset()
    result = quiz.run("check", "quiz@v2", "--plan", "--json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert llm.call_count == 0
    assert plan["requests"] == 20 and plan["calls"] == 20 and plan["cached"] == 0
    sides = {(p["prompt"], p["side"]): p for p in plan["prompts"]}
    assert sides[("quiz", "candidate")]["version"] == "v2"
    assert sides[("quiz", "baseline")]["version"] == "v1"
    # the bound: UTF-8 bytes + 4 framing tokens per message + 3, and max_tokens; $1/$2 per M
    prompt_max = sum(len(f"Quiz {i} (X)".encode()) + 4 + 3 for i in range(10)) * 2
    assert plan["prompt_tokens_max"] == prompt_max
    assert plan["completion_tokens_max"] == 20 * 5
    assert plan["cost_usd_max"] == pytest.approx((prompt_max * 1.0 + 100 * 2.0) / 1e6)
    # after a real run every request is cached, and the plan says so
    assert quiz.run("check", "quiz@v2").exit_code in (0, 1)
    calls = llm.call_count
    again = json.loads(quiz.run("check", "quiz@v2", "--plan", "--json").stdout)
    assert again["cached"] == 20 and again["calls"] == 0 and again["cost_usd_max"] == 0
    assert llm.call_count == calls
    text = quiz.run("check", "quiz@v2", "--plan", "--max-cost", "1")
    assert "0 model calls to make (20 of 20 requests served from cache)" in text.stdout
    assert "within it" in text.stdout


def test_plan_counts_upstream_runs_of_a_chain(quiz: Project, llm: OpenAITestServer) -> None:
    _setup(quiz, llm, 4, {"A": 1.0, "B": 1.0})
    quiz.write(
        "prompts/grade.yaml",
        'name: grade\nmodel: {name: quiz-model, max_tokens: 7}\ntemplate: "Grade: {{ answer }}"\n'
        "inputs:\n  answer: {from: quiz}\n",
    )
    quiz.write(
        "evals/grade.yaml",
        "prompt: grade\ncases:\n  - {id: g1, vars: {i: 1}, assert: [{type: contains, value: x}]}\n",
    )
    assert quiz.run("push", "-m", "grade").exit_code == 0
    assert quiz.run("label", "set", "grade@v1", "production", "--reason", "r").exit_code == 0
    llm.reset()
    plan = json.loads(quiz.run("check", "quiz@v2", "--plan", "--json", "--no-baseline").stdout)
    sides = {(p["prompt"], p["side"]): p for p in plan["prompts"]}
    assert sides[("quiz", "candidate")]["requests"] == 5  # 4 own cases + 1 upstream run for grade
    assert sides[("quiz", "candidate")]["upstream_requests"] == 1
    grade = sides[("grade", "candidate")]
    # grade's prompt holds the upstream answer, bounded by quiz's max_tokens (5 bytes)
    assert grade["prompt_tokens_max"] == len(b"Grade: ") + 5 + 4 + 3
    assert llm.call_count == 0


def test_the_budget_stops_before_it_is_crossed(quiz: Project, llm: OpenAITestServer) -> None:
    _setup(quiz, llm, 30, {"A": 1.0, "B": 1.0})
    one_call = (len(b"Quiz 10 (B)") + 7) * 1.0 / 1e6 + 5 * 2.0 / 1e6
    budget = 12.5 * one_call
    llm.reset()
    code, report, md = _check(quiz, "--max-cost", f"{budget:.10f}", "--no-baseline")
    assert code == 1 and report["verdict"] == "fail"
    made = llm.call_count
    assert 0 < made <= 12
    reserve_bound = made * one_call
    assert reserve_bound <= budget
    summary = report["failures"][0]
    assert summary.startswith("budget exceeded: $") and f"{30 - made} calls not made" in summary
    assert report["stats"]["calls"] == made and "budget exceeded" in md
    # cached calls cost nothing: the same budget now reaches further
    llm.reset()
    code, again, _ = _check(quiz, "--max-cost", f"{budget:.10f}", "--no-baseline")
    assert again["stats"]["cached"] == made and llm.call_count > 0


def test_repeats_compare_per_case_pass_shares_by_a_seeded_bootstrap(
    quiz: Project, llm: OpenAITestServer
) -> None:
    counts: dict[tuple[str, str], int] = {}

    def answer(body: dict[str, Any]) -> str:
        m = QUESTION.search(body["messages"][-1]["content"])
        assert m is not None
        case, version = int(m.group(1)), m.group(2)
        k = counts[(version, str(case))] = counts.get((version, str(case)), 0) + 1
        # the candidate misses one run in three on every fourth case
        return "wrong" if version == "B" and case % 4 == 0 and k % 3 == 0 else "right"

    _setup(quiz, llm, 40, answers=answer, threshold=0.5, extra="repeat: 3\n")
    code, report, _ = _check(quiz, "--no-cache")
    c = report["suites"][0]["comparison"]
    assert c["method"] == "paired-bootstrap"
    assert c["regressions"] == 10 and c["fixes"] == 0
    assert c["drop"] == pytest.approx(10 * (1 / 3) / 40, abs=1e-6)
    assert code == 1 and report["verdict"] == "fail" and c["p_value"] < 0.05
    counts.clear()
    _, again, _ = _check(quiz, "--no-cache")
    assert again["suites"][0]["comparison"] == c  # seeded from the suite digest: reproducible


def _suite_result(name: str, scores: list[tuple[int, int, str | None]]) -> Any:
    """A SuiteResult of (runs_passed, runs, error) cases, as a report's JSON would give it."""
    from promptgate.report import suite_result_from_json

    cases = [
        {
            "id": f"c{i}",
            "runs": runs,
            "runs_passed": ok,
            "passed": ok == runs and not err,
            "error": err,
        }
        for i, (ok, runs, err) in enumerate(scores)
    ]
    repeat = scores[0][1]
    passed = sum(c["passed"] for c in cases) / len(cases) >= 0.0
    entry = {"prompt": name, "digest": "d" * 64, "version": "v1", "cases": cases, "passed": passed}
    return suite_result_from_json(
        entry, where=name, path=f"{name}.yaml", threshold=0.0, repeat=repeat
    )


def test_an_errored_run_counts_as_one_failing_run_after_a_json_round_trip() -> None:
    from promptgate.verdict import case_score

    sr = _suite_result("p", [(2, 3, "timed out after 5.0s"), (3, 3, None)])
    assert [case_score(c) for c in sr.cases] == [pytest.approx(2 / 3), 1.0]
    assert [c.passed for c in sr.cases] == [False, True]


def test_an_inconclusive_suite_says_how_many_cases_even_when_holm_decides() -> None:
    """Two suites with 5 regressions in 40 each: raw p 0.031, Holm-adjusted 0.0625: not a
    significant drop, not within the margin either, so each must say what would settle it."""
    from promptgate.policy import CompareSettings
    from promptgate.verdict import judge

    base = {n: [_suite_result(n, [(1, 1, None)] * 40)] for n in ("a", "b")}
    cand = {n: [_suite_result(n, [(0, 1, None)] * 5 + [(1, 1, None)] * 35)] for n in ("a", "b")}
    judgement = judge([], lambda n, p: CompareSettings(), cand, base)
    for name in ("a", "b"):
        c = judgement.for_suite(name, f"{name}.yaml").comparison
        assert c is not None and c.p_value < 0.05 <= c.p_adjusted
        assert c.verdict == "inconclusive" and c.cases_needed is not None and c.cases_needed > 40
