"""The ``merge_companies`` batch handler: merge the clusters these winners lead, with history and moves.

The merge runs on the clusters' winners (one outcome per cluster); each winner's cluster of the sweep
(``options["sweep_id"]``) is planned in a read transaction (``core.merge_store.plan_merges``: merge, refuse, or already
merged), and the merges and refusals are written in the transaction that records the call's outcomes
(``BatchContext.write_with_outcomes``), so a crash leaves a cluster either merged, recorded and historied, or
untouched.  A write that finds a cluster or a member changed since its plan raises ``StaleMergePlanError``: the
batch fails, nothing of that call is written, and a rerun plans again.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from core.merge import MERGE_ACTION
from core.merge_store import apply_merges, plan_merges
from core.store import CompanyResult
from tasks.batch import BatchContext, register_handler


@register_handler(MERGE_ACTION)
def merge_batch(ctx: BatchContext, company_ids: Sequence[int]) -> list[CompanyResult]:
    sweep_id = int(ctx.options["sweep_id"])
    with ctx.database.read_session() as session:
        plans = plan_merges(session, sweep_id, company_ids)
    to_write = [plan for plan in plans.values() if plan.writes]

    def write(session: Session) -> None:
        apply_merges(session, to_write, ctx.bulk_action_id)

    if to_write:
        ctx.write_with_outcomes(write)
    return [plans[cid].result() for cid in company_ids]
