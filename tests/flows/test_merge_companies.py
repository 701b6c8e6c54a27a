"""merge_companies end to end on a real Prefect server, SQLite and PostgreSQL, and its rollback.

The clusters are written directly (as a ``dedup_sweep`` would: a bulk action for the sweep, a cluster with its
winner, members with the ``updated_at`` the sweep saw), so these tests depend on the merge alone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from blocks.database import CompanyDatabase
from core.dedup_tables import ClusterStatus, DedupCluster, DedupClusterMember, MergeMove
from core.errors import InputError
from core.history import changes_by_action
from core.merge import StaleMergePlanError
from core.merge_store import apply_merges, merged_into_cycles, plan_merges
from core.schema import (
    BulkActionOutcome,
    Company,
    CompanyScore,
    CompanyStatus,
    DeadJob,
    DeadJobStatus,
)
from core.selection import CompanyFilter, Selection, selected_companies
from core.store import create_bulk_action
from flows.engine import BulkActionSummary
from flows.merge_companies import MergeDryRun, MergeSummary, merge_companies
from flows.rollback import rollback
from flows.update_status import update_status
from tests.helpers import latest_bulk_action, seed

EMPTY_WINNER = {
    "website": None,
    "domain": None,
    "industry": None,
    "activity_description": None,
    "ownership_type": None,
    "taxonomy_version": None,
    "sector": None,
    "subsector": None,
    "business_model": None,
    "classification_mode": None,
    "classification_model": None,
    "classification_input_sha256": None,
}


# --- helpers -----------------------------------------------------------------------------------------------


def make_sweep(db: CompanyDatabase) -> int:
    with db.session() as session:
        return create_bulk_action(session, action="dedup_sweep", company_ids=[], created_by="tests").id


def make_cluster(db: CompanyDatabase, sweep_id: int, winner: int, losers: list[int]) -> int:
    """A proposed cluster as a sweep writes it: the members' ``updated_at`` as seen now."""
    members = [winner, *losers]
    with db.session() as session:
        seen = dict(
            session.execute(select(Company.id, Company.updated_at).where(Company.id.in_(members))).tuples().all()
        )
        cluster = DedupCluster(
            bulk_action_id=sweep_id, winner_id=winner, size=len(members), winner_reason="most complete (tests)"
        )
        session.add(cluster)
        session.flush()
        for cid in members:
            session.add(
                DedupClusterMember(
                    cluster_id=cluster.id, company_id=cid, is_winner=cid == winner, seen_updated_at=seen[cid]
                )
            )
        return cluster.id


def set_fields(db: CompanyDatabase, company_id: int, **values: Any) -> None:
    with db.session() as session:
        session.execute(update(Company).where(Company.id == company_id).values(**values))


def add_scores(
    db: CompanyDatabase, company_id: int, model: str, criteria: tuple[str, ...] = ("c1", "c2", "total")
) -> None:
    with db.session() as session:
        for i, criterion in enumerate(criteria):
            session.add(
                CompanyScore(
                    company_id=company_id,
                    criterion=criterion,
                    level="High",
                    score=3 + i,
                    reasoning=f"{model} on {company_id}",
                    provider="local-rules",
                    model=model,
                    input_sha256=f"sha-{company_id}",
                )
            )


def add_dead_job(db: CompanyDatabase, company_id: int, status: DeadJobStatus) -> int:
    with db.session() as session:
        action = create_bulk_action(session, action="score_llm_adoption", company_ids=[], created_by="tests")
        job = DeadJob(
            bulk_action_id=action.id,
            action="score_llm_adoption",
            company_id=company_id,
            error_class="ProviderServerError",
            error_message="502",
            status=status,
            resolved_at=datetime(2026, 1, 2, tzinfo=UTC) if status is DeadJobStatus.RESOLVED else None,
        )
        session.add(job)
        session.flush()
        return job.id


def rows(db: CompanyDatabase, ids: list[int]) -> dict[str, Any]:
    """Every column of the companies (but ``updated_at``), their scores and their dead jobs."""
    companies = Company.__table__
    assert isinstance(companies, Table)
    kept = [c for c in companies.c if c.name != "updated_at"]
    with db.read_session() as session:
        return {
            "companies": {r.id: r._asdict() for r in session.execute(select(*kept).where(companies.c.id.in_(ids)))},
            "scores": sorted(
                tuple(r)
                for r in session.execute(select(CompanyScore.__table__).where(CompanyScore.company_id.in_(ids)))
            ),
            "dead_jobs": sorted(
                tuple(r) for r in session.execute(select(DeadJob.__table__).where(DeadJob.company_id.in_(ids)))
            ),
        }


