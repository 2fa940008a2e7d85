"""One gate over many CI machines (DESIGN section 11): `check --shard I/N`, `report merge`,
`promote --from-report`, on the shipped example and on a scripted quiz."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import Project
from test_compare_gate import _setup, llm, quiz  # noqa: F401  (fixtures)

from promptgate.shards import shard_of
from promptgate.store import Store
from promptgate.testing import OpenAITestServer

REPO = Path(__file__).resolve().parent.parent


def _cases(report: dict[str, Any]) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """Every case's verdict on both sides, keyed by (side, prompt, case id)."""
    out = {}
    for side in ("suites", "baseline_suites"):
        for s in report[side]:
            for c in s["cases"]:
                out[(side, s["prompt"], c["id"])] = (
                    c["passed"],
                    c["runs_passed"],
                    c["change"],
                    c["output"],
                )
    return out


def _shards(p: Project, ref: str, n: int, *extra: str) -> list[Path]:
    paths = []
    for i in range(1, n + 1):
        out = p.root / f"shard-{i}.json"
        result = p.run("check", ref, "--shard", f"{i}/{n}", "--report-json", str(out), *extra)
        assert result.exit_code == 0, result.stderr
        paths.append(out)
    return paths


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """The shipped example, as the quickstart leaves it before promoting summarize@v2."""
    root = tmp_path / "example"
    root.mkdir()
    for name in ("prompts", "evals", "examples"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "promptgate.yaml", root / "promptgate.yaml")
    monkeypatch.chdir(root)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "GITHUB_ACTIONS"):
        monkeypatch.delenv(var, raising=False)
    p = Project(root=root, registry=f"sqlite:///{root}/.promptgate/registry.db")
    for args in (
        ("init",),
        ("cache", "import", "evals/responses.jsonl"),
        ("push", "-m", "first"),
        ("promote", "--changed", "--to", "production", "--reason", "initial"),
        ("push", "examples/summarize-v2.yaml", "-m", "deadline first"),
    ):
        result = p.run(*args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return p


def test_three_shards_of_the_example_merge_into_the_same_verdict(example: Project) -> None:
    whole = example.root / "whole.json"
    assert example.run("check", "summarize@v2", "--report-json", str(whole)).exit_code == 0
    one = json.loads(whole.read_text())
    paths = _shards(example, "summarize@v2", 3)
    parts = [json.loads(p.read_text()) for p in paths]
    assert [r["shard"] for r in parts] == [{"index": i, "count": 3} for i in (1, 2, 3)]
    # every shard names the same check; together they hold every case once
    assert len({json.dumps([r["candidates"], r["baselines"]]) for r in parts}) == 1
    keys = [k for r in parts for k in _cases(r)]
    assert len(keys) == len(set(keys)) and set(keys) == set(_cases(one))
    merged_path = example.root / "merged.json"
    md = example.root / "merged.md"
    result = example.run(
        "report",
        "merge",
        *map(str, paths),
        "--report-json",
        str(merged_path),
        "--report-md",
        str(md),
    )
    assert result.exit_code == 0, result.stderr
    merged = json.loads(merged_path.read_text())
    assert merged["verdict"] == one["verdict"] and merged["failures"] == one["failures"]
    assert _cases(merged) == _cases(one)
    for a, b in zip(merged["suites"], one["suites"], strict=True):
        assert (a["total"], a["passed_cases"], a["verdict"]) == (
            b["total"],
            b["passed_cases"],
            b["verdict"],
        )
        assert a["comparison"] == b["comparison"]
    assert merged["shard"] is None and [m["index"] for m in merged["merged_from"]] == [1, 2, 3]
    # each shard runs the upstream chain its own cases need: a little more work in all
    assert merged["stats"]["cached"] >= one["stats"]["cached"] and merged["stats"]["calls"] == 0
    assert "promptgate" in md.read_text()
    # and the merged report promotes without re-running anything
    result = example.run(
        "promote", "--from-report", str(merged_path), "--to", "production", "--reason", "merged"
    )
    assert result.exit_code == 0, result.stderr
    assert "summarize@production: v1 -> v2" in result.stdout
    store = Store(example.registry)
    assert store.label_version("summarize", "production") == 2
    [move] = [e for e in store.audit(prompt="summarize") if e.type == "move"][:1]
    assert move.details["report"]["digest"]


def test_shard_keys_are_stable_and_spread() -> None:
    ids = [f"case-{i}" for i in range(3000)]
    counts = [sum(1 for c in ids if shard_of("p", c, 3) == i) for i in (1, 2, 3)]
    assert sum(counts) == 3000 and min(counts) > 900  # about a third each
    assert [shard_of("p", c, 3) for c in ids[:50]] == [shard_of("p", c, 3) for c in ids[:50]]
    assert {shard_of("p", c, 1) for c in ids} == {1}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "shard 2/3 missing"),
        ("twice", "shard 1/3 given twice"),
        ("foreign", "judged other candidates, baselines or suite files"),
        ("unsharded", "not a shard's report"),
        ("mixed", "split the check differently"),
        ("garbage", "not a JSON report"),
        ("count0", "with 1 <= index <= count"),
        ("malformed", "a shard's report is malformed"),
    ],
)
def test_merge_refuses_what_is_not_one_whole_check(
    quiz: Project,  # noqa: F811
    llm: OpenAITestServer,  # noqa: F811
    case: str,
    message: str,
) -> None:
    _setup(quiz, llm, 12, {"A": 0.9, "B": 0.9})
    paths = _shards(quiz, "quiz@v2", 3)
    if case == "missing":
        args = [paths[0], paths[2]]
    elif case == "twice":
        args = [paths[0], paths[0], paths[1], paths[2]]
    elif case == "foreign":
        other = json.loads(paths[1].read_text())
        other["suites"][0]["digest"] = "0" * 64
        paths[1].write_text(json.dumps(other))
        args = paths
    elif case == "unsharded":
        whole = quiz.root / "whole.json"
        quiz.run("check", "quiz@v2", "--report-json", str(whole))
        args = [whole, *paths[1:]]
    elif case == "mixed":
        two = _shards(quiz, "quiz@v2", 2)
        args = [paths[0], two[1], paths[2]]
    elif case == "count0":
        other = json.loads(paths[1].read_text())
        other["shard"] = {"index": 7, "count": 0}
        paths[1].write_text(json.dumps(other))
        args = paths
    elif case == "malformed":
        other = json.loads(paths[1].read_text())
        del other["suites"][0]["cases"]
        paths[1].write_text(json.dumps(other))
        args = paths
    else:
        paths[1].write_text("{not json")
        args = paths
    out = quiz.root / "merged.json"
    result = quiz.run("report", "merge", *map(str, args), "--report-json", str(out))
    assert result.exit_code == 2, result.stdout
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_promote_from_report_refuses_tampered_stale_and_incomplete(
    quiz: Project,  # noqa: F811
    llm: OpenAITestServer,  # noqa: F811
) -> None:
    _setup(quiz, llm, 30, {"A": 0.9, "B": 0.9})
    paths = _shards(quiz, "quiz@v2", 2)
    merged = quiz.root / "merged.json"
    assert (
        quiz.run("report", "merge", *map(str, paths), "--report-json", str(merged)).exit_code == 0
    )
    report = json.loads(merged.read_text())
    store = Store(quiz.registry)

    def promote(data: Any) -> Any:
        path = quiz.root / "try.json"
        path.write_text(json.dumps(data))
        return quiz.run(
            "promote", "--from-report", str(path), "--to", "production", "--reason", "r"
        )

    calls = llm.call_count
    # a shard alone is not the check
    result = promote(json.loads(paths[0].read_text()))
    assert result.exit_code == 2 and "merge the shards first" in result.stderr
    # tampered: a failing case marked as passing, or a verdict the cases do not give
    forged = json.loads(json.dumps(report))
    failing = next(c for c in forged["suites"][0]["cases"] if not c["passed"])
    failing["passed"] = True
    assert promote(forged).exit_code == 2
    forged = json.loads(json.dumps(report))
    forged["verdict"] = "pass" if report["verdict"] != "pass" else "fail"
    result = promote(forged)
    assert result.exit_code == 2 and "is not what its cases give" in result.stderr
    # the suite file changed since the report: its digest no longer matches
    suite = quiz.root / "evals" / "quiz.yaml"
    original = suite.read_text()
    suite.write_text(original + "description: edited\n")
    result = promote(report)
    assert result.exit_code == 2 and "files differ" in result.stderr
    suite.write_text(original)
    # stale: production moved after the report was made
    assert quiz.run("label", "set", "quiz@v2", "production", "--reason", "meanwhile").exit_code == 0
    result = promote(report)
    assert result.exit_code == 3 and "moved since the report" in result.stderr
    assert quiz.run("label", "set", "quiz@v1", "production", "--reason", "back").exit_code == 0
    assert store.label_version("quiz", "production") == 1
    assert llm.call_count == calls  # nothing was re-run
    # the genuine report moves the label (inconclusive or pass under warn)
    result = promote(report)
    assert result.exit_code == 0, result.stderr
    assert store.label_version("quiz", "production") == 2
