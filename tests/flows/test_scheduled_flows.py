"""The scheduled flows (enrichment cron, dead-job review, cleanup) as real flow runs on the session's server.

These flows act on a whole database, so each test gets a fresh SQLite company database of its own (a
``company-database`` block saved for the test): other tests' companies and dead jobs can neither be picked up
nor disturbed.  Timestamps are set explicitly relative to one ``now``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
)
from prefect.client.schemas.objects import State
from prefect.filesystems import LocalFileSystem
from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH
from prefect.states import Crashed, Running
from sqlalchemy import select, update

from blocks.database import CompanyDatabase
from blocks.enrichment import ParallelEnrichment
from blocks.loading import clear_block_cache, load_database
from core.maintenance import NO_REASON, companies_due_for_enrichment, error_pattern, group_dead_jobs, pattern_of
from core.schema import (
    BulkAction,
    BulkActionStatus,
    Company,
    CompanyStatus,
    DeadJob,
    DeadJobStatus,
    EnrichmentStatus,
)
from core.store import create_bulk_action
from deployments.provision_limits import provision_limits
from flows.cleanup import cleanup
from flows.dead_job_review import dead_job_review
from flows.enrichment_cron import enrichment_cron
from sandbox.server import SandboxServer
from tests.helpers import seed

NOW = datetime.now(UTC)
EMBEDDINGS = "local-minilm-embeddings/default"


@pytest.fixture
def fresh(tmp_path: Path) -> tuple[str, CompanyDatabase]:
    """A company database of the test's own, saved as a block so flows can be pointed at it by name."""
    name = f"maint-{uuid.uuid4().hex[:10]}"
    CompanyDatabase(url=f"sqlite:///{tmp_path / 'companies.db'}").save(name, overwrite=True)  # type: ignore[arg-type]
    clear_block_cache()
    return name, load_database(name)


def set_company(db: CompanyDatabase, company_id: int, **values: Any) -> None:
    values.setdefault("priority", 0)  # the seed draws priorities; the tests set the ones they mean
    with db.session() as session:
        session.execute(update(Company).where(Company.id == company_id).values(**values))


def result_of(state: State[Any]) -> dict[str, Any]:
    assert state.is_completed(), state
    value: dict[str, Any] = state.result()
    return value


def child_flow_runs(parent: UUID) -> list[Any]:
    with get_client(sync_client=True) as client:
        return list(
            client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent]))
            )
        )


def artifact_text(flow_run_id: UUID, key: str) -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
    assert found, f"no {key} artifact"
    return str(found[-1].data)


# --- enrichment due / cron -------------------------------------------------------------------------------------


def test_due_selection_skips_deleted_merged_and_permanent_failures_and_orders_by_priority(
    fresh: tuple[str, CompanyDatabase],
) -> None:
    _, db = fresh
    ids = seed(db, 10, 4101)
    never, stale, fresh_one, retryable, permanent, deleted, merged, urgent, edge_in, edge_out = ids
    set_company(db, never)
    enriched = EnrichmentStatus.ENRICHED
    set_company(db, stale, enrichment_status=enriched, enriched_at=NOW - timedelta(days=100))
    set_company(db, fresh_one, enrichment_status=enriched, enriched_at=NOW - timedelta(days=10))
    set_company(
        db, retryable, enrichment_status=EnrichmentStatus.FAILED_RETRYABLE, enriched_at=NOW - timedelta(days=200)
    )
    set_company(db, permanent, enrichment_status=EnrichmentStatus.FAILED_PERMANENT)
    set_company(db, deleted, status=CompanyStatus.DELETED)
    set_company(db, merged, status=CompanyStatus.MERGED, merged_into_id=never)
    set_company(db, urgent, priority=5, enrichment_status=enriched, enriched_at=NOW - timedelta(days=95))
    set_company(db, edge_in, enrichment_status=enriched, enriched_at=NOW - timedelta(days=90) + timedelta(minutes=1))
    set_company(db, edge_out, enrichment_status=enriched, enriched_at=NOW - timedelta(days=90, minutes=1))

    with db.session() as session:
        due = companies_due_for_enrichment(session, max_age_days=90, limit=100, now=NOW)
        capped = companies_due_for_enrichment(session, max_age_days=90, limit=2, now=NOW)

    # priority first; then never enriched; then the oldest enrichment
    assert due == [urgent, never, retryable, stale, edge_out]
    assert capped == [urgent, never]


