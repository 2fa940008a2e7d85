"""The README cannot drift: its shell blocks run verbatim in a fresh copy of the repository with
no model key, and every CLI command is documented there."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click

import promptgate
from promptgate.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXE = Path(sys.executable).with_name("promptgate")


def shell_lines() -> list[str]:
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        lines += [line.strip() for line in block.splitlines() if line.strip()]
    return lines


def test_quickstart_and_tour_run_verbatim(tmp_path: Path) -> None:
    work = tmp_path / "clone"
    work.mkdir()
    for item in ("prompts", "evals", "examples", "promptgate.yaml"):
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, work / item)
        else:
            shutil.copy(src, work / item)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "PROMPTGATE_", "GITHUB_"))
    }
    env["PATH"] = f"{EXE.parent}{os.pathsep}{env.get('PATH', '')}"
    ran = 0
    for line in shell_lines():
        if line.startswith("python3 -m venv"):
            # the install command: the environment is already installed; run what follows it
            line = line.split("&&")[-1].strip()
        if line.startswith("python -m pytest"):
            continue  # that is this test suite
        args = shlex.split(line)
        result = subprocess.run(
            args, cwd=work, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        ran += 1
    assert ran >= 10
    report = (work / "gate-report.md").read_text()
    assert (
        "INCONCLUSIVE for `summarize@v2`" in report and "downstream of summarize -> reply" in report
    )


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, command in group.commands.items():
        full = f"{prefix}{name}"
        out.append((full, command))
        if isinstance(command, click.Group):
            out += _commands(command, full + " ")
    return out


def test_every_command_has_help_and_is_in_the_readme() -> None:
    for name, command in _commands(cli):
        assert command.help, f"{name} has no help text"
        assert f"promptgate {name}" in README or f"`{name}" in README, f"{name} not in README"
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"{name} {param.opts} has no help"


def test_public_api_is_complete_and_light() -> None:
    for name in promptgate.__all__:
        assert getattr(promptgate, name) is not None
    code = (
        "import sys, promptgate; "
        "heavy = {'click', 'fastapi', 'uvicorn', 'sqlalchemy', 'openai', 'rich'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout
