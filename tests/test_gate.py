"""The gate end to end, against the real local OpenAI-compatible server (promptgate.testing)."""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from conftest import Project

from promptgate.testing import OpenAITestServer

CONFIG = """\
registry: sqlite:///.promptgate/registry.db
protected_labels: [production]
gate: {label: production, concurrency: 4, timeout_s: 5, retries: 2, backoff_s: 0.01}
judge: {name: judge-model, temperature: 0}
pricing:
  gpt-4o-mini: {input: 0.15, output: 0.60}
"""

CLASSIFY = """\
name: classify
model: {name: classifier-model}
template: "Classify: {{ ticket }}"
"""

EXTRACT_SUITE = """\
prompt: extract
cases:
  - id: order-number
    vars: {ticket: "Order 1182 arrived broken"}
    assert:
      - {type: contains, value: "1182"}
"""

SUMMARIZE_SUITE = """\
prompt: summarize
defaults:
  assert:
    - {type: not-icontains, value: "As an AI"}
cases:
  - id: chain-carries-order
    vars: {ticket: "Order 1182 arrived broken"}
    assert:
      - {type: contains, value: "1182"}
      - {type: word-count, value: {max: 60}}
  - id: refund
    vars: {ticket: "Refund order 77 please"}
    assert:
      - {type: icontains, value: "refund"}
"""

CLASSIFY_SUITE = """\
prompt: classify
cases:
  - id: any
    vars: {ticket: "hello"}
    assert: [{type: contains, value: hello}]
"""


@pytest.fixture(scope="session")
def llm() -> Iterator[OpenAITestServer]:
    with OpenAITestServer() as server:
        yield server


@pytest.fixture
def gate_project(
    project: Project, llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch
) -> Project:
    llm.reset()
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    project.write("promptgate.yaml", CONFIG)
    project.write("prompts/classify.yaml", CLASSIFY)
    project.write("evals/extract.yaml", EXTRACT_SUITE)
    project.write("evals/summarize.yaml", SUMMARIZE_SUITE)
    project.write("evals/classify.yaml", CLASSIFY_SUITE)
    assert project.run("push", "-m", "v1").exit_code == 0
    return project


