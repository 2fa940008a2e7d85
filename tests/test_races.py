"""Races and crashes with real processes, on both engines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptgate.store import Store

# A child process that waits for a go-file, then runs the real CLI with its arguments.
CHILD = textwrap.dedent("""
    import os, sys, time
    go = sys.argv[1]
    while not os.path.exists(go):
        time.sleep(0.002)
    from promptgate.cli import main
    sys.argv = ["promptgate", *sys.argv[2:]]
    main()
""")


def _spawn(tmp: Path, go: Path, args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    script = tmp / "child.py"
    if not script.exists():
        script.write_text(CHILD)
    env = dict(os.environ, PROMPTGATE_AUTHOR="racer")
    return subprocess.Popen(
        [sys.executable, str(script), str(go), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _prompt_file(path: Path, text: str) -> Path:
    path.write_text(f"name: race\nmodel: {{name: m}}\ntemplate: {text!r}\n")
    return path


PUSHER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    go, url, proc = sys.argv[1], sys.argv[2], sys.argv[3]
    from promptgate.registry import push_paths
    from promptgate.store import Store
    store = Store(url)
    files = []
    for i in range(5):
        f = Path(f"p{proc}_{i}.yaml")
        f.write_text(f"name: race\\nmodel: {{name: m}}\\ntemplate: 'proc {proc} edit {i}'\\n")
        files.append(f)
    while not os.path.exists(go):
        time.sleep(0.002)
    for f in files:
        push_paths(store, [f], message=f"proc {proc}", author="racer")
    store.close()
""")

MOVER = textwrap.dedent("""
    import os, sys, time
    go, url, proc = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from promptgate.domain import LabelMove
    from promptgate.errors import LabelConflict
    from promptgate.store import Store
    store = Store(url)
    while not os.path.exists(go):
        time.sleep(0.002)
    wins = 0
    for i in range(15):
        current = store.label_version("race", "canary")
        target = (proc + i) % 9 + 1
        if target == current:
            target = target % 9 + 1
        try:
            wins += len(store.move_labels([LabelMove("race", "canary", target, current, "")],
                                          actor=f"p{proc}"))
        except LabelConflict:
            pass
    print(wins)
    store.close()
""")


def _run_script(tmp: Path, name: str, source: str, args: list[str]) -> subprocess.Popen[bytes]:
    script = tmp / name
    if not script.exists():
        script.write_text(source)
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def race_store(registry_url: str, tmp_path: Path) -> Iterator[Store]:
    store = Store(registry_url, create=True)
    store.migrate()
    yield store
    store.close()


def _seed_versions(store: Store, tmp: Path, n: int) -> None:
    from promptgate.registry import push_paths

    for i in range(n):
        push_paths(store, [_prompt_file(tmp / f"v{i}.yaml", f"v{i}")], message="m", author="a")


def _assert_replays(store: Store, label: str) -> int:
    """Each move starts where the previous ended, and the last one is the label's state."""
    events = store.audit(prompt="race", label=label, oldest_first=True)
    replay: int | None = None
    for e in events:
        assert e.from_version == replay, (e, replay)
        replay = e.to_version
    assert store.label_version("race", label) == replay
    return len(events)


@pytest.mark.slow
def test_concurrent_pushes_number_densely(
    race_store: Store, registry_url: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    procs = [
        _run_script(tmp_path, "pusher.py", PUSHER, [str(go), registry_url, str(p)])
        for p in range(8)
    ]
    time.sleep(0.5)
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    history = race_store.history("race")
    assert [v.version for v in history] == list(range(1, 41))
    assert len({v.content_hash for v in history}) == 40
    assert _assert_replays(race_store, "latest") == 40


@pytest.mark.slow
def test_concurrent_cas_moves_in_processes(
    race_store: Store, registry_url: str, tmp_path: Path
) -> None:
    _seed_versions(race_store, tmp_path, 9)
    go = tmp_path / "go"
    procs = [
        _run_script(tmp_path, "mover.py", MOVER, [str(go), registry_url, str(p)]) for p in range(8)
    ]
    time.sleep(0.5)
    go.touch()
    wins = 0
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        wins += int(out)
    assert wins > 0  # every conflict implies someone else won
    assert _assert_replays(race_store, "canary") == wins


@pytest.mark.slow
def test_cli_cas_losers_exit_3(race_store: Store, registry_url: str, tmp_path: Path) -> None:
    _seed_versions(race_store, tmp_path, 9)
    go = tmp_path / "go"
    procs = [
        _spawn(
            tmp_path,
            go,
            [
                "--registry",
                registry_url,
                "label",
                "set",
                f"race@v{p + 1}",
                "canary",
                "--expect",
                "none",
                "--reason",
                f"p{p}",
            ],
            tmp_path,
        )
        for p in range(8)
    ]
    time.sleep(0.5)
    go.touch()
    codes = []
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        codes.append(proc.returncode)
        if proc.returncode == 3:
            assert err.decode().startswith("error: race@canary"), err.decode()
    assert sorted(codes) == [0] + [3] * 7, codes
    assert _assert_replays(race_store, "canary") == 1


KILLED_CHILD = textwrap.dedent("""
    import sys, time, pathlib
    from promptgate.store import Store
    from promptgate.domain import LabelMove
    ready = pathlib.Path(sys.argv[2])
    original = Store.record_event
    def stall(*args, **kwargs):
        ready.touch()          # the label row is updated, its audit event not yet written
        time.sleep(60)
        return original(*args, **kwargs)
    Store.record_event = staticmethod(stall)
    store = Store(sys.argv[1])
    store.move_labels([LabelMove("race", "canary", 2, 1, "doomed")], actor="killed")
""")


@pytest.mark.slow
def test_sigkill_mid_move_leaves_label_and_log_consistent(
    race_store: Store, registry_url: str, tmp_path: Path
) -> None:
    from promptgate.domain import LabelMove

    store = race_store
    _seed_versions(store, tmp_path, 2)
    store.move_labels([LabelMove("race", "canary", 1, None, "first")], actor="a")
    script = tmp_path / "killed.py"
    script.write_text(KILLED_CHILD)
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, str(script), registry_url, str(ready)])
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # the database must have rolled the half-done move back (PostgreSQL aborts the
    # transaction when its connection drops; SQLite discards the uncommitted WAL frames)
    deadline = time.monotonic() + 30
    while True:
        try:
            assert store.label_version("race", "canary") == 1
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    events = store.audit(prompt="race", label="canary")
    assert [(e.from_version, e.to_version) for e in events] == [(None, 1)]
    # and the label can move again: no lock was left behind
    [e] = store.move_labels([LabelMove("race", "canary", 2, 1, "after crash")], actor="a")
    assert e.to_version == 2