def job_statuses(db: CompanyDatabase, job_ids: list[int]) -> list[DeadJobStatus]:
    with db.read_session() as session:
        found = dict(session.execute(select(DeadJob.id, DeadJob.status).where(DeadJob.id.in_(job_ids))).tuples().all())
    return [found[j] for j in job_ids]


def cluster(db: CompanyDatabase, cluster_id: int) -> tuple[str, str | None, int | None]:
    with db.read_session() as session:
        found = session.get(DedupCluster, cluster_id)
        assert found is not None
        return found.status, found.reason, found.merged_by


def company(db: CompanyDatabase, company_id: int) -> Company:
    with db.read_session() as session:
        found = session.get(Company, company_id)
        assert found is not None
        session.expunge(found)
        return found


def outcomes(db: CompanyDatabase, bulk_action_id: int) -> dict[int, tuple[str, str]]:
    with db.read_session() as session:
        found = session.execute(
            select(BulkActionOutcome.company_id, BulkActionOutcome.status, BulkActionOutcome.detail).where(
                BulkActionOutcome.bulk_action_id == bulk_action_id
            )
        ).all()
    return {cid: (status.value, detail or "") for cid, status, detail in found}


def scores_of(db: CompanyDatabase, company_id: int) -> set[tuple[str, str]]:
    with db.read_session() as session:
        found = session.execute(
            select(CompanyScore.model, CompanyScore.reasoning).where(CompanyScore.company_id == company_id)
        ).all()
    return {(model, reasoning or "") for model, reasoning in found}


# --- the tests ---------------------------------------------------------------------------------------------


