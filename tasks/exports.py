"""The export's one task: stream an export plan's rows into a file in a storage block.

A read of data that changes, so never served from a cache; retried on infrastructure errors only (the database
or the storage gone for a moment), like every task here.
"""

from __future__ import annotations

from typing import Literal

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.loading import load_database
from blocks.storage import open_file
from core.exporter import ExportPlan
from core.file_writer import open_writer
from tasks.batch import retry_on_infrastructure_error

FileFormat = Literal["csv", "ndjson", "json", "parquet"]


@task(
    name="write-export",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_infrastructure_error,
)
def write_export(
    database: str, plan: ExportPlan, storage: str, path: str, file_format: FileFormat, gzip: bool, page_rows: int
) -> int:
    """Stream the plan's rows into the file; returns how many were written."""
    engine = load_database(database).get_engine()
    with (
        engine.connect() as connection,
        open_file(storage, path, "wb") as stream,
        open_writer(stream, file_format, gzip=gzip, columns=plan.columns) as writer,
    ):
        schema = plan.schema
        streaming = connection.execution_options(stream_results=True, yield_per=page_rows)
        result = streaming.execute(plan.statement)
        for page in result.partitions(page_rows):
            writer.write(pl.DataFrame(page, schema=schema, orient="row"))
        return int(writer.rows_written)
