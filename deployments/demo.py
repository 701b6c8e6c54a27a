"""The demo: everything on the embedded defaults, as one real Prefect flow run you can open in the UI.

    make demo

Starts (or reuses) the local Prefect server, registers the blocks and provider limits, writes 1,000 synthetic
companies as a CSV file in the local storage block and imports it with ``import_companies`` (validated and
deduplicated: the file's near-duplicates are found; a second demo run finds every row already there), runs
``generate_embeddings`` over the import's companies as a flow run recorded on the server, and prints a
summary and a semantic search.  Then it starts the provider sandbox and
runs ``enrich_companies`` and ``score_llm_adoption`` over a few companies against it: real HTTP clients, fake
providers, and every stored result marked as sandbox output.
"""

from __future__ import annotations

import os
import time

from pydantic import SecretStr
from sqlalchemy import func, select

from blocks.database import CompanyDatabase

SEARCH_QUERY = "artisan bakery making sourdough bread and pastries"


def main() -> None:
    from deployments.local_server import API_URL, UI_URL, start

    print("1/6  Prefect server …", flush=True)
    os.environ["PREFECT_API_URL"] = start()

    from blocks.loading import load_database, load_embedding_block
    from core.schema import Company, CompanyStatus, DeadJob
    from core.search import VectorIndex
    from core.selection import Selection
    from deployments.provision_limits import provision_limits
    from deployments.register_blocks import register_blocks
    from flows.engine import BulkActionSummary
    from flows.generate_embeddings import DEFAULT_EMBEDDING_PROVIDER, generate_embeddings
    from flows.import_companies import import_companies

    print("2/6  blocks and provider limits …", flush=True)
    register_blocks()
    provision_limits()
    db: CompanyDatabase = load_database("default")

    print("3/6  import_companies from a CSV file …", flush=True)
    source = write_demo_file()
    imported = import_companies(source=source, created_by="make demo")
    print(
        f"     import {imported.bulk_action_id}: {imported.read} rows read, {imported.inserted} inserted, "
        f"{imported.duplicates} duplicates skipped, {imported.rejected} rejected; {db.safe_url()}"
    )
    with db.session() as session:
        ids = list(
            session.scalars(select(Company.id).where(Company.status == CompanyStatus.ACTIVE).order_by(Company.id))
        )

    print("4/6  generate_embeddings as a Prefect flow run …", flush=True)
    started = time.perf_counter()
    selection = Selection.model_validate({"from_action": {"bulk_action_id": imported.bulk_action_id, "outcome": "all"}})
    summary = generate_embeddings(selection=selection, created_by="make demo")
    elapsed = time.perf_counter() - started
    assert isinstance(summary, BulkActionSummary)
    with db.session() as session:
        dead = session.scalar(
            select(func.count()).select_from(DeadJob).where(DeadJob.bulk_action_id == summary.bulk_action_id)
        )

    print("5/6  semantic search …", flush=True)
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
    sandbox_demo(db, ids[:10])
    print(
        f"\nPrefect UI: {UI_URL}  (flow runs → generate-embeddings; artifacts show progress and the summary)\n"
        f"Run it again: the second run embeds nothing (every text is unchanged).  API: {API_URL}\n"
        "Stop the server with `make server-stop`."
    )


def write_demo_file() -> str:
    """1,000 synthetic companies as a vendor-style CSV in the local storage block; returns its path there."""
    import csv
    import io

    from blocks.storage import DEFAULT_STORAGE, open_file
    from core.synthetic import generate_companies

    path = "imports/demo-companies.csv"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["company_name", "url", "country", "category", "nace", "description", "ownership", "priority"])
    for c in generate_companies(1000):
        description, ownership = c.activity_description, c.ownership_type
        writer.writerow([c.name, c.website, c.country, c.industry, c.nace_code, description, ownership, c.priority])
    with open_file(DEFAULT_STORAGE, path, "wb") as stream:
        stream.write(out.getvalue().encode("utf-8"))
    return path


def sandbox_demo(db: CompanyDatabase, ids: list[int]) -> None:
    """enrich_companies and score_llm_adoption against the local provider sandbox (clearly sandbox output)."""
    from blocks.enrichment import ParallelEnrichment
    from blocks.llm import GroqLLM
    from blocks.loading import clear_block_cache
    from core.schema import Company, CompanyScore
    from deployments.provision_limits import provision_limits
    from flows.enrich_companies import enrich_companies
    from flows.score_llm_adoption import score_llm_adoption
    from sandbox.server import SandboxServer

    print("6/6  enrichment and LLM scoring against the provider SANDBOX (not real providers) …", flush=True)
    config = {"parallel": {"job_duration_s": 0.5, "max_concurrency": 20}, "groq": {"requests_per_minute": 600}}
    with SandboxServer(port=0, config=config) as sandbox:
        ParallelEnrichment(
            api_key=SecretStr("sandbox-key"), base_url=sandbox.url, concurrency_tag="parallel-sandbox"
        ).save("sandbox", overwrite=True)
        GroqLLM(
            api_key=SecretStr("sandbox-key"),
            base_url=f"{sandbox.url}/openai/v1",
            requests_per_minute=600,
            concurrency_tag="groq-sandbox",
        ).save("sandbox", overwrite=True)
        provision_limits({"parallel-sandbox": 4, "groq-sandbox": 3}, window_requests={"groq-sandbox": 600})
        clear_block_cache()
        enriched = enrich_companies(company_ids=ids, provider="parallel-enrichment/sandbox", created_by="make demo")
        scored = score_llm_adoption(company_ids=ids[:3], provider="groq-llm/sandbox", created_by="make demo")
        stats = sandbox.stats(log=False)["providers"]
    print(f"  enrich_companies: {_line(enriched)}")
    print(f"  score_llm_adoption: {_line(scored)}")
    print(
        f"  sandbox saw {stats['parallel']['accepted']} Parallel and {stats['groq']['accepted']} GROQ requests, "
        f"{stats['parallel']['rate_limited'] + stats['groq']['rate_limited']} answered 429"
    )
    with db.session() as session:
        company = session.get(Company, ids[0])
        assert company is not None
        print(f"  #{company.id} {company.name} [SANDBOX OUTPUT]")
        print(f"     activity:  {(company.activity_description or '')[:110]}")
        print(f"     ownership: {company.ownership_type}   enrichment: {company.enrichment_status.value}")
        rows = session.scalars(
            select(CompanyScore).where(CompanyScore.company_id == ids[0], CompanyScore.provider == "groq")
        ).all()
        for row in sorted(rows, key=lambda r: r.criterion):
            print(f"     {row.criterion:32s} {row.level or '':10s} {row.score:>3d}   ({row.model}) [SANDBOX]")


def _line(summary: object) -> str:
    from flows.engine import BulkActionSummary

    if not isinstance(summary, BulkActionSummary):
        return str(summary)
    return (
        f"bulk action {summary.bulk_action_id} {summary.status}: {summary.succeeded} succeeded, "
        f"{summary.failed} failed, {summary.provider_calls} provider calls, {summary.seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