def test_merge_fills_the_winner_marks_the_losers_moves_rows_and_rollback_restores_it_exactly(
    database_name: str, db: CompanyDatabase
) -> None:
    w1, l1, l2, w2, l3 = seed(db, 5, 15001)
    set_fields(db, w1, **EMPTY_WINNER)
    # l2 is the most complete loser: its values come first; l1 gives what l2 lacks (the ownership type)
    set_fields(db, l1, industry="Fallback industry", activity_description=None, ownership_type="family")
    set_fields(
        db,
        l2,
        ownership_type=None,
        taxonomy_version="nace-2.1",
        sector="J",
        subsector="62",
        business_model="b2b",
        classification_mode="local",
        classification_model="rules",
        classification_input_sha256="ab" * 32,
    )
    expected_l2 = company(db, l2)
    add_scores(db, w1, "m-winner")
    add_scores(db, l1, "m-shared")  # l2 (more complete) gives m-shared: l1's stays with l1
    add_scores(db, l1, "m-only-l1")  # nobody else has it: moved
    add_scores(db, l2, "m-shared")
    add_scores(db, l2, "m-winner")  # the winner has its own: stays
    open_job = add_dead_job(db, l1, DeadJobStatus.OPEN)
    resolved_job = add_dead_job(db, l1, DeadJobStatus.RESOLVED)
    sweep = make_sweep(db)
    c1 = make_cluster(db, sweep, w1, [l1, l2])
    c2 = make_cluster(db, sweep, w2, [l3])
    ids = [w1, l1, l2, w2, l3]
    before = rows(db, ids)

    merged = merge_companies(sweep_id=sweep, database=database_name, created_by="alice")

    assert isinstance(merged, MergeSummary) and merged.status == "completed"
    assert (merged.total, merged.succeeded, merged.clusters_merged, merged.companies_merged) == (2, 2, 2, 3)
    winner = company(db, w1)
    assert winner.name == before["companies"][w1]["name"]  # the name stays
    assert (winner.website, winner.domain, winner.industry) == (
        expected_l2.website,
        expected_l2.domain,
        expected_l2.industry,
    )
    assert winner.activity_description == expected_l2.activity_description
    assert winner.ownership_type == "family"  # l2 has none: from the next loser
    assert (winner.taxonomy_version, winner.sector, winner.subsector, winner.business_model) == (
        "nace-2.1",
        "J",
        "62",
        "b2b",
    )
    for loser, into in ((l1, w1), (l2, w1), (l3, w2)):
        merged_loser = company(db, loser)
        assert (merged_loser.status, merged_loser.merged_into_id) == (CompanyStatus.MERGED, into)
    assert cluster(db, c1) == (ClusterStatus.MERGED, None, merged.bulk_action_id)
    assert cluster(db, c2)[0] == ClusterStatus.MERGED
    with db.read_session() as session:
        history = changes_by_action(session, merged.bulk_action_id)
        assert {h.kind for h in history} == {"merge"}
        assert {(h.company_id, h.field) for h in history if h.company_id != w1} == {
            (loser, f) for loser in (l1, l2, l3) for f in ("status", "merged_into_id")
        }
        assert merged_into_cycles(session) == []
        moves = list(session.scalars(select(MergeMove).where(MergeMove.bulk_action_id == merged.bulk_action_id)))
        active = set(session.scalars(selected_companies(session, Selection(filter=CompanyFilter()))))
    # scores: whole (provider, model) sets the winner lacked, from the most complete loser first
    assert {m for m, _ in scores_of(db, w1)} == {"m-winner", "m-shared", "m-only-l1"}
    assert {r for m, r in scores_of(db, w1) if m == "m-shared"} == {f"m-shared on {l2}"}
    assert {r for m, r in scores_of(db, w1) if m == "m-winner"} == {f"m-winner on {w1}"}
    assert scores_of(db, l1) == {("m-shared", f"m-shared on {l1}")}
    assert scores_of(db, l2) == {("m-winner", f"m-winner on {l2}")}
    assert sorted((m.table_name, m.kind) for m in moves) == [("company_scores", "moved")] * 6 + [
        ("dead_jobs", "closed")
    ]
    assert job_statuses(db, [open_job, resolved_job]) == [DeadJobStatus.DISCARDED, DeadJobStatus.RESOLVED]
    # merged companies leave the default selection; their winners stay
    assert {w1, w2} <= active and not {l1, l2, l3} & active

    undo = rollback(rollback_of=merged.bulk_action_id, database=database_name)

    assert isinstance(undo, BulkActionSummary) and undo.status == "completed"
    assert (undo.total, undo.succeeded) == (5, 5)  # the winners, and the losers from the history
    after = rows(db, ids)
    assert after == before  # every field, status, merged_into, score row and dead job, exactly
    assert cluster(db, c1)[0] == cluster(db, c2)[0] == ClusterStatus.ROLLED_BACK
    with db.read_session() as session:
        undone = set(
            session.scalars(select(MergeMove.undone_by).where(MergeMove.bulk_action_id == merged.bulk_action_id))
        )
    assert undone == {undo.bulk_action_id}
    notes = outcomes(db, undo.bulk_action_id)
    assert notes[l1] == ("succeeded", "restored merged_into_id, status; moved back 3 score rows; reopened 1 dead jobs")
    assert notes[w2] == ("succeeded", f"cluster {c2} rolled back")
    # a rollback of the rollback would merge without the moves: refused, merge again instead
    with pytest.raises(InputError, match="merge again"):
        rollback(rollback_of=undo.bulk_action_id, database=database_name)


def test_named_clusters_and_an_exclude_list(database_name: str, db: CompanyDatabase) -> None:
    ids = seed(db, 6, 15002)
    sweep = make_sweep(db)
    c1 = make_cluster(db, sweep, ids[0], [ids[1]])
    c2 = make_cluster(db, sweep, ids[2], [ids[3]])
    c3 = make_cluster(db, sweep, ids[4], [ids[5]])

    with pytest.raises(InputError, match="both named and excluded"):
        merge_companies(sweep_id=sweep, cluster_ids=[c1], exclude_cluster_ids=[c1], database=database_name)
    with pytest.raises(InputError, match="not found in sweep"):
        merge_companies(sweep_id=sweep, cluster_ids=[c1, 10**9], database=database_name)
    with pytest.raises(InputError, match="not a dedup_sweep"):
        merge_companies(sweep_id=_other_action(db), database=database_name)

    first = merge_companies(sweep_id=sweep, exclude_cluster_ids=[c2], database=database_name, created_by="bob")

    assert isinstance(first, MergeSummary)
    assert (first.clusters_merged, first.clusters_excluded) == (2, 1)
    assert cluster(db, c2) == (ClusterStatus.EXCLUDED, "excluded by bob", None)
    assert cluster(db, c1)[0] == cluster(db, c3)[0] == ClusterStatus.MERGED
    assert company(db, ids[3]).status is CompanyStatus.ACTIVE

    # a reviewer who names the excluded cluster takes it back in
    second = merge_companies(sweep_id=sweep, cluster_ids=[c2], database=database_name)

    assert isinstance(second, MergeSummary) and (second.total, second.clusters_merged) == (1, 1)
    assert cluster(db, c2)[0] == ClusterStatus.MERGED
    assert company(db, ids[3]).merged_into_id == ids[2]


