"""The demo: everything on the embedded defaults, as one real Prefect flow run you can open in the UI.

    make demo

Starts (or reuses) the local Prefect server, registers the blocks and provider limits, seeds 1,000 synthetic
companies into the SQLite company database (once), runs ``generate_embeddings`` over all of them as a flow run
recorded on the server, and prints a summary and a semantic search.
"""

from __future__ import annotations

import os
import time

from sqlalchemy import func, select

SEARCH_QUERY = "artisan bakery making sourdough bread and pastries"


def main() -> None:
    from deployments.local_server import API_URL, UI_URL, start

    print("1/5  Prefect server …", flush=True)
    os.environ["PREFECT_API_URL"] = start()

    from blocks.database import CompanyDatabase
    from blocks.loading import load_database, load_embedding_block
    from core.schema import Company, CompanyStatus, DeadJob
    from core.search import VectorIndex
    from core.synthetic import seed_companies
    from deployments.provision_limits import provision_limits
    from deployments.register_blocks import register_blocks
    from flows.engine import BulkActionSummary
    from flows.generate_embeddings import DEFAULT_EMBEDDING_PROVIDER, generate_embeddings

    print("2/5  blocks and provider limits …", flush=True)
    register_blocks()
    provision_limits()
    db: CompanyDatabase = load_database("default")

    print("3/5  company database …", flush=True)
    with db.session() as session:
        if session.scalar(select(func.count()).select_from(Company)) == 0:
            seed_companies(session, 1000)
    with db.session() as session:
        ids = list(
            session.scalars(select(Company.id).where(Company.status == CompanyStatus.ACTIVE).order_by(Company.id))
        )
    print(f"     {len(ids)} companies in {db.safe_url()}")

    print("4/5  generate_embeddings as a Prefect flow run …", flush=True)
    started = time.perf_counter()
    summary = generate_embeddings(company_ids=ids, created_by="make demo")
    elapsed = time.perf_counter() - started
    assert isinstance(summary, BulkActionSummary)
    with db.session() as session:
        dead = session.scalar(
            select(func.count()).select_from(DeadJob).where(DeadJob.bulk_action_id == summary.bulk_action_id)
        )

    print("5/5  semantic search …", flush=True)
    client = load_embedding_block(DEFAULT_EMBEDDING_PROVIDER).get_client()
    with db.session() as session:
        index = VectorIndex.load(session, client.model_id)
    hits = index.top_k(client.embed([SEARCH_QUERY])[0], k=5, query_model_id=client.model_id)

    print()
    print(f"Bulk action {summary.bulk_action_id}: {summary.action} — {summary.status}")
    print(
        f"  {summary.total} companies: {summary.succeeded} embedded, {summary.skipped} unchanged (skipped), "
        f"{summary.failed} failed; dead jobs: {dead}"
    )
    print(
        f"  {summary.batches} batches ({summary.batches_from_checkpoint} from checkpoints), "
        f"{summary.provider_calls} provider calls, {elapsed:.1f} s"
    )
    print(f"\nTop 5 for {SEARCH_QUERY!r} ({client.model_id}):")
    for hit in hits:
        print(f"  {hit.score:.3f}  #{hit.company_id:<5} {hit.name}")
    print(
        f"\nPrefect UI: {UI_URL}  (flow runs → generate-embeddings; artifacts show progress and the summary)\n"
        f"Run it again: the second run embeds nothing (every text is unchanged).  API: {API_URL}\n"
        "Stop the server with `make server-stop`."
    )


if __name__ == "__main__":
    main()
