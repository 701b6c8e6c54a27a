"""The review queue: companies flagged needs_review, with their reasons, as a selection to export and to clear."""

from __future__ import annotations

import csv
import gzip
import io

from sqlalchemy import func, select, update

from blocks.database import CompanyDatabase
from blocks.storage import DEFAULT_STORAGE, open_file
from core.reclassify import UNPLACED_REASON
from core.schema import Company
from flows.export_companies import export_companies
from flows.reclassify import reclassify
from flows.update_status import update_status
from tests.helpers import seed

MARKER = "ReviewQueue"


def test_flagged_companies_are_a_selection_that_exports_with_reasons_and_clears(
    db: CompanyDatabase, database_name: str
) -> None:
    ids = seed(db, 6, 1701)
    with db.session() as session:
        for n, cid in enumerate(ids):
            session.execute(update(Company).where(Company.id == cid).values(name=f"{MARKER} {n} BV"))
        # nothing a rule can place: reclassify flags them for review, as an unusable LLM answer would be
        session.execute(
            update(Company)
            .where(Company.id.in_(ids[:2]))
            .values(nace_code=None, industry=None, activity_description=None)
        )
    reclassify(company_ids=ids, database=database_name)
    update_status(company_ids=[ids[2]], needs_review=True, review_reason="check the website", database=database_name)
    queue = {"filter": {"needs_review": True, "name_contains": MARKER}}

    exported = export_companies(selection=queue, columns=["id", "review", "classification"], database=database_name)

    with open_file(DEFAULT_STORAGE, exported.location.split("/storage/", 1)[1], "rb") as stream:
        rows = list(csv.DictReader(io.StringIO(gzip.decompress(stream.read()).decode())))
    reasons = {int(r["id"]): r["review_reason"] for r in rows}
    assert reasons == {ids[0]: UNPLACED_REASON, ids[1]: UNPLACED_REASON, ids[2]: "check the website"}
    assert {r["classification_mode"] for r in rows} == {"local"}

    cleared = update_status(selection=queue, needs_review=False, database=database_name)

    assert cleared.succeeded == 3
    with db.read_session() as session:
        left = session.scalar(select(func.count()).where(Company.id.in_(ids), Company.needs_review.is_(True)))
    assert left == 0
