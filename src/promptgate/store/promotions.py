"""Promotion requests (table `promotions`): filed, read, listed, moved along by compare-and-swap
on their state, and decided (approve moves the labels, with the decision and move events, in
one transaction)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..domain import PromotionRequest
from ..errors import BadInput, LabelConflict, UnknownRef
from .core import Store
from .engine import new_id, utcnow
from .schema import promotions


def _promotion(row: Any) -> PromotionRequest:
    return PromotionRequest(
        id=row.id,
        refs=tuple(json.loads(row.refs)),
        label=row.label,
        reason=row.reason,
        author=row.author,
        state=row.state,
        candidates=json.loads(row.candidates),
        baseline=json.loads(row.baseline),
        report_id=row.report_id,
        progress=json.loads(row.progress),
        decided_by=row.decided_by,
        comment=row.comment,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def create_promotion(
    store: Store,
    *,
    refs: list[str],
    label: str,
    reason: str,
    author: str,
    candidates: dict[str, Any],
    baseline: dict[str, Any],
) -> PromotionRequest:
    """File a promotion request (state `gating`) with its request events, one per prompt."""

    def run(conn: Connection) -> PromotionRequest:
        now = utcnow()
        result = conn.execute(
            promotions.insert().values(
                label=label,
                reason=reason,
                author=author,
                state="gating",
                refs=json.dumps(refs),
                candidates=json.dumps(candidates),
                baseline=json.dumps(baseline),
                progress=json.dumps({"done": 0, "total": 0}),
                created_at=now,
                updated_at=now,
            )
        )
        pid = new_id(result)
        for name, cand in candidates.items():
            store.record_event(
                conn,
                "request",
                name,
                label,
                baseline.get(name),
                cand["version"],
                author,
                reason,
                now,
                {"request": pid},
            )
        row = conn.execute(sa.select(promotions).where(promotions.c.id == pid)).one()
        return _promotion(row)

    result: PromotionRequest = store.write_retrying(run, attempts=3)
    return result


def get_promotion(store: Store, pid: int) -> PromotionRequest:
    with store.reading() as conn:
        row = conn.execute(sa.select(promotions).where(promotions.c.id == pid)).first()
    if row is None:
        raise UnknownRef(f"no promotion request {pid}")
    return _promotion(row)


def list_promotions(store: Store, state: str | None = None) -> list[PromotionRequest]:
    query = sa.select(promotions).order_by(promotions.c.id.desc())
    if state:
        query = query.where(promotions.c.state == state)
    with store.reading() as conn:
        return [_promotion(r) for r in conn.execute(query)]


def update_promotion(
    store: Store,
    pid: int,
    *,
    expect_state: str | tuple[str, ...],
    conn: Connection | None = None,
    **values: Any,
) -> bool:
    """Compare-and-swap a request's fields on its state; False if the state had moved."""
    states = (expect_state,) if isinstance(expect_state, str) else expect_state
    if "progress" in values:
        values["progress"] = json.dumps(values["progress"])
    stmt = (
        promotions.update()
        .where(promotions.c.id == pid, promotions.c.state.in_(states))
        .values(updated_at=utcnow(), **values)
    )
    if conn is not None:
        return bool(conn.execute(stmt).rowcount == 1)
    with store.writing() as c:
        return bool(c.execute(stmt).rowcount == 1)


def record_refused_report(store: Store, pid: int, *, actor: str, reason: str) -> None:
    """Audit a CI report the server refused for a request: one `decision` event per prompt,
    `details.decision = "report-refused"`; the request itself stays as it was."""
    request = get_promotion(store, pid)
    with store.writing() as conn:
        _record_decision(store, conn, request, actor, reason, "report-refused", utcnow())


def _record_decision(
    store: Store,
    conn: Connection,
    request: PromotionRequest,
    actor: str,
    reason: str,
    decision: str,
    now: str,
) -> None:
    """One `decision` audit event per prompt of a request (`details.decision` says which)."""
    for name, cand in request.candidates.items():
        store.record_event(
            conn,
            "decision",
            name,
            request.label,
            request.baseline.get(name),
            cand["version"],
            actor,
            reason,
            now,
            {"request": request.id, "decision": decision},
        )


def decide_promotion(
    store: Store, pid: int, *, approve: bool, actor: str, comment: str | None
) -> PromotionRequest:
    """Approve (move every label by CAS against the baseline the gate judged) or reject a
    passed request, in one transaction with its decision and move events.

    Raises LabelConflict when a label moved since the gate judged it (the request then goes
    stale, recorded in its own transaction), BadInput when the request is not `passed`.
    """

    def run(conn: Connection) -> PromotionRequest:
        row = conn.execute(sa.select(promotions).where(promotions.c.id == pid)).first()
        if row is None:
            raise UnknownRef(f"no promotion request {pid}")
        request = _promotion(row)
        if request.state != "passed":
            raise BadInput(f"request {pid} is {request.state}, not passed")
        now = utcnow()
        if approve:
            for name, cand in request.candidates.items():
                expect = request.baseline.get(name)
                current = store.label_version_in(conn, name, request.label)
                if current != expect:
                    raise LabelConflict(
                        f"{name}@{request.label} moved since the gate judged it (expected "
                        + (f"v{expect}" if expect else "unset")
                        + ", it is "
                        + (f"v{current}" if current else "unset")
                        + ")"
                    )
                if current == cand["version"]:
                    continue
                store.set_label_in(conn, name, request.label, cand["version"], expect, now)
                store.record_event(
                    conn,
                    "move",
                    name,
                    request.label,
                    expect,
                    cand["version"],
                    actor,
                    request.reason,
                    now,
                    {
                        "request": pid,
                        "requester": request.author,
                        "approver": actor,
                        "report": request.report_id,
                    },
                )
        decision = "approved" if approve else "rejected"
        _record_decision(store, conn, request, actor, comment or "", decision, now)
        update_promotion(
            store,
            pid,
            expect_state="passed",
            conn=conn,
            state="approved" if approve else "rejected",
            decided_by=actor,
            comment=comment,
        )
        final = conn.execute(sa.select(promotions).where(promotions.c.id == pid)).one()
        return _promotion(final)

    try:
        result: PromotionRequest = store.write_retrying(run, attempts=3)
    except LabelConflict:
        update_promotion(
            store, pid, expect_state="passed", state="stale", decided_by=actor, comment=comment
        )
        raise
    return result
