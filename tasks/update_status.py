"""The ``update_status`` batch handler: set the asked fields where they differ, with one history row each.

The changes and the history rows are written in the transaction that records the call's outcomes
(``BatchContext.write_with_outcomes``), so a crash leaves a company either changed, recorded and
historied, or untouched.  A company already as asked is ``skipped`` and gets no history row, so rerunning the
same update changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.history import apply_changes, differs
from core.schema import Company, CompanyStatus, OutcomeStatus
from core.status_update import parse_status_update
from core.store import CompanyResult
from tasks.batch import BatchContext, register_handler


@register_handler("update_status")
def update_status_batch(ctx: BatchContext, company_ids: Sequence[int]) -> list[CompanyResult]:
    wanted = parse_status_update(ctx.options).column_values()
    fields = sorted(wanted)
    columns = [Company.__table__.c[f] for f in fields]
    with ctx.database.read_session() as session:
        rows = session.execute(select(Company.id, Company.status, *columns).where(Company.id.in_(company_ids)))
        current = {row[0]: (row[1], dict(zip(fields, row[2:], strict=True))) for row in rows}
    results: list[CompanyResult] = []
    changes: dict[int, dict[str, object]] = {}
    for cid in company_ids:
        if cid not in current:
            results.append(CompanyResult(cid, OutcomeStatus.FAILED, "the company no longer exists", 1, "CompanyGone"))
            continue
        status, values = current[cid]
        if status is CompanyStatus.MERGED:
            results.append(
                CompanyResult(
                    cid,
                    OutcomeStatus.FAILED,
                    "the company is merged into another; undo the merge with rollback instead",
                    1,
                    "MergedCompany",
                )
            )
            continue
        changed = [f for f in fields if differs(values[f], wanted[f])]
        if changed:
            changes[cid] = wanted
            results.append(CompanyResult(cid, OutcomeStatus.SUCCEEDED, "set " + ", ".join(changed)))
        else:
            results.append(CompanyResult(cid, OutcomeStatus.SKIPPED, "already as asked"))

    def write(session: Session) -> None:
        apply_changes(session, changes, ctx.bulk_action_id)

    if changes:
        ctx.write_with_outcomes(write)
    return results
