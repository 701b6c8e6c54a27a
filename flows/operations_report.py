"""operations-report: every 15 minutes, what the people who run the system need on one page.

It reads the company database's figures (``core.operations_stats``: actions by type and status, companies
waiting, throughput with a chart of the day, error rates, dead jobs, the review queue, spend, circuits, slot
requests) and the Prefect server's (``flows.prefect_footprint``: provider slots in use, the size of Prefect's
database, how many flow and task runs it keeps), and writes one markdown artifact under the key
``operations-report``: the UI's Artifacts page always shows the latest, older versions stay in its history.
The flow changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client

from blocks.loading import load_database
from core.operations_markdown import report_markdown
from core.operations_stats import operations_stats
from flows.prefect_footprint import prefect_figures

ARTIFACT_KEY = "operations-report"


@flow(name="operations-report", validate_parameters=True)
def operations_report(database: str = "default", as_of: datetime | None = None) -> dict[str, Any]:
    """Write the operations report artifact (key ``operations-report``).

    Args:
        database: name of the company-database block.
        as_of: the instant the company-database figures are computed for (default: now, UTC); the Prefect
            figures are always the server's current ones.
    """
    logger = get_run_logger()
    now = (as_of or datetime.now(UTC)).astimezone(UTC)
    db = load_database(database)
    with db.read_session() as session:
        stats = operations_stats(session, now)
    with get_client(sync_client=True) as client:
        prefect = prefect_figures(client)
    artifact_id = create_markdown_artifact(
        report_markdown(stats, prefect),
        key=ARTIFACT_KEY,
        description=f"operations report, {now:%Y-%m-%d %H:%M} UTC",
    )
    waiting = sum(w.pending for w in stats.waiting)
    last_hour = stats.hourly[-1].finished if stats.hourly else 0
    logger.info(
        "operations report: %d companies waiting, %d finished in the last hour, %d open dead jobs, "
        "%d circuits not closed, Prefect database %s bytes (%s)",
        waiting,
        last_hour,
        sum(g.count for g in stats.dead_jobs),
        sum(1 for c in stats.circuits if c.state != "closed"),
        prefect.database.size_bytes,
        prefect.database.how,
    )
    return {
        "artifact_id": str(artifact_id),
        "as_of": now.isoformat(),
        "companies_waiting": waiting,
        "finished_last_hour": last_hour,
        "prefect_database_bytes": prefect.database.size_bytes,
        "flow_runs": prefect.flow_runs,
        "task_runs": prefect.task_runs,
    }


if __name__ == "__main__":
    operations_report()
