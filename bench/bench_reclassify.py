"""Benchmark: reclassify in local mode, and the exactness of rolling it back (#14).

* ``reclassify_local_per_second``: companies per second of a local-mode ``reclassify`` over 100,000 synthetic
  companies selected by a filter, end to end through the engine (batches of 10 calls of 50, each company's
  changed fields and their history rows written with its outcome) (target >= 5,000).
* ``rollback_exact``: the share of 10,000 companies whose classification fields, after a reclassify and the
  rollback of it, equal what they were before (target 1.0).

Standalone: ``python -m bench reclassify``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

COMPANIES = 100_000
ROLLBACK_COMPANIES = 10_000
FIELDS = (
    "sector",
    "subsector",
    "business_model",
    "taxonomy_version",
    "classification_mode",
    "classification_model",
    "classification_input_sha256",
    "needs_review",
    "review_reason",
)


def run() -> dict[str, float]:
    from bench.environment import seed
    from flows.reclassify import reclassify
    from flows.rollback import rollback

    marker = f"rc{int(time.time())}"
    ids = seed(COMPANIES, seed_value=14001)
    _rename(ids, marker)
    started = time.perf_counter()
    summary: Any = reclassify(
        selection={"filter": {"name_contains": marker}}, max_companies=COMPANIES, progress_every=20
    )
    seconds = time.perf_counter() - started
    if summary.total != COMPANIES or summary.failed:
        raise RuntimeError(f"reclassify did not cover the companies cleanly: {summary}")
    logger.warning("reclassify: %d companies in %.1f s (%d batches)", COMPANIES, seconds, summary.batches)

    few = seed(ROLLBACK_COMPANIES, seed_value=14002)
    before = _fields(few)
    done: Any = reclassify(company_ids=None, selection={"ids": few} if len(few) <= 1000 else _filter(few))
    undone: Any = rollback(rollback_of=done.bulk_action_id, max_companies=ROLLBACK_COMPANIES)
    after = _fields(few)
    exact = sum(before[c] == after[c] for c in few) / len(few)
    logger.warning("rollback: %d of %d companies exact (%d restored)", exact * len(few), len(few), undone.succeeded)
    return {"reclassify_local_per_second": COMPANIES / seconds, "rollback_exact": exact}


def _rename(ids: list[int], marker: str) -> None:
    """Give the companies a name part of their own, so a filter selects exactly them."""
    from sqlalchemy import update

    from blocks.loading import load_database
    from core.schema import Company

    with load_database("default").session() as session:
        for start in range(0, len(ids), 900):
            part = ids[start : start + 900]
            session.execute(update(Company).where(Company.id.in_(part)).values(name=Company.name + f" {marker}"))


def _filter(ids: list[int]) -> dict[str, Any]:
    marker = f"rb{int(time.time())}"
    _rename(ids, marker)
    return {"filter": {"name_contains": marker}}


def _fields(ids: list[int]) -> dict[int, tuple[Any, ...]]:
    from sqlalchemy import select

    from blocks.loading import load_database
    from core.schema import Company

    columns = [Company.__table__.c[f] for f in FIELDS]
    found: dict[int, tuple[Any, ...]] = {}
    with load_database("default").read_session() as session:
        for start in range(0, len(ids), 900):
            part = ids[start : start + 900]
            for row in session.execute(select(Company.id, *columns).where(Company.id.in_(part))):
                found[row[0]] = tuple(row[1:])
    return found


if __name__ == "__main__":
    from bench.environment import prefect_environment

    with prefect_environment():
        print(run())