def test_cron_with_nothing_due_says_so_and_starts_nothing(fresh: tuple[str, CompanyDatabase]) -> None:
    name, db = fresh
    for cid in seed(db, 3, 4201):
        set_company(db, cid, enrichment_status=EnrichmentStatus.ENRICHED, enriched_at=NOW - timedelta(days=1))

    state = enrichment_cron(database=name, return_state=True)

    summary = result_of(state)
    assert summary["due"] == 0 and summary["status"] == "nothing-due" and "Nothing is due" in summary["message"]
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    assert child_flow_runs(run_id) == []
    assert "Nothing is due" in artifact_text(run_id, "enrichment-cron")
    with db.session() as session:
        assert session.scalars(select(BulkAction)).first() is None


@pytest.fixture
def sandbox_provider(provider_sandbox: SandboxServer, tmp_path: Path) -> Iterator[str]:
    """A parallel-enrichment block on the sandbox with a limit of its own (as in test_enrich_companies)."""
    tag = "parallel-cron-test"
    provision_limits({tag: 2})
    LocalFileSystem(basepath=str(tmp_path / "storage")).save("cron-test", overwrite=True)
    ParallelEnrichment(
        api_key="par-cron-secret-0123456789",  # type: ignore[arg-type]
        base_url=provider_sandbox.url,
        poll_slice_seconds=5,
        request_timeout_seconds=5,
        concurrency_tag=tag,
        storage_block="local-file-system/cron-test",
    ).save("cron-sandbox", overwrite=True)
    clear_block_cache()
    provider_sandbox.reset(config=True)
    provider_sandbox.configure("parallel", job_duration_s=0.2, max_concurrency=10)
    yield "parallel-enrichment/cron-sandbox"
    provider_sandbox.reset(config=True)


def test_cron_enriches_the_due_companies_in_a_child_flow_run(
    fresh: tuple[str, CompanyDatabase], sandbox_provider: str
) -> None:
    name, db = fresh
    due_low, due_high, recent = seed(db, 3, 4301)
    set_company(db, due_low)
    set_company(db, due_high, priority=7)
    set_company(db, recent, enrichment_status=EnrichmentStatus.ENRICHED, enriched_at=NOW - timedelta(days=3))

    state = enrichment_cron(provider=sandbox_provider, database=name, return_state=True)

    summary = result_of(state)
    assert (summary["due"], summary["priority"], summary["status"]) == (2, 7, "completed")
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    children = child_flow_runs(run_id)
    assert len(children) == 1
    with db.session() as session:
        record = session.get(BulkAction, summary["bulk_action_id"])
        assert record is not None
        assert (record.action, record.created_by, record.priority) == ("enrich_companies", "enrichment-cron", 7)
        assert record.flow_run_id == str(children[0].id)
        statuses = dict(session.execute(select(Company.id, Company.enrichment_status)).tuples().all())
    assert statuses[due_low] is statuses[due_high] is EnrichmentStatus.ENRICHED


# --- dead-job review -------------------------------------------------------------------------------------------


def original_action(db: CompanyDatabase, ids: list[int]) -> int:
    with db.session() as session:
        record = create_bulk_action(
            session,
            action="generate_embeddings",
            company_ids=ids,
            created_by="test",
            parameters={"provider": EMBEDDINGS},
        )
        record.status = BulkActionStatus.FAILED
        record.finished_at = NOW - timedelta(hours=1)
        return record.id


def dead_job(db: CompanyDatabase, bulk_action_id: int, company_id: int, error_class: str, **values: Any) -> int:
    with db.session() as session:
        job = DeadJob(
            bulk_action_id=bulk_action_id,
            action="generate_embeddings",
            company_id=company_id,
            error_class=error_class,
            error_message=values.pop(
                "message", f"{error_class} for https://x.example/{company_id} run_{company_id}abcdef"
            ),
            retryable=values.pop("retryable", False),
            created_at=values.pop("created_at", NOW - timedelta(hours=1)),
            **values,
        )
        session.add(job)
        session.flush()
        return job.id


def jobs(db: CompanyDatabase) -> dict[int, DeadJob]:
    with db.session() as session:
        rows = {j.id: j for j in session.scalars(select(DeadJob))}
        session.expunge_all()
        return rows


def companies(db: CompanyDatabase) -> dict[int, Company]:
    with db.session() as session:
        rows = {c.id: c for c in session.scalars(select(Company))}
        session.expunge_all()
        return rows


