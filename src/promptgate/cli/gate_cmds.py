"""Gate commands: check, promote, graph, and the response cache's export and import."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from .common import AppContext, console, emit_json, note

if TYPE_CHECKING:
    from ..remote import RemoteStore

pass_app = click.make_pass_decorator(AppContext)


def _progress(total_cases: int) -> tuple[Any, Any] | None:
    """A live progress bar on stderr, or None when stderr is not a terminal (CI, pipes): then
    rich.progress is not even imported."""
    if not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
        disable=not console(stderr=True).is_terminal,
    )
    task = progress.add_task("cases", total=total_cases)
    return progress, task


def _print_summary(report: dict[str, Any]) -> None:
    """The verdict and per-suite table on stdout: rich at a terminal, plain text otherwise
    (CI logs, pipes), where rich is not even imported."""
    from ..report import format_plain, print_terminal

    if sys.stdout.isatty():
        print_terminal(report, console())
    else:
        click.echo(format_plain(report), nl=False)


def _in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _check_outputs(report_md: Path | None, report_json: Path | None, junit: Path | None) -> None:
    """Refuse (exit 2) a report path that cannot be written, before anything runs."""
    from ..files import check_writable

    for flag, path in (
        ("--report-md", report_md),
        ("--report-json", report_json),
        ("--junit", junit),
    ):
        if path is not None:
            check_writable(path, flag)


def _write_reports(
    report: dict[str, Any], report_md: Path | None, report_json: Path | None, junit: Path | None
) -> None:
    """Write each report asked for, whole or not at all (files.write_atomically); the JSON one
    is streamed to its file rather than built as one string beside the report."""
    import json

    from ..files import write_output
    from ..report import github_annotations, to_junit, to_markdown

    summary = os.environ.get("GITHUB_STEP_SUMMARY") if _in_github_actions() else None
    markdown = to_markdown(report) if report_md or summary else ""

    def dump_json(fh: TextIO) -> None:
        json.dump(report, fh, indent=2, ensure_ascii=False)
        fh.write("\n")

    writers: list[tuple[str, Path | None, Callable[[TextIO], object]]] = [
        ("--report-md", report_md, lambda fh: fh.write(markdown)),
        ("--report-json", report_json, dump_json),
        ("--junit", junit, lambda fh: fh.write(to_junit(report))),
    ]
    for flag, path, write in writers:
        if path is not None:
            write_output(path, flag, write)
    if _in_github_actions():
        for line in github_annotations(report):
            click.echo(line)
        if summary:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(markdown + "\n")


def _run_check(
    app: AppContext,
    refs: tuple[str, ...],
    *,
    label: str | None,
    changed: bool,
    concurrency: int | None,
    no_cache: bool,
    replay: Path | None,
    no_baseline: bool,
    max_cost: float | None,
    shard: tuple[int, int] | None = None,
) -> Any:
    from ..gate import check

    state: dict[str, Any] = {}

    def on_plan(plan: Any) -> None:
        total = sum(len(s.cases) for n in plan.affected for s in plan.suites.get(n, []))
        if not no_baseline:
            total += sum(
                len(s.cases)
                for n in plan.affected
                if n in plan.baseline
                for s in plan.suites.get(n, [])
            )
        note(
            f"checking {', '.join(f'{c.name}@{c.label}' for c in plan.candidates.values())} "
            f"against {plan.label}: affected {', '.join(plan.affected)}"
        )
        bar = _progress(total)
        if bar is not None:
            state["progress"], state["task"] = bar
            state["progress"].start()

    def on_case(job: Any, result: Any) -> None:
        if "progress" in state:
            state["progress"].advance(state["task"])

    try:
        return check(
            app.store(),
            app.config,
            list(refs),
            label=label,
            changed=changed,
            concurrency=concurrency,
            no_cache=no_cache,
            replay=replay,
            baseline=not no_baseline,
            max_cost_usd=max_cost,
            shard=shard,
            on_plan=on_plan,
            on_case=on_case,
        )
    finally:
        if "progress" in state:
            state["progress"].stop()


def _gate_options(fn: Any) -> Any:
    options = [
        click.option(
            "--changed",
            is_flag=True,
            help="Every prompt whose latest version differs from the label's.",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 1024),
            default=None,
            help="Model calls in flight at once (default: gate.concurrency).",
        ),
        click.option("--no-cache", is_flag=True, help="Neither read nor write the cache."),
        click.option(
            "--replay",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="Serve model calls only from this recording; a miss is an error.",
        ),
        click.option(
            "--no-baseline",
            is_flag=True,
            help="Skip running the baseline for newly-failing/fixed comparison.",
        ),
        click.option(
            "--max-cost",
            type=click.FloatRange(min=0),
            default=None,
            metavar="USD",
            help="Budget for this check's new model calls (default: gate.max_cost_usd); the "
            "check fails closed before a call that could cross it.",
        ),
        click.option(
            "--report-md",
            type=click.Path(path_type=Path),
            default=None,
            help="Write the Markdown report (PR comment, step summary).",
        ),
        click.option(
            "--report-json",
            type=click.Path(path_type=Path),
            default=None,
            help="Write the JSON report.",
        ),
        click.option(
            "--junit",
            type=click.Path(path_type=Path),
            default=None,
            help="Write a JUnit XML report.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _print_plan(data: dict[str, Any]) -> None:
    from rich.table import Table

    def money(v: float | None) -> str:
        return "unknown" if v is None else f"${v:.4f}"

    out = console()
    out.print(
        f"plan: {', '.join(data['candidates'])} against {data['label']}: "
        f"affected {', '.join(data['affected'])}"
    )
    table = Table()
    for col in ("prompt", "side", "version", "requests", "cached", "calls", "tokens ≤", "cost ≤"):
        table.add_column(col, no_wrap=True)
    for p in data["prompts"]:
        table.add_row(
            p["prompt"],
            p["side"],
            p["version"] or "-",
            str(p["requests"]),
            str(p["cached"]),
            str(p["calls"]),
            str(p["prompt_tokens_max"] + p["completion_tokens_max"]),
            money(p["cost_usd_max"]),
        )
    out.print(table)
    lines = [
        f"{data['calls']} model calls to make ({data['cached']} of {data['requests']} requests "
        f"served from cache), at most {data['prompt_tokens_max']} prompt and "
        f"{data['completion_tokens_max']} completion tokens, at most "
        f"{money(data['cost_usd_max'])}"
    ]
    if data["unpriced_models"]:
        lines.append(
            "no pricing for " + ", ".join(data["unpriced_models"]) + ": add it under `pricing`"
        )
    if any(p["unbounded_completions"] for p in data["prompts"]):
        lines.append(
            f"a prompt without max_tokens is bounded at {data['completion_bound_default']} "
            "completion tokens a call"
        )
    if data["max_cost_usd"] is not None:
        fits = data["within_budget"]
        lines.append(
            f"budget {money(data['max_cost_usd'])}: "
            + ("within it" if fits else "could be exceeded" if fits is False else "cannot tell")
        )
    for problem in data["problems"]:
        lines.append(f"problem: {problem}")
    for line in lines:
        out.print(line, markup=False, highlight=False)


@click.command(name="check")
@click.argument("refs", nargs=-1)
@click.option("--label", default=None, help="The baseline label (default: gate.label).")
@click.option(
    "--plan",
    "plan_only",
    is_flag=True,
    help="Print the calls the check would make, how many are cached, and at most what they "
    "cost; call no model.",
)
@click.option("--json", "as_json", is_flag=True, help="With --plan: print the plan as JSON.")
@click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="Run only shard I of N of every suite's cases (for a CI matrix; merge the shards' "
    "JSON reports with `promptgate report merge`). Exits 0 once its report is written.",
)
@_gate_options
@pass_app
def check_cmd(
    app: AppContext,
    refs: tuple[str, ...],
    label: str | None,
    plan_only: bool,
    as_json: bool,
    shard: str | None,
    changed: bool,
    concurrency: int | None,
    no_cache: bool,
    replay: Path | None,
    no_baseline: bool,
    max_cost: float | None,
    report_md: Path | None,
    report_json: Path | None,
    junit: Path | None,
) -> None:
    """Evaluate candidates and everything downstream of them; exit 1 if the gate fails (or,
    under compare.inconclusive: fail, cannot tell)."""
    if as_json and not plan_only:
        raise click.UsageError("--json goes with --plan (the report is --report-json FILE)")
    from ..shards import parse_shard

    shard_of = parse_shard(shard) if shard is not None else None
    if shard_of is not None and not plan_only and report_json is None:
        raise click.UsageError("--shard needs --report-json FILE: the shards' reports are merged")
    if not plan_only:
        _check_outputs(report_md, report_json, junit)
    if plan_only:
        from ..gate import plan_calls

        planned = plan_calls(
            app.store(),
            app.config,
            list(refs),
            label=label,
            changed=changed,
            no_cache=no_cache,
            replay=replay,
            baseline=not no_baseline,
            max_cost_usd=max_cost,
            shard=shard_of,
        )
        if planned is None:
            if as_json:
                emit_json({"label": label or app.config.gate.label, "prompts": [], "calls": 0})
            else:
                click.echo("nothing differs from the label: nothing to call")
            return
        if as_json:
            emit_json(planned.to_json())
        else:
            _print_plan(planned.to_json())
        return
    outcome = _run_check(
        app,
        refs,
        label=label,
        changed=changed,
        concurrency=concurrency,
        no_cache=no_cache,
        replay=replay,
        no_baseline=no_baseline,
        max_cost=max_cost,
        shard=shard_of,
    )
    _write_reports(outcome.report, report_md, report_json, junit)
    _print_summary(outcome.report)
    if shard_of is not None:
        note(
            f"shard {shard_of[0]}/{shard_of[1]} written: `promptgate report merge` judges the check"
        )
        return
    if not outcome.passed:
        raise SystemExit(1)


@click.command()
@click.argument("refs", nargs=-1)
@click.option("--to", "label", required=True, help="The label to move (e.g. production).")
@click.option("--reason", required=True, help="Why, for the audit log.")
@click.option(
    "--wait-timeout",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="Through a server: give up (exit 1) if the request's gate has not finished "
    "after this many seconds.",
)
@click.option(
    "--from-report",
    "from_report",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Move the labels by this JSON report (unsharded or merged) if it passed and still "
    "matches the registry and the suites; nothing is re-run.",
)
@_gate_options
@pass_app
def promote(
    app: AppContext,
    refs: tuple[str, ...],
    label: str,
    reason: str,
    wait_timeout: float,
    from_report: Path | None,
    changed: bool,
    concurrency: int | None,
    no_cache: bool,
    replay: Path | None,
    no_baseline: bool,
    max_cost: float | None,
    report_md: Path | None,
    report_json: Path | None,
    junit: Path | None,
) -> None:
    """Run the gate and, only if every suite passes, move the label of every prompt in the set
    (compare-and-swap, one transaction). Exit 1 failed, 3 a label moved meanwhile."""
    from ..errors import BadInput
    from ..refs import check_label_name, parse_ref
    from ..registry import default_author

    check_label_name(label)
    if label == "latest":
        raise BadInput("`latest` moves only on push")
    if from_report is not None:
        if refs or changed:
            raise BadInput("--from-report names its candidates: give no refs and no --changed")
        _promote_from_report(app, from_report, label, reason)
        return
    for ref in refs:
        if parse_ref(ref).is_draft:
            raise BadInput(f"{ref}: a draft cannot be promoted: push it first")
    _check_outputs(report_md, report_json, junit)
    backend = app.backend()
    store = backend.store
    if backend.server is not None and label in app.config.protected_labels:
        _request_promotion(backend.server, refs, changed, label, reason, wait_timeout)
        return
    from ..promote import already_at, move_after_check

    if not changed:
        there = already_at(store, refs, label)
        if there is not None:
            click.echo(there)
            return
    outcome = _run_check(
        app,
        refs,
        label=label,
        changed=changed,
        concurrency=concurrency,
        no_cache=no_cache,
        replay=replay,
        no_baseline=no_baseline,
        max_cost=max_cost,
    )
    _write_reports(outcome.report, report_md, report_json, junit)
    _print_summary(outcome.report)
    done = move_after_check(store, outcome, label=label, reason=reason, actor=default_author())
    if done.conflict is not None:
        raise done.conflict
    for e in done.moved:
        src = f"v{e.from_version}" if e.from_version else "unset"
        click.echo(f"{e.prompt}@{label}: {src} -> v{e.to_version}")
    if done.why_not is not None:
        click.echo(done.why_not, err=not done.passed)
    if not done.passed:
        raise SystemExit(1)


def _promote_from_report(app: AppContext, path: Path, label: str, reason: str) -> None:
    from ..errors import BadInput
    from ..gate import promote_from_report
    from ..registry import default_author

    report = read_report(path)
    backend = app.backend()
    if backend.server is not None:
        raise BadInput(
            "--from-report moves labels in a local registry; through a server, upload the "
            "report to the promotion request (POST /v1/promotions/{id}/report)"
        )
    events = promote_from_report(
        backend.store, app.config, report, label=label, reason=reason, actor=default_author()
    )
    for e in events:
        src = f"v{e.from_version}" if e.from_version else "unset"
        click.echo(f"{e.prompt}@{label}: {src} -> v{e.to_version}")
    if not events:
        click.echo(f"{label} already points at every candidate; nothing moved")


def read_report(path: Path) -> Any:
    """A JSON report file, or one line saying why it is not one."""
    import json

    from ..errors import BadInput

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{path}: no such report file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"{path}: not a JSON report ({type(exc).__name__})") from None


def _request_promotion(
    server: RemoteStore,
    refs: tuple[str, ...],
    changed: bool,
    label: str,
    reason: str,
    wait_timeout: float,
) -> None:
    """Through a server, a protected label moves only by an approved request: file it, wait
    for its gate, and say where an approver can find it."""
    import time

    from ..gate import changed_refs

    wanted = list(refs) or (changed_refs(server, label) if changed else [])
    if not wanted:
        click.echo(f"nothing differs from {label}; nothing requested")
        return
    request = server.request_promotion(wanted, label, reason)
    pid = request.id
    note(f"filed promotion request {pid}; waiting for its gate")
    deadline = time.monotonic() + wait_timeout
    while request.state == "gating":
        if time.monotonic() >= deadline:  # fail closed: a gate that never ends is no pass
            click.echo(
                f"request {pid}: still gating after {wait_timeout:g} s; giving up  "
                f"{server.url}/promotions/{pid}",
                err=True,
            )
            raise SystemExit(1)
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        request = server.promotion(pid)
    click.echo(f"request {pid}: {request.state}  {server.url}/promotions/{pid}")
    if request.state != "passed":
        raise SystemExit(1)
    click.echo("the gate passed: an approver who is not you must approve it")


@click.command()
@click.argument("name", required=False)
@click.option(
    "--label",
    default="latest",
    show_default=True,
    help="Build the graph from the versions this label points at.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "mermaid", "dot"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@pass_app
def graph(app: AppContext, name: str | None, label: str, fmt: str) -> None:
    """Show the dependency graph (edges come from `from:` inputs)."""
    from ..errors import UnknownRef
    from ..graph import build_graph, format_graph, subgraph_for

    versions = app.store().list_at_label(label)
    g = build_graph({v.name: v.content for v in versions})
    if name is not None and name not in g:
        raise UnknownRef(f"unknown ref {name}@{label}")
    click.echo(format_graph(subgraph_for(g, name), fmt, {v.name: v.version for v in versions}))


@click.group()
def cache() -> None:
    """Export or import recorded model responses (for offline replay)."""


@cache.command(name="export")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@pass_app
def cache_export(app: AppContext, file: Path) -> None:
    """Write every cached response to FILE (JSON Lines: key, model, date, request, response)."""
    from ..files import check_writable, write_output
    from ..providers import recording_line

    check_writable(file, "cache export")
    store = app.store()
    count = 0

    def write(fh: TextIO) -> None:
        nonlocal count
        for key, model, created_at, entry in store.cache_entries():
            fh.write(recording_line(key, model, created_at, entry) + "\n")
            count += 1

    write_output(file, "cache export", write)  # a failure midway leaves no half recording
    note(f"exported {count} responses to {file}")


@cache.command(name="import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@pass_app
def cache_import(app: AppContext, file: Path) -> None:
    """Load a recording into the registry's response cache (existing keys are kept)."""
    from ..providers import read_recording

    entries = []
    for key, response in read_recording(file):
        entries.append((key, str(response.get("model", "")), {"response": response}))
    added = app.store().cache_put_many(entries)
    note(f"imported {added} new responses from {file} ({len(entries) - added} already cached)")


@click.group()
def report() -> None:
    """Gate reports: merge the shards of one check."""


@report.command(name="merge")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--report-md", type=click.Path(path_type=Path), default=None, help="Write Markdown.")
@click.option("--report-json", type=click.Path(path_type=Path), default=None, help="Write JSON.")
@click.option("--junit", type=click.Path(path_type=Path), default=None, help="Write JUnit XML.")
def report_merge(
    files: tuple[Path, ...],
    report_md: Path | None,
    report_json: Path | None,
    junit: Path | None,
) -> None:
    """Merge the JSON reports of every shard of one check into one report and one verdict
    (exit 1 if it fails, 2 for a missing, duplicated or foreign shard)."""
    from ..shards import merge_reports

    _check_outputs(report_md, report_json, junit)
    merged = merge_reports([read_report(f) for f in files], [str(f) for f in files])
    _write_reports(merged.report, report_md, report_json, junit)
    _print_summary(merged.report)
    if not merged.passed:
        raise SystemExit(1)


COMMANDS: list[click.Command] = [check_cmd, promote, graph, cache, report]
