"""Small helpers shared by the flow tests."""

from __future__ import annotations

import time
from typing import Any

from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from sqlalchemy import func, select

from blocks.database import CompanyDatabase
from core.schema import BulkAction, Company, CompanyEmbedding, DeadJob
from core.synthetic import seed_companies


def seed(db: CompanyDatabase, n: int, seed_value: int) -> list[int]:
    with db.session() as session:
        return seed_companies(session, n, seed=seed_value)


def bulk_action(db: CompanyDatabase, bulk_action_id: int) -> BulkAction:
    with db.session() as session:
        record = session.get(BulkAction, bulk_action_id)
        assert record is not None
        session.expunge(record)
        return record


def latest_bulk_action(db: CompanyDatabase) -> BulkAction | None:
    with db.session() as session:
        record = session.scalars(select(BulkAction).order_by(BulkAction.id.desc()).limit(1)).first()
        if record is not None:
            session.expunge(record)
        return record


def embedding_rows(db: CompanyDatabase, ids: list[int]) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).where(CompanyEmbedding.company_id.in_(ids))) or 0)


def dead_jobs(db: CompanyDatabase, bulk_action_id: int) -> list[DeadJob]:
    with db.session() as session:
        rows = list(session.scalars(select(DeadJob).where(DeadJob.bulk_action_id == bulk_action_id)))
        session.expunge_all()
        return rows


def company_names(db: CompanyDatabase, ids: list[int]) -> dict[int, str]:
    with db.session() as session:
        return dict(session.execute(select(Company.id, Company.name).where(Company.id.in_(ids))).tuples().all())


def read_events(
    resource_id: str, wanted: set[str], timeout: float = 60.0, flow_run_id: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The bulkai events of ``resource_id`` by name (only those related to ``flow_run_id`` when given: bulk
    action ids repeat across the session's two databases), once every name in ``wanted`` has been stored."""
    deadline = time.monotonic() + timeout
    event_filter = EventFilter(
        resource=EventResourceFilter(id=[resource_id]), event=EventNameFilter(prefix=["bulkai."])
    )
    while True:
        found: dict[str, list[dict[str, Any]]] = {}
        with get_client(sync_client=True) as client:
            page = client.read_events(event_filter, limit=50)
            stored = list(page.events)
            while page.next_page is not None:
                page = client.read_events_page(page.next_page)
                stored.extend(page.events)
        for event in stored:
            related = [dict(r) for r in event.related]
            if flow_run_id is not None and not any(
                r.get("prefect.resource.id") == f"prefect.flow-run.{flow_run_id}" for r in related
            ):
                continue
            found.setdefault(event.event, []).append({"payload": event.payload, "related": related})
        if wanted <= set(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"events of {resource_id}: wanted {sorted(wanted)}, stored {sorted(found)}")
        time.sleep(0.2)


def sandbox_embeddings(sandbox_url: str, tag: str, *, limit: int, name: str | None = None, **fields: Any) -> str:
    """An OpenAI-compatible embeddings block at the sandbox on a concurrency tag of its own (with ``limit``
    slots), one provider call per batch; returns its reference.  ``fields`` override the block's defaults."""
    from blocks.embeddings import OpenAICompatibleEmbeddings
    from blocks.loading import clear_block_cache
    from deployments.provision_limits import provision_limits

    provision_limits({tag: limit})
    settings: dict[str, Any] = {
        "base_url": f"{sandbox_url}/v1",
        "api_key": f"fake-openai-{tag}",
        "model": "sandbox-embed",
        "self_hosted": True,  # a model of one's own: free, no price needed
        "calls_per_batch": 1,
        "concurrency_tag": tag,
        **fields,
    }
    OpenAICompatibleEmbeddings(**settings).save(name or tag, overwrite=True)
    clear_block_cache()
    return f"openai-compatible-embeddings/{name or tag}"