def test_review_requeues_transient_jobs_once_flags_permanent_ones_and_respects_the_cap(
    fresh: tuple[str, CompanyDatabase],
) -> None:
    name, db = fresh
    limited, invalid, exhausted = seed(db, 3, 4401)
    original = original_action(db, [limited, invalid, exhausted])
    j_limited = dead_job(db, original, limited, "RateLimitedError", retryable=True, message="429 Too Many Requests")
    j_invalid = dead_job(db, original, invalid, "InvalidProviderOutputError", message="not a vector")
    j_exhausted = dead_job(db, original, exhausted, "ProviderTimeoutError", retryable=True, requeue_count=3)
    with db.session() as session:
        assert {g.error_class: g.transient for g in group_dead_jobs(session)} == {
            "RateLimitedError": True,
            "InvalidProviderOutputError": False,
            "ProviderTimeoutError": True,
        }

    state = dead_job_review(max_requeues=3, database=name, return_state=True)

    summary = result_of(state)
    assert summary["requeued"] == [j_limited]
    assert summary["flagged"] == [j_invalid, j_exhausted]
    assert len(summary["new_bulk_action_ids"]) == 1
    after = jobs(db)
    assert after[j_limited].status is DeadJobStatus.REQUEUED and after[j_limited].requeue_count == 1
    assert after[j_limited].requeued_as_bulk_action_id == summary["new_bulk_action_ids"][0]
    assert after[j_invalid].requeued_as_bulk_action_id is None
    assert after[j_invalid].status is after[j_exhausted].status is DeadJobStatus.NEEDS_REVIEW
    with db.session() as session:
        new = session.get(BulkAction, summary["new_bulk_action_ids"][0])
        assert new is not None
        assert (new.parent_id, new.created_by, new.status) == (original, "dead-job-review", BulkActionStatus.COMPLETED)
        assert new.parameters is not None and new.parameters["provider"] == EMBEDDINGS
    rows = companies(db)
    assert rows[invalid].needs_review and rows[exhausted].needs_review and not rows[limited].needs_review
    reason = rows[invalid].review_reason or ""
    assert "generate_embeddings" in reason and "InvalidProviderOutputError" in reason
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    report = artifact_text(run_id, "dead-job-review")
    assert "| generate_embeddings | RateLimitedError: <n> Too Many Requests | 1 |" in report
    # the two companies it flagged are the review queue, by the pattern of the reason it gave them
    assert summary["review_queue"] == {
        "generate_embeddings: InvalidProviderOutputError: not a vector": 1,
        "generate_embeddings: ProviderTimeoutError: ProviderTimeoutError for <url> <id>": 1,
    }
    assert summary["review_queue_total"] == 2
    assert "## Review queue" in report and "2 companies flagged `needs_review`, by reason:" in report

    again = result_of(dead_job_review(max_requeues=3, database=name, return_state=True))
    assert (again["requeued"], again["flagged"], again["new_bulk_action_ids"]) == ([], [], [])  # requeued once


def test_retry_ids_force_a_requeue_and_discard_ids_close_jobs(fresh: tuple[str, CompanyDatabase]) -> None:
    name, db = fresh
    forced, dropped = seed(db, 2, 4501)
    original = original_action(db, [forced, dropped])
    j_forced = dead_job(db, original, forced, "ProviderRequestError", message="400 bad request")
    j_dropped = dead_job(db, original, dropped, "ProviderServerError", retryable=True)

    summary = result_of(
        dead_job_review(retry_ids=[j_forced], discard_ids=[j_dropped], database=name, return_state=True)
    )

    assert (summary["requeued"], summary["discarded"], summary["flagged"]) == ([j_forced], [j_dropped], [])
    after = jobs(db)
    assert after[j_forced].status is DeadJobStatus.REQUEUED
    assert after[j_dropped].status is DeadJobStatus.DISCARDED and after[j_dropped].resolved_at is not None
    assert not companies(db)[forced].needs_review