def _edit(project: Project, rel: str, old: str, new: str) -> None:
    path = project.root / rel
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def _report(project: Project, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    out = project.root / "report.json"
    result = project.run(*args, "--report-json", str(out))
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, json.loads(out.read_text())


def _release_all(project: Project, llm: OpenAITestServer) -> None:
    """Put every v1 at production (through the gate), then forget the calls it made."""
    result = project.run("promote", "--changed", "--to", "production", "--reason", "initial")
    assert result.exit_code == 0, result.stdout + result.stderr
    llm.reset()


def test_change_upstream_runs_downstream_chain_only(
    gate_project: Project, llm: OpenAITestServer
) -> None:
    _release_all(gate_project, llm)
    _edit(gate_project, "prompts/extract.yaml", "Ticket:", "Support ticket:")
    gate_project.run("push", "-m", "v2")
    code, report = _report(gate_project, "check", "extract@v2", "--no-baseline")
    assert code == 0, report["failures"]
    assert [a["name"] for a in report["affected"]] == ["extract", "summarize"]
    assert report["affected"][1]["reason"] == "downstream of extract -> summarize"
    bodies = [json.dumps(r.body) for r in llm.requests]
    assert not any("Classify" in b for b in bodies), "unrelated prompt was called"
    # the downstream prompt saw its upstream candidate's real output
    summarize_calls = [r.body for r in llm.requests if "Summarize" in json.dumps(r.body)]
    assert summarize_calls and all(
        "[gpt-4o-mini] Support ticket:" in m["content"]
        for b in summarize_calls
        for m in b["messages"]
        if m["role"] == "user"
    )
    assert report["verdict"] == "pass"


def test_second_run_is_served_from_cache(gate_project: Project, llm: OpenAITestServer) -> None:
    code, first = _report(gate_project, "check", "extract", "summarize", "--no-baseline")
    calls = llm.call_count
    assert code == 0 and calls > 0 and first["stats"]["calls"] == calls
    code, second = _report(gate_project, "check", "extract", "summarize", "--no-baseline")
    assert code == 0 and llm.call_count == calls
    assert second["stats"]["calls"] == 0 and second["stats"]["cached"] >= 1
    nocache = gate_project.run("check", "extract", "summarize", "--no-cache", "--no-baseline")
    assert nocache.exit_code == 0 and llm.call_count > calls


def test_concurrency_bound_is_respected(gate_project: Project, llm: OpenAITestServer) -> None:
    cases = "\n".join(
        f"  - {{id: c{i}, vars: {{ticket: 't{i}'}}, assert: [{{type: contains, value: t{i}}}]}}"
        for i in range(12)
    )
    gate_project.write("evals/classify.yaml", f"prompt: classify\ncases:\n{cases}\n")
    llm.latency = 0.05
    try:
        result = gate_project.run("check", "classify", "--concurrency", "3", "--no-cache")
    finally:
        llm.latency = 0.0
    assert result.exit_code == 0, result.stdout + result.stderr
    assert llm.call_count == 12 and llm.max_in_flight == 3


def test_retries_then_success(gate_project: Project, llm: OpenAITestServer) -> None:
    llm.fail(500, times=1)
    llm.fail(429, times=1, retry_after=0.05)
    code, report = _report(gate_project, "check", "classify", "--no-cache")
    assert code == 0, report["failures"]
    assert report["stats"]["retries"] == 2 and llm.call_count == 3


def test_model_errors_fail_closed(gate_project: Project, llm: OpenAITestServer) -> None:
    llm.fail(500, times=50)
    code, report = _report(gate_project, "check", "classify", "--no-cache")
    assert code == 1 and report["verdict"] == "fail"
    [case] = report["suites"][0]["cases"]
    assert (
        not case["passed"] and "HTTP 500" in case["error"] and "after 3 attempts" in case["error"]
    )


def test_malformed_and_timeout_fail_closed(gate_project: Project, llm: OpenAITestServer) -> None:
    gate_project.write(
        "promptgate.yaml", CONFIG.replace("timeout_s: 5, retries: 2", "timeout_s: 0.3, retries: 0")
    )
    llm.malformed(times=1)
    code, report = _report(gate_project, "check", "classify", "--no-cache")
    assert code == 1 and report["suites"][0]["cases"][0]["error"]
    llm.slow(2.0, times=1)
    code, report = _report(gate_project, "check", "classify", "--no-cache")
    assert code == 1 and "Timeout" in report["suites"][0]["cases"][0]["error"]


def test_an_unreachable_endpoint_is_named_as_such(
    gate_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a port nothing listens on: the error says the connection failed, not just "timed out"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    code, report = _report(gate_project, "check", "classify", "--no-cache")
    error = report["suites"][0]["cases"][0]["error"]
    assert code == 1 and "Errno 111" in error and "after 3 attempts" in error, error


def test_no_endpoint_is_a_failure_not_a_pass(
    gate_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    code, report = _report(gate_project, "check", "classify", "--no-cache")
    assert code == 1 and "no model endpoint" in report["suites"][0]["cases"][0]["error"]


def test_missing_suite_fails_unless_allowed(gate_project: Project, llm: OpenAITestServer) -> None:
    _release_all(gate_project, llm)
    (gate_project.root / "evals/summarize.yaml").unlink()
    code, report = _report(gate_project, "check", "extract")
    assert code == 1 and any("summarize: no eval suite" in f for f in report["failures"])
    gate_project.write(
        "promptgate.yaml",
        CONFIG.replace("backoff_s: 0.01", "backoff_s: 0.01, allow_missing_suites: true"),
    )
    code, report = _report(gate_project, "check", "extract")
    assert code == 0 and any("allowed" in p for p in report["problems"])


def test_failing_assertion_reported_in_every_format(gate_project: Project) -> None:
    _edit(gate_project, "evals/classify.yaml", "value: hello", "value: goodbye")
    md, junit = gate_project.root / "r.md", gate_project.root / "r.xml"
    code, report = _report(
        gate_project, "check", "classify", "--report-md", str(md), "--junit", str(junit)
    )
    assert code == 1
    [case] = report["suites"][0]["cases"]
    assert case["failed_assertions"][0]["type"] == "contains"
    assert "[classifier-model] Classify: hello" in case["output"]
    text = md.read_text()
    assert text.startswith("<!-- promptgate-report -->\n## ❌ promptgate: FAIL")
    assert "goodbye" in text and "Failing cases" in text
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "classify"
    assert suite.get("tests") == "1" and suite.get("failures") == "1"
    tc = suite.find("testcase")
    assert tc is not None and tc.get("name") == "any" and tc.find("failure") is not None


def test_report_names_candidates_baselines_and_digests(gate_project: Project) -> None:
    store = gate_project.store()
    assert (
        gate_project.run(
            "promote",
            "extract",
            "summarize",
            "classify",
            "--to",
            "production",
            "--reason",
            "first release",
        ).exit_code
        == 0
    )
    _edit(gate_project, "prompts/summarize.yaml", "Summarize in", "Summarize briefly in")
    gate_project.run("push", "-m", "v2")
    code, report = _report(gate_project, "check", "summarize")
    assert code == 0
    assert report["schema_version"] == 1
    [cand] = report["candidates"]
    assert cand["ref"] == "summarize@v2" and len(cand["content_hash"]) == 64
    assert report["baselines"] == [
        {
            "name": "summarize",
            "version": 1,
            "content_hash": store.get_version("summarize", 1).content_hash,
        }
    ]
    assert len(report["suites"][0]["digest"]) == 64
    assert [c["change"] for c in report["suites"][0]["cases"]] == ["passing", "passing"]
    assert "+Summarize briefly in" in report["diffs"][0]["text"]
    store.close()


def test_promote_moves_labels_atomically_with_audit(gate_project: Project) -> None:
    result = gate_project.run(
        "promote", "extract", "summarize", "--to", "production", "--reason", "ship it"
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    store = gate_project.store()
    assert store.label_version("extract", "production") == 1
    assert store.label_version("summarize", "production") == 1
    events = store.audit(label="production")
    assert {e.prompt for e in events} == {"extract", "summarize"}
    assert all(e.reason == "ship it" and e.details["report"]["digest"] for e in events)
    again = gate_project.run("promote", "extract", "--to", "production", "--reason", "x")
    assert again.exit_code == 0 and "nothing moved" in again.stdout
    assert len(store.audit(label="production")) == 2
    store.close()


def test_failed_gate_moves_nothing(gate_project: Project) -> None:
    _edit(gate_project, "prompts/extract.yaml", "Ticket: {{ ticket }}", "Ticket id elided")
    gate_project.run("push", "-m", "breaks downstream")
    result = gate_project.run("promote", "extract", "--to", "production", "--reason", "x")
    assert result.exit_code == 1
    store = gate_project.store()
    assert store.label_version("extract", "production") is None
    assert store.audit(label="production") == []
    store.close()


def test_draft_refs_check_but_never_promote(gate_project: Project) -> None:
    _edit(gate_project, "prompts/classify.yaml", "Classify:", "Classify this:")
    ok = gate_project.run("check", "prompts/classify.yaml")
    assert ok.exit_code == 0, ok.stdout
    store = gate_project.store()
    assert len(store.history("classify")) == 1  # the draft was not stored
    store.close()
    refused = gate_project.run(
        "promote", "prompts/classify.yaml", "--to", "production", "--reason", "x"
    )
    assert refused.exit_code == 2 and "push it first" in refused.stderr


def test_cas_conflict_during_check_exits_3(gate_project: Project, llm: OpenAITestServer) -> None:
    from promptgate.domain import LabelMove

    store = gate_project.store()
    moved = []

    def sneaky_move(body: dict) -> None:  # type: ignore[type-arg]
        if not moved:
            # another promoter moves the label while our gate is running
            moved.extend(
                store.move_labels(
                    [LabelMove("classify", "production", 1, None, "x")], actor="someone-else"
                )
            )
        return None

    llm.responder = sneaky_move
    try:
        result = gate_project.run(
            "promote", "classify@v1", "--to", "production", "--reason", "mine", "--no-cache"
        )
    finally:
        llm.responder = None
    assert moved and result.exit_code == 3, result.stdout + result.stderr
    events = store.audit(label="production")
    assert [(e.actor, e.to_version) for e in events] == [("someone-else", 1)]
    store.close()


def test_changed_compares_latest_with_label(gate_project: Project) -> None:
    gate_project.run("promote", "--changed", "--to", "production", "--reason", "initial")
    store = gate_project.store()
    assert store.label_map("production") == {"classify": 1, "extract": 1, "summarize": 1}
    code, report = _report(gate_project, "check", "--changed")
    assert code == 0 and report["verdict"] == "nothing-changed"
    _edit(gate_project, "prompts/classify.yaml", "Classify:", "Classify now:")
    gate_project.run("push", "-m", "v2")
    code, report = _report(gate_project, "check", "--changed")
    assert [c["ref"] for c in report["candidates"]] == ["classify@v2"]
    store.close()


def test_upstream_without_version_fails(gate_project: Project) -> None:
    store = gate_project.store()
    gate_project.run("promote", "summarize", "extract", "--to", "production", "--reason", "x")
    store.close()
    # a new prompt `tone` feeds summarize in a draft; tone has no version at production
    gate_project.write("drafts/tone.yaml", "name: tone\nmodel: {name: m}\ntemplate: 'Tone'\n")
    gate_project.write(
        "evals/tone.yaml",
        "prompt: tone\ncases: [{vars: {}, assert: [{type: contains, value: Tone}]}]\n",
    )
    _edit(gate_project, "prompts/summarize.yaml", "inputs:", "inputs:\n  tone: {from: tone}")
    _edit(gate_project, "prompts/summarize.yaml", "{{ facts }}", "{{ facts }} {{ tone }}")
    code, report = _report(gate_project, "check", "prompts/summarize.yaml")
    assert code == 1 and any("upstream tone has no version" in f for f in report["failures"])
    code, report = _report(gate_project, "check", "prompts/summarize.yaml", "drafts/tone.yaml")
    assert code == 0, report["failures"]


def test_llm_rubric_with_scripted_judge(gate_project: Project, llm: OpenAITestServer) -> None:
    gate_project.write(
        "evals/classify.yaml",
        """\
prompt: classify
cases:
  - id: judged
    vars: {ticket: "hello"}
    assert:
      - {type: llm-rubric, value: "Mentions a greeting"}
""",
    )
    llm.reply(
        lambda body: body["model"] == "judge-model",
        json.dumps({"reason": "it greets", "pass": True, "score": 1.0}),
    )
    code, report = _report(gate_project, "check", "classify")
    assert code == 0, report["failures"]
    judged = [r for r in llm.requests if r.body["model"] == "judge-model"]
    assert len(judged) == 1 and "Mentions a greeting" in json.dumps(judged[0].body)
    llm.reset()
    llm.reply(lambda body: body["model"] == "judge-model", "I think it is fine")
    code, report = _report(gate_project, "check", "classify", "--no-cache")
    assert code == 1 and report["suites"][0]["cases"][0]["passed"] is False


def test_repeat_marks_flaky_cases(gate_project: Project, llm: OpenAITestServer) -> None:
    gate_project.write(
        "evals/classify.yaml",
        """\
prompt: classify
repeat: 3
cases:
  - id: sometimes
    vars: {ticket: "hello"}
    assert: [{type: contains, value: hello}]
""",
    )
    answers = iter(["hello", "nope", "hello"])
    llm.reply(lambda body: body["model"] == "classifier-model", lambda body: next(answers))
    code, report = _report(gate_project, "check", "classify", "--no-baseline")
    assert code == 1
    [case] = report["suites"][0]["cases"]
    assert case["flaky"] and case["runs"] == 3 and case["runs_passed"] == 2
    assert llm.call_count == 3
    # a warm re-run replays the same three samples from the cache
    code, again = _report(gate_project, "check", "classify", "--no-baseline")
    assert code == 1 and again["stats"]["calls"] == 0 and again["stats"]["cached"] == 3


def test_markdown_shows_what_a_failing_chained_case_was_fed(
    gate_project: Project, llm: OpenAITestServer
) -> None:
    _release_all(gate_project, llm)
    _edit(gate_project, "prompts/extract.yaml", "Ticket:", "Support ticket:")
    _edit(gate_project, "evals/summarize.yaml", 'value: "refund"', 'value: "never said"')
    gate_project.run("push", "-m", "v2")
    md = gate_project.root / "report.md"
    result = gate_project.run("check", "extract@v2", "--no-baseline", "--report-md", str(md))
    assert result.exit_code == 1, result.stdout + result.stderr
    text = md.read_text()
    failing = text.split("### Failing cases", 1)[1]
    assert "<b>refund</b>" in failing and "<b>chain-carries-order</b>" not in failing
    # the upstream candidate's real output, as the stub echoed it, under the input it fed
    fed = failing.split("from `extract` v2:", 1)
    assert len(fed) == 2, failing
    assert "[gpt-4o-mini] Support ticket: Refund order 77 please" in fed[1].split("Output:")[0]


@pytest.mark.parametrize("flag", ["--report-md", "--report-json", "--junit"])
@pytest.mark.parametrize("where", ["a-directory", "under-a-file"])
def test_an_unwritable_report_path_is_refused_before_any_call(
    gate_project: Project, llm: OpenAITestServer, flag: str, where: str
) -> None:
    (gate_project.root / "out").mkdir()
    (gate_project.root / "plain.txt").write_text("not a folder\n")
    target = {"a-directory": "out", "under-a-file": "plain.txt/report"}[where]
    llm.reset()
    result = gate_project.run("check", "extract", "summarize", "--no-baseline", flag, target)
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: {flag} {target}: ") and "Traceback" not in result.stderr
    assert llm.call_count == 0  # refused before the gate ran
    assert sorted(p.name for p in (gate_project.root / "out").iterdir()) == []
    assert (gate_project.root / "plain.txt").read_text() == "not a folder\n"


def test_reports_land_whole_in_folders_made_for_them(
    gate_project: Project, llm: OpenAITestServer
) -> None:
    out = gate_project.root / "reports" / "pr-12"
    result = gate_project.run(
        "check", "extract", "--no-baseline",
        "--report-json", str(out / "r.json"), "--report-md", str(out / "r.md"),
        "--junit", str(out / "r.xml"),
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["r.json", "r.md", "r.xml"]  # no temp files
    report = json.loads((out / "r.json").read_text())
    assert report["verdict"] == "pass" and (out / "r.json").read_text().endswith("}\n")
    assert ET.parse(out / "r.xml").getroot().tag in ("testsuites", "testsuite")
    assert "promptgate: PASS" in (out / "r.md").read_text()


def test_a_cache_export_replays_offline_and_an_unwritable_one_is_refused(
    gate_project: Project, llm: OpenAITestServer
) -> None:
    code, first = _report(gate_project, "check", "extract", "summarize", "--no-baseline")
    assert code == 0 and first["stats"]["calls"] > 0
    recording = gate_project.root / "recordings" / "gate.jsonl"
    result = gate_project.run("cache", "export", str(recording))
    assert result.exit_code == 0, result.stderr
    lines = recording.read_text().splitlines()
    assert len(lines) == first["stats"]["calls"] and all(json.loads(x)["key"] for x in lines)
    assert sorted(p.name for p in recording.parent.iterdir()) == ["gate.jsonl"]

    llm.reset()
    code, replayed = _report(
        gate_project, "check", "extract", "summarize", "--no-baseline", "--replay", str(recording)
    )
    assert code == 0 and llm.call_count == 0 and replayed["verdict"] == "pass"

    (gate_project.root / "plain.txt").write_text("x")
    result = gate_project.run("cache", "export", "plain.txt/gate.jsonl")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: cache export plain.txt/gate.jsonl: plain.txt is not a directory"
    ]
