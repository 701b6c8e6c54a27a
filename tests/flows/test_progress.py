"""The progress monitor writes the counts the batches reported, without recounting the outcome rows."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterId
from prefect.runtime import flow_run

from blocks.loading import load_database
from core.schema import BulkAction
from core.store import create_bulk_action, outcome_counts
from flows.progress import ProgressMonitor
from tests.helpers import seed


@flow(name="drive-progress-monitor")
def drive_monitor(bulk_action_id: int, reports: list[dict[str, int]]) -> dict[str, Any]:
    """What the engine does with a monitor: count each batch's changes, then report the batches finished."""
    db = load_database("default")
    with db.read_session() as session:
        start = outcome_counts(session, bulk_action_id)
    artifact: Any = create_progress_artifact(0.0, key=f"progress-test-{bulk_action_id}")
    monitor = ProgressMonitor(
        db=db,
        bulk_action_id=bulk_action_id,
        flow_run_id=str(flow_run.id),
        artifact_id=artifact,
        total_batches=len(reports),
        counts=start,
        logger=get_run_logger(),
        cancel_check_seconds=30.0,
    )
    with monitor:
        for finished, changes in enumerate(reports, start=1):
            monitor.count(changes)
            monitor.report(finished)
    return {"counts": monitor.counts, "artifact": str(artifact)}


def test_progress_is_the_start_counts_plus_the_reported_changes() -> None:
    # on SQLite alone: the monitor's arithmetic does not depend on the backend (tests/core/test_store.py covers
    # the changes record_results reports on both)
    db = load_database("default")
    ids = seed(db, 6, seed_value=4100)
    with db.session() as session:
        action_id = create_bulk_action(session, action="generate_embeddings", company_ids=ids, created_by="t").id
    # Changes only: no outcome row is written, so a recount would find 6 pending and nothing processed.
    reports = [{"pending": -2, "succeeded": 2}, {}, {"pending": -3, "skipped": 1, "failed": 2}]
    result = drive_monitor(action_id, reports)
    assert (result["counts"].succeeded, result["counts"].skipped, result["counts"].failed) == (2, 1, 2)
    with db.read_session() as session:
        record = session.get(BulkAction, action_id)
        assert record is not None
        assert (record.processed, record.succeeded, record.skipped, record.failed) == (5, 2, 1, 2)
        assert outcome_counts(session, action_id).processed == 0  # the rows themselves were never touched
    with get_client(sync_client=True) as client:  # by id: the server holds many artifacts, a page not all of them
        progress = client.read_artifacts(
            artifact_filter=ArtifactFilter(id=ArtifactFilterId(any_=[UUID(result["artifact"])]))
        )
    assert len(progress) == 1 and progress[0].data == 100.0
