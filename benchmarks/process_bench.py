"""Whole-process benchmarks: `promptgate check` as users run it, from exec to exit.

`run.py` calls `bench_processes` for its `process` workload. Each figure is the wall time of a
real `promptgate check` subprocess (interpreter start, imports, config, registry, suite loading,
the run, the report, exit) in a throw-away project, against the same stub model server as the
in-process rows. Peak RSS is the child's own `ru_maxrss`, read with `os.wait4` on that child
alone (so other children of the benchmark do not blur it).

When promptfoo is installed under `benchmarks/.promptfoo` (`npm install --prefix
benchmarks/.promptfoo promptfoo@0.121.20`; the folder is git-ignored), the same workloads also
run as `promptfoo eval` processes against the same stub with the same cases in the same run, so
that the ratio between the two is measured under the same load. Without it the rows are skipped
with the note "promptfoo: not installed".
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
PROMPTFOO_DIR = HERE / ".promptfoo"
PROMPTFOO_BIN = PROMPTFOO_DIR / "node_modules" / ".bin" / "promptfoo"

ECHO_PROMPT = """\
name: echo
description: Benchmark prompt; the test server echoes the user message back.
model: {name: gpt-test, temperature: 0}
template: "Say {{ text }}"
"""

CONFIG = """\
registry: sqlite:///.promptgate/registry.db
prompts: prompts/
evals: evals/
protected_labels: []
gate: {{label: production, concurrency: {concurrency}, timeout_s: 60, retries: 2, backoff_s: 0.05}}
judge: {{name: gpt-test, temperature: 0}}
"""


class Server(Protocol):
    """What run.py's LLMServer offers."""

    base_url: str

    def calls(self) -> int: ...
    def set_latency(self, seconds: float) -> None: ...
    def reset(self) -> None: ...


Row = Callable[..., None]  # run.py's row(workload, metric, value, target="-", ok=None)
Note = Callable[[str], None]


@dataclass(frozen=True)
class Proc:
    """One finished process: wall seconds, its own peak RSS, exit code and output tails."""

    wall: float
    maxrss_kb: int
    returncode: int
    stdout: str
    stderr: str


