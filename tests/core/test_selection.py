"""Selections resolve inside the database into exactly the companies, in exactly the order, that they describe.

Every expectation is computed independently in Python from the company rows, on SQLite and PostgreSQL.  The
database is shared by the whole test session, so expectations read every company in it, not only the ones
seeded here.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, text, update

from blocks.database import CompanyDatabase
from core.company_codes import country_code
from core.errors import (
    DuplicateCompanyIdsError,
    EmptyCompanyListError,
    EmptySelectionError,
    InputError,
    TooManyCompaniesError,
    UnknownBulkActionError,
    UnknownCompanyIdsError,
)
from core.schema import (
    BulkAction,
    BulkActionOutcome,
    Company,
    CompanyEmbedding,
    CompanyScore,
    CompanyStatus,
    EnrichmentStatus,
    OutcomeStatus,
)
from core.selection import (
    MAX_EXPLICIT_IDS,
    CompanyFilter,
    Selection,
    describe,
    preview,
    resolve_into_outcomes,
    selection_of,
)
from core.store import create_bulk_action
from tests.helpers import seed

NOW = datetime.now(UTC)
MARKER_CREATED = datetime(2021, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)  # one company's created_at, to the microsecond
MARKER_ENRICHED = datetime(2022, 6, 1, 12, 0, 0, 500, tzinfo=UTC)  # another one's enriched_at
WILDCARD_NAME = "Selectiontest 100% Pure_Foods B.V."  # name_contains must read % and _ literally
LOOKALIKE_NAME = "Selectiontest 100X Pure-Foods B.V."  # what an unescaped '100% pure_' would also match
MODEL_A, MODEL_B = "selection-test/model-a", "selection-test/model-b"


@dataclass
class Row:
    id: int
    name: str
    country: str | None
    industry: str | None
    nace_code: str | None
    status: CompanyStatus
    enrichment_status: EnrichmentStatus
    enriched_at: datetime | None
    needs_review: bool
    priority: int
    created_at: datetime
    updated_at: datetime
    models: set[str] = field(default_factory=set)
    totals: list[int] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.status is CompanyStatus.ACTIVE


@dataclass
class World:
    db: CompanyDatabase
    backend: str
    seeded: list[int]
    rows: dict[int, Row]
    source_action: int  # a bulk action whose outcomes cover seeded companies in every status
    source_outcomes: dict[int, OutcomeStatus]


# --- the seeded world ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, prefect_server: None) -> World:
    from blocks.loading import load_database

    db = load_database("default" if request.param == "sqlite" else "postgres")
    ids = seed(db, 240, 4242)
    rng = random.Random(4242)
    with db.session() as session:
        _vary_companies(session, ids, rng)
        _add_embeddings_and_scores(session, ids, rng)
        source, outcomes = _source_action(session, ids, rng)
    return World(db, request.param, ids, _snapshot(db), source, outcomes)


def _vary_companies(session: Any, ids: list[int], rng: random.Random) -> None:
    for i, company_id in enumerate(ids):
        company = session.get(Company, company_id)
        company.status = rng.choices(list(CompanyStatus), weights=[85, 5, 10])[0]  # active, deleted, merged
        company.enrichment_status = rng.choice(list(EnrichmentStatus))
        if company.enrichment_status is not EnrichmentStatus.NEVER:
            days = rng.choice([rng.uniform(0.5, 8), rng.uniform(12, 90)])  # never near the 10-day threshold
            company.enriched_at = NOW - timedelta(days=days)
        company.needs_review = rng.random() < 0.2
        company.created_at = NOW - timedelta(days=rng.uniform(1, 400), microseconds=i)
        company.updated_at = company.created_at + timedelta(days=rng.uniform(0, 1))
        if rng.random() < 0.1:
            company.country = (company.country or "").upper()
            company.industry = (company.industry or "").lower()
        elif rng.random() < 0.15:  # as an import stores it: "ES", not "Spain"
            company.country = country_code(company.country or "") or company.country
    first, second, third, fourth = (session.get(Company, i) for i in ids[:4])
    first.name, first.status = WILDCARD_NAME, CompanyStatus.ACTIVE
    second.name, second.status = LOOKALIKE_NAME, CompanyStatus.ACTIVE
    third.created_at, third.status = MARKER_CREATED, CompanyStatus.ACTIVE
    fourth.enriched_at, fourth.status = MARKER_ENRICHED, CompanyStatus.ACTIVE


def _add_embeddings_and_scores(session: Any, ids: list[int], rng: random.Random) -> None:
    for company_id in ids:
        for model, share in ((MODEL_A, 0.4), (MODEL_B, 0.2)):
            if rng.random() < share:
                session.add(
                    CompanyEmbedding(
                        company_id=company_id, model_id=model, dimension=1, text_sha256="x", text="t", vector=b"\0" * 4
                    )
                )
        if rng.random() < 0.6:
            for provider in ("p1", "p2")[: rng.randint(1, 2)]:
                for criterion, score in (("total", rng.randint(0, 50)), ("ai_strategy", rng.randint(0, 5))):
                    session.add(
                        CompanyScore(
                            company_id=company_id,
                            criterion=criterion,
                            score=score,
                            provider=provider,
                            model="m",
                            input_sha256="x",
                        )
                    )


def _source_action(session: Any, ids: list[int], rng: random.Random) -> tuple[int, dict[int, OutcomeStatus]]:
    members = ids[10:70]
    record = create_bulk_action(session, action="generate_embeddings", company_ids=members, created_by="test")
    outcomes = {cid: rng.choice(list(OutcomeStatus)) for cid in members}
    for cid, status in outcomes.items():
        session.execute(
            update(BulkActionOutcome)
            .where(BulkActionOutcome.bulk_action_id == record.id, BulkActionOutcome.company_id == cid)
            .values(status=status)
        )
    return record.id, outcomes


def _snapshot(db: CompanyDatabase) -> dict[int, Row]:
    with db.read_session() as session:
        rows = {
            c.id: Row(
                c.id,
                c.name,
                c.country,
                c.industry,
                c.nace_code,
                c.status,
                c.enrichment_status,
                c.enriched_at,
                c.needs_review,
                c.priority,
                c.created_at,
                c.updated_at,
            )
            for c in session.scalars(select(Company))
        }
        for cid, model in session.execute(select(CompanyEmbedding.company_id, CompanyEmbedding.model_id)):
            rows[cid].models.add(model)
        totals = select(CompanyScore.company_id, CompanyScore.score).where(CompanyScore.criterion == "total")
        for cid, score in session.execute(totals):
            rows[cid].totals.append(score)
    return rows


# --- helpers -------------------------------------------------------------------------------------------------


def new_action(session: Any) -> int:
    return create_bulk_action(session, action="generate_embeddings", company_ids=[], created_by="test").id


def resolve(world: World, selection: Selection, max_companies: int = 100_000) -> list[int]:
    """The resolved companies in position order; checks positions run 0..n-1 and the record's total."""
    with world.db.session() as session:
        action_id = new_action(session)
        count = resolve_into_outcomes(session, action_id, selection, max_companies=max_companies)
    with world.db.read_session() as session:
        rows = session.execute(
            select(BulkActionOutcome.company_id, BulkActionOutcome.position, BulkActionOutcome.status)
            .where(BulkActionOutcome.bulk_action_id == action_id)
            .order_by(BulkActionOutcome.position)
        ).all()
        total = session.scalar(select(BulkAction.total).where(BulkAction.id == action_id))
    assert [r.position for r in rows] == list(range(len(rows)))
    assert {r.status for r in rows} <= {OutcomeStatus.PENDING}
    assert count == total == len(rows)
    return [r.company_id for r in rows]


