"""Promotion requests: filing, the gate run in a background worker, and CI report uploads.

A request freezes its candidates (refs resolved to versions when filed) and the baseline its
gate saw; approval later moves labels only if they still point at that baseline.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..errors import BadInput, PromptgateError
from ..gate import check, resolve_candidates
from ..refs import check_label_name
from ..report import report_digest
from ..store import create_promotion, get_promotion, update_promotion
from ..suites import load_suites
from .app import ApiError, ServerState

log = logging.getLogger("promptgate.server")


def file_request(state: ServerState, *, refs: list[str], label: str, reason: str, author: str,
                 run_gate: bool) -> dict[str, Any]:
    """Record the request and, unless a CI job will upload the report, start its gate."""
    store = state.store
    check_label_name(label)
    if label == "latest":
        raise BadInput("`latest` moves only on push")
    for ref in refs:
        if "/" in ref or ref.endswith((".yaml", ".yml")):
            raise BadInput(f"{ref}: a draft cannot be promoted: push it first")
    candidates = resolve_candidates(store, refs)
    frozen = {n: {"version": c.version, "content_hash": c.content_hash}
              for n, c in candidates.items()}
    baseline = {n: store.label_version(n, label) for n in candidates}
    promotion = create_promotion(store, refs=[f"{n}@v{c['version']}" for n, c in frozen.items()],
                                 label=label, reason=reason, author=author,
                                 candidates=frozen, baseline=baseline)
    if run_gate:
        state.gates[promotion["id"]] = state.gate_pool.submit(_run_gate, state, promotion["id"])
    return promotion


class _Stopping(Exception):
    """The server is stopping: end this gate run now (`abandon_gates` has failed it)."""


def abandon_gates(state: ServerState) -> None:
    """Fail the requests whose gate this server started and did not finish: fail closed, so
    that nobody waits on a `gating` request forever; the author files it again."""
    for pid, future in list(state.gates.items()):
        if future.done():
            continue
        try:
            promotion = get_promotion(state.store, pid)
            report = _failure_report(promotion["label"],
                                     "the server stopped before the gate finished")
            report_id = state.store.save_report(report_digest(report), "fail", report)
            update_promotion(state.store, pid, expect_state="gating", state="failed",
                             report_id=report_id)
        except Exception:  # stopping: log it, and go on with the others
            log.exception("could not fail the unfinished gate of request %s", pid)
    state.hub.notify()


def _failure_report(label: str, failure: str) -> dict[str, Any]:
    return {"schema_version": 1, "verdict": "fail", "label": label, "failures": [failure],
            "candidates": [], "suites": [], "problems": []}


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
        progress["total"] = sum(len(s.cases) for n in plan.affected
                                for s in plan.suites.get(n, []))
        baseline = {n: plan.expectations.get(n) for n in promotion["candidates"]}
        update_promotion(store, pid, expect_state="gating", progress=progress,
                         baseline=_json(baseline))
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
        outcome = check(store, state.settings.config, promotion["refs"],
                        label=promotion["label"], on_plan=on_plan, on_case=on_case,
                        baseline=False)
        report = outcome.report
        passed = outcome.passed
    except PromptgateError as exc:
        report = _failure_report(promotion["label"], str(exc))
        passed = False
    except Exception as exc:  # never leave a request gating forever
        if state.stopping:
            return  # abandon_gates has failed it
        log.exception("gate for request %s crashed", pid)
        report = _failure_report(promotion["label"], f"internal error: {type(exc).__name__}")
        passed = False
    # A verdict reached is written even while stopping: the write is a compare-and-swap on
    # `gating`, so it and abandon_gates (which sees this future still running) cannot both win.
    digest = report_digest(report)
    report_id = store.save_report(digest, report["verdict"], report)
    update_promotion(store, pid, expect_state="gating", state="passed" if passed else "failed",
                     report_id=report_id, progress=progress)
    state.hub.notify()


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def accept_report(state: ServerState, pid: int, report: dict[str, Any]) -> dict[str, Any]:
    """Take a CI job's JSON report for a request, only if it judged exactly this request:
    the same candidate hashes, the same baseline, and suites with the server's digests."""
    store = state.store
    promotion = get_promotion(store, pid)
    if promotion["state"] != "gating":
        raise ApiError(409, "conflict", f"request {pid} is {promotion['state']}, not gating")
    if report.get("schema_version") != 1 or report.get("verdict") not in ("pass", "fail"):
        raise ApiError(400, "bad_request", "not a promptgate JSON report (schema_version 1)")
    if report.get("label") != promotion["label"]:
        raise ApiError(409, "mismatch", "the report judged another label")
    hashes = {c.get("name"): c.get("content_hash") for c in report.get("candidates", [])}
    want = {n: c["content_hash"] for n, c in promotion["candidates"].items()}
    if hashes != want:
        raise ApiError(409, "mismatch", "the report's candidates are not this request's")
    baselines = {b.get("name"): b.get("version") for b in report.get("baselines", [])}
    for name, version in promotion["baseline"].items():
        if baselines.get(name) != version:
            raise ApiError(409, "mismatch", f"the report's baseline of {name} differs")
    suites = load_suites(state.settings.config.root / state.settings.config.evals)
    for entry in report.get("suites", []):
        digests = {s.digest for s in suites.get(entry.get("prompt"), [])}
        if entry.get("digest") not in digests:
            raise ApiError(409, "mismatch",
                           f"suite {entry.get('path')} differs from the server's")
    if not report.get("suites"):
        raise ApiError(409, "mismatch", "the report ran no suite")
    digest = report_digest(report)
    report_id = store.save_report(digest, report["verdict"], report)
    update_promotion(store, pid, expect_state="gating",
                     state="passed" if report["verdict"] == "pass" else "failed",
                     report_id=report_id)
    return get_promotion(store, pid)
