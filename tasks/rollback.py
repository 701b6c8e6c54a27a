"""The ``rollback`` batch handler: restore what another bulk action changed, from the change history.

The restores and their history rows (under the rollback's own bulk action, of kind ``rolled_back``) are written
in the transaction that records the batch's outcomes.  A company's conflicting fields (changed again since, see
``core.rollback``) are left alone unless ``force`` and named in its outcome, so the summary and the outcome rows
say what was kept.

Rolling back a merge also puts back what it moved (score rows to their loser, closed dead jobs to their status
before) and marks its clusters ``rolled_back`` (``core.merge_undo.plan_merge_undo``), in the same transaction; a
moved row changed since (rescored, moved again, pruned) is kept where it is and named like a conflicting field.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from core.history import apply_changes
from core.merge_undo import apply_merge_undo, plan_merge_undo
from core.rollback import plan_rollback
from core.schema import OutcomeStatus
from core.store import CompanyResult
from tasks.batch import BatchContext, register_handler

CONFLICT_PREFIX = "conflict"
#: the history kind of a restore, so the history reads "rolled back" rather than "changed" (``core.schema``);
#: ``core.rollback`` reads rows by bulk action whatever their kind, so a rollback of a rollback still redoes
ROLLED_BACK = "rolled_back"


@register_handler("rollback")
def rollback_batch(ctx: BatchContext, company_ids: Sequence[int]) -> list[CompanyResult]:
    target = int(ctx.options["rollback_of"])
    force = bool(ctx.options.get("force", False))
    with ctx.database.read_session() as session:
        plan = plan_rollback(session, target, company_ids, force=force)
        undo = plan_merge_undo(session, target, company_ids)
    results: list[CompanyResult] = []
    for cid in company_ids:
        restored = sorted(plan.changes.get(cid, {}))
        put_back = undo.done_for(cid)
        conflicts = [f"{c.field}: {c.reason}" for c in plan.conflicts.get(cid, [])] + undo.conflicts_for(cid)
        kept = "; ".join(conflicts)
        if cid in plan.untouched and not put_back and not conflicts:
            results.append(CompanyResult(cid, OutcomeStatus.SKIPPED, f"bulk action {target} changed nothing here", 0))
        elif restored or put_back:
            done = [f"restored {', '.join(restored)}"] if restored else []
            detail = "; ".join(done + put_back) + (f"; {CONFLICT_PREFIX}s kept: {kept}" if kept else "")
            results.append(CompanyResult(cid, OutcomeStatus.SUCCEEDED, detail, 0))
        elif conflicts:
            results.append(CompanyResult(cid, OutcomeStatus.SKIPPED, f"{CONFLICT_PREFIX}s kept: {kept}", 0))
        else:
            results.append(CompanyResult(cid, OutcomeStatus.SKIPPED, "already as before the action", 0))

    def write(session: Session) -> None:
        apply_changes(session, plan.changes, ctx.bulk_action_id, kind=ROLLED_BACK)
        apply_merge_undo(session, undo, ctx.bulk_action_id)

    if plan.changes or undo.has_work:
        ctx.write_with_outcomes(write)
    return results
