"""process_file on a real Prefect server: a CSV in, actions over its companies, a CSV out; a rerun pays nothing."""

from __future__ import annotations

import csv
import io
import uuid

from sqlalchemy import select

from blocks.database import CompanyDatabase
from blocks.storage import DEFAULT_STORAGE, open_file
from core.schema import BulkAction, BulkActionStatus
from flows.process_file import process_file


def _put(content: bytes, name: str) -> str:
    path = f"imports/{uuid.uuid4().hex[:8]}/{name}"
    with open_file(DEFAULT_STORAGE, path, "wb") as stream:
        stream.write(content)
    return path


def _steps(db: CompanyDatabase, process_id: int) -> list[tuple[str, BulkActionStatus]]:
    with db.session() as session:
        rows = session.execute(
            select(BulkAction.action, BulkAction.status)
            .where(BulkAction.created_by == f"process-file {process_id}")
            .order_by(BulkAction.id)
        )
        return [(action, status) for action, status in rows]


def test_a_file_is_imported_embedded_scored_and_exported_and_a_rerun_runs_no_step_twice(
    db: CompanyDatabase, database_name: str
) -> None:
    brand = f"pf{uuid.uuid4().hex[:6]}"
    lines = ["Company,Website,Country"] + [f"{brand} {n} SRL,{brand}{n}.it,Italy" for n in range(4)]
    lines.append(f"{brand.upper()} 0 S.R.L.,www.{brand}0.it,IT")  # a duplicate of the first row
    source = _put("\n".join(lines).encode(), "in.csv")
    actions = [{"action": "generate_embeddings"}, {"action": "score_llm_adoption"}]

    out = process_file(source=source, actions=actions, database=database_name)  # type: ignore[arg-type]

    with open_file(DEFAULT_STORAGE, out.location.split("/storage/", 1)[1], "rb") as stream:
        rows = list(csv.DictReader(io.StringIO(stream.read().decode())))
    assert len(rows) == out.rows == 4
    assert {r["embedding_models"] for r in rows} == {"sentence-transformers/all-MiniLM-L6-v2"}
    assert all(r["score_total"] != "" for r in rows)
    with db.session() as session:
        process_id = session.scalar(
            select(BulkAction.id).where(BulkAction.action == "process_file").order_by(BulkAction.id.desc()).limit(1)
        )
    assert process_id is not None
    steps = _steps(db, process_id)
    assert [a for a, _ in steps] == [
        "import_companies",
        "generate_embeddings",
        "score_llm_adoption",
        "export_companies",
    ]
    assert {s for _, s in steps} == {BulkActionStatus.COMPLETED}

    again = process_file(source=source, actions=actions, database=database_name, bulk_action_id=process_id)  # type: ignore[arg-type]

    assert again.rows == 4
    assert [a for a, _ in _steps(db, process_id)] == [*[a for a, _ in steps], "export_companies"]  # only the export