def outcome_rows(world: World) -> int:
    with world.db.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(BulkActionOutcome)) or 0)


def by_order(order: str) -> Callable[[Row], Any]:
    never = datetime.min.replace(tzinfo=UTC)
    keys: dict[str, Callable[[Row], Any]] = {
        "priority": lambda r: (-r.priority, r.id),
        "id": lambda r: r.id,
        "name": lambda r: (r.name, r.id),
        "created_at": lambda r: (r.created_at, r.id),
        "updated_at": lambda r: (r.updated_at, r.id),
        "enriched_at": lambda r: (r.enriched_at or never, r.id),  # never enriched comes first
    }
    return keys[order]


def expected(world: World, keep: Callable[[Row], bool], order: str = "priority") -> list[int]:
    return [r.id for r in sorted((r for r in world.rows.values() if keep(r)), key=by_order(order))]


def codepoint_collation(world: World) -> bool:
    if world.backend == "sqlite":
        return True
    with world.db.read_session() as session:
        collation = session.scalar(text("SELECT datcollate FROM pg_database WHERE datname = current_database()"))
    return str(collation) in ("C", "POSIX", "C.UTF-8", "C.utf8")


# --- every filter field --------------------------------------------------------------------------------------

ENRICHED_CUTOFF = NOW - timedelta(days=10)
FILTER_CASES: dict[str, tuple[dict[str, Any], Callable[[Row], bool]]] = {
    "default: active only": ({}, lambda r: r.active),
    "countries, any case or spelling": (
        {"countries": ["spain", "GERMANY", " Netherlands "]},
        lambda r: r.active and country_code(r.country or "") in ("ES", "DE", "NL"),
    ),
    "countries by code": (
        {"countries": ["es", "DEU"]},
        lambda r: r.active and country_code(r.country or "") in ("ES", "DE"),
    ),
    "industries, any case": (
        {"industries": ["software development", "Logistics"]},
        lambda r: r.active and (r.industry or "").lower() in ("software development", "logistics"),
    ),
    "nace prefix": ({"nace_prefix": "62"}, lambda r: r.active and (r.nace_code or "").startswith("62")),
    "nace prefix with dot": ({"nace_prefix": "62.0"}, lambda r: r.active and (r.nace_code or "").startswith("62.0")),
    "statuses": (
        {"statuses": ["merged", "deleted"]},
        lambda r: r.status in (CompanyStatus.MERGED, CompanyStatus.DELETED),
    ),
    "enrichment statuses": (
        {"enrichment_statuses": ["never", "failed_retryable"]},
        lambda r: r.active and r.enrichment_status in (EnrichmentStatus.NEVER, EnrichmentStatus.FAILED_RETRYABLE),
    ),
    "enriched before (never enriched counts)": (
        {"enriched_before": ENRICHED_CUTOFF.isoformat()},
        lambda r: r.active and (r.enriched_at is None or r.enriched_at < ENRICHED_CUTOFF),
    ),
    "enriched older than days": (
        {"enriched_older_than_days": 10},
        lambda r: r.active and (r.enriched_at is None or r.enriched_at < ENRICHED_CUTOFF),
    ),
    "score range on any total row": (
        {"score_min": 20, "score_max": 35},
        lambda r: r.active and any(20 <= s <= 35 for s in r.totals),
    ),
    "score min only": ({"score_min": 45}, lambda r: r.active and any(s >= 45 for s in r.totals)),
    "score max only": ({"score_max": 5}, lambda r: r.active and any(s <= 5 for s in r.totals)),
    "created since": (
        {"created_since": (NOW - timedelta(days=100)).isoformat()},
        lambda r: r.active and r.created_at >= NOW - timedelta(days=100),
    ),
    "updated since": (
        {"updated_since": (NOW - timedelta(days=50)).isoformat()},
        lambda r: r.active and r.updated_at >= NOW - timedelta(days=50),
    ),
    "needs review": ({"needs_review": True}, lambda r: r.active and r.needs_review),
    "does not need review": ({"needs_review": False}, lambda r: r.active and not r.needs_review),
    "name contains, any case": ({"name_contains": "gmbh"}, lambda r: r.active and "gmbh" in r.name.lower()),
    "name contains wildcards literally": (
        {"name_contains": "100% PURE_"},
        lambda r: r.active and "100% pure_" in r.name.lower(),
    ),
    "has embedding": ({"has_embedding": MODEL_A}, lambda r: r.active and MODEL_A in r.models),
    "lacks embedding": ({"lacks_embedding": MODEL_A}, lambda r: r.active and MODEL_A not in r.models),
    "has one model and lacks another": (
        {"has_embedding": MODEL_A, "lacks_embedding": MODEL_B},
        lambda r: r.active and MODEL_A in r.models and MODEL_B not in r.models,
    ),
    "priority at least": ({"priority_at_least": 5}, lambda r: r.active and r.priority >= 5),
    "several conditions together": (
        {"statuses": ["active", "merged"], "needs_review": False, "priority_at_least": 2, "score_min": 10},
        lambda r: (
            r.status in (CompanyStatus.ACTIVE, CompanyStatus.MERGED)
            and not r.needs_review
            and r.priority >= 2
            and any(s >= 10 for s in r.totals)
        ),
    ),
}