def test_review_dry_run_changes_nothing(fresh: tuple[str, CompanyDatabase]) -> None:
    name, db = fresh
    a, b, c = seed(db, 3, 4601)
    original = original_action(db, [a, b, c])
    j_a = dead_job(db, original, a, "ProviderConnectionError", retryable=True)
    j_b = dead_job(db, original, b, "InvalidProviderOutputError")
    j_c = dead_job(db, original, c, "ProviderRequestError")
    before = {i: (j.status, j.requeue_count) for i, j in jobs(db).items()}

    summary = result_of(dead_job_review(discard_ids=[j_c], database=name, dry_run=True, return_state=True))

    assert (summary["requeued"], summary["flagged"], summary["discarded"]) == ([j_a], [j_b], [j_c])
    assert summary["new_bulk_action_ids"] == []
    assert (summary["review_queue"], summary["review_queue_total"]) == ({}, 0)  # the flag it would set is not set
    assert {i: (j.status, j.requeue_count) for i, j in jobs(db).items()} == before
    assert not any(c.needs_review for c in companies(db).values())
    with db.session() as session:
        assert [r.id for r in session.scalars(select(BulkAction))] == [original]


def test_error_patterns_collapse_ids_urls_and_numbers() -> None:
    one = error_pattern("ProviderServerError", "503 from https://api.x/v1/runs/run_abc123XYZ for company 17")
    two = error_pattern("ProviderServerError", "502 from https://api.x/v1/runs/run_zzz999QQQ for company 23")
    assert one == two == "ProviderServerError: <n> from <url> for company <n>"
    assert len(error_pattern("E", "x" * 1000)) < 140
    # quoted values too (an invalid website is quoted in its reason); an apostrophe in a word is no quote
    assert pattern_of("website 'ftp://a.example' is not an http(s) URL") == "website '<value>' is not an http(s) URL"
    assert pattern_of('no block named "team-b"') == 'no block named "<value>"'
    assert pattern_of("the company's site isn't up") == "the company's site isn't up"
    assert pattern_of("enrich_companies: run_4kXq9z failed") == "enrich_companies: <id> failed"


def test_review_counts_the_review_queue_by_reason_pattern(fresh: tuple[str, CompanyDatabase]) -> None:
    name, db = fresh
    ftp_a, ftp_b, local, by_hand, silent, deleted, clear = seed(db, 7, 4701)
    flags = {
        ftp_a: "invalid input: website 'ftp://a.example/' is not an http(s) URL",
        ftp_b: "invalid input: website 'ftp://files.b.example/x' is not an http(s) URL",
        local: "invalid input: website 'intranet.local:8080' points at a local host name",
        by_hand: "check the website",
        silent: None,
        deleted: "check the website",
    }
    for company_id, reason in flags.items():
        set_company(db, company_id, needs_review=True, review_reason=reason)
    set_company(db, deleted, status=CompanyStatus.DELETED)  # out of the queue, as the queue's selection says

    state = dead_job_review(database=name, return_state=True)

    summary = result_of(state)
    ftp = "invalid input: website '<value>' is not an http(s) URL"
    assert summary["review_queue"] == {
        ftp: 2,
        "check the website": 1,
        "invalid input: website '<value>' points at a local host name": 1,
        NO_REASON: 1,
    }
    assert list(summary["review_queue"])[0] == ftp  # largest first
    assert summary["review_queue_total"] == 5 and summary["groups"] == 0
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    report = artifact_text(run_id, "dead-job-review")
    queue = report.split("## Review queue", 1)[1]
    assert "5 companies flagged `needs_review`, by reason:" in queue
    assert (
        f"| {ftp} | 2 | invalid input: website 'ftp://a.example/' is not an http(s) URL | {ftp_a}, {ftp_b} |" in queue
    )
    assert f"| {NO_REASON} | 1 |  | {silent} |" in queue
    rows = [line for line in queue.splitlines() if line.startswith("| ") and not line.startswith(("| reason", "| -"))]
    listed = {int(i) for row in rows for i in row.rstrip(" |").rsplit("|", 1)[1].split(",")}
    assert listed == {ftp_a, ftp_b, local, by_hand, silent}  # neither the deleted company nor the clear one


# --- cleanup ---------------------------------------------------------------------------------------------------


def bulk(db: CompanyDatabase, company_id: int, status: BulkActionStatus, **values: Any) -> int:
    with db.session() as session:
        record = create_bulk_action(session, action="generate_embeddings", company_ids=[company_id], created_by="t")
        record.status = status
        for key, value in values.items():
            setattr(record, key, value)
        return record.id


@flow
def placeholder() -> None:
    """Only here to own the flow runs the cleanup tests put in a given state."""


def flow_run_in(state: State[Any]) -> str:
    with get_client(sync_client=True) as client:
        return str(client.create_flow_run(placeholder, state=state).id)


