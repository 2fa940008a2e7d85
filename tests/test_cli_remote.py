"""The CLI against a registry server: the same commands and exit codes over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXTRACT, SUMMARIZE

from promptgate.cli import cli
from promptgate.config import Config
from promptgate.server import ServerSettings, create_app
from promptgate.server.thread import ServerThread
from promptgate.store import create_key
from promptgate.testing import OpenAITestServer

SUITES = {
    "extract": "prompt: extract\ncases: [{vars: {ticket: 'Order 7'}, assert: [{type: contains, value: '7'}]}]\n",
    "summarize": "prompt: summarize\ncases: [{vars: {ticket: 'Order 7'}, assert: [{type: contains, value: '7'}]}]\n",
}


@pytest.fixture
def remote(
    registry_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, dict[str, str], OpenAITestServer]]:
    root = tmp_path / "proj"
    (root / "prompts").mkdir(parents=True)
    (root / "evals").mkdir()
    (root / "prompts" / "extract.yaml").write_text(EXTRACT)
    (root / "prompts" / "summarize.yaml").write_text(SUMMARIZE)
    for name, text in SUITES.items():
        (root / "evals" / f"{name}.yaml").write_text(text)
    monkeypatch.chdir(root)
    with OpenAITestServer() as llm:
        monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        app = create_app(ServerSettings(registry=registry_url, config=Config(root=root)))
        store = app.state.pg.store
        keys = {r: create_key(store, r, r) for r in ("viewer", "editor", "approver", "admin")}
        with ServerThread(app) as server:
            yield server.url, keys, llm


def run(url: str, key: str, *args: str) -> object:
    return CliRunner().invoke(
        cli, ["--registry", url, *args], env={"PROMPTGATE_API_KEY": key}, catch_exceptions=False
    )


def test_commands_work_through_a_server(
    remote: tuple[str, dict[str, str], OpenAITestServer],
) -> None:
    url, keys, _llm = remote
    pushed = run(url, keys["editor"], "push", "-m", "first")
    assert pushed.exit_code == 0, pushed.output  # type: ignore[attr-defined]
    shown = json.loads(run(url, keys["viewer"], "show", "summarize", "--json").stdout)  # type: ignore[attr-defined]
    assert shown["version"] == 1 and shown["author"] == "editor"
    assert run(url, keys["viewer"], "push", "-m", "x").exit_code == 2  # type: ignore[attr-defined]
    assert run(url, "wrong", "list").exit_code == 2  # type: ignore[attr-defined]
    assert run(url, keys["editor"], "label", "set", "extract@v1", "staging").exit_code == 0  # type: ignore[attr-defined]
    stale = run(url, keys["editor"], "label", "set", "extract@v1", "staging", "--expect", "none")
    assert stale.exit_code == 3  # type: ignore[attr-defined]
    assert run(url, keys["viewer"], "show", "nope").exit_code == 2  # type: ignore[attr-defined]
    log = json.loads(run(url, keys["viewer"], "log", "--json").stdout)  # type: ignore[attr-defined]
    assert [e["type"] for e in log] == ["move", "push", "push"]
    # promote to a protected label files a request, waits for its gate, exits 0 when it passed
    promoted = run(
        url,
        keys["editor"],
        "promote",
        "extract",
        "summarize",
        "--to",
        "production",
        "--reason",
        "launch",
    )
    assert promoted.exit_code == 0, promoted.output  # type: ignore[attr-defined]
    assert "passed" in promoted.stdout and "/promotions/" in promoted.stdout  # type: ignore[attr-defined]
    assert run(url, keys["viewer"], "show", "extract@production").exit_code == 2  # type: ignore[attr-defined]
    made = run(url, keys["admin"], "keys", "create", "ci", "--role", "editor")
    assert made.exit_code == 0 and len(made.stdout.strip()) >= 32  # type: ignore[attr-defined]
    assert run(url, keys["editor"], "keys", "list").exit_code == 2  # type: ignore[attr-defined]


def test_promote_gives_up_on_a_gate_that_does_not_end(
    remote: tuple[str, dict[str, str], OpenAITestServer],
) -> None:
    """Waiting on a request fails closed: a gate still running at --wait-timeout is exit 1."""
    url, keys, llm = remote
    assert run(url, keys["editor"], "push", "-m", "first").exit_code == 0  # type: ignore[attr-defined]
    llm.slow(6.0, times=10)
    started = time.monotonic()
    waited = run(
        url,
        keys["editor"],
        "promote",
        "extract",
        "--to",
        "production",
        "--reason",
        "launch",
        "--wait-timeout",
        "0.5",
    )
    assert waited.exit_code == 1  # type: ignore[attr-defined]
    assert "still gating after 0.5 s" in waited.stderr  # type: ignore[attr-defined]
    assert time.monotonic() - started < 5  # it did not wait for the gate