@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_each_filter_selects_exactly_the_matching_companies(world: World, case: str) -> None:
    conditions, keep = FILTER_CASES[case]
    want = expected(world, keep)
    every_active = expected(world, lambda r: r.active)
    assert want and (want != every_active or not conditions), f"the seeded data should exercise {case!r}"
    assert resolve(world, Selection(filter=CompanyFilter(**conditions))) == want


def test_the_seeded_data_exercises_the_filters(world: World) -> None:
    """Guards the cases above against passing vacuously (everything or nothing matching)."""
    active = [r for r in world.rows.values() if r.active]
    assert any(r.country and r.country.isupper() for r in active)
    assert any(r.country and len(r.country) == 2 for r in active)  # stored as an import stores it
    assert any(r.enriched_at is None for r in active) and any(r.enriched_at for r in active)
    assert any(len(r.totals) == 2 for r in active)
    assert any(r.name == LOOKALIKE_NAME for r in active)  # matched by '100%_pure_' if % and _ were wildcards
    wildcard = [r.id for r in world.rows.values() if r.name == WILDCARD_NAME]
    assert resolve(world, Selection(filter=CompanyFilter(name_contains="100% PURE_"))) == wildcard


# --- order and limit -----------------------------------------------------------------------------------------

ORDERS = ["priority", "id", "name", "created_at", "updated_at", "enriched_at"]


