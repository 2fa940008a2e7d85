"""Bad input: exit 2, one clear line on stderr, no traceback, nothing written."""

from __future__ import annotations

import pytest
from conftest import Project

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
    bad = project.write("prompts/zz_bad.yaml", text)
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
