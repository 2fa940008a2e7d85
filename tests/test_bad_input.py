"""Bad input: exit 2, one clear line on stderr, no traceback, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Project

from promptgate.limits import (
    MAX_MESSAGES,
    MAX_MODEL_KEYS,
    MAX_PROMPT_FILE_BYTES,
    MAX_SUITE_FILE_BYTES,
    MAX_TEMPLATE_CHARS,
)

GOOD = "name: good\nmodel: {name: m}\ntemplate: 'Hello {{ who }}'\n"

CORPUS = {
    "malformed-yaml": ("name: x\nmodel: {name: m\ntemplate: hi\n", "invalid YAML"),
    "not-a-mapping": ("- just\n- a list\n", "must be a YAML mapping"),
    "wrong-type": ("name: x\nmodel: gpt-4o\ntemplate: hi\n", "model"),
    "unknown-key": ("name: x\nmodel: {name: m}\ntemplate: hi\ntemprature: 1\n", "temprature"),
    "bad-name": ("name: Bad Name\nmodel: {name: m}\ntemplate: hi\n", "name"),
    "missing-model-name": (
        "name: x\nmodel: {temperature: 1}\ntemplate: hi\n",
        "`name` is required",
    ),
    "both-bodies": (
        "name: x\nmodel: {name: m}\ntemplate: hi\nmessages: [{role: user, content: hi}]\n",
        "exactly one of",
    ),
    "no-body": ("name: x\nmodel: {name: m}\n", "exactly one of"),
    "bad-role": ("name: x\nmodel: {name: m}\nmessages: [{role: wizard, content: hi}]\n", "role"),
    "template-syntax": ("name: x\nmodel: {name: m}\ntemplate: 'Hi {{ who '\n", "template"),
    "sandbox-escape": (
        "name: x\nmodel: {name: m}\ntemplate: \"{{ ''.__class__.__mro__ }}\"\n",
        "private attribute",
    ),
    "unknown-from": (
        "name: x\nmodel: {name: m}\ntemplate: '{{ a }}'\ninputs: {a: {from: ghost}}\n",
        "unknown prompt",
    ),
    "duplicate-key": ("name: x\nname: y\nmodel: {name: m}\ntemplate: hi\n", "duplicate key"),
    "bad-input-spec": (
        "name: x\nmodel: {name: m}\ntemplate: '{{ a }}'\ninputs: {a: {form: y}}\n",
        "unknown key",
    ),
    "bad-provider": ("name: x\nmodel: {name: m, provider: acme}\ntemplate: hi\n", "provider"),
}

HEAD = "name: x\nmodel: {name: m}\ntemplate: hi\n"
LAUGHS = "lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 10)
)


def _model(param: str) -> str:
    return f"name: x\nmodel: {{name: m, {param}}}\ntemplate: hi\n"


# Malformed YAML, limits and wrong types (issue 16): each is one line naming file:line.
CORPUS |= {
    "flow-1000-deep": (HEAD + "description: " + "[" * 1000 + "]" * 1000 + "\n", "nest"),
    "mapping-1000-deep": (
        HEAD + "".join("  " * i + f"k{i}:\n" for i in range(1000)),
        "zz_bad.yaml:68: nested deeper than 64 levels",
    ),
    "recursive-alias": (
        "name: x\nmodel: &m {name: m, self: *m}\ntemplate: hi\n",
        "zz_bad.yaml:2: recursive alias *m",
    ),
    "complex-key": (HEAD + "? [a, b]\n: c\n", "zz_bad.yaml:4: mapping keys must be plain values"),
    "billion-laughs": (HEAD + LAUGHS, "nodes with aliases expanded"),
    "temperature-string": (
        _model('temperature: "hot"'),
        'zz_bad.yaml:2: model.temperature: must be a number between 0 and 2 (got "hot")',
    ),
    "temperature-negative": (
        _model("temperature: -5"),
        "model.temperature: must be a number between 0 and 2 (got -5)",
    ),
    "temperature-bool": (_model("temperature: true"), "model.temperature: must be a number"),
    "top-p-range": (_model("top_p: 1.5"), "model.top_p: must be a number between 0 and 1"),
    "max-tokens-zero": (_model("max_tokens: 0"), "model.max_tokens: must be a whole number"),
    "stop-five": (_model("stop: [a, b, c, d, e]"), "model.stop: must be a string or a list"),
    "top-logprobs": (_model("top_logprobs: 21"), "model.top_logprobs: must be a whole number"),
    "base-url-number": (
        _model("base_url: 5"),
        "model.base_url: must be an http(s) URL such as https://api.example.com/v1 (got 5)",
    ),
    "api-key-env-list": (_model("api_key_env: []"), "model.api_key_env: must name an environment"),
    "model-response-format": (
        _model("response_format: {type: bogus}"),
        "model.response_format: must be null or {type: text|json_object|json_schema}",
    ),
    "response-format-type": (
        HEAD + "response_format: {type: bogus}\n",
        "zz_bad.yaml:4: response_format: must be null or {type:",
    ),
    "template-too-long": (
        "name: x\nmodel: {name: m}\ntemplate: " + "x" * (MAX_TEMPLATE_CHARS + 1) + "\n",
        f"template: template is {MAX_TEMPLATE_CHARS + 1:,} characters; the limit is",
    ),
    "too-many-messages": (
        "name: x\nmodel: {name: m}\nmessages:\n"
        + "  - {role: user, content: hi}\n" * (MAX_MESSAGES + 1),
        f"messages: {MAX_MESSAGES + 1:,} messages; the limit is {MAX_MESSAGES:,}",
    ),
    "too-many-model-keys": (
        _model(", ".join(f"k{i}: 1" for i in range(MAX_MODEL_KEYS))),
        f"model: {MAX_MODEL_KEYS + 1:,} keys; the limit is {MAX_MODEL_KEYS:,}",
    ),
    "200000-model-keys": (
        _model(", ".join(f"k{i}: 1" for i in range(200_000))),
        f"bytes; the limit is {MAX_PROMPT_FILE_BYTES:,}",
    ),
    "whitespace-line": (
        HEAD + " " * MAX_PROMPT_FILE_BYTES + "\n",
        f"zz_bad.yaml: file is {len(HEAD) + MAX_PROMPT_FILE_BYTES + 1:,} bytes; the limit is",
    ),
    "not-utf8": (HEAD + "description: caf\udce9\n", "not UTF-8 text"),
}


def _assert_refused(project: Project, result, needle: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    store = project.store()
    assert store.list_prompts() == [] and store.audit() == []
    store.close()


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_bad_prompt_file_refuses_the_whole_push(project: Project, case: str) -> None:
    text, needle = CORPUS[case]
    (project.root / "prompts" / "extract.yaml").unlink()
    (project.root / "prompts" / "summarize.yaml").unlink()
    project.write("prompts/good.yaml", GOOD)
    bad = project.root / "prompts" / "zz_bad.yaml"
    bad.write_bytes(text.encode("utf-8", "surrogateescape"))
    result = project.run("push", "-m", "batch")
    _assert_refused(project, result, needle)
    if case not in ("unknown-from",):
        assert str(bad) in result.stderr or "zz_bad.yaml" in result.stderr


def test_error_names_the_line(project: Project) -> None:
    project.write("prompts/zz.yaml", "name: x\nmodel: {name: m}\ntemplate: hi\n\nbogus: 1\n")
    result = project.run("push", "-m", "m")
    assert "zz.yaml:5: bogus: unknown key" in result.stderr


def test_cycle_names_its_path(project: Project) -> None:
    project.write(
        "prompts/extract.yaml",
        project.root.joinpath("prompts/extract.yaml")
        .read_text()
        .replace("{{ ticket }}", "{{ ticket }} {{ s }}")
        + "inputs:\n  s: {from: summarize}\n",
    )
    result = project.run("push", "-m", "cycle")
    _assert_refused(project, result, "dependency cycle: ")
    assert (
        "extract -> summarize -> extract" in result.stderr
        or "summarize -> extract -> summarize" in result.stderr
    )


@pytest.mark.parametrize(
    "args,needle",
    [
        (["show", "Bad Ref!"], "bad ref"),
        (["show", "nope"], "unknown prompt"),
        (["show", "nope@v1"], "unknown ref"),
        (["show", "x@prod!"], "bad ref"),
        (["history", "nope"], "unknown prompt"),
        (["diff", "missing.yaml", "a@v1"], "no such prompt file"),
        (["label", "set", "nope@v1", "beta"], "unknown ref"),
        (["label", "set", "x", "Bad"], "bad label"),
        (["rollback", "nope", "--label", "beta", "--reason", "r"], "unknown prompt"),
        (["push", "-m", "m", "no/such/dir"], "no such file"),
    ],
)
def test_bad_refs_and_arguments(project: Project, args: list[str], needle: str) -> None:
    _assert_refused(project, project.run(*args), needle)


def test_unknown_config_key_is_refused(project: Project) -> None:
    project.write("promptgate.yaml", "registry: sqlite:///x.db\nprompt: prompts/\n")
    result = project.run("list")
    assert result.exit_code == 2 and "unknown key 'prompt'" in result.stderr


def test_sandbox_refuses_at_render(project: Project) -> None:
    project.write(
        "prompts/x.yaml", "name: x\nmodel: {name: m}\ntemplate: \"{{ who|attr('__class__') }}\"\n"
    )
    assert project.run("push", "-m", "m", "prompts/x.yaml").exit_code == 0
    result = project.run("render", "x", "--var", "who=me")
    assert result.exit_code == 2 and "sandbox" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_variable_at_render(project: Project) -> None:
    project.run("push", "-m", "m")
    result = project.run("render", "extract")
    assert result.exit_code == 2 and "'ticket' is undefined" in result.stderr
    ok = project.run("render", "extract", "--var", "ticket=broken box", "--json")
    assert ok.exit_code == 0 and "broken box" in ok.stdout


def test_unreachable_database_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from promptgate.cli import cli

    result = CliRunner().invoke(
        cli,
        ["--registry", "postgresql://postgres@127.0.0.1:1/test", "list"],
        catch_exceptions=False,
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: registry database: ")
    assert "Traceback" not in result.stderr


SUITE_HEAD = "prompt: extract\n"
CASE = "  - vars: {ticket: t}\n    assert: [{type: contains, value: x}]\n"

# Suite and case files (issue 16): (suite text, case file name, case file bytes, needle).
SUITES: dict[str, tuple[str, str, bytes, str]] = {
    "vars-number": (
        SUITE_HEAD + "cases:\n  - vars: 5\n    assert: [{type: contains, value: x}]\n",
        "",
        b"",
        "extract.yaml:3: `vars` must be a mapping, not int",
    ),
    "vars-string": (
        SUITE_HEAD + 'cases:\n  - vars: "x"\n    assert: [{type: contains, value: x}]\n',
        "",
        b"",
        "extract.yaml:3: `vars` must be a mapping, not str",
    ),
    "defaults-vars": (
        SUITE_HEAD + "defaults: {vars: 5}\ncases:\n" + CASE,
        "",
        b"",
        "`vars` must be a mapping",
    ),
    "binary-csv": (
        SUITE_HEAD + "cases: cases.csv\n",
        "cases.csv",
        b"ticket,__expected\nok,x\n\x89PNG\r\n\x1a\n\x00\x00\xff\xd8",
        "cases.csv:3: not UTF-8 text (byte 23); binary file?",
    ),
    "nul-csv": (
        SUITE_HEAD + "cases: cases.csv\n",
        "cases.csv",
        b"ticket,__expected\nok\x00,x\n",
        "cases.csv:2: NUL byte in a case file",
    ),
    "nul-jsonl": (
        SUITE_HEAD + "cases: cases.jsonl\n",
        "cases.jsonl",
        b'{"vars": {"ticket": "t"}, "assert": [{"type": "contains", "value": "x"}]}\n\x00\n',
        "cases.jsonl:2: NUL byte in a case file",
    ),
    "deep-jsonl": (
        SUITE_HEAD + "cases: cases.jsonl\n",
        "cases.jsonl",
        b"[" * 100_000 + b"]" * 100_000 + b"\n",
        "cases.jsonl:1: JSON nested too deeply",
    ),
    "cases-50000-deep": (
        SUITE_HEAD + "cases: " + "[" * 50_000 + "]" * 50_000 + "\n",
        "",
        b"",
        "nest",
    ),
    "suite-laughs": (SUITE_HEAD + LAUGHS + "cases:\n" + CASE, "", b"", "aliases expanded"),
    "suite-too-big": (
        SUITE_HEAD + "cases:\n" + CASE + "#" * MAX_SUITE_FILE_BYTES + "\n",
        "",
        b"",
        f"bytes; the limit is {MAX_SUITE_FILE_BYTES:,}",
    ),
    "case-file-too-big": (
        SUITE_HEAD + "cases: cases.jsonl\n",
        "cases.jsonl",
        b" " * (MAX_SUITE_FILE_BYTES + 1),
        f"case file is {MAX_SUITE_FILE_BYTES + 1:,} bytes; the limit is {MAX_SUITE_FILE_BYTES:,}",
    ),
}


@pytest.mark.parametrize("case", sorted(SUITES))
def test_bad_suite_is_one_line(project: Project, case: str) -> None:
    suite, case_name, case_bytes, needle = SUITES[case]
    evals: Path = project.root / "evals"
    evals.mkdir(exist_ok=True)
    (evals / "extract.yaml").write_text(suite, encoding="utf-8")
    if case_name:
        (evals / case_name).write_bytes(case_bytes)
    assert project.run("push", "-m", "m").exit_code == 0
    store = project.store()
    before = (store.list_prompts(), store.audit())
    store.close()
    result = project.run("check", "--no-baseline", "extract")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert "Traceback" not in result.stderr and result.stdout == ""
    store = project.store()
    assert (store.list_prompts(), store.audit()) == before  # nothing written
    store.close()


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'a' * 10**9 }}",
        "{{ 10 ** (10 ** 10) }}",
        "{{ 'a'.ljust(10**9) }}",
        "{{ '%1000000000d' % 1 }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(60) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    ],
)
def test_render_bomb_fails_in_one_line(project: Project, template: str) -> None:
    project.write(
        "prompts/bomb.yaml", f"name: bomb\nmodel: {{name: m}}\ntemplate: {json.dumps(template)}\n"
    )
    assert project.run("push", "-m", "m", "prompts/bomb.yaml").exit_code == 0
    result = project.run("render", "bomb")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "would exceed the render limit of 2,000,000 characters" in lines[0]
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