@pytest.mark.parametrize("order", ORDERS)
def test_each_order_and_a_limit(world: World, order: str) -> None:
    if order == "name" and not codepoint_collation(world):
        pytest.skip("this PostgreSQL database does not collate names by code point, as Python does")
    want = expected(world, lambda r: r.active, order)
    assert resolve(world, Selection(filter=CompanyFilter(), order=order)) == want  # type: ignore[arg-type]
    assert resolve(world, Selection(filter=CompanyFilter(), order=order, limit=7)) == want[:7]  # type: ignore[arg-type]


def test_a_limit_above_the_count_takes_them_all(world: World) -> None:
    want = expected(world, lambda r: r.active and r.priority >= 8)
    assert resolve(world, Selection(filter=CompanyFilter(priority_at_least=8), limit=len(want) + 50)) == want


# --- explicit ids ---------------------------------------------------------------------------------------------


def test_explicit_ids_keep_the_given_order_whatever_the_order_field(world: World) -> None:
    ids = [world.seeded[50], world.seeded[3], world.seeded[120], world.seeded[7]]  # merged ones included
    assert resolve(world, Selection(ids=ids, order="id")) == ids
    assert resolve(world, Selection(ids=ids, limit=2)) == ids[:2]


def test_unknown_ids_are_named_and_nothing_is_written(world: World) -> None:
    before = outcome_rows(world)
    missing = [max(world.rows) + 1000, max(world.rows) + 1]
    with world.db.session() as session, pytest.raises(UnknownCompanyIdsError) as info:
        resolve_into_outcomes(
            session, new_action(session), Selection(ids=[world.seeded[0], *missing]), max_companies=100
        )
    assert info.value.unknown == missing and str(missing[0]) in str(info.value)
    assert outcome_rows(world) == before


