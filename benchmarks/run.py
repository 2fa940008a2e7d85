"""promptgate benchmarks: measure the speed and memory targets of DESIGN.md section 6a.

    python benchmarks/run.py                 # every workload (about 3 minutes on 2 cores)
    python benchmarks/run.py --quick         # smaller sizes, about a minute
    python benchmarks/run.py --only push,resolve
    python benchmarks/run.py --only runner-overhead --profile   # cProfile the workload

Prints one table of figures against their targets ("ok" / "MISS"). These are measurements,
not tests: the process exits 0 whatever the figures are (and 0 when a workload errors, which
is shown in the table). See benchmarks/README.md for what each workload does.

The model endpoint is promptgate's own local OpenAI-compatible server (promptgate.testing),
run in a separate process so that its CPU is not billed to the process being measured; on a
2-core machine both still share the cores. The server process is this file run with
`--serve-llm`: the same OpenAITestServer as `python -m promptgate.testing`, plus a line
protocol on stdin so the benchmark can read its call counter and set its latency.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import io
import json
import math
import os
import pstats
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PG_ADMIN_URL = os.environ.get("PROMPTGATE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
HEAVY_MODULES = (
    "sqlalchemy",
    "openai",
    "httpx",
    "httpx2",
    "pydantic",
    "rich",
    "networkx",
    "jinja2",
    "yaml",
    "deepdiff",
    "jsonschema",
    "psycopg",
    "click",
)
WORKLOADS = (
    "push",
    "resolve",
    "cli-start",
    "runner-overhead",
    "latency-bound",
    "cached-rerun",
    "big-run",
    "graph-run",
    "affected",
    "process",
)


# ------------------------------------------------------------------------------ results table


@dataclass
class Row:
    workload: str
    metric: str
    value: str
    target: str = "-"
    ok: bool | None = None  # None: no target (context figure)


ROWS: list[Row] = []
NOTES: list[str] = []


def row(workload: str, metric: str, value: str, target: str = "-", ok: bool | None = None) -> None:
    ROWS.append(Row(workload, metric, value, target, ok))
    mark = "" if ok is None else ("  ok" if ok else "  MISS")
    print(f"  {workload:<16} {metric:<46} {value:>14}  {target}{mark}", file=sys.stderr, flush=True)


def note(text: str) -> None:
    NOTES.append(text)
    print(f"  note: {text}", file=sys.stderr, flush=True)


def print_table() -> None:
    headers = ("workload", "metric", "measured", "target", "ok")
    cells = [
        (
            r.workload,
            r.metric,
            r.value,
            r.target,
            "-" if r.ok is None else ("ok" if r.ok else "MISS"),
        )
        for r in ROWS
    ]
    widths = [
        max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |")
    if NOTES:
        print()
        for n in NOTES:
            print(f"- {n}")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms" if seconds < 0.01 else f"{seconds * 1000:.1f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.2f} s"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# ------------------------------------------------------------------------------ profiling

PROFILE = False


def profiled(name: str, fn: Callable[[], Any]) -> Any:
    """Run fn, under cProfile when --profile is given; print the top functions to stderr."""
    if not PROFILE:
        return fn()
    prof = cProfile.Profile()
    try:
        return prof.runcall(fn)
    finally:
        print_profile(name, prof)


def print_profile(name: str, prof: cProfile.Profile, top: int = 25) -> None:
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    out.write("\n--- promptgate's own functions, by own time ---\n")
    stats.sort_stats("tottime").print_stats(r"promptgate[/\\]", top)
    out.write("\n--- promptgate's own functions, by cumulative time ---\n")
    stats.sort_stats("cumulative").print_stats(r"promptgate[/\\]", top)
    by_package: dict[str, float] = {}
    raw_stats: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, _func), (_cc, _nc, tottime, _ct, _callers) in raw_stats.items():
        pkg = package_of(filename)
        by_package[pkg] = by_package.get(pkg, 0.0) + tottime
    total = sum(by_package.values()) or 1.0
    out.write("\n--- own time by package ---\n")
    for pkg, t in sorted(by_package.items(), key=lambda kv: -kv[1])[:12]:
        out.write(f"  {pkg:<28} {t:8.3f} s  {100 * t / total:5.1f} %\n")
    print(f"\n===== cProfile: {name} =====\n{out.getvalue()}", file=sys.stderr, flush=True)


def package_of(filename: str) -> str:
    """Which package a profiled function belongs to: its top folder under site-packages or
    src, 'stdlib:asyncio' style for the standard library, or the builtin marker."""
    path = filename.replace("\\", "/")
    for marker in ("/site-packages/", "/src/"):
        if marker in path:
            return path.split(marker, 1)[1].split("/", 1)[0].removesuffix(".py")
    if path.startswith("~") or path.startswith("<"):
        return "builtins (C)"
    parts = path.split("/")
    if "lib" in parts:
        rest = parts[len(parts) - 1 - parts[::-1].index("lib") + 1 :]
        if len(rest) >= 2:
            return "stdlib:" + rest[1].removesuffix(".py")
    return "other"


# ------------------------------------------------------------------------------ the model server


def serve_llm() -> int:
    """Child mode: run OpenAITestServer, print its base_url, answer commands on stdin."""
    from promptgate.testing import OpenAITestServer

    server = OpenAITestServer(latency=0.0).start()
    print(server.base_url, flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "stats":
            print(
                json.dumps({"calls": server.call_count, "max_in_flight": server.max_in_flight}),
                flush=True,
            )
        elif cmd[0] == "times":  # arrival times of the chat requests since the last reset
            times = [r.received_at for r in server.requests if r.path.endswith("/chat/completions")]
            print(json.dumps(times), flush=True)
        elif cmd[0] == "latency":
            server.latency = float(cmd[1])
            print("ok", flush=True)
        elif cmd[0] == "reset":
            server.reset()  # also frees the request log
            print("ok", flush=True)
    server.stop()
    return 0


class LLMServer:
    """The test server in its own process, driven over a pipe."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve-llm"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            raise RuntimeError("the test server did not start")
        os.environ["OPENAI_BASE_URL"] = self.base_url
        os.environ["OPENAI_API_KEY"] = "bench-key"

    def _ask(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = json.loads(self._ask("stats"))
        return result

    def calls(self) -> int:
        return self.stats()["calls"]

    def arrivals(self) -> list[float]:
        """Wall-clock arrival times of the chat requests since the last reset."""
        result: list[float] = json.loads(self._ask("times"))
        return result

    def set_latency(self, seconds: float) -> None:
        self._ask(f"latency {seconds}")

    def reset(self) -> None:
        self._ask("reset")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_SERVER: LLMServer | None = None


def llm() -> LLMServer:
    global _SERVER
    if _SERVER is None:
        _SERVER = LLMServer()
    return _SERVER


# ------------------------------------------------------------------------------ projects

ECHO_PROMPT = """\
name: echo
description: Benchmark prompt; the test server echoes the user message back.
model: {name: gpt-test, temperature: 0}
template: "Say {{ text }}"
"""


def write_suite(root: Path, prompt: str, n_cases: int, *, tag: str = "case") -> None:
    """A suite for `prompt` with n cases in a JSONL case file; each passes when the output
    contains the case's own text (the test server echoes the input)."""
    evals = root / "evals"
    evals.mkdir(parents=True, exist_ok=True)
    (evals / f"{prompt}.yaml").write_text(
        f"prompt: {prompt}\n"
        "defaults:\n  assert:\n    - {type: not-icontains, value: 'As an AI'}\n"
        f"cases: {prompt}_cases.jsonl\n",
        encoding="utf-8",
    )
    with open(evals / f"{prompt}_cases.jsonl", "w", encoding="utf-8") as fh:
        for i in range(n_cases):
            text = f"{tag}-{i}-x"
            fh.write(
                json.dumps(
                    {
                        "id": f"c{i}",
                        "vars": {"text": text},
                        "assert": [{"type": "contains", "value": text}],
                    }
                )
                + "\n"
            )


@dataclass
class Project:
    root: Path
    store: Any
    config: Any


def make_project(root: Path, prompts: dict[str, str], *, concurrency: int = 16) -> Project:
    """Write prompt files, create a SQLite registry and push them (v1 of each)."""
    from promptgate.config import Config, GateConfig
    from promptgate.registry import push_paths
    from promptgate.store import Store

    (root / "prompts").mkdir(parents=True, exist_ok=True)
    for name, text in prompts.items():
        (root / "prompts" / f"{name}.yaml").write_text(text, encoding="utf-8")
    url = f"sqlite:///{root / '.promptgate' / 'registry.db'}"
    store = Store(url, create=True)
    store.migrate()
    push_paths(store, [root / "prompts"], message="benchmark", author="bench")
    config = Config(
        root=root,
        registry=url,
        gate=GateConfig(concurrency=concurrency, timeout_s=60, retries=2, backoff_s=0.05),
        judge={"name": "gpt-test", "temperature": 0},
        pricing={},
    )
    return Project(root, store, config)


@dataclass
class Timed:
    total: float  # the whole check() call
    plan: float  # resolve refs, load suites, build the graph (until on_plan)
    run: float  # run_plan: every case (GateRun.wall_s)
    cpu: float  # process CPU over the whole check()
    outcome: Any
    run_epoch: float = 0.0  # time.time() when the plan was done and the run began

    @property
    def after(self) -> float:
        """Report building and closing, after the run."""
        return self.total - self.plan - self.run


def timed_check(
    project: Project, refs: list[str], *, concurrency: int, no_cache: bool, baseline: bool = True
) -> Timed:
    from promptgate.gate import check

    marks: dict[str, float] = {}

    def on_plan(_plan: Any) -> None:
        marks["plan"] = time.perf_counter()
        marks["epoch"] = time.time()

    t0 = time.perf_counter()
    c0 = time.process_time()
    outcome = check(
        project.store,
        project.config,
        refs,
        concurrency=concurrency,
        no_cache=no_cache,
        baseline=baseline,
        on_plan=on_plan,
    )
    total = time.perf_counter() - t0
    cpu = time.process_time() - c0
    run = float(outcome.report["stats"]["wall_s"])
    return Timed(
        total=total,
        plan=marks.get("plan", t0) - t0,
        run=run,
        cpu=cpu,
        outcome=outcome,
        run_epoch=marks.get("epoch", 0.0),
    )


def case_counts(report: dict[str, Any]) -> tuple[int, int]:
    passed = sum(s["passed_cases"] for s in report["suites"])
    total = sum(s["total"] for s in report["suites"])
    return passed, total


def warm_up(tmp: Path) -> None:
    """One tiny check so imports and first-use costs are not billed to a measured run."""
    project = make_project(tmp / "warmup", {"echo": ECHO_PROMPT}, concurrency=4)
    write_suite(project.root, "echo", 8)
    timed_check(project, ["echo"], concurrency=4, no_cache=True)
    project.store.close()


# ------------------------------------------------------------------------------ PostgreSQL


class PgSchema:
    """A private schema on the test PostgreSQL, dropped on exit."""

    def __init__(self, tag: str) -> None:
        import sqlalchemy as sa

        from promptgate.store import engine_url

        self.name = f"bench_{tag}_{os.getpid()}"
        self.admin = sa.create_engine(engine_url(PG_ADMIN_URL), connect_args={"connect_timeout": 3})
        with self.admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {self.name}")
        self.url = f"{PG_ADMIN_URL}?options=-csearch_path%3D{self.name}"

    def drop(self) -> None:
        with self.admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")
        self.admin.dispose()


_PG_OK: bool | None = None


def pg_available() -> bool:
    global _PG_OK
    if _PG_OK is None:
        try:
            import psycopg

            psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
            _PG_OK = True
        except Exception as exc:  # noqa: BLE001
            note(
                f"PostgreSQL at {PG_ADMIN_URL} unavailable ({type(exc).__name__}): PG rows skipped"
            )
            _PG_OK = False
    return _PG_OK


# ------------------------------------------------------------------------------ 1. push


def prompt_specs(name: str, n: int) -> list[Any]:
    from promptgate.promptfile import parse_prompt_text

    return [
        parse_prompt_text(
            f"name: {name}\nmodel: {{name: gpt-4o-mini, temperature: 0.2, max_tokens: 300}}\n"
            "messages:\n  - role: system\n    content: You are a concise support analyst.\n"
            f"  - role: user\n    content: 'Revision {i}: summarize in at most {{{{ max_words }}}} "
            "words: {{ ticket }}'\ninputs:\n  max_words: {default: 60}\n",
            f"<{name} v{i}>",
        )
        for i in range(n)
    ]


def bench_push(args: argparse.Namespace, tmp: Path) -> None:
    from promptgate.registry import push_specs
    from promptgate.store import PendingPush, Store

    n = 300 if args.quick else 1000
    n_store = min(n, 300)  # the Store.push-alone row is context: fewer versions suffice
    specs_a = prompt_specs("bench-push", n)
    specs_b = prompt_specs("bench-store", n_store)

    def measure(store: Any, backend: str, target_ms: float) -> None:
        store.migrate()
        push_specs(store, prompt_specs("warmup", 3), message="warm-up", author="bench")

        def go() -> tuple[float, float]:
            t0 = time.perf_counter()
            for spec in specs_a:
                push_specs(store, [spec], message="benchmark push", author="bench")
            t1 = time.perf_counter()
            for spec in specs_b:
                store.push(
                    [PendingPush(spec.name, spec.content, spec.content_hash)],
                    message="benchmark push",
                    author="bench",
                )
            return t1 - t0, time.perf_counter() - t1

        via_registry, via_store = profiled(f"push {backend}", go)
        assert store.resolve("bench-push").version == n, "push did not create every version"
        per = via_registry / n
        row(
            "push",
            f"{backend}: registry.push_specs, per version ({n})",
            ms(per),
            f"<= {target_ms:g} ms",
            per * 1000 <= target_ms,
        )
        row(
            "push", f"{backend}: Store.push alone, per version ({n_store})", ms(via_store / n_store)
        )

    store = Store(f"sqlite:///{tmp / 'push.db'}", create=True)
    try:
        measure(store, "SQLite", 5)
    finally:
        store.close()
    if not args.no_pg and pg_available():
        schema = PgSchema("push")
        try:
            store = Store(schema.url)
            try:
                measure(store, "PostgreSQL", 20)
            finally:
                store.close()
        finally:
            schema.drop()


# ------------------------------------------------------------------------------ 2. resolve


def bulk_fill(store: Any, n_prompts: int, n_versions: int) -> None:
    """n_prompts x n_versions versions and their `latest`/`production` labels, inserted in
    bulk with SQLAlchemy Core (the immutability triggers only forbid UPDATE and DELETE)."""
    from promptgate.canonical import canonical_json
    from promptgate.store import utcnow
    from promptgate.store.schema import labels, versions

    rng = random.Random(7)
    now = utcnow()
    store.migrate()
    with store.engine.begin() as conn:
        batch: list[dict[str, Any]] = []
        for p in range(n_prompts):
            name = f"prompt-{p:05d}"
            for v in range(1, n_versions + 1):
                content = {
                    "model": {"name": "gpt-4o-mini", "temperature": 0.2},
                    "messages": [
                        {"role": "system", "content": "You are concise."},
                        {"role": "user", "content": f"Revision {v} of {name}: {{{{ ticket }}}}"},
                    ],
                }
                text = canonical_json(content).decode("utf-8")
                batch.append(
                    {
                        "prompt": name,
                        "version": v,
                        "content_hash": hashlib.sha256(text.encode()).hexdigest(),
                        "content": text,
                        "message": f"change {v}",
                        "author": "bench",
                        "created_at": now,
                    }
                )
                if len(batch) >= 5000:
                    conn.execute(versions.insert(), batch)
                    batch = []
        if batch:
            conn.execute(versions.insert(), batch)
        label_rows = []
        for p in range(n_prompts):
            name = f"prompt-{p:05d}"
            label_rows.append(
                {
                    "prompt": name,
                    "label": "latest",
                    "version": n_versions,
                    "revision": n_versions,
                    "updated_at": now,
                }
            )
            label_rows.append(
                {
                    "prompt": name,
                    "label": "production",
                    "version": rng.randint(1, n_versions),
                    "revision": 1,
                    "updated_at": now,
                }
            )
        conn.execute(labels.insert(), label_rows)
    if store.dialect == "postgresql":
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE versions")
            conn.exec_driver_sql("ANALYZE labels")


def bench_resolve(args: argparse.Namespace, tmp: Path) -> None:
    from promptgate.store import Store

    n_prompts, n_versions = 1000, 100
    lookups = 500 if args.quick else 2000

    def measure(store: Any, backend: str) -> None:
        t0 = time.perf_counter()
        bulk_fill(store, n_prompts, n_versions)
        fill = time.perf_counter() - t0
        rng = random.Random(11)
        names = [f"prompt-{rng.randrange(n_prompts):05d}" for _ in range(lookups + 100)]
        for name in names[:100]:  # warm the pool and the caches
            store.resolve(name, "production")

        def go() -> list[float]:
            out = []
            for name in names[100:]:
                t = time.perf_counter()
                store.resolve(name, "production")
                out.append(time.perf_counter() - t)
            return out

        times = profiled(f"resolve {backend}", go)
        p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
        total = n_prompts * n_versions
        row(
            "resolve",
            f"{backend}: resolve(name, production) p50, {total:,} versions",
            ms(p50),
            "< 1 ms",
            p50 < 0.001,
        )
        row("resolve", f"{backend}: resolve p99 ({lookups} lookups)", ms(p99))
        note(f"resolve {backend}: bulk insert of {total:,} versions took {fill:.1f} s")

    store = Store(f"sqlite:///{tmp / 'resolve.db'}", create=True)
    try:
        measure(store, "SQLite")
    finally:
        store.close()
    if not args.no_pg and pg_available():
        schema = PgSchema("resolve")
        try:
            store = Store(schema.url)
            try:
                measure(store, "PostgreSQL")
            finally:
                store.close()
        finally:
            schema.drop()


# ------------------------------------------------------------------------------ 3. cli-start


def bench_cli_start(args: argparse.Namespace, tmp: Path) -> None:
    exe = Path(sys.executable).parent / "promptgate"
    cmd = (
        [str(exe), "--version"]
        if exe.exists()
        else [sys.executable, "-m", "promptgate.cli", "--version"]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTGATE_")}
    runs = 5 if args.quick else 10
    times = []
    for i in range(runs + 1):
        t = time.perf_counter()
        done = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()[:200]}")
        if i:  # the first run warms the OS file cache
            times.append(elapsed)
    median = statistics.median(times)
    row(
        "cli-start",
        f"`promptgate --version` wall, median of {runs}",
        secs(median),
        "<= 0.25 s",
        median <= 0.25,
    )

    probe = (
        "import sys, time, json; t = time.perf_counter(); import promptgate.cli; "
        "t = time.perf_counter() - t; "
        f"heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules]; "
        "print(json.dumps({'import_s': t, 'heavy': heavy, 'modules': len(sys.modules)}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp, env=env, capture_output=True, text=True
    )
    info = json.loads(done.stdout)
    row("cli-start", "`import promptgate.cli` (in a fresh interpreter)", secs(info["import_s"]))
    note(
        "`import promptgate.cli` loads "
        + str(info["modules"])
        + " modules; heavy ones: "
        + (", ".join(info["heavy"]) or "none")
        + f" (checked: {', '.join(HEAVY_MODULES)})"
    )

    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import promptgate.cli"],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
    )
    cumulative: dict[str, int] = {}
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].strip()
        if name in HEAVY_MODULES or name.startswith("promptgate"):
            cumulative[name] = max(cumulative.get(name, 0), int(parts[1]))
    if cumulative:
        tops = sorted(cumulative.items(), key=lambda kv: -kv[1])[:8]
        note(
            "import cost under `import promptgate.cli` (cumulative, -X importtime): "
            + ", ".join(f"{n} {us / 1000:.0f} ms" for n, us in tops)
        )