def _other_action(db: CompanyDatabase) -> int:
    with db.session() as session:
        return create_bulk_action(session, action="update_status", company_ids=[], created_by="tests").id


def test_changed_clusters_are_refused_with_the_reason_and_merging_twice_is_a_no_op(
    database_name: str, db: CompanyDatabase
) -> None:
    ids = seed(db, 8, 15003)
    sweep = make_sweep(db)
    changed = make_cluster(db, sweep, ids[0], [ids[1]])
    gone = make_cluster(db, sweep, ids[2], [ids[3]])
    fine = make_cluster(db, sweep, ids[4], [ids[5]])
    # after the sweep: one loser edited, one loser deleted
    update_status(company_ids=[ids[1]], company_priority=77, database=database_name)
    update_status(company_ids=[ids[3]], status="deleted", database=database_name)
    before = rows(db, ids[:4])

    merged = merge_companies(sweep_id=sweep, database=database_name)

    assert isinstance(merged, MergeSummary) and merged.status == "completed"
    assert (merged.clusters_merged, merged.clusters_refused) == (1, 2)
    assert rows(db, ids[:4]) == before  # a refused cluster is not touched
    status, reason, _ = cluster(db, changed)
    assert status == ClusterStatus.REFUSED and reason is not None
    assert f"member {ids[1]} changed since the sweep" in reason
    assert cluster(db, gone)[0] == ClusterStatus.REFUSED and f"member {ids[3]} is deleted" in (
        cluster(db, gone)[1] or ""
    )
    notes = outcomes(db, merged.bulk_action_id)
    assert notes[ids[0]] == ("skipped", f"refused: cluster {changed}: {reason}")
    assert notes[ids[4]][0] == "succeeded"
    assert cluster(db, fine)[0] == ClusterStatus.MERGED

    # merging the sweep again: nothing is proposed anymore, and no action is created
    latest = latest_bulk_action(db)
    again = merge_companies(sweep_id=sweep, database=database_name)
    assert not isinstance(again, BulkActionSummary)
    assert latest_bulk_action(db).id == latest.id  # type: ignore[union-attr]
    # naming the merged cluster again: a no-op, skipped, no history
    state = rows(db, ids)
    named = merge_companies(sweep_id=sweep, cluster_ids=[fine], database=database_name)
    assert isinstance(named, MergeSummary) and (named.skipped, named.clusters_already_merged) == (1, 1)
    assert outcomes(db, named.bulk_action_id)[ids[4]][1].startswith("already merged")
    assert rows(db, ids) == state
    with db.read_session() as session:
        assert changes_by_action(session, named.bulk_action_id) == []

    # never into a merged company: a later cluster led by the merged loser is refused
    later = make_sweep(db)
    into_merged = make_cluster(db, later, ids[5], [ids[6]])
    refused = merge_companies(sweep_id=later, database=database_name)
    assert isinstance(refused, MergeSummary) and refused.clusters_refused == 1
    assert f"winner {ids[5]} is merged into {ids[4]}" in (cluster(db, into_merged)[1] or "")
    assert company(db, ids[6]).status is CompanyStatus.ACTIVE


def test_dry_run_reports_what_would_merge_and_writes_nothing(database_name: str, db: CompanyDatabase) -> None:
    ids = seed(db, 6, 15004)
    set_fields(db, ids[0], industry=None)
    sweep = make_sweep(db)
    c1 = make_cluster(db, sweep, ids[0], [ids[1]])
    c2 = make_cluster(db, sweep, ids[2], [ids[3]])
    c3 = make_cluster(db, sweep, ids[4], [ids[5]])
    set_fields(db, ids[3], priority=5)  # changed after the sweep
    add_scores(db, ids[1], "m-dry")
    before = rows(db, ids)
    latest = latest_bulk_action(db)

    report = merge_companies(sweep_id=sweep, exclude_cluster_ids=[c3], database=database_name, dry_run=True)

    assert isinstance(report, MergeDryRun)
    assert (report.clusters, report.would_merge, report.would_refuse, report.would_exclude) == (2, 1, 1, 1)
    assert (report.companies_merged, report.score_rows_moved) == (1, 3) and report.fields_filled >= 1
    by_cluster = {row["cluster"]: row for row in report.rows}
    assert by_cluster[c1]["would"] == "merge" and "filled industry" in by_cluster[c1]["detail"]
    assert by_cluster[c2]["would"] == "refuse" and f"member {ids[3]} changed" in by_cluster[c2]["detail"]
    assert rows(db, ids) == before
    assert [cluster(db, c)[0] for c in (c1, c2, c3)] == [ClusterStatus.PROPOSED] * 3
    assert latest_bulk_action(db).id == latest.id  # type: ignore[union-attr]


