"""What a process loads: the library and the CLI stay off the server stack, and a run that makes
no model call never imports the model client. Each check runs in a fresh interpreter (this
checkout's sources first on the path) and reads that process's own `sys.modules`."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from conftest import EXTRACT, SUMMARIZE

import promptgate
from promptgate.testing import OpenAITestServer

SRC = str(Path(promptgate.__file__).resolve().parents[1])
SERVER_STACK = ("fastapi", "uvicorn", "starlette")

# Runs the installed entry point (promptgate.cli:main) with the given arguments, then writes the
# top-level names of every module the process loaded to the file named by argv[1].
WRAPPER = """\
import atexit, json, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["promptgate", *sys.argv[2:]]
from promptgate.cli import main
main()
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMPTGATE_", "OPENAI_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
    env["PROMPTGATE_AUTHOR"] = "tester"
    env.update(extra)
    return env


def _loaded_by_import(statement: str) -> set[str]:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{statement}; import json, sys; print(json.dumps(list(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr
    return {m.split(".")[0] for m in json.loads(done.stdout)}


def _loaded_by_cli(
    tmp_path: Path, cwd: Path, *args: str, env: dict[str, str]
) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER, encoding="utf-8")
    out = tmp_path / "modules.json"
    out.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, str(wrapper), str(out), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
    )
    return {m.split(".")[0] for m in json.loads(out.read_text())}, done


@pytest.mark.parametrize("module", ["promptgate", "promptgate.sdk", "promptgate.cli"])
def test_library_and_cli_imports_load_no_server_stack(module: str) -> None:
    loaded = _loaded_by_import(f"import {module}")
    assert module.split(".")[0] in loaded
    assert not loaded & set(SERVER_STACK), f"import {module} loaded {loaded & set(SERVER_STACK)}"


def test_version_loads_no_model_client(tmp_path: Path) -> None:
    loaded, done = _loaded_by_cli(tmp_path, tmp_path, "--version", env=_env())
    assert done.returncode == 0 and "promptgate" in done.stdout
    assert "click" in loaded
    assert not loaded & {"openai", "sqlalchemy", "networkx", "rich", *SERVER_STACK}


CHAIN_SUITE = """\
prompt: summarize
cases:
  - {id: one, vars: {ticket: "printer on fire"}, assert: [{type: contains, value: "Summarize"}]}
  - {id: two, vars: {ticket: "login loop"}, assert: [{type: contains, value: "Summarize"}]}
"""
EXTRACT_SUITE = """\
prompt: extract
cases:
  - {id: a, vars: {ticket: "printer on fire"}, assert: [{type: contains, value: "printer"}]}
"""


def test_fully_cached_check_never_imports_openai(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "prompts").mkdir(parents=True)
    (root / "evals").mkdir()
    (root / "prompts" / "extract.yaml").write_text(EXTRACT, encoding="utf-8")
    (root / "prompts" / "summarize.yaml").write_text(SUMMARIZE, encoding="utf-8")
    (root / "evals" / "extract.yaml").write_text(EXTRACT_SUITE, encoding="utf-8")
    (root / "evals" / "summarize.yaml").write_text(CHAIN_SUITE, encoding="utf-8")
    with OpenAITestServer() as llm:
        env = _env(OPENAI_BASE_URL=llm.base_url, OPENAI_API_KEY="test-key")
        for args in (["init"], ["push", "-m", "v1"]):
            _, done = _loaded_by_cli(tmp_path, root, *args, env=env)
            assert done.returncode == 0, done.stderr

        # The first run calls the model (and so needs the client); it fills the cache.
        loaded, done = _loaded_by_cli(tmp_path, root, "check", "extract", env=env)
        assert done.returncode == 0, done.stderr + done.stdout
        calls = llm.call_count
        assert calls > 0 and "openai" in loaded

        # The same check again: every response comes from the cache, no call, no openai.
        loaded, done = _loaded_by_cli(tmp_path, root, "check", "extract", env=env)
        assert done.returncode == 0, done.stderr + done.stdout
        assert llm.call_count == calls
        assert "openai" not in loaded
        assert not loaded & set(SERVER_STACK)

        # --no-cache must call again, so there the client is loaded.
        loaded, done = _loaded_by_cli(tmp_path, root, "check", "extract", "--no-cache", env=env)
        assert done.returncode == 0 and llm.call_count > calls and "openai" in loaded


def _import_graph() -> Any:
    """promptgate's modules and every import between them, those inside functions and
    `if TYPE_CHECKING:` included (`from pkg import mod` counts as an import of pkg.mod)."""
    src = Path(__file__).resolve().parents[1] / "src"
    modules: dict[str, tuple[Path, list[str]]] = {}
    for path in (src / "promptgate").rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        package = parts[:-1]
        if parts[-1] == "__init__":
            parts = package = parts[:-1]
        modules[".".join(parts)] = (path, package)
    graph = nx.DiGraph()
    for name, (path, package) in modules.items():
        graph.add_node(name)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                found = [
                    f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target
                    for a in node.names
                ]
            elif isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            else:
                continue
            graph.add_edges_from((name, t) for t in found if t in modules and t != name)
    return graph


def test_no_import_cycles_not_even_through_imports_inside_functions() -> None:
    graph = _import_graph()
    assert graph.number_of_nodes() > 50 and graph.has_edge("promptgate.gate", "promptgate.store")
    assert list(nx.simple_cycles(graph)) == []


def test_no_module_is_much_over_800_lines() -> None:
    src = Path(__file__).resolve().parents[1] / "src" / "promptgate"
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in src.rglob("*.py")}
    assert max(sizes.values()) <= 850, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
