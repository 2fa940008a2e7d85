"""Promotion requests: filing, the gate run in a background worker, and CI report uploads.

A request freezes its candidates (refs resolved to versions when filed) and the baseline its
gate saw; approval later moves labels only if they still point at that baseline.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..domain import PromotionRequest
from ..errors import BadInput, LabelConflict, PromptgateError
from ..gate import check, judge_report, plan_check, resolve_candidates
from ..refs import check_label_name
from ..report import report_digest
from ..store import (
    create_promotion,
    decide_promotion,
    get_promotion,
    record_refused_report,
    update_promotion,
)
from .state import ApiError, ServerState

log = logging.getLogger("promptgate.server")


def file_request(
    state: ServerState, *, refs: list[str], label: str, reason: str, author: str, run_gate: bool
) -> PromotionRequest:
    """Record the request and, unless a CI job will upload the report, start its gate."""
    store = state.store
    if state.stopping:
        raise ApiError(503, "unavailable", "the server is stopping: file the request again")
    check_label_name(label)
    if label == "latest":
        raise BadInput("`latest` moves only on push")
    for ref in refs:
        if "/" in ref or ref.endswith((".yaml", ".yml")):
            raise BadInput(f"{ref}: a draft cannot be promoted: push it first")
    candidates = resolve_candidates(store, refs)
    frozen = {
        n: {"version": c.version, "content_hash": c.content_hash} for n, c in candidates.items()
    }
    baseline = {n: store.label_version(n, label) for n in candidates}
    promotion = create_promotion(
        store,
        refs=[f"{n}@v{c['version']}" for n, c in frozen.items()],
        label=label,
        reason=reason,
        author=author,
        candidates=frozen,
        baseline=baseline,
    )
    if run_gate:
        pid = promotion.id
        try:
            state.gates[pid] = state.gate_pool.submit(_run_gate, state, pid)
        except RuntimeError:  # the pool shut down between the check above and now
            _fail_stopped(state, pid, promotion.label)
            raise ApiError(
                503, "unavailable", "the server is stopping: file the request again"
            ) from None
    return promotion


STOPPED = "the server stopped before the gate finished"


class _Stopping(Exception):
    """The server is stopping: end this gate run now, failing its request."""


def abandon_gates(state: ServerState) -> None:
    """Fail the requests whose gate this server started and did not finish (running, or
    queued and cancelled by the pool's shutdown): fail closed, so that nobody waits on a
    `gating` request forever; the author files it again. A gate that finishes removes itself
    from `state.gates` only after writing its verdict, and every write is a compare-and-swap
    on `gating`: whichever comes first wins."""
    for pid, future in list(state.gates.items()):
        if future.done() and not future.cancelled():
            continue
        try:
            _fail_stopped(state, pid, get_promotion(state.store, pid).label)
        except Exception:  # stopping: log it, and go on with the others
            log.exception("could not fail the unfinished gate of request %s", pid)
    state.hub.notify()


def _fail_stopped(state: ServerState, pid: int, label: str) -> None:
    report = _failure_report(label, STOPPED)
    report_id = state.store.save_report(report_digest(report), "fail", report)
    update_promotion(state.store, pid, expect_state="gating", state="failed", report_id=report_id)


def _failure_report(label: str, failure: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "verdict": "fail",
        "label": label,
        "failures": [failure],
        "candidates": [],
        "suites": [],
        "problems": [],
    }


def _run_gate(state: ServerState, pid: int) -> None:
    try:
        _gate(state, pid)
    finally:
        state.gates.pop(pid, None)


def _gate(state: ServerState, pid: int) -> None:
    store = state.store
    promotion = get_promotion(store, pid)
    progress = {"done": 0, "total": 0}
    last_write = [0.0]
    lock = threading.Lock()

    def on_plan(plan: Any) -> None:
        progress["total"] = sum(len(s.cases) for n in plan.affected for s in plan.suites.get(n, []))
        baseline = {n: plan.expectations.get(n) for n in promotion.candidates}
        update_promotion(
            store, pid, expect_state="gating", progress=progress, baseline=_json(baseline)
        )
        state.hub.notify()

    def on_case(job: Any, result: Any) -> None:
        if state.stopping:
            raise _Stopping()
        if not job.key.startswith("candidate:"):
            return
        with lock:
            progress["done"] += 1
            now = time.monotonic()
            if now - last_write[0] > 0.3 or progress["done"] == progress["total"]:
                last_write[0] = now
                update_promotion(store, pid, expect_state="gating", progress=dict(progress))

    try:
        outcome = check(
            store,
            state.settings.config,
            list(promotion.refs),
            label=promotion.label,
            on_plan=on_plan,
            on_case=on_case,
        )
        report = outcome.report
        passed = outcome.passed
    except PromptgateError as exc:
        report = _failure_report(promotion.label, str(exc))
        passed = False
    except Exception as exc:  # never leave a request gating forever
        if state.stopping:
            report = _failure_report(promotion.label, STOPPED)
        else:
            log.exception("gate for request %s crashed", pid)
            report = _failure_report(promotion.label, f"internal error: {type(exc).__name__}")
        passed = False
    # A verdict reached is written even while stopping: the write is a compare-and-swap on
    # `gating`, so it and abandon_gates (which sees this future still running) cannot both win.
    digest = report_digest(report)
    report_id = store.save_report(digest, report["verdict"], report)
    update_promotion(
        store,
        pid,
        expect_state="gating",
        state="passed" if passed else "failed",
        report_id=report_id,
        progress=progress,
    )
    state.hub.notify()


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def accept_report(
    state: ServerState, pid: int, report: dict[str, Any], *, actor: str
) -> PromotionRequest:
    """Take a CI job's JSON report for a request, only if it judged exactly this request (the
    same candidate hashes and baseline, every affected suite with the server's digests) and its
    verdict is what its cases give; a refused report is audited and changes nothing."""
    store = state.store
    promotion = get_promotion(store, pid)
    if promotion.state != "gating":
        raise ApiError(409, "conflict", f"request {pid} is {promotion.state}, not gating")
    if report.get("schema_version") != 1 or report.get("verdict") not in (
        "pass",
        "fail",
        "inconclusive",
    ):
        raise ApiError(400, "bad_request", "not a promptgate JSON report (schema_version 1)")
    if report.get("label") != promotion.label:
        raise ApiError(409, "mismatch", "the report judged another label")
    hashes = {c.get("name"): c.get("content_hash") for c in report.get("candidates", [])}
    want = {n: c["content_hash"] for n, c in promotion.candidates.items()}
    if hashes != want:
        raise ApiError(409, "mismatch", "the report's candidates are not this request's")
    baselines = {b.get("name"): b.get("version") for b in report.get("baselines", [])}
    for name, version in promotion.baseline.items():
        if baselines.get(name) != version:
            raise ApiError(409, "mismatch", f"the report's baseline of {name} differs")
    config = state.settings.config
    # The server judges the report itself: its own plan of the frozen candidates (affected set,
    # suites and digests from its evals folder) and the gate's own verdict rule.
    plan = plan_check(
        store,
        list(promotion.refs),
        label=promotion.label,
        suites_dir=config.root / config.evals,
        allow_missing_suites=config.gate.allow_missing_suites,
        compare=config.gate.compare,
    )
    try:
        passed = judge_report(plan, report).passed
    except BadInput as exc:
        record_refused_report(store, pid, actor=actor, reason=str(exc))
        raise ApiError(409, "mismatch", str(exc)) from None
    digest = report_digest(report)
    report_id = store.save_report(digest, report["verdict"], report)
    update_promotion(
        store,
        pid,
        expect_state="gating",
        state="passed" if passed else "failed",
        report_id=report_id,
    )
    return get_promotion(store, pid)


def decide(
    state: ServerState, pid: int, *, actor: str, approve: bool, comment: str | None
) -> PromotionRequest:
    """Approve (moving the labels by compare-and-swap) or reject a passed request; its author
    may not decide it."""
    store = state.store
    promotion = get_promotion(store, pid)
    if promotion.author == actor:
        raise ApiError(403, "forbidden", "a request cannot be decided by its author")
    if promotion.state != "passed":
        raise ApiError(409, "conflict", f"request {pid} is {promotion.state}, not passed")
    try:
        decided = decide_promotion(store, pid, approve=approve, actor=actor, comment=comment)
    except LabelConflict as exc:
        state.hub.notify()
        raise ApiError(409, "stale", f"request {pid} is stale: {exc}") from None
    except BadInput as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    state.hub.notify()
    return decided