# --- another action's companies ------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["failed", "succeeded", "skipped", "pending", "all"])
def test_from_action_by_outcome(world: World, outcome: str) -> None:
    wanted = {cid for cid, status in world.source_outcomes.items() if outcome in ("all", status.value)}
    assert wanted
    selection = Selection.model_validate({"from_action": {"bulk_action_id": world.source_action, "outcome": outcome}})
    assert resolve(world, selection) == expected(world, lambda r: r.id in wanted)
    by_id = Selection.model_validate({"from_action": {"bulk_action_id": world.source_action}, "order": "id"})
    failed = {cid for cid, status in world.source_outcomes.items() if status is OutcomeStatus.FAILED}
    assert resolve(world, by_id) == sorted(failed)  # the default outcome is "failed"


def test_from_a_missing_action(world: World) -> None:
    selection = Selection.model_validate({"from_action": {"bulk_action_id": 987_654_321}})
    with world.db.session() as session, pytest.raises(UnknownBulkActionError, match="987654321"):
        resolve_into_outcomes(session, new_action(session), selection, max_companies=100)
    with world.db.read_session() as session, pytest.raises(UnknownBulkActionError):
        preview(session, selection)


# --- errors of the whole selection ---------------------------------------------------------------------------


def test_an_empty_selection_says_what_was_asked(world: World) -> None:
    before = outcome_rows(world)
    selection = Selection(filter=CompanyFilter(name_contains="no-such-company-anywhere", countries=["Atlantis"]))
    with world.db.session() as session, pytest.raises(EmptySelectionError) as info:
        resolve_into_outcomes(session, new_action(session), selection, max_companies=100)
    assert "no-such-company-anywhere" in str(info.value) and "Atlantis" in str(info.value)
    with world.db.session() as session:
        source = new_action(session)  # an action with no companies
    from_empty = Selection.model_validate({"from_action": {"bulk_action_id": source, "outcome": "all"}})
    with world.db.session() as session, pytest.raises(EmptySelectionError, match=f"companies of bulk action {source}"):
        resolve_into_outcomes(session, new_action(session), from_empty, max_companies=100)
    assert outcome_rows(world) == before


def test_too_many_companies_are_counted_and_nothing_is_written(world: World) -> None:
    before = outcome_rows(world)
    active = len(expected(world, lambda r: r.active))
    with world.db.session() as session, pytest.raises(TooManyCompaniesError) as info:
        resolve_into_outcomes(session, new_action(session), Selection(filter=CompanyFilter()), max_companies=5)
    assert (info.value.count, info.value.maximum) == (active, 5)
    with world.db.session() as session, pytest.raises(TooManyCompaniesError):
        resolve_into_outcomes(session, new_action(session), Selection(ids=world.seeded[:6]), max_companies=5)
    assert outcome_rows(world) == before
    assert len(resolve(world, Selection(filter=CompanyFilter(), limit=5), max_companies=5)) == 5


def test_an_action_is_resolved_once(world: World) -> None:
    with world.db.session() as session:
        action_id = new_action(session)
        resolve_into_outcomes(session, action_id, Selection(ids=world.seeded[:2]), max_companies=10)
        with pytest.raises(ValueError, match="resolved once"):
            resolve_into_outcomes(session, action_id, Selection(ids=world.seeded[2:4]), max_companies=10)


# --- datetimes on both backends ------------------------------------------------------------------------------


