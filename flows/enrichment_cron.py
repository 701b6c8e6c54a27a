"""enrichment-cron: the scheduled top-up of company profiles.

Each run picks the companies due (never enriched, stale, or failed with a retryable error; see
``core.maintenance.companies_due_for_enrichment``) and hands them to ``enrich_companies`` as a subflow, so the
enrichment shows up as a child flow run of the cron run and as a bulk action created by ``enrichment-cron``.
Nothing due is a normal outcome: the run says so (log and artifact) and starts nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from blocks.loading import load_database
from core.maintenance import companies_due_for_enrichment, max_priority
from flows.engine import BulkActionSummary
from flows.enrich_companies import DEFAULT_ENRICHMENT_PROVIDER, enrich_companies

CREATED_BY = "enrichment-cron"


@flow(name="enrichment-cron", validate_parameters=True)
def enrichment_cron(
    max_age_days: int = 90,
    limit: int = 500,
    provider: str = DEFAULT_ENRICHMENT_PROVIDER,
    database: str = "default",
) -> dict[str, Any]:
    """Enrich up to ``limit`` due companies, highest priority first.

    Args:
        max_age_days: a profile older than this is due again.
        limit: most companies per run (a cap on what one night may cost).
        provider: enrichment block as ``<block-type>/<name>``.
        database: name of the company-database block.

    Returns:
        A summary: how many were due, and the bulk action's id and status when one ran.
    """
    logger = get_run_logger()
    db = load_database(database)
    with db.session() as session:
        due = companies_due_for_enrichment(session, max_age_days=max_age_days, limit=limit, now=datetime.now(UTC))
        priority = max_priority(session, due)
    if not due:
        message = f"Nothing is due for enrichment (max age {max_age_days} days) in database `{database}`."
        logger.info(message)
        create_markdown_artifact(f"# Enrichment cron\n\n{message}\n", key="enrichment-cron", description=message)
        return {"due": 0, "bulk_action_id": None, "status": "nothing-due", "message": message}

    logger.info("%d companies due for enrichment (priority %d); starting enrich-companies", len(due), priority)
    result = enrich_companies(
        company_ids=due, provider=provider, database=database, created_by=CREATED_BY, priority=priority
    )
    summary: dict[str, Any] = {"due": len(due), "priority": priority, "bulk_action_id": None, "status": "unknown"}
    if isinstance(result, BulkActionSummary):
        summary.update(
            bulk_action_id=result.bulk_action_id,
            status=result.status,
            succeeded=result.succeeded,
            failed=result.failed,
            skipped=result.skipped,
        )
    create_markdown_artifact(
        "# Enrichment cron\n\n"
        f"{len(due)} companies due (max age {max_age_days} days, limit {limit}); "
        f"bulk action `{summary['bulk_action_id']}` ended `{summary['status']}`.\n",
        key="enrichment-cron",
        description=f"{len(due)} companies enriched",
    )
    return summary


if __name__ == "__main__":
    enrichment_cron()