def run_process(
    cmd: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float = 1200
) -> Proc:
    """Run cmd to its exit; wall from fork to reap; peak RSS from wait4 on that child."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=out, stderr=err)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Proc(
            wall=wall,
            maxrss_kb=int(usage.ru_maxrss),
            returncode=proc.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )


def promptgate_cmd() -> list[str]:
    """The console script users run (the venv's `promptgate`), else the same entry point."""
    exe = Path(sys.executable).parent / "promptgate"
    if exe.exists():
        return [sys.executable, str(exe)]
    return [sys.executable, "-c", "from promptgate.cli import main; main()"]


def child_env(server: Server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTGATE_")}
    env["OPENAI_BASE_URL"] = server.base_url
    env["OPENAI_API_KEY"] = "bench-key"
    # the worktree's sources first, as for run.py itself
    src = str(HERE.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    env.pop("GITHUB_ACTIONS", None)
    # Users meet promptgate with its bytecode cached (pip compiles it on install, and Python
    # writes it on first import). A machine-wide PYTHONDONTWRITEBYTECODE=1, as this sandbox
    # sets, would make every measured process compile promptgate's sources afresh (~0.15 s).
    # The untimed `init` and `push` runs write the cache before anything is timed.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def write_cases(path: Path, n: int, *, promptfoo: bool = False) -> None:
    """n cases; each passes when the output contains its own text (the stub echoes)."""
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            text = f"case-{i}-x"
            case: dict[str, Any] = {
                "vars": {"text": text},
                "assert": [{"type": "contains", "value": text}],
            }
            if promptfoo:
                case = {"description": f"c{i}", **case}
            else:
                case = {"id": f"c{i}", **case}
            fh.write(json.dumps(case) + "\n")


def make_project(root: Path, n_cases: int, concurrency: int, env: dict[str, str]) -> Path:
    """A promptgate project with one prompt (pushed as v1) and one suite of n JSONL cases."""
    (root / "prompts").mkdir(parents=True)
    (root / "evals").mkdir()
    (root / "promptgate.yaml").write_text(CONFIG.format(concurrency=concurrency), "utf-8")
    (root / "prompts" / "echo.yaml").write_text(ECHO_PROMPT, "utf-8")
    (root / "evals" / "echo.yaml").write_text(
        "prompt: echo\n"
        "defaults:\n  assert:\n    - {type: not-icontains, value: 'As an AI'}\n"
        "cases: echo_cases.jsonl\n",
        "utf-8",
    )
    write_cases(root / "evals" / "echo_cases.jsonl", n_cases)
    for args in (["init"], ["push", "-m", "benchmark"]):
        done = run_process([*promptgate_cmd(), *args], cwd=root, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"promptgate {args[0]} failed: {done.stderr.strip()[-400:]}")
    return root


def make_promptfoo_project(root: Path, n_cases: int, server: Server) -> Path:
    """The same prompt, assertions and cases as a promptfoo config."""
    root.mkdir(parents=True)
    write_cases(root / "cases.jsonl", n_cases, promptfoo=True)
    (root / "promptfooconfig.yaml").write_text(
        "description: promptgate benchmark peer\n"
        "prompts:\n"
        "  - 'Say {{ text }}'\n"
        "providers:\n"
        "  - id: openai:chat:gpt-test\n"
        "    config:\n"
        f"      apiBaseUrl: {server.base_url}\n"
        "      apiKey: bench-key\n"
        "      temperature: 0\n"
        "defaultTest:\n"
        "  assert:\n"
        "    - {type: not-icontains, value: 'As an AI'}\n"
        "tests: file://cases.jsonl\n",
        "utf-8",
    )
    return root


def promptfoo_env(base: dict[str, str], home: Path) -> dict[str, str]:
    env = dict(base)
    env.update(
        {
            "PROMPTFOO_CONFIG_DIR": str(home / "config"),
            "PROMPTFOO_CACHE_PATH": str(home / "cache"),
            "PROMPTFOO_DISABLE_TELEMETRY": "1",
            "PROMPTFOO_DISABLE_UPDATE": "1",
            "PROMPTFOO_DISABLE_REMOTE_GENERATION": "1",
            "PROMPTFOO_SELF_HOSTED": "1",
            "NO_COLOR": "1",
        }
    )
    return env


def promptfoo_installed() -> bool:
    return PROMPTFOO_BIN.exists() and shutil.which("node") is not None


def promptfoo_eval(root: Path, env: dict[str, str], *, concurrency: int, no_cache: bool) -> Proc:
    cmd = [
        str(PROMPTFOO_BIN),
        "eval",
        "-c",
        "promptfooconfig.yaml",
        "--max-concurrency",
        str(concurrency),
        "--no-table",
        "--no-progress-bar",
    ]
    if no_cache:
        cmd.append("--no-cache")
    return run_process(cmd, cwd=root, env=env)


def check(root: Path, env: dict[str, str], *, concurrency: int, no_cache: bool) -> Proc:
    cmd = [*promptgate_cmd(), "check", "echo", "--concurrency", str(concurrency)]
    if no_cache:
        cmd.append("--no-cache")
    done = run_process(cmd, cwd=root, env=env)
    if done.returncode != 0:
        raise RuntimeError(
            f"promptgate check exited {done.returncode}: "
            f"{(done.stderr.strip() or done.stdout.strip())[-400:]}"
        )
    return done


def median_wall(runs: Sequence[Proc]) -> float:
    return statistics.median(r.wall for r in runs)


def third_party_imports(root: Path, env: dict[str, str], args: Sequence[str]) -> list[str]:
    """The installed (not standard-library) top-level packages a `promptgate` command imports,
    read from `-X importtime` of one run of it in `root`."""
    done = run_process(
        [sys.executable, "-X", "importtime", *promptgate_cmd()[1:], *args], cwd=root, env=env
    )
    names: set[str] = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            top = line.rsplit("|", 1)[1].strip().split(".")[0]
            if (
                top.isidentifier()
                and not top.startswith("_")
                and top not in sys.stdlib_module_names
                and importlib.util.find_spec(top) is not None
            ):
                names.add(top)
    names.discard("promptgate")
    names.discard("sitecustomize")
    return sorted(names)


def import_floor(modules: Sequence[str], tmp: Path, env: dict[str, str], repeats: int) -> float:
    """Median wall of a process that imports only `modules` and exits: no command runs, so
    nothing promptgate does can be faster than this with those packages."""
    cmd = [sys.executable, "-c", "import " + ", ".join(modules)]
    warm = run_process(cmd, cwd=tmp, env=env)  # also warms the OS file cache
    if warm.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {warm.stderr.strip()[-400:]}")
    return median_wall([run_process(cmd, cwd=tmp, env=env) for _ in range(repeats)])


def bench_processes(
    server: Server, tmp: Path, *, quick: bool, with_promptfoo: bool, row: Row, note: Note
) -> None:
    """The process rows: --version start, cached 200, 200 at 200 ms, N at zero latency."""
    env = child_env(server)
    repeats = 3 if quick else 5
    peer = with_promptfoo and promptfoo_installed()
    if not with_promptfoo:
        note("promptfoo: skipped (--no-promptfoo)")
    elif not peer:
        note(
            "promptfoo: not installed (npm install --prefix benchmarks/.promptfoo "
            "promptfoo@0.121.20): no peer rows"
        )
    pf_env = promptfoo_env(env, tmp / "promptfoo-home") if peer else env

    # -- start: `promptgate --version`
    version = [*promptgate_cmd(), "--version"]
    run_process(version, cwd=tmp, env=env)  # warms the OS file cache
    starts = [run_process(version, cwd=tmp, env=env) for _ in range(10)]
    start = median_wall(starts)
    row(
        "process",
        "`promptgate --version`, median of 10",
        f"{start:.3f} s",
        "<= 0.25 s",
        start <= 0.25,
    )
    if peer:
        pf_version = [str(PROMPTFOO_BIN), "--version"]
        pf_start = median_wall([run_process(pf_version, cwd=tmp, env=pf_env) for _ in range(3)])
        row("process", "promptfoo: `promptfoo --version`, median of 3", f"{pf_start:.3f} s")

    # -- 200 cases, all from the cache
    n, concurrency = 200, 32
    server.set_latency(0.0)
    project = make_project(tmp / "cached", n, concurrency, env)
    check(project, env, concurrency=concurrency, no_cache=False)  # fills the cache
    before = server.calls()
    cached = [check(project, env, concurrency=concurrency, no_cache=False) for _ in range(repeats)]
    calls = server.calls() - before
    wall = median_wall(cached)
    row(
        "process",
        f"check, {n} cases all cached ({calls} calls), median of {repeats}",
        secs(wall),
        f"<= 0.5 s + start = {0.5 + start:.2f} s",
        calls == 0 and wall <= 0.5 + start,
    )
    # The floor under that row: a process that imports only the installed packages the cached
    # check imported, and exits. What is left of the target above it is promptgate's budget.
    deps = third_party_imports(project, env, ["check", "echo", "--concurrency", str(concurrency)])
    floor = import_floor(deps, tmp, env, repeats)
    row(
        "process",
        f"  floor: a process that only imports the {len(deps)} packages it imported, "
        f"median of {repeats}",
        secs(floor),
        f"leaves {0.5 + start - floor:.2f} s of the target",
    )
    note(f"process cached: the floor imports {', '.join(deps)}")
    row("process", "  the cached check above that floor", secs(wall - floor))
    if peer:
        pf_root = make_promptfoo_project(tmp / "pf-cached", n, server)
        promptfoo_eval(pf_root, pf_env, concurrency=concurrency, no_cache=False)
        before = server.calls()
        pf = [
            promptfoo_eval(pf_root, pf_env, concurrency=concurrency, no_cache=False)
            for _ in range(max(2, repeats - 2))
        ]
        pf_calls = server.calls() - before
        row(
            "process",
            f"promptfoo: eval, {n} cases cached ({pf_calls} calls), median of {len(pf)}",
            secs(median_wall(pf)),
            "-",
        )
        note(f"process cached: promptgate / promptfoo = {wall / median_wall(pf):.2f} x")

    # -- 200 cases, 200 ms latency, concurrency 32, --no-cache
    latency = 0.2
    bound = math.ceil(n / concurrency) * latency
    server.set_latency(latency)
    try:
        runs = [check(project, env, concurrency=concurrency, no_cache=True) for _ in range(3)]
        wall = median_wall(runs)
        target = 1.15 * bound + start
        row(
            "process",
            f"check, {n} cases, {latency * 1000:.0f} ms, conc {concurrency}, --no-cache, "
            "median of 3",
            f"{secs(wall)} ({wall / bound:.2f} x bound {bound:.1f} s)",
            f"<= 1.15 x bound + start = {target:.2f} s",
            wall <= target,
        )
        # Under this row: a process that imports only the installed packages the uncached
        # check imported (the official client among them), then the bound. The calls need the
        # client and the plan needs the store, the graph and the templates, so none of those
        # imports can overlap the waiting.
        deps = third_party_imports(
            project, env, ["check", "echo", "--no-cache", "--concurrency", str(concurrency)]
        )
        floor = import_floor(deps, tmp, env, 3)
        client = import_floor(["openai"], tmp, env, 3)
        row(
            "process",
            f"  floor: a process that only imports the {len(deps)} packages it imported, "
            "+ bound, median of 3",
            f"{secs(floor + bound)} ({secs(floor)} + {bound:.1f} s; `import openai` alone "
            f"{secs(client)})",
            f"{'under' if floor + bound <= target else 'over'} the target",
        )
        note(f"process 200 ms: the floor imports {', '.join(deps)}")
        if peer:
            pf_root = make_promptfoo_project(tmp / "pf-latency", n, server)
            pf = [
                promptfoo_eval(pf_root, pf_env, concurrency=concurrency, no_cache=True)
                for _ in range(2)
            ]
            row(
                "process",
                f"promptfoo: eval, same {n} cases at {latency * 1000:.0f} ms, median of 2",
                f"{secs(median_wall(pf))} ({median_wall(pf) / bound:.2f} x bound)",
            )
    finally:
        server.set_latency(0.0)

    # -- N cases in cases.jsonl, zero latency, concurrency 20, --no-cache: wall, RSS, per case
    big = 2000 if quick else 20000
    concurrency = 20
    project = make_project(tmp / "big", big, concurrency, env)
    server.reset()
    before = server.calls()
    done = check(project, env, concurrency=concurrency, no_cache=True)
    calls = server.calls() - before
    server.reset()
    pf_wall: float | None = None
    pf_rss = 0
    if peer:
        pf_root = make_promptfoo_project(tmp / "pf-big", big, server)
        pf_run = promptfoo_eval(pf_root, pf_env, concurrency=concurrency, no_cache=True)
        server.reset()
        pf_wall, pf_rss = pf_run.wall, pf_run.maxrss_kb
    rss_mb = done.maxrss_kb / 1024
    row(
        "process",
        f"check, {big:,} cases (cases.jsonl), zero latency, conc {concurrency}, --no-cache",
        secs(done.wall),
        "<= 0.15 x promptfoo" + ("" if pf_wall is not None else " (no peer)"),
        None if pf_wall is None else done.wall <= 0.15 * pf_wall,
    )
    row(
        "process",
        f"  peak RSS of that process ({calls:,} calls)",
        f"{rss_mb:.0f} MB",
        "<= 150 MB",
        rss_mb <= 150,
    )
    per_case = done.wall / big
    row(
        "process",
        "  runner overhead per case: process wall / N",
        ms(per_case),
        "<= 1 ms",
        per_case <= 0.001,
    )
    row("process", "  per case without start: (wall - start) / N", ms((done.wall - start) / big))
    if pf_wall is not None:
        row(
            "process",
            f"promptfoo: eval, same {big:,} cases, conc {concurrency}, --no-cache",
            f"{secs(pf_wall)} ({pf_wall / big * 1000:.2f} ms/case)",
        )
        row("process", "  promptfoo peak RSS", f"{pf_rss / 1024:.0f} MB")
        note(
            f"process big: promptgate / promptfoo = {done.wall / pf_wall:.3f} x (target <= 0.15 x)"
        )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms" if seconds < 0.01 else f"{seconds * 1000:.1f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.2f} s"
