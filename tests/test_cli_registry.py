"""The registry commands through click's CliRunner, on both engines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import Project


def test_push_list_show_history(project: Project) -> None:
    result = project.run("push", "-m", "first")
    assert result.exit_code == 0, result.stderr
    assert "extract@v1  new" in result.stdout and "summarize@v1  new" in result.stdout
    listed = project.json("list")
    assert [p["name"] for p in listed] == ["extract", "summarize"]
    shown = project.json("show", "summarize")
    assert set(shown) == {
        "name",
        "version",
        "content_hash",
        "labels",
        "message",
        "author",
        "created_at",
        "content",
    }
    assert shown["version"] == 1 and shown["labels"] == ["latest"]
    assert shown["author"] == "tester" and shown["message"] == "first"
    assert shown["content"]["inputs"]["facts"] == {"from": "extract"}
    assert "name" not in shown["content"]
    again = project.run("push", "-m", "again", "--author", "zed")
    assert "extract@v1  unchanged" in again.stdout
    project.write(
        "prompts/summarize.yaml",
        project.root.joinpath("prompts/summarize.yaml")
        .read_text()
        .replace("Summarize", "Briefly summarize"),
    )
    project.run("push", "-m", "second", "--author", "zed")
    history = project.json("history", "summarize")
    assert [(v["version"], v["author"], v["labels"]) for v in history] == [
        (1, "tester", []),
        (2, "zed", ["latest"]),
    ]
    assert project.json("show", "summarize@v1")["message"] == "first"


def test_json_stdout_is_one_document(project: Project) -> None:
    project.run("push", "-m", "first")
    for args in (["list"], ["show", "extract"], ["history", "extract"], ["log"]):
        result = project.run(*args, "--json")
        json.loads(result.stdout)  # raises if anything else is on stdout


def test_diff_text_and_config(project: Project) -> None:
    project.run("push", "-m", "1")
    text = project.root.joinpath("prompts/summarize.yaml").read_text()
    project.write(
        "prompts/summarize.yaml",
        text.replace("Summarize in", "Summarize, politely, in").replace(
            "temperature: 0.2", "temperature: 0.7"
        ),
    )
    project.run("push", "-m", "2")
    out = project.json("diff", "summarize@v1", "summarize@v2")
    assert "-Summarize in" in out["text"] and "+Summarize, politely, in" in out["text"]
    assert out["config"]["['model']['temperature']"] == {"from": 0.2, "to": 0.7}
    human = project.run("diff", "summarize@v1", "summarize")
    assert human.exit_code == 0 and "temperature" in human.stdout
    same = project.run("diff", "summarize@v2", "summarize@latest")
    assert same.exit_code == 0 and "identical" in same.stdout
    draft = project.run("diff", "summarize@v1", "prompts/summarize.yaml")
    assert draft.exit_code == 0 and "politely" in draft.stdout


def test_labels_cas_protected_and_rollback(project: Project) -> None:
    project.run("push", "-m", "1")
    project.write(
        "prompts/extract.yaml",
        project.root.joinpath("prompts/extract.yaml")
        .read_text()
        .replace("You extract", "You carefully extract"),
    )
    project.run("push", "-m", "2")
    assert project.run("label", "set", "extract@v1", "staging", "--reason", "try").exit_code == 0
    moved = project.run("label", "set", "extract@v2", "staging", "--expect", "v1")
    assert moved.exit_code == 0 and "v1 -> v2" in moved.stdout
    stale = project.run("label", "set", "extract@v1", "staging", "--expect", "v1")
    assert stale.exit_code == 3 and "moved" in stale.stderr
    protected = project.run("label", "set", "extract@v2", "production")
    assert protected.exit_code == 2 and "protected" in protected.stderr
    assert project.run("label", "set", "extract@v2", "latest").exit_code == 2
    assert project.run("label", "set", "extract@v2", "v3").exit_code == 2
    rolled = project.run("rollback", "extract", "--label", "staging", "--reason", "bad")
    assert rolled.exit_code == 0 and "v2 -> v1" in rolled.stdout
    assert project.json("show", "extract@staging")["version"] == 1
    # the version held before the rollback was v2: roll forward to it explicitly
    assert (
        project.run(
            "rollback", "extract", "--label", "staging", "--to", "v2", "--reason", "fixed"
        ).exit_code
        == 0
    )
    nothing = project.run("rollback", "summarize", "--label", "staging", "--reason", "x")
    assert nothing.exit_code == 2
    never = project.run("rollback", "extract", "--label", "staging", "--to", "v9", "--reason", "x")
    assert never.exit_code == 2
    log = project.json("log", "extract", "--label", "staging")
    assert [(e["type"], e["from"], e["to"], e["details"].get("rollback")) for e in log] == [
        ("move", 1, 2, True),
        ("move", 2, 1, True),
        ("move", 1, 2, None),
        ("move", None, 1, None),
    ]
    assert log[-1]["reason"] == "try" and log[0]["actor"] == "tester"
    rm = project.run("label", "rm", "extract", "staging", "--reason", "done")
    assert rm.exit_code == 0
    assert project.run("show", "extract@staging").exit_code == 2


def test_first_rollback_of_a_label_set_once_is_refused(project: Project) -> None:
    project.run("push", "-m", "1")
    project.run("label", "set", "extract@v1", "beta")
    result = project.run("rollback", "extract", "--label", "beta", "--reason", "x")
    assert result.exit_code == 2 and "no earlier version" in result.stderr


def test_init_is_idempotent_and_keeps_config(project: Project) -> None:
    cfg = project.root / "promptgate.yaml"
    cfg.write_text(cfg.read_text() + "# mine\n")
    assert project.run("init").exit_code == 0
    assert cfg.read_text().endswith("# mine\n")


def test_tables_stay_readable_when_piped(project: Project) -> None:
    project.run("push", "-m", "a long message that would fold in a narrow table " * 2)
    result = project.run("list", env={"COLUMNS": "200"})
    line = next(x for x in result.stdout.splitlines() if "summarize" in x)
    assert "v1" in line and "latest" in line


def test_installed_command_runs_in_a_real_process(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("promptgate")
    env = dict(os.environ, PROMPTGATE_AUTHOR="proc")
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, env=env)
    assert version.returncode == 0 and "promptgate" in version.stdout
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "a.yaml").write_text("name: a\nmodel: {name: m}\ntemplate: hi\n")
    for args in (["init"], ["push", "-m", "one"]):
        run = subprocess.run(
            [str(exe), *args], cwd=tmp_path, capture_output=True, text=True, env=env
        )
        assert run.returncode == 0, run.stderr
    shown = subprocess.run(
        [str(exe), "show", "a", "--json"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert json.loads(shown.stdout)["author"] == "proc"
    bad = subprocess.run(
        [str(exe), "show", "a@v7"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