def in_any_zone(moment: datetime) -> list[datetime]:
    """The same instant as UTC, as +02:00 and as a naive datetime (taken as UTC)."""
    return [moment, moment.astimezone(timezone(timedelta(hours=2))), moment.replace(tzinfo=None)]


def test_datetimes_compare_to_the_microsecond_in_any_zone(world: World) -> None:
    created, enriched = world.seeded[2], world.seeded[3]
    one = timedelta(microseconds=1)
    for moment in in_any_zone(MARKER_CREATED):
        assert created in resolve(world, Selection(filter=CompanyFilter(created_since=moment)))
        assert created not in resolve(world, Selection(filter=CompanyFilter(created_since=moment + one)))
    for moment in in_any_zone(MARKER_ENRICHED):
        assert enriched not in resolve(world, Selection(filter=CompanyFilter(enriched_before=moment)))
        assert enriched in resolve(world, Selection(filter=CompanyFilter(enriched_before=moment + one)))
    assert CompanyFilter(created_since=MARKER_CREATED.replace(tzinfo=None)).created_since == MARKER_CREATED
    assert CompanyFilter(enriched_before="2024-01-01T02:00:00+02:00").enriched_before == datetime(
        2024, 1, 1, tzinfo=UTC
    )


# --- preview ------------------------------------------------------------------------------------------------


def test_preview_counts_and_samples_in_order_and_writes_nothing(world: World) -> None:
    with world.db.read_session() as session:
        actions_before = session.scalar(select(func.count()).select_from(BulkAction))
    outcomes_before = outcome_rows(world)
    want = expected(world, lambda r: r.active and r.priority >= 3)
    with world.db.session() as session:
        result = preview(session, Selection(filter=CompanyFilter(priority_at_least=3)), sample_size=4)
        limited = preview(session, Selection(filter=CompanyFilter(priority_at_least=3), limit=2))
        ids = preview(session, Selection(ids=[world.seeded[9], world.seeded[4]]), sample_size=1)
    assert result.count == len(want) and [s["id"] for s in result.sample] == want[:4]
    first = world.rows[want[0]]
    assert result.sample[0] == {
        "id": first.id,
        "name": first.name,
        "country": first.country,
        "industry": first.industry,
        "priority": first.priority,
    }
    assert (limited.count, [s["id"] for s in limited.sample]) == (2, want[:2])
    assert (ids.count, [s["id"] for s in ids.sample]) == (2, [world.seeded[9]])
    with world.db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(BulkAction)) == actions_before
        empty = preview(session, Selection(filter=CompanyFilter(name_contains="no-such-company-anywhere")))
        assert (empty.count, empty.sample) == (0, [])
        with pytest.raises(UnknownCompanyIdsError):
            preview(session, Selection(ids=[max(world.rows) + 5]))
    assert outcome_rows(world) == outcomes_before


# --- the model, without a database ------------------------------------------------------------------------------