def test_a_moved_score_rescored_since_stays_with_the_winner_and_is_reported(
    database_name: str, db: CompanyDatabase
) -> None:
    winner, loser = seed(db, 2, 15005)
    add_scores(db, loser, "m-moved")
    sweep = make_sweep(db)
    make_cluster(db, sweep, winner, [loser])
    merged = merge_companies(sweep_id=sweep, database=database_name)
    assert isinstance(merged, MergeSummary) and merged.clusters_merged == 1
    with db.session() as session:  # a rescore of the winner overwrites one moved row in place
        rescored = session.scalars(
            select(CompanyScore.id).where(CompanyScore.company_id == winner, CompanyScore.criterion == "total")
        ).one()
        session.execute(
            update(CompanyScore).where(CompanyScore.id == rescored).values(score=0, reasoning="rescored on the winner")
        )

    undo = rollback(rollback_of=merged.bulk_action_id, database=database_name)

    assert isinstance(undo, BulkActionSummary) and undo.status == "completed"
    assert company(db, loser).status is CompanyStatus.ACTIVE and company(db, loser).merged_into_id is None
    assert scores_of(db, winner) == {("m-moved", "rescored on the winner")}
    assert scores_of(db, loser) == {("m-moved", f"m-moved on {loser}")}  # the two rows not rescored
    status, detail = outcomes(db, undo.bulk_action_id)[loser]
    assert status == "succeeded" and "moved back 2 score rows" in detail
    assert f"conflicts kept: company_scores {rescored}: rescored since the merge" in detail


def test_the_cycle_detector_sees_a_loop_written_behind_the_merge_s_back(db: CompanyDatabase) -> None:
    a, b, c = seed(db, 3, 15006)
    with Session(db.get_engine()) as session:  # never committed: the loop exists only inside this transaction
        session.execute(update(Company).where(Company.id == a).values(merged_into_id=b))
        session.execute(update(Company).where(Company.id == b).values(merged_into_id=a))
        session.execute(update(Company).where(Company.id == c).values(merged_into_id=a))
        assert merged_into_cycles(session) == sorted([a, b])
        session.rollback()
    with db.read_session() as session:
        assert merged_into_cycles(session) == []


def test_a_plan_overtaken_before_its_write_is_refused_whole(db: CompanyDatabase) -> None:
    winner, loser, other_winner, other_loser = seed(db, 4, 15007)
    sweep = make_sweep(db)
    edited = make_cluster(db, sweep, winner, [loser])
    raced = make_cluster(db, sweep, other_winner, [other_loser])
    merge_id = _other_action(db)
    with db.read_session() as session:
        plans = plan_merges(session, sweep, [winner, other_winner])
        twice = plan_merges(session, sweep, [other_winner])
    set_fields(db, loser, priority=3)  # changed between the plan and its write
    with pytest.raises(StaleMergePlanError, match=f"company {loser}"), db.session() as session:
        apply_merges(session, [plans[winner]], merge_id)
    assert cluster(db, edited)[0] == ClusterStatus.PROPOSED and company(db, loser).status is CompanyStatus.ACTIVE
    # two merges that planned the same cluster: the second write finds it merged and writes nothing
    with db.session() as session:
        apply_merges(session, [plans[other_winner]], merge_id)
    with pytest.raises(StaleMergePlanError, match=f"cluster {raced}"), db.session() as session:
        apply_merges(session, [twice[other_winner]], merge_id)
    assert cluster(db, raced) == (ClusterStatus.MERGED, None, merge_id)
    with db.read_session() as session:
        assert len(changes_by_action(session, merge_id)) == 2  # the loser's status and merged_into, once
