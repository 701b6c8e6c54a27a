"""The ``reclassify`` batch handler, local mode: deterministic rules, no provider, no cost.

Each company's new fields and their history rows are written in the transaction that records the batch's
outcomes (``BatchContext.write_with_outcomes``), so a crash leaves a company either reclassified, recorded and
historied, or untouched.  A company that is current (``core.reclassify``) is skipped unless ``force``; one
whose classification comes out the same is skipped too, with no history row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.history import apply_changes, differs
from core.reclassify import CLASSIFY_COLUMNS, RULES_MODEL, ClassifyInput, local_classification, wanted_values
from core.schema import Company, CompanyStatus, OutcomeStatus, utcnow
from core.store import CompanyResult
from tasks.batch import BatchContext, register_handler


@register_handler("reclassify")
def reclassify_batch(ctx: BatchContext, company_ids: Sequence[int]) -> list[CompanyResult]:
    force = bool(ctx.options.get("force", False))
    target = ctx.options.get("target_column")
    with ctx.database.read_session() as session:
        rows = session.execute(select(*CLASSIFY_COLUMNS, Company.status).where(Company.id.in_(company_ids))).all()
    found = {row[0]: (ClassifyInput(*row[:-1]), row[-1]) for row in rows}  # type: ignore[arg-type]
    results: list[CompanyResult] = []
    changes: dict[int, dict[str, Any]] = {}
    for cid in company_ids:
        if cid not in found:
            results.append(CompanyResult(cid, OutcomeStatus.FAILED, "the company no longer exists", 1, "CompanyGone"))
            continue
        row, status = found[cid]
        if status is CompanyStatus.MERGED:
            results.append(CompanyResult(cid, OutcomeStatus.SKIPPED, "merged into another company", 0))
            continue
        if not force and not row.outdated():
            results.append(CompanyResult(cid, OutcomeStatus.SKIPPED, "classification is current", 0))
            continue
        classification = local_classification(row)
        values = wanted_values(row, classification, mode="local", model=RULES_MODEL, target_column=target)
        current = {"sector": row.sector, "subsector": row.subsector, "business_model": row.business_model}
        moved = [f for f in ("sector", "subsector", "business_model") if f in values and differs(current[f], values[f])]
        changes[cid] = values
        where = classification.sector or "unplaced"
        if classification.subsector:
            where += f" {classification.subsector}"
        detail = f"{where}, {classification.business_model} ({classification.confidence})"
        status_of = OutcomeStatus.SUCCEEDED if moved or row.outdated() else OutcomeStatus.SKIPPED
        results.append(CompanyResult(cid, status_of, ("set " if moved else "unchanged: ") + detail, 0))

    def write(session: Session) -> None:
        apply_changes(session, changes, ctx.bulk_action_id)
        session.execute(update(Company).where(Company.id.in_(list(changes))).values(classified_at=utcnow()))

    if changes:
        ctx.write_with_outcomes(write)
    return results