def test_exactly_one_source_is_required() -> None:
    for given in ({}, {"ids": [1], "filter": {}}, {"filter": {}, "from_action": {"bulk_action_id": 1}}):
        with pytest.raises(ValidationError, match="exactly one of `ids`, `filter` or `from_action`"):
            Selection.model_validate(given)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"filter": {"country": ["Spain"]}}, "Extra inputs are not permitted"),
        ({"filter": {}, "colour": "red"}, "Extra inputs are not permitted"),
        ({"from_action": {"bulk_action_id": 1, "outcome": "crashed"}}, "outcome"),
        ({"filter": {"score_min": 51}}, "less than or equal to 50"),
        ({"filter": {"score_max": -1}}, "greater than or equal to 0"),
        ({"filter": {"score_min": 30, "score_max": 20}}, r"score_min \(30\) is above score_max \(20\)"),
        ({"filter": {"nace_prefix": "62%"}}, "pattern"),
        ({"filter": {"countries": []}}, "at least 1 item"),
        ({"filter": {"countries": ["  "]}}, "at least 1 character"),
        ({"filter": {"statuses": ["sleeping"]}}, "statuses"),
        ({"filter": {"has_embedding": "m", "lacks_embedding": "m"}}, "both name 'm'"),
        ({"filter": {"enriched_older_than_days": -1}}, "greater than or equal to 0"),
        ({"ids": [1, 0]}, "greater than 0"),
        ({"ids": [1, True]}, "valid integer"),
        ({"ids": [1, "2"]}, "valid integer"),
        ({"ids": [1], "limit": 0}, "greater than or equal to 1"),
        ({"filter": {}, "order": "random"}, "order"),
    ],
)
def test_invalid_selections_are_refused(given: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Selection.model_validate(given)


def test_id_lists_are_checked_and_capped_but_legacy_lists_are_not() -> None:
    with pytest.raises(ValidationError, match=r"appear more than once: 3, 5"):
        Selection(ids=[5, 3, 5, 1, 3])
    with pytest.raises(DuplicateCompanyIdsError) as info:
        selection_of([5, 3, 5, 1, 3], None)
    assert info.value.duplicates == [3, 5]
    with pytest.raises(EmptyCompanyListError):
        selection_of([], None)
    too_many = list(range(1, MAX_EXPLICIT_IDS + 2))
    with pytest.raises(InputError, match="select larger sets with `filter`"):
        selection_of(None, {"ids": too_many})
    legacy = selection_of(too_many, None)
    assert legacy is not None and legacy.ids == too_many


def test_selection_of() -> None:
    assert selection_of(None, None) is None
    assert selection_of([3, 1], None) == Selection(ids=[3, 1])
    built = Selection(filter=CompanyFilter(countries=["Spain"]))
    assert selection_of(None, built) is built
    assert selection_of(None, {"filter": {"countries": ["Spain"]}}) == built
    with pytest.raises(InputError, match="either `company_ids` or `selection`"):
        selection_of([1], {"filter": {}})
    with pytest.raises(InputError, match=r"invalid selection: filter\.colour: Extra inputs") as info:
        selection_of(None, {"filter": {"colour": "red"}})
    assert not isinstance(info.value, ValidationError)


def test_describe_is_json_and_keeps_long_id_lists_short() -> None:
    described = describe(Selection(filter=CompanyFilter(countries=["Spain"], created_since=MARKER_CREATED)))
    assert described == {
        "filter": {"countries": ["Spain"], "statuses": ["active"], "created_since": "2021-03-04T05:06:07.891011Z"},
        "order": "priority",
    }
    ids = list(range(1, 251))
    long = describe(selection_of(ids, None))  # type: ignore[arg-type]
    assert long == {"ids": ids[:100], "ids_count": 250, "ids_truncated": True}
    assert describe(Selection(ids=[4, 2], limit=1)) == {"ids": [4, 2], "ids_count": 2, "limit": 1}
    json.dumps(long)
    assert Selection.model_validate(described) == Selection(
        filter=CompanyFilter(countries=["Spain"], created_since=MARKER_CREATED)
    )


def test_the_json_schema_is_a_prefect_form() -> None:
    from prefect.utilities.callables import parameter_schema

    def run(selection: Selection | None = None) -> None: ...

    schema = parameter_schema(run).model_dump()
    definitions = schema["definitions"]
    assert definitions["Selection"]["additionalProperties"] is False
    assert definitions["CompanyFilter"]["additionalProperties"] is False
    assert definitions["CompanyFilter"]["properties"]["statuses"]["default"] == ["active"]
    ids = definitions["Selection"]["properties"]["ids"]
    assert ids["maxItems"] == MAX_EXPLICIT_IDS and ids["description"]
    for model in ("Selection", "CompanyFilter", "ActionCompanies"):
        for name, prop in definitions[model]["properties"].items():
            assert prop.get("description"), f"{model}.{name} has no description"
