"""What an import tells the people who ran it: counts, live progress, the rejected-rows file, the summary.

Kept apart from the flow so ``import_companies`` reads as the orchestration it is.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, BinaryIO, Literal

import polars as pl
from prefect import get_run_logger
from prefect.artifacts import create_link_artifact, create_table_artifact
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update

from blocks.storage import file_location, open_file
from core.column_mapping import ColumnMap
from core.file_writer import TableWriter, open_writer
from core.importer import Rejected
from core.schema import BulkAction, BulkActionStatus, utcnow
from flows.action_end import artifact_key
from tasks.imports import ChunkReport

#: an original value shown in the rejected-rows file is cut to this many characters
SHOWN_CHARS = 1_000


class FollowUp(BaseModel):
    """An action to run on the import's companies once the import is done."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["generate_embeddings", "enrich_companies", "score_llm_adoption", "update_status"]
    outcome: Literal["all", "succeeded", "skipped"] = Field(
        default="all", description="all the file's companies, those inserted or updated, or the duplicates only"
    )
    provider: str | None = Field(default=None, description="Provider block; empty for the action's default.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="The action's own parameters.")


@dataclass
class ImportTally:
    """The import's running counts, stored on its bulk action after every chunk."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0
    unchanged: int = 0
    rejected: int = 0
    fields_changed: int = 0
    chunks: int = 0
    chunks_from_checkpoint: int = 0
    stopped: bool = False
    reason: str | None = None

    def add(self, report: ChunkReport, from_checkpoint: bool) -> None:
        self.chunks += 1
        self.chunks_from_checkpoint += from_checkpoint
        self.read += report.read
        self.rejected += len(report.rejected)
        self.inserted += report.inserted
        self.updated += report.updated
        self.duplicates += report.duplicates
        self.unchanged += report.unchanged
        self.fields_changed += report.fields_changed

    def store(self, db: Any, import_id: int, status: BulkActionStatus | None = None) -> None:
        values: dict[str, Any] = {
            "total": self.read,
            "processed": self.read,
            "succeeded": self.inserted + self.updated,
            "skipped": self.duplicates + self.unchanged,
            "failed": self.rejected,
            "error_summary": {"rejected": self.rejected} if self.rejected else {},
            "updated_at": utcnow(),
        }
        if status is not None:
            values.update(status=status, status_reason=self.reason, finished_at=utcnow())
        with db.session() as session:
            session.execute(update(BulkAction).where(BulkAction.id == import_id).values(**values))

    def stop(self, db: Any, import_id: int, max_rejected_ratio: float) -> None:
        self.stopped = True
        self.reason = (
            f"stopped at row {self.read:,}: {self.rejected:,} of {self.read:,} rows rejected "
            f"({self.rejected / max(self.read, 1):.1%}), more than max_rejected_ratio={max_rejected_ratio:.0%}; "
            "the rows before the chunk that passed the limit are imported (see the rejected-rows file)"
        )
        self.store(db, import_id, BulkActionStatus.FAILED)

    def finish(self, db: Any, import_id: int) -> None:
        self.store(db, import_id, BulkActionStatus.COMPLETED)


class RejectedFile:
    """The rejected-rows file next to the source: row number, reason, then the file's own columns.

    Opened on the first rejected row only, so a clean import leaves no empty file behind.
    """

    def __init__(self, storage: str, source: str, import_id: int, columns: list[str]) -> None:
        self.storage = storage
        self.path = f"{source}.rejected-{import_id}.csv"
        self.columns = ["row_number", "reason", *[c for c in columns if c not in ("row_number", "reason")]]
        self.rows = 0
        self._stack = contextlib.ExitStack()
        self._writer: TableWriter | None = None

    def __enter__(self) -> RejectedFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stack.close()

    def write(self, rejected: list[Rejected]) -> None:
        if not rejected:
            return
        if self._writer is None:
            stream: BinaryIO = self._stack.enter_context(open_file(self.storage, self.path, "wb"))
            self._writer = self._stack.enter_context(open_writer(stream, "csv", gzip=False, columns=self.columns))
        frame = pl.DataFrame(
            [
                {
                    "row_number": str(number),
                    "reason": reason,
                    **{c: _shown(values.get(c)) for c in self.columns[2:]},
                }
                for number, reason, values in rejected
            ],
            schema=dict.fromkeys(self.columns, pl.String),
        )
        self._writer.write(frame)
        self.rows += len(rejected)

    @property
    def location(self) -> str | None:
        return file_location(self.storage, self.path) if self.rows else None


def _shown(value: str | None) -> str | None:
    if value is None or len(value) <= SHOWN_CHARS:
        return value
    return value[:SHOWN_CHARS] + f"… ({len(value):,} characters)"


@dataclass(frozen=True)
class ImportSummary:
    """What the import did; the flow run's result."""

    bulk_action_id: int | None
    status: str
    source: str
    read: int
    inserted: int
    updated: int
    duplicates: int
    unchanged: int
    rejected: int
    unmapped_columns: list[str]
    rejected_file: str | None
    seconds: float
    dry_run: bool = False
    reason: str | None = None
    chunks: int = 0
    chunks_from_checkpoint: int = 0
    follow_ups: list[Any] = field(default_factory=list)


def report_import(
    import_id: int | None,
    settings: dict[str, Any],
    opened: Any,
    column_map: ColumnMap,
    tally: ImportTally,
    rejected: RejectedFile | None,
    follow_ups: list[Any],
    started: float,
    *,
    dry_run: bool = False,
) -> ImportSummary:
    """The summary table and rejected-rows link artifacts, a log line, and the flow run's result."""
    status = "dry run" if dry_run else ("failed" if tally.stopped else "completed")
    summary = ImportSummary(
        bulk_action_id=import_id,
        status=status,
        source=settings["source"],
        read=tally.read,
        inserted=tally.inserted,
        updated=tally.updated,
        duplicates=tally.duplicates,
        unchanged=tally.unchanged,
        rejected=tally.rejected,
        unmapped_columns=column_map.unmapped,
        rejected_file=rejected.location if rejected is not None else None,
        seconds=round(time.perf_counter() - started, 3),
        dry_run=dry_run,
        reason=tally.reason,
        chunks=tally.chunks,
        chunks_from_checkpoint=tally.chunks_from_checkpoint,
        follow_ups=follow_ups,
    )
    what = "would be" if dry_run else "were"
    rows = [
        {"metric": "rows read", "value": tally.read},
        {"metric": f"companies that {what} inserted", "value": tally.inserted},
        {"metric": f"companies that {what} updated", "value": tally.updated},
        {"metric": "duplicates skipped", "value": tally.duplicates},
        {"metric": "duplicates already up to date", "value": tally.unchanged},
        {"metric": "rows rejected", "value": tally.rejected},
        {"metric": "chunks (from checkpoints)", "value": f"{tally.chunks} ({tally.chunks_from_checkpoint})"},
        {"metric": "columns not imported", "value": ", ".join(column_map.unmapped) or "none"},
        {"metric": "columns imported", "value": ", ".join(f"{c} → {f}" for c, f in column_map.fields.items())},
        {"metric": "status", "value": status + (f": {tally.reason}" if tally.reason else "")},
    ]
    key = artifact_key("import_companies", import_id, "summary") if import_id is not None else None
    create_table_artifact(rows, key=key, description=f"import of {settings['source']}")  # type: ignore[arg-type]
    if summary.rejected_file is not None and rejected is not None:
        create_link_artifact(
            summary.rejected_file,
            link_text=f"{rejected.rows:,} rejected rows of {settings['source']}",
            key=artifact_key("import_companies", import_id or 0, "rejected"),
            description="row number, reason and the original values of every rejected row",
        )
    get_run_logger().info("import %s: %s", import_id if import_id is not None else "(dry run)", asdict(summary))
    return summary
