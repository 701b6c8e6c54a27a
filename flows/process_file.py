"""process_file: the product's CSV in → AI over every row → CSV out, as one parent flow run of linked steps.

1. ``import_companies`` brings the file's companies in (validated, deduplicated);
2. each chosen action (``generate_embeddings``, ``score_llm_adoption``, ``enrich_companies``...) runs on the
   import's companies;
3. ``export_companies`` writes those companies with the actions' outputs to a file.

Each step is a child flow run of this one, so the UI shows the whole pipeline and each step's own progress.
The pipeline is recorded as a bulk action of type ``process_file``; its steps' bulk actions carry
``created_by="process-file <id>"``, which is how a rerun finds them.  A rerun (a Prefect retry of the flow
run, or a new run with ``bulk_action_id``) skips the steps that completed and resumes the one that stopped
from its checkpoints (``bulk_action_id`` + ``takeover``), so no paid call is made twice; the export, a cheap
read, is written again.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from sqlalchemy import select

from blocks.loading import load_database
from blocks.storage import DEFAULT_STORAGE
from core.errors import InputError
from core.schema import BulkAction, BulkActionStatus
from core.selection import Selection
from core.store import create_bulk_action, find_bulk_action_by_flow_run, set_status
from flows.bulk_action import action_flow
from flows.engine import BULK_ACTION_HOOKS
from flows.export_companies import ExportSummary, export_companies
from flows.import_companies import import_companies
from flows.import_report import FollowUp
from tasks.exports import FileFormat

ACTION = "process_file"
#: what each action adds to the exported file
ACTION_COLUMNS: dict[str, tuple[str, ...]] = {
    "generate_embeddings": ("embeddings",),
    "enrich_companies": ("enrichment",),
    "score_llm_adoption": ("scores",),
    "update_status": ("review",),
}


@flow(name="process-file", validate_parameters=True, **BULK_ACTION_HOOKS)
def process_file(
    source: str,
    actions: list[FollowUp] | None = None,
    destination: str | None = None,
    storage: str = DEFAULT_STORAGE,
    column_mapping: dict[str, str] | None = None,
    mode: Literal["skip", "update"] = "skip",
    file_format: FileFormat = "csv",
    gzip: bool = False,
    database: str = "default",
    created_by: str = "prefect",
    bulk_action_id: int | None = None,
) -> ExportSummary:
    """Import a file, run actions on its companies, and export them with the actions' outputs.

    Args:
        source: the file's path in ``storage`` (CSV, NDJSON, JSON or Parquet, gzip or not).
        actions: the actions to run in order, e.g. ``[{"action": "generate_embeddings"},
            {"action": "score_llm_adoption", "provider": "groq-llm/team"}]``; empty: embeddings only.
        destination: the output file's path in ``storage``; empty: ``<source>.processed-<id>.<format>``.
        storage: ``<block-type>/<name>`` of a filesystem block.
        column_mapping: as for ``import_companies``.
        mode: as for ``import_companies`` (``skip`` or ``update`` companies already known).
        file_format: the output's format (csv, ndjson, json, parquet); ``gzip`` compresses it.
        database: name of the company-database block.
        created_by: who asked, recorded on every step.
        bulk_action_id: resume this pipeline; the steps that completed are not run again.
    """
    steps = actions if actions is not None else [FollowUp(action="generate_embeddings")]
    logger = get_run_logger()
    db = load_database(database)
    process_id = _open_record(db, bulk_action_id, source, steps, created_by)
    tag = f"process-file {process_id}"

    imported = _step(db, tag, "import_companies")
    if imported is None or imported.status is not BulkActionStatus.COMPLETED:
        summary = import_companies(
            source=source,
            storage=storage,
            column_mapping=column_mapping,
            mode=mode,
            database=database,
            created_by=tag,
            bulk_action_id=imported.id if imported is not None else None,
            takeover=imported is not None,
        )
        if summary.status != "completed" or summary.bulk_action_id is None:
            raise InputError(f"the import of {source} did not complete: {summary.reason or summary.status}")
        import_id = summary.bulk_action_id
    else:
        import_id = imported.id
        logger.info("import %d completed before: not run again", import_id)
    selection = Selection.model_validate({"from_action": {"bulk_action_id": import_id, "outcome": "all"}})

    columns: list[str] = ["company"]
    for step in steps:
        columns.extend(c for c in ACTION_COLUMNS.get(step.action, ()) if c not in columns)
        done = _step(db, tag, step.action)
        if done is not None and done.status is BulkActionStatus.COMPLETED:
            logger.info("%s completed before (bulk action %d): not run again", step.action, done.id)
            continue
        parameters: dict[str, Any] = {"database": database, "created_by": tag, **step.parameters}
        if done is not None:
            parameters.update(bulk_action_id=done.id, takeover=True)
        else:
            parameters["selection"] = {"from_action": {"bulk_action_id": import_id, "outcome": step.outcome}}
        if step.provider and done is None:
            parameters["provider"] = step.provider
        action_flow(step.action)(**parameters)

    output = destination or f"{source}.processed-{process_id}.{file_format}{'.gz' if gzip else ''}"
    exported: ExportSummary = export_companies(
        selection=selection,
        columns=columns,
        file_format=file_format,
        gzip=gzip,
        destination=output,
        storage=storage,
        database=database,
        created_by=tag,
    )
    with db.session() as session:
        set_status(session, process_id, BulkActionStatus.COMPLETED)
        record = session.get(BulkAction, process_id)
        assert record is not None
        record.total = record.processed = record.succeeded = exported.rows
        record.parameters = {**(record.parameters or {}), "import_id": import_id, "output": exported.location}
    return exported


def _open_record(db: Any, bulk_action_id: int | None, source: str, steps: list[FollowUp], created_by: str) -> int:
    flow_run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    with db.session() as session:
        record = find_bulk_action_by_flow_run(session, flow_run_id)
        if record is None and bulk_action_id is not None:
            record = session.get(BulkAction, bulk_action_id)
            if record is None or record.action != ACTION:
                raise InputError(f"there is no process_file run {bulk_action_id} in this database")
            record.flow_run_id = flow_run_id
        if record is None:
            record = create_bulk_action(
                session,
                action=ACTION,
                company_ids=[],
                created_by=created_by,
                flow_run_id=flow_run_id,
                parameters={"source": source, "actions": [s.model_dump() for s in steps]},
            )
        record.status = BulkActionStatus.RUNNING
        session.flush()
        return record.id


def _step(db: Any, tag: str, action: str) -> BulkAction | None:
    """The latest bulk action this pipeline ran for ``action``, if any."""
    with db.read_session() as session:
        record: BulkAction | None = session.scalars(
            select(BulkAction)
            .where(BulkAction.created_by == tag, BulkAction.action == action)
            .order_by(BulkAction.id.desc())
            .limit(1)
        ).first()
        if record is not None:
            session.expunge(record)
        return record
