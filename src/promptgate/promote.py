"""Promotion on a local registry, as a library: the rules `promptgate promote` follows, with
a typed outcome the CLI only prints.

1. `already_at`: refs whose versions the label already holds move nothing and run nothing.
2. The gate runs (`gate.check`: the caller runs it, so it can show progress).
3. `move_after_check`: only a check that passed moves anything; its report is saved first
   and the move names it (the audit event's `details.report`); the move is one
   compare-and-swap against the baseline the check judged, so a label that moved meanwhile
   is a `conflict` (exit 3), never a silent overwrite.

Through a registry server a promotion to a protected label is a request instead
(README: "The registry server and web UI"); this module is for a registry the caller writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .domain import AuditEvent
from .errors import LabelConflict
from .gate import CheckOutcome, apply_promotion, resolve_candidates
from .report import report_digest
from .store import Registry


@dataclass(frozen=True)
class Promotion:
    """What a promotion did. `moved` is empty when nothing moved, and `why_not` says why
    (the check failed, nothing differed from the label, or the label held every candidate);
    `conflict` is set when a label moved while the check ran."""

    moved: tuple[AuditEvent, ...] = ()
    report_id: int | None = None
    why_not: str | None = None
    conflict: LabelConflict | None = None
    passed: bool = True


def already_at(store: Registry, refs: Sequence[str], label: str) -> str | None:
    """A sentence when `label` already points at every ref's version, else None."""
    if not refs:
        return None
    candidates = resolve_candidates(store, refs)
    if all(store.label_version(n, label) == c.version for n, c in candidates.items()):
        named = ", ".join(f"{n}@{c.label}" for n, c in candidates.items())
        return f"{named}: {label} already points there; nothing moved"
    return None


def move_after_check(
    store: Registry, outcome: CheckOutcome, *, label: str, reason: str, actor: str
) -> Promotion:
    """Move the labels of a finished check's candidates, if and only if it passed."""
    if outcome.plan is None:
        return Promotion(why_not=f"nothing differs from {label}; nothing moved")
    if not outcome.passed:
        return Promotion(why_not="gate failed: nothing moved", passed=False)
    digest = report_digest(outcome.report)
    report_id = store.save_report(digest, outcome.report["verdict"], outcome.report)
    try:
        events = apply_promotion(
            store,
            outcome.plan,
            reason=reason,
            actor=actor,
            report_ref={"id": report_id, "digest": digest},
        )
    except LabelConflict as exc:
        return Promotion(report_id=report_id, conflict=exc, passed=True)
    if not events:
        return Promotion(
            report_id=report_id, why_not=f"{label} already points at every candidate; nothing moved"
        )
    return Promotion(moved=tuple(events), report_id=report_id)