def test_cleanup_deletes_past_retention_only_and_fails_actions_whose_flow_run_is_gone(
    fresh: tuple[str, CompanyDatabase],
) -> None:
    name, db = fresh
    cid = seed(db, 1, 4701)[0]
    day = timedelta(days=1)
    NOW = datetime.now(UTC)  # noqa: N806 - the cleanup flow reads the clock itself: the module's NOW ages
    inside = bulk(db, cid, BulkActionStatus.COMPLETED, finished_at=NOW - 7 * day + timedelta(minutes=10))
    outside = bulk(db, cid, BulkActionStatus.FAILED, finished_at=NOW - 7 * day - timedelta(minutes=10))
    alive = bulk(db, cid, BulkActionStatus.RUNNING, created_at=NOW - 60 * day, flow_run_id=flow_run_in(Running()))
    crashed = bulk(db, cid, BulkActionStatus.RUNNING, created_at=NOW - 60 * day, flow_run_id=flow_run_in(Crashed()))
    missing = bulk(db, cid, BulkActionStatus.RUNNING, flow_run_id=str(uuid.uuid4()))
    orphan = dead_job(db, outside, cid, "ProviderServerError")
    dead_job(db, inside, cid, "X", status=DeadJobStatus.RESOLVED, resolved_at=NOW - 31 * day)
    new_discarded = dead_job(db, alive, cid, "X", status=DeadJobStatus.DISCARDED, resolved_at=NOW - 29 * day)
    old_open = dead_job(db, crashed, cid, "X", created_at=NOW - 90 * day)

    def state_of_db() -> tuple[dict[int, BulkActionStatus], set[int]]:
        with db.session() as session:
            actions = dict(session.execute(select(BulkAction.id, BulkAction.status)).tuples().all())
            return actions, set(session.scalars(select(DeadJob.id)))

    before = state_of_db()
    preview = result_of(cleanup(database=name, dry_run=True, return_state=True))
    assert state_of_db() == before
    assert preview["deleted_bulk_actions"] == [outside] and preview["pruned_dead_jobs"] == 1
    assert set(preview["failed_stuck"]) == {crashed, missing}

    summary = result_of(cleanup(database=name, return_state=True))

    assert summary["deleted_bulk_actions"] == [outside] and summary["pruned_dead_jobs"] == 1
    assert summary["purged_results"] == 0 and "kept" in summary["results_skipped_reason"]  # `alive` still runs
    actions, dead = state_of_db()
    assert outside not in actions and actions[inside] is BulkActionStatus.COMPLETED
    assert actions[alive] is BulkActionStatus.RUNNING
    assert actions[crashed] is actions[missing] is BulkActionStatus.FAILED
    assert dead == {orphan, new_discarded, old_open}
    with db.session() as session:
        kept = session.get(DeadJob, orphan)
        assert kept is not None and kept.bulk_action_id is None
        failed = session.get(BulkAction, crashed)
        assert failed is not None and failed.status_reason == f"flow run {failed.flow_run_id} crashed"
        gone = session.get(BulkAction, missing)
        assert gone is not None and gone.status_reason == f"flow run {gone.flow_run_id} no longer exists"


def test_cleanup_purges_old_checkpoints_only_when_nothing_can_resume(fresh: tuple[str, CompanyDatabase]) -> None:
    name, db = fresh
    root = Path(PREFECT_RESULTS_LOCAL_STORAGE_PATH.value()).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    old, recent = root / f"old-{uuid.uuid4().hex}", root / f"new-{uuid.uuid4().hex}"
    old.write_text("{}")
    recent.write_text("{}")
    ten_days_ago = time.time() - 10 * 86400
    os.utime(old, (ten_days_ago, ten_days_ago))
    paused = bulk(db, seed(db, 1, 4801)[0], BulkActionStatus.PAUSED)

    kept = result_of(cleanup(database=name, return_state=True))
    assert kept["purged_results"] == 0 and old.exists()

    with db.session() as session:
        session.execute(update(BulkAction).where(BulkAction.id == paused).values(status=BulkActionStatus.CANCELLED))
    preview = result_of(cleanup(database=name, dry_run=True, return_state=True))
    assert preview["purged_results"] >= 1 and old.exists()

    summary = result_of(cleanup(database=name, return_state=True))
    assert summary["purged_results"] >= 1 and not old.exists() and recent.exists()