# ------------------------------------------------------------------------------ 4. runner overhead


async def raw_client_loop(
    base_url: str, n: int, concurrency: int, typed: bool
) -> tuple[float, float]:
    """The official client alone, no promptgate: n requests at `concurrency`; (wall, CPU)
    seconds of the timed loop (imports and connection set-up excluded)."""
    from promptgate.providers import openai_client

    # the client exactly as the gate builds it (transport, pool, no client retries)
    client = openai_client(base_url, "bench-key", timeout_s=60, concurrency=concurrency)

    async def one(i: int) -> None:
        body = {
            "model": "gpt-test",
            "temperature": 0,
            "messages": [{"role": "user", "content": f"Say raw-{i}-x"}],
        }
        if typed:
            await client.chat.completions.create(**body)  # type: ignore[call-overload]
        else:
            await client.post("/chat/completions", body=body, cast_to=object)

    async def drive(count: int) -> None:
        # `concurrency` tasks pull from one counter: the leanest way to keep that many
        # requests in flight, so the figure is the client's own cost.
        todo = iter(range(count))

        async def worker() -> None:
            for i in todo:
                await one(i)

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    await drive(2 * concurrency)  # open the connections first
    t = time.perf_counter()
    c0 = time.process_time()
    await drive(n)
    wall = time.perf_counter() - t
    cpu = time.process_time() - c0
    await client.close()
    return wall, cpu


def raw_client(n: int, concurrency: int, typed: bool = False) -> tuple[float, float]:
    """(wall per request, CPU per request) of the bare client."""
    wall, cpu = asyncio.run(raw_client_loop(llm().base_url, n, concurrency, typed))
    return wall / n, cpu / n


def bench_runner_overhead(args: argparse.Namespace, tmp: Path) -> None:
    server = llm()
    server.set_latency(0.0)
    n = 200 if args.quick else 1000
    rounds = 1 if args.quick else 2
    concurrency = 32
    warm_up(tmp)
    project = make_project(tmp / "overhead", {"echo": ECHO_PROMPT}, concurrency=concurrency)
    write_suite(project.root, "echo", n)
    # Rounds alternate the bare client and promptgate, so that load from other processes
    # hits both alike; each figure is the best (fastest) of its rounds.
    raws: list[tuple[float, float]] = []
    results: list[Timed] = []
    calls: list[int] = []
    for _ in range(rounds):
        raws.append(raw_client(n, concurrency))
        before = server.calls()
        results.append(
            profiled(
                "runner-overhead",
                lambda: timed_check(project, ["echo"], concurrency=concurrency, no_cache=True),
            )
        )
        calls.append(server.calls() - before)
        server.reset()
    raw_wall = min(w for w, _ in raws)
    raw_cpu = min(c for _, c in raws)
    result = min(results, key=lambda t: t.total)
    cpu = min(t.cpu for t in results)
    best = f", best of {rounds}" if rounds > 1 else ""
    row("runner-overhead", f"reference: raw AsyncOpenAI.post, wall per request{best}", ms(raw_wall))
    row("runner-overhead", "reference: raw AsyncOpenAI.post, CPU per request", ms(raw_cpu))
    if not args.quick:
        typed_wall, typed_cpu = raw_client(n // 2, concurrency, typed=True)
        row(
            "runner-overhead",
            "reference: raw chat.completions.create, wall / CPU",
            f"{typed_wall * 1000:.2f} / {typed_cpu * 1000:.2f} ms",
        )
    passed, total = case_counts(result.outcome.report)
    if passed != n or any(c != n for c in calls):
        note(
            f"runner-overhead: expected {n} passing cases and {n} calls, got {passed}/{total} "
            f"passing and {calls} calls"
        )
    per = result.total / n
    row(
        "runner-overhead",
        f"check() wall per case ({n} cases, conc {concurrency}){best}",
        ms(per),
        "<= 1 ms",
        per <= 0.001,
    )
    row("runner-overhead", "check() CPU per case", ms(cpu / n))
    own = per - raw_wall
    row(
        "runner-overhead",
        "promptgate's own share: wall/case - raw wall/req",
        ms(own),
        "<= 1 ms",
        own <= 0.001,
    )
    row("runner-overhead", "promptgate's own CPU: CPU/case - raw CPU/req", ms(cpu / n - raw_cpu))
    note(
        f"runner-overhead: check() {result.total:.2f} s = plan {result.plan:.2f} s + run "
        f"{result.run:.2f} s + report {result.after:.2f} s; {passed}/{n} cases passed; "
        "rounds (raw wall/req, check wall/case): "
        + ", ".join(
            f"({w * 1000:.2f}, {t.total / n * 1000:.2f} ms)"
            for (w, _), t in zip(raws, results, strict=True)
        )
    )
    project.store.close()


# ------------------------------------------------------------------------------ 5+6. latency, cache


def bench_latency_and_cache(args: argparse.Namespace, tmp: Path, which: set[str]) -> None:
    server = llm()
    n, latency, concurrency = 200, 0.2, 32
    repeats = 1 if args.quick else 3
    bound = math.ceil(n / concurrency) * latency
    warm_up(tmp)
    server.set_latency(latency)
    server.reset()
    projects: list[Project] = []
    try:
        # Each cold run gets a fresh registry, so its cache is empty; the run fills it
        # (StoreCache, the default of `promptgate check`) for the cached re-runs below.
        firsts: list[Timed] = []
        first_request: list[float] = []
        second_wave: list[float] = []  # the (concurrency+1)-th arrival after the first one
        for i in range(repeats):
            project = make_project(
                tmp / f"latency{i}", {"echo": ECHO_PROMPT}, concurrency=concurrency
            )
            write_suite(project.root, "echo", n)
            projects.append(project)
            server.reset()
            firsts.append(
                profiled(
                    "latency-bound",
                    lambda project=project: timed_check(
                        project, ["echo"], concurrency=concurrency, no_cache=False
                    ),
                )
            )
            stats = server.stats()
            if stats["calls"] != n:
                note(f"latency-bound: run {i + 1} made {stats['calls']} calls, not {n}")
            arrived = sorted(server.arrivals())
            first_request.append(arrived[0] - firsts[-1].run_epoch)
            second_wave.append(arrived[concurrency] - arrived[0])
        if "latency-bound" in which:
            first = sorted(firsts, key=lambda t: t.run)[len(firsts) // 2]  # the median run
            passed, _ = case_counts(first.outcome.report)
            ratio = first.run / bound
            each = ", ".join(f"{t.run:.2f}" for t in firsts)
            row(
                "latency-bound",
                f"run wall ({n} cases, {latency * 1000:.0f} ms, conc "
                f"{concurrency}), median of {repeats}",
                secs(first.run),
                f"<= {1.15 * bound:.2f} s",
            )
            row(
                "latency-bound",
                f"run wall / latency bound ({bound:.1f} s)",
                f"{ratio:.3f} x",
                "<= 1.15 x",
                ratio <= 1.15,
            )
            start = first.plan + first.after
            row(
                "latency-bound",
                "check() wall = run + start (plan + report)",
                secs(first.total),
                f"<= {1.15 * bound:.2f} s + {start:.2f} s",
                first.total <= 1.15 * bound + start,
            )
            raws, raw_waves = [], []
            for _ in range(repeats):
                server.reset()
                raws.append(asyncio.run(raw_client_loop(server.base_url, n, concurrency, False))[0])
                arrived = sorted(server.arrivals())[2 * concurrency :]  # after its warm-up
                raw_waves.append(arrived[concurrency] - arrived[0])
            raw_wall = statistics.median(raws)
            row(
                "latency-bound",
                f"reference: raw AsyncOpenAI.post, same {n} calls",
                f"{raw_wall:.2f} s = {raw_wall / bound:.3f} x",
            )
            row(
                "latency-bound",
                "first request reaches the server after the run begins",
                ms(statistics.median(first_request)),
            )
            row(
                "latency-bound",
                f"request {concurrency + 1} arrives after request 1: promptgate / bare",
                f"{statistics.median(second_wave) * 1000:.0f} / "
                f"{statistics.median(raw_waves) * 1000:.0f} ms",
            )
            note(
                f"latency-bound: runs took {each} s; {passed}/{n} passing, server saw max "
                f"{stats['max_in_flight']} in flight; start = plan {first.plan * 1000:.0f} ms "
                f"+ report {first.after * 1000:.0f} ms"
            )
        if "cached-rerun" in which:
            seconds: list[Timed] = []
            calls = 0
            for project in projects:
                before = server.calls()
                seconds.append(
                    profiled(
                        "cached-rerun",
                        lambda project=project: timed_check(
                            project, ["echo"], concurrency=concurrency, no_cache=False
                        ),
                    )
                )
                calls = max(
                    calls, server.calls() - before, seconds[-1].outcome.report["stats"]["calls"]
                )
            second = sorted(seconds, key=lambda t: t.total)[len(seconds) // 2]
            st = second.outcome.report["stats"]
            row(
                "cached-rerun",
                f"model calls on a warm re-run of {n} cases",
                str(calls),
                "0",
                calls == 0,
            )
            row(
                "cached-rerun",
                f"check() wall, fully cached, median of {repeats}",
                secs(second.total),
                "<= 0.5 s",
                second.total <= 0.5,
            )
            note(
                f"cached-rerun: {st['cached']} responses from the store cache; plan "
                f"{second.plan * 1000:.0f} ms, run {second.run * 1000:.0f} ms, report "
                f"{second.after * 1000:.0f} ms"
            )
    finally:
        server.set_latency(0.0)
        for project in projects:
            project.store.close()


# ------------------------------------------------------------------------------ 7. big run


def vm_hwm_kb() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def vm_rss_kb() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def big_run_child(n: int, concurrency: int, tmp: str) -> int:
    """Child mode: one big check in a fresh process; prints its figures as JSON."""
    import openai  # noqa: F401

    import promptgate.gate  # noqa: F401 - import cost is not part of the run's memory story

    root = Path(tmp)
    project = make_project(root, {"echo": ECHO_PROMPT}, concurrency=concurrency)
    write_suite(project.root, "echo", n)
    rss_before = vm_rss_kb()
    if TRACEMALLOC:
        trace_report_peak()
    result = profiled(
        "big-run", lambda: timed_check(project, ["echo"], concurrency=concurrency, no_cache=True)
    )
    passed, total = case_counts(result.outcome.report)
    print(
        json.dumps(
            {
                "total": result.total,
                "plan": result.plan,
                "run": result.run,
                "after": result.after,
                "cpu": result.cpu,
                "passed": passed,
                "cases": total,
                "rss_before_kb": rss_before,
                "hwm_kb": vm_hwm_kb(),
                "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        ),
        flush=True,
    )
    return 0


TRACEMALLOC = False


def trace_report_peak() -> None:
    """--tracemalloc: trace allocations and print the biggest live ones at the end of
    build_report, when the run's results and the finished report are both alive (the peak)."""
    import tracemalloc

    import promptgate.gate as gate_module  # the gate calls the name it imported

    tracemalloc.start()
    original = gate_module.build_report

    def wrapped(*a: Any, **kw: Any) -> Any:
        out = original(*a, **kw)
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        current, peak = tracemalloc.get_traced_memory()
        lines = [
            f"===== tracemalloc at the end of build_report: {current / 2**20:.1f} MB live, "
            f"peak {peak / 2**20:.1f} MB traced ====="
        ]
        for stat in snap.statistics("lineno")[:15]:
            frame = stat.traceback[0]
            lines.append(
                f"  {stat.size / 2**20:7.1f} MB {stat.count:9d} blocks  "
                f"{frame.filename}:{frame.lineno}"
            )
        print("\n".join(lines), file=sys.stderr, flush=True)
        return out

    gate_module.build_report = wrapped  # type: ignore[assignment]


def bench_big_run(args: argparse.Namespace, tmp: Path) -> None:
    server = llm()
    server.set_latency(0.0)
    server.reset()
    n = 2000 if args.quick else 20000
    concurrency = 20
    child_tmp = tmp / "bigrun"
    child_tmp.mkdir()
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child-big-run",
        str(n),
        "--child-concurrency",
        str(concurrency),
        "--child-tmp",
        str(child_tmp),
    ]
    if PROFILE:
        cmd.append("--profile")
    if args.tracemalloc:
        cmd.append("--tracemalloc")
    before = server.calls()
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    process_wall = time.perf_counter() - t
    if PROFILE or args.tracemalloc:
        print(done.stderr, file=sys.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"big-run child failed: {done.stderr.strip()[-500:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    calls = server.calls() - before
    children_maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    row(
        "big-run",
        f"check() wall ({n:,} cases, zero latency, conc {concurrency})",
        secs(info["total"]),
        "<= 20 s" if n == 20000 else f"<= {20 * n / 20000:g} s (scaled)",
        info["total"] <= 20 * n / 20000,
    )
    row(
        "big-run",
        "peak RSS of the run's process (VmHWM)",
        f"{info['hwm_kb'] / 1024:.0f} MB",
        "<= 150 MB",
        info["hwm_kb"] / 1024 <= 150,
    )
    row(
        "big-run",
        "RSS after imports + project setup, before the run",
        f"{info['rss_before_kb'] / 1024:.0f} MB",
    )
    row(
        "big-run",
        "wall per case / CPU per case",
        f"{info['total'] / n * 1000:.2f} / {info['cpu'] / n * 1000:.2f} ms",
    )
    note(
        f"big-run: {info['passed']}/{info['cases']} cases passed, {calls} model calls; plan "
        f"{info['plan']:.2f} s, run {info['run']:.2f} s, report {info['after']:.2f} s; child "
        f"process wall incl. interpreter start {process_wall:.1f} s; getrusage(RUSAGE_CHILDREN)"
        f" max RSS so far {children_maxrss / 1024:.0f} MB"
    )
    server.reset()


# ------------------------------------------------------------------------------ 8. graph run


def chain_prompt(chain: int, depth: int, variant: str = "") -> str:
    name = f"c{chain}-d{depth}"
    if depth == 0:
        return (
            f"name: {name}\nmodel: {{name: gpt-test, temperature: 0}}\n"
            f'template: "{variant}Root {name} reads {{{{ text }}}}"\n'
        )
    return (
        f"name: {name}\nmodel: {{name: gpt-test, temperature: 0}}\n"
        f'template: "Step {name} of {{{{ prev }}}}"\n'
        f"inputs:\n  prev: {{from: c{chain}-d{depth - 1}}}\n"
    )


def bench_graph_run(args: argparse.Namespace, tmp: Path) -> None:
    from promptgate.domain import LabelMove
    from promptgate.promptfile import parse_prompt_text
    from promptgate.registry import push_specs

    server = llm()
    chains, depth, latency, concurrency = 10, 5, 0.1, 16
    n_cases = 10 if args.quick else 20
    warm_up(tmp)
    prompts = {f"c{c}-d{d}": chain_prompt(c, d) for c in range(chains) for d in range(depth)}
    project = make_project(tmp / "graph", prompts, concurrency=concurrency)
    for name in prompts:
        write_suite(project.root, name, n_cases)
    # Every prompt at production (v1), then a new root of each chain (v2) is the candidate set:
    # all 50 prompts are affected; the baseline side runs too, as `promptgate check` does.
    project.store.move_labels(
        [LabelMove(name, "production", 1, None, "baseline") for name in prompts], actor="bench"
    )
    roots = [
        parse_prompt_text(chain_prompt(c, 0, variant="New. "), f"<c{c}-d0>") for c in range(chains)
    ]
    push_specs(project.store, roots, message="new roots", author="bench")
    server.set_latency(latency)
    server.reset()
    try:
        before = server.calls()
        result = profiled(
            "graph-run",
            lambda: timed_check(
                project,
                [f"c{c}-d0@latest" for c in range(chains)],
                concurrency=concurrency,
                no_cache=False,
            ),
        )
        calls = server.calls() - before
        stats = server.stats()
    finally:
        server.set_latency(0.0)
    report = result.outcome.report
    passed, total = case_counts(report)
    ideal = max(depth * latency, calls * latency / concurrency)
    ratio = result.run / ideal
    row(
        "graph-run",
        f"run wall ({len(prompts)} prompts x {n_cases} cases, {calls} calls)",
        secs(result.run),
    )
    row(
        "graph-run", f"run wall / ideal ({ideal:.2f} s)", f"{ratio:.3f} x", "<= 1.3 x", ratio <= 1.3
    )
    row("graph-run", "check() wall / ideal (incl. plan + report)", f"{result.total / ideal:.3f} x")
    note(
        f"graph-run: {len(report['affected'])} affected, {passed}/{total} candidate cases "
        f"passed, {len(report['baseline_suites'])} baseline suites; ideal = max(depth {depth} x "
        f"{latency * 1000:.0f} ms, {calls} calls x {latency * 1000:.0f} ms / {concurrency}); "
        f"server max in flight {stats['max_in_flight']}; plan {result.plan:.2f} s, report "
        f"{result.after:.2f} s"
    )
    project.store.close()


# ------------------------------------------------------------------------------ 9. affected


def bench_affected(args: argparse.Namespace, tmp: Path) -> None:
    import networkx as nx

    from promptgate.graph import affected

    n = 10_000
    rng = random.Random(42)
    graph = nx.DiGraph()
    names = [f"p{i:05d}" for i in range(n)]
    graph.add_nodes_from(names)
    # A random DAG: node i takes 1-3 parents among the 300 nodes before it (edges only go
    # forward, so no cycle); node 0 is the root.
    for i in range(1, n):
        for j in rng.sample(range(max(0, i - 300), i), k=min(i, rng.randint(1, 3))):
            graph.add_edge(names[j], names[i])
    assert nx.is_directed_acyclic_graph(graph)
    changed = names[3]
    reps = 7 if args.quick else 21
    out: list[str] = []

    def go() -> list[float]:
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            out[:] = affected(graph, [changed])
            times.append(time.perf_counter() - t)
        return times

    times = profiled("affected", go)
    median = statistics.median(times)
    row(
        "affected",
        f"graph.affected, {n:,} prompts, {graph.number_of_edges():,} edges, median of {reps}",
        ms(median),
        "< 50 ms",
        median < 0.05,
    )
    t = time.perf_counter()
    for _ in range(reps):
        nx.descendants(graph, changed)
    row("affected", "of which nx.descendants alone (mean)", ms((time.perf_counter() - t) / reps))
    note(f"affected: changing {changed} (near the root) affects {len(out):,} prompts")


# ------------------------------------------------------------------------------ 10. processes


def bench_process(args: argparse.Namespace, tmp: Path) -> None:
    """`promptgate check` as whole processes (and promptfoo beside it): process_bench.py."""
    from process_bench import bench_processes

    bench_processes(
        llm(), tmp, quick=args.quick, with_promptfoo=not args.no_promptfoo, row=row, note=note
    )


# ------------------------------------------------------------------------------ main


def main(argv: Iterable[str] | None = None) -> int:
    global PROFILE, TRACEMALLOC
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only these workloads (repeat or comma-separate): " + ", ".join(WORKLOADS),
    )
    parser.add_argument("--no-pg", action="store_true", help="skip the PostgreSQL rows")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile each measured section; top functions go to stderr",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="big-run: print the biggest live allocations at the memory peak "
        "(slows the run; the figures are then not comparable)",
    )
    parser.add_argument(
        "--no-promptfoo",
        action="store_true",
        help="process: skip the promptfoo peer rows even where promptfoo is installed",
    )
    parser.add_argument("--serve-llm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-big-run", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-concurrency", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--child-tmp", help=argparse.SUPPRESS)
    args = parser.parse_args(list(argv) if argv is not None else None)
    PROFILE = args.profile
    TRACEMALLOC = args.tracemalloc

    if args.serve_llm:
        return serve_llm()
    if args.child_big_run:
        return big_run_child(args.child_big_run, args.child_concurrency, args.child_tmp)

    only = {name.strip() for item in args.only for name in item.split(",") if name.strip()}
    unknown = only - set(WORKLOADS)
    if unknown:
        parser.error(
            f"unknown workload(s) {', '.join(sorted(unknown))}; choose from {', '.join(WORKLOADS)}"
        )
    selected = [w for w in WORKLOADS if not only or w in only]

    import platform

    from promptgate import __version__

    started = time.perf_counter()
    print(
        f"promptgate {__version__} benchmarks{' (--quick)' if args.quick else ''}: "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}; "
        f"load average {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
        flush=True,
    )
    load_before = os.getloadavg()[0]
    steps: list[tuple[str, Callable[[argparse.Namespace, Path], None]]] = []
    for name in selected:
        if name == "push":
            steps.append((name, bench_push))
        elif name == "resolve":
            steps.append((name, bench_resolve))
        elif name == "cli-start":
            steps.append((name, bench_cli_start))
        elif name == "runner-overhead":
            steps.append((name, bench_runner_overhead))
        elif name in ("latency-bound", "cached-rerun"):
            if not any(s[0] == "latency+cache" for s in steps):
                which = {w for w in ("latency-bound", "cached-rerun") if w in selected}
                steps.append(
                    (
                        "latency+cache",
                        lambda a, t, which=which: bench_latency_and_cache(a, t, which),
                    )
                )
        elif name == "big-run":
            steps.append((name, bench_big_run))
        elif name == "graph-run":
            steps.append((name, bench_graph_run))
        elif name == "affected":
            steps.append((name, bench_affected))
        elif name == "process":
            steps.append((name, bench_process))
    try:
        for name, fn in steps:
            print(f"[{name}]", file=sys.stderr, flush=True)
            t = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix=f"pg-bench-{name}-") as tmp:
                try:
                    fn(args, Path(tmp))
                except Exception as exc:  # noqa: BLE001 - a broken workload is reported, not fatal
                    traceback.print_exc()
                    row(name, "ERROR", f"{type(exc).__name__}: {str(exc)[:60]}", ok=False)
            print(f"  ({time.perf_counter() - t:.1f} s)", file=sys.stderr, flush=True)
    finally:
        if _SERVER is not None:
            _SERVER.close()
    total = time.perf_counter() - started
    print()
    print_table()
    misses = sum(1 for r in ROWS if r.ok is False)
    print(
        f"\n{len([r for r in ROWS if r.ok is not None])} targets, {misses} missed; "
        f"total {total:.0f} s; 1-minute load average {load_before:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end (this run's own processes count too). "
        "Measurements, not tests: exit status is 0 either way."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
