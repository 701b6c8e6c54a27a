"""Which companies a bulk action runs on: a small typed selection, resolved inside the database.

A flow-run parameter must serialise to under 512 KB, so 100,000 ids cannot travel as ``company_ids``.  A
``Selection`` is the small definition that replaces them: explicit ids for hand-picked sets, a filter over the
company table, or the companies of another bulk action by outcome.  It is a Prefect flow parameter, so it uses
plain JSON-schema types only (the UI renders it as a form, the API validates it on submit) and rejects unknown
fields.

It is resolved once, by one ``INSERT ... SELECT`` straight into the action's outcome rows, numbered in selection
order by ``ROW_NUMBER()``: the ids of a filter or of another action never come back into Python, so a million
companies cost one statement.  Functions take a ``Session`` and never commit, as in ``core.store``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy import ColumnElement, Integer, Select, String, Table, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import UnaryExpression

from core.company_codes import country_spellings
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
    UTCDateTime,
    utcnow,
)
from core.store import chunked, existing_company_ids

#: explicit ids are for hand-picked sets: a form (and a flow-run parameter) of more is the wrong tool
MAX_EXPLICIT_IDS = 10_000
#: how many explicit ids ``describe`` keeps on the bulk action record
DESCRIBED_IDS = 100
#: validation context flag for the legacy ``company_ids`` parameter, bounded by ``max_companies`` only
LEGACY_IDS = "legacy_company_ids"


def _as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to it."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Order = Literal["priority", "id", "name", "created_at", "updated_at", "enriched_at"]
Outcome = Literal["failed", "succeeded", "skipped", "pending", "all"]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
ModelId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
UTCMoment = Annotated[datetime, AfterValidator(_as_utc)]
CompanyId = Annotated[int, Field(strict=True, gt=0)]
Score = Annotated[int, Field(ge=0, le=50)]


class CompanyFilter(BaseModel):
    """Conditions on the company table; every one is optional and all given ones must hold."""

    model_config = ConfigDict(extra="forbid")

    countries: list[Text] | None = Field(default=None, min_length=1, description="Countries, e.g. 'Spain'; any case.")
    industries: list[Text] | None = Field(default=None, min_length=1, description="Industries; any case.")
    nace_prefix: str | None = Field(
        default=None, pattern=r"^[0-9][0-9.]*$", max_length=16, description="NACE code prefix, e.g. '62' or '62.01'."
    )
    statuses: list[CompanyStatus] = Field(
        default=[CompanyStatus.ACTIVE], min_length=1, description="Company statuses (merged, deleted: only if listed)."
    )
    enrichment_statuses: list[EnrichmentStatus] | None = Field(
        default=None, min_length=1, description="Enrichment statuses."
    )
    enriched_before: UTCMoment | None = Field(
        default=None, description="Enriched before this (UTC if no zone), or never."
    )
    enriched_older_than_days: float | None = Field(
        default=None, ge=0, description="Enriched this many days ago, or never."
    )
    score_min: Score | None = Field(default=None, description="Lowest LLM-adoption total score (0-50).")
    score_max: Score | None = Field(default=None, description="Highest LLM-adoption total score (0-50).")
    created_since: UTCMoment | None = Field(default=None, description="Created at or after this (UTC if no zone).")
    updated_since: UTCMoment | None = Field(default=None, description="Updated at or after this (UTC if no zone).")
    needs_review: bool | None = Field(default=None, description="Flagged for review (true) or not (false).")
    name_contains: Text | None = Field(default=None, description="Part of the name; any case.")
    has_embedding: ModelId | None = Field(default=None, description="Model id: has a vector of this model.")
    lacks_embedding: ModelId | None = Field(default=None, description="Model id: has no vector of this model.")
    priority_at_least: int | None = Field(default=None, description="Priority at least this.")

    @model_validator(mode="after")
    def _consistent(self) -> CompanyFilter:
        if self.score_min is not None and self.score_max is not None and self.score_min > self.score_max:
            raise ValueError(f"score_min ({self.score_min}) is above score_max ({self.score_max})")
        if self.has_embedding is not None and self.has_embedding == self.lacks_embedding:
            raise ValueError(f"has_embedding and lacks_embedding both name {self.has_embedding!r}: nothing matches")
        return self


class ActionCompanies(BaseModel):
    """The companies of another bulk action, by their outcome there."""

    model_config = ConfigDict(extra="forbid")

    bulk_action_id: int = Field(gt=0, description="The bulk action whose companies to take.")
    outcome: Outcome = Field(
        default="failed", description="Only the companies with this outcome there ('all': every one)."
    )


class Selection(BaseModel):
    """Which companies a bulk action runs on: exactly one of ``ids``, ``filter`` or ``from_action``."""

    model_config = ConfigDict(extra="forbid")

    ids: list[CompanyId] | None = Field(
        default=None,
        description=f"Explicit company ids (at most {MAX_EXPLICIT_IDS:,}), run in the order given; "
        "select larger sets with a filter.",
        json_schema_extra={"minItems": 1, "maxItems": MAX_EXPLICIT_IDS},
    )
    filter: CompanyFilter | None = Field(default=None, description="The companies matching these conditions.")
    from_action: ActionCompanies | None = Field(default=None, description="The companies of another bulk action.")
    limit: int | None = Field(default=None, ge=1, description="Take only the first this many companies, in `order`.")
    order: Order = Field(
        default="priority",
        description="Order of a filter or from_action selection: 'priority' is highest first, the others "
        "ascending (never-enriched first); ties by id.  Explicit ids always keep the order given.",
    )

    @field_validator("ids")
    @classmethod
    def _valid_ids(cls, ids: list[int] | None, info: ValidationInfo) -> list[int] | None:
        if ids is None:
            return None
        if not ids:
            raise EmptyCompanyListError()
        if len(ids) > MAX_EXPLICIT_IDS and not (info.context or {}).get(LEGACY_IDS):
            raise InputError(
                f"{len(ids):,} explicit ids exceed the {MAX_EXPLICIT_IDS:,} a selection may list: "
                "select larger sets with `filter` or `from_action`"
            )
        duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
        if duplicates:
            raise DuplicateCompanyIdsError(duplicates)
        return ids

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Selection:
        given = [name for name in ("ids", "filter", "from_action") if getattr(self, name) is not None]
        if len(given) != 1:
            got = " and ".join(given) if given else "none"
            raise ValueError(f"a selection needs exactly one of `ids`, `filter` or `from_action`; got {got}")
        return self


@dataclass(frozen=True)
class SelectionPreview:
    """What a selection would run on: how many companies, and the first few in order (for dry runs)."""

    count: int
    sample: list[dict[str, Any]]


# --- the public functions ----------------------------------------------------------------------------------


def selection_of(company_ids: Sequence[int] | None, selection: Selection | dict[str, Any] | None) -> Selection | None:
    """The selection of a request, from either the legacy ``company_ids`` list or a selection (None: neither).

    Legacy lists keep their old limits: any length (``max_companies`` bounds them later), and the same errors
    for an empty list or duplicate ids.  Invalid input raises an ``InputError``, never a pydantic error.
    """
    if company_ids is not None and selection is not None:
        raise InputError("give either `company_ids` or `selection`, not both")
    try:
        if company_ids is not None:
            return Selection.model_validate({"ids": list(company_ids)}, context={LEGACY_IDS: True})
        if selection is None or isinstance(selection, Selection):
            return selection
        return Selection.model_validate(selection)
    except ValidationError as exc:
        raise _input_error(exc) from exc


def describe(selection: Selection) -> dict[str, Any]:
    """The selection as JSON, for the bulk action record; long id lists keep their count and first ids only."""
    described = selection.model_dump(mode="json", exclude_none=True)
    ids = selection.ids
    if ids is not None:
        del described["order"]  # ids keep the order given
        described["ids_count"] = len(ids)
        if len(ids) > DESCRIBED_IDS:
            described["ids"] = ids[:DESCRIBED_IDS]
            described["ids_truncated"] = True
    return described


def resolve_into_outcomes(session: Session, bulk_action_id: int, selection: Selection, *, max_companies: int) -> int:
    """Write the selected companies as ``pending`` outcome rows of the bulk action; return how many.

    The action must exist and have no outcome rows yet; its ``total`` is set to the count.  Positions run
    0..n-1 in selection order.  Raises ``UnknownCompanyIdsError``, ``UnknownBulkActionError``,
    ``EmptySelectionError`` or ``TooManyCompaniesError`` with nothing left written.
    """
    _require_new_action(session, bulk_action_id)
    if selection.ids is not None:
        count = _insert_ids(session, bulk_action_id, _limited_ids(selection), max_companies)
    else:
        count = _insert_selected(session, bulk_action_id, selection, max_companies)
    session.execute(update(BulkAction).where(BulkAction.id == bulk_action_id).values(total=count, updated_at=utcnow()))
    return count


def preview(session: Session, selection: Selection, *, sample_size: int = 10) -> SelectionPreview:
    """How many companies the selection holds and the first ``sample_size`` of them; writes nothing."""
    columns = (Company.id, Company.name, Company.country, Company.industry, Company.priority)
    if selection.ids is not None:
        ids = _limited_ids(selection)
        _require_known(session, ids)
        rows = {row.id: row for row in session.execute(select(*columns).where(Company.id.in_(ids[:sample_size])))}
        return SelectionPreview(len(ids), [rows[i]._asdict() for i in ids[:sample_size]])
    _require_source_action(session, selection)
    now = utcnow()
    count = _count(session, selection, now, selection.limit)
    first = _candidates(selection, now, *columns).order_by(*_ordering(_companies.c, selection.order))
    first = first.limit(min(sample_size, selection.limit or sample_size))
    return SelectionPreview(count, [row._asdict() for row in session.execute(first)])


def selected_companies(session: Session, selection: Selection) -> Select[Any]:
    """The ids of the selected companies, in the selection's order and limit, as a query to join on.

    For readers that stream the companies (an export) rather than record them: nothing is written.  Explicit
    ids are checked to exist; another action's companies need that action to exist.
    """
    if selection.ids is not None:
        ids = _limited_ids(selection)
        _require_known(session, ids)
        return select(Company.id).where(Company.id.in_(ids)).order_by(Company.id)
    _require_source_action(session, selection)
    stmt = _candidates(selection, utcnow(), *[_companies.c[c] for c in _ORDER_SOURCE_COLUMNS])
    stmt = stmt.order_by(*_ordering(_companies.c, selection.order))
    return stmt.limit(selection.limit) if selection.limit is not None else stmt


def selection_ordering(columns: Any, selection: Selection) -> list[UnaryExpression[Any]]:
    """The selection's ORDER BY over ``columns`` (e.g. the ``.c`` of a ``selected_companies`` subquery, whose
    own order a join does not keep)."""
    if selection.ids is not None:
        return [columns["id"].asc()]
    return _ordering(columns, selection.order)


# --- explicit ids ------------------------------------------------------------------------------------------

_companies = cast(Table, Company.__table__)
_outcomes = cast(Table, BulkActionOutcome.__table__)


def _limited_ids(selection: Selection) -> list[int]:
    ids = selection.ids or []
    return ids[: selection.limit] if selection.limit is not None else ids


def _require_known(session: Session, ids: Sequence[int]) -> None:
    found = existing_company_ids(session, ids)
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise UnknownCompanyIdsError(unknown)


def _insert_ids(session: Session, bulk_action_id: int, ids: list[int], max_companies: int) -> int:
    if len(ids) > max_companies:
        raise TooManyCompaniesError(len(ids), max_companies)
    _require_known(session, ids)
    now = utcnow()
    rows = [
        {
            "bulk_action_id": bulk_action_id,
            "company_id": company_id,
            "position": position,
            "status": OutcomeStatus.PENDING,
            "attempts": 0,
            "updated_at": now,
        }
        for position, company_id in enumerate(ids)
    ]
    for part in chunked(rows, 2000):
        session.execute(insert(_outcomes), list(part))
    return len(ids)


# --- filters and other actions, inside the database ----------------------------------------------------------


def _insert_selected(session: Session, bulk_action_id: int, selection: Selection, max_companies: int) -> int:
    """Count first (stopping at one past the maximum), then one INSERT ... SELECT numbered by ROW_NUMBER().

    The count reads ids only and is a small fraction of the insert (70 ms of 3 s at a million companies on
    SQLite), so an oversized or empty selection is refused before anything is written.
    """
    _require_source_action(session, selection)
    now = utcnow()
    limit = selection.limit if selection.limit is not None else max_companies + 1
    count = _count(session, selection, now, min(limit, max_companies + 1))
    if count > max_companies:
        raise TooManyCompaniesError(_count(session, selection, now, selection.limit), max_companies)
    if count == 0:
        raise EmptySelectionError(_summary(selection))
    ranked = _candidates(selection, now, Company.id, *_order_columns(selection.order))
    if selection.limit is not None:  # the first n in order; without a limit, sorting once (in the window) does
        ranked = ranked.order_by(*_ordering(_companies.c, selection.order)).limit(selection.limit)
    chosen = ranked.subquery()
    position = func.row_number().over(order_by=_ordering(chosen.c, selection.order)) - 1
    rows = select(
        literal(bulk_action_id, Integer),
        chosen.c.id,
        position,
        literal(OutcomeStatus.PENDING.value, String),
        literal(0, Integer),
        literal(now, UTCDateTime()),
    )
    columns = ["bulk_action_id", "company_id", "position", "status", "attempts", "updated_at"]
    session.execute(insert(_outcomes).from_select(columns, rows))
    return count


def _count(session: Session, selection: Selection, now: datetime, limit: int | None) -> int:
    """How many companies the selection holds, counting no further than ``limit``."""
    matching = _candidates(selection, now, Company.id)
    if limit is not None:
        matching = matching.limit(limit)
    return int(session.scalar(select(func.count()).select_from(matching.subquery())) or 0)


def _candidates(selection: Selection, now: datetime, *columns: Any) -> Select[Any]:
    """``columns`` of the selected companies, unordered and unlimited (a filter or another action's outcomes)."""
    if selection.from_action is not None:
        source = selection.from_action
        stmt = (
            select(*columns)
            .select_from(_outcomes)
            .join(_companies, _companies.c.id == _outcomes.c.company_id)
            .where(_outcomes.c.bulk_action_id == source.bulk_action_id)
        )
        return stmt if source.outcome == "all" else stmt.where(_outcomes.c.status == source.outcome)
    return select(*columns).where(*_conditions(selection.filter or CompanyFilter(), now))


def _conditions(spec: CompanyFilter, now: datetime) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Company.status.in_(spec.statuses)]
    if spec.countries:
        # "NL", "NLD" and "Netherlands" are one country however it was stored (imports store alpha-2)
        spellings = [spelling for country in spec.countries for spelling in country_spellings(country)]
        conditions.append(_folded_in(Company.country, list(dict.fromkeys(spellings))))
    if spec.industries:
        conditions.append(_folded_in(Company.industry, spec.industries))
    if spec.nace_prefix:
        conditions.append(Company.nace_code.startswith(spec.nace_prefix, autoescape=True))
    if spec.enrichment_statuses:
        conditions.append(Company.enrichment_status.in_(spec.enrichment_statuses))
    cutoff = _enrichment_cutoff(spec, now)
    if cutoff is not None:
        conditions.append(or_(Company.enriched_at.is_(None), Company.enriched_at < cutoff))
    if spec.created_since is not None:
        conditions.append(Company.created_at >= spec.created_since)
    if spec.updated_since is not None:
        conditions.append(Company.updated_at >= spec.updated_since)
    if spec.needs_review is not None:
        conditions.append(Company.needs_review == spec.needs_review)
    if spec.name_contains:
        conditions.append(Company.name.icontains(spec.name_contains, autoescape=True))
    if spec.priority_at_least is not None:
        conditions.append(Company.priority >= spec.priority_at_least)
    if spec.has_embedding:
        conditions.append(_has_embedding(spec.has_embedding))
    if spec.lacks_embedding:
        conditions.append(~_has_embedding(spec.lacks_embedding))
    if spec.score_min is not None or spec.score_max is not None:
        conditions.append(_has_total_score(spec.score_min, spec.score_max))
    return conditions


def _folded_in(column: Any, values: list[str]) -> ColumnElement[bool]:
    """Case-insensitive IN, folded by the database on both sides (SQLite folds ASCII letters only)."""
    return cast(ColumnElement[bool], func.lower(column).in_([func.lower(literal(v, String)) for v in values]))


def _enrichment_cutoff(spec: CompanyFilter, now: datetime) -> datetime | None:
    cutoffs = [spec.enriched_before] if spec.enriched_before is not None else []
    if spec.enriched_older_than_days is not None:
        cutoffs.append(now - timedelta(days=spec.enriched_older_than_days))
    return min(cutoffs, default=None)


def _has_embedding(model_id: str) -> ColumnElement[bool]:
    return (
        select(CompanyEmbedding.id)
        .where(CompanyEmbedding.company_id == Company.id, CompanyEmbedding.model_id == model_id)
        .exists()
    )


def _has_total_score(low: int | None, high: int | None) -> ColumnElement[bool]:
    """The company has an LLM-adoption total in range (from any provider and model)."""
    stmt = select(CompanyScore.id).where(CompanyScore.company_id == Company.id, CompanyScore.criterion == "total")
    if low is not None:
        stmt = stmt.where(CompanyScore.score >= low)
    if high is not None:
        stmt = stmt.where(CompanyScore.score <= high)
    return stmt.exists()


#: order → (column, descending); every order ends with the id, so positions are deterministic
_ORDER_KEYS: dict[str, tuple[str, bool]] = {
    "priority": ("priority", True),
    "name": ("name", False),
    "created_at": ("created_at", False),
    "updated_at": ("updated_at", False),
    "enriched_at": ("enriched_at", False),
}


#: the columns ``selected_companies`` carries, so its callers can keep the selection's order
_ORDER_SOURCE_COLUMNS = ("id", "priority", "name", "created_at", "updated_at", "enriched_at")


def _order_columns(order: Order) -> list[Any]:
    key = _ORDER_KEYS.get(order)
    return [_companies.c[key[0]]] if key else []


def _ordering(columns: Any, order: Order) -> list[UnaryExpression[Any]]:
    """ORDER BY clauses over ``columns`` (the company table, or a subquery carrying the same names)."""
    clauses: list[UnaryExpression[Any]] = []
    key = _ORDER_KEYS.get(order)
    if key is not None:
        name, descending = key
        clause = columns[name].desc() if descending else columns[name].asc()
        clauses.append(clause.nulls_first() if name == "enriched_at" else clause)
    clauses.append(columns["id"].asc())
    return clauses


# --- checks and messages -----------------------------------------------------------------------------------


def _require_new_action(session: Session, bulk_action_id: int) -> None:
    if not _exists(session, select(BulkAction.id).where(BulkAction.id == bulk_action_id)):
        raise UnknownBulkActionError(bulk_action_id)
    if _exists(session, select(_outcomes.c.position).where(_outcomes.c.bulk_action_id == bulk_action_id)):
        raise ValueError(f"bulk action {bulk_action_id} already has its companies: a selection is resolved once")


def _require_source_action(session: Session, selection: Selection) -> None:
    source = selection.from_action
    if source is not None and not _exists(session, select(BulkAction.id).where(BulkAction.id == source.bulk_action_id)):
        raise UnknownBulkActionError(source.bulk_action_id)


def _exists(session: Session, stmt: Select[Any]) -> bool:
    return bool(session.scalar(select(stmt.exists())))


def _summary(selection: Selection) -> str:
    source = selection.from_action
    if source is not None:
        what = "companies" if source.outcome == "all" else f"{source.outcome} companies"
        return f"the {what} of bulk action {source.bulk_action_id}"
    return json.dumps(describe(selection), ensure_ascii=False)


def _input_error(exc: ValidationError) -> InputError:
    """Our own error when a validator raised one (e.g. duplicate ids), else the pydantic errors in one line."""
    for error in exc.errors():
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, InputError):
            return cause
    details = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'selection'}: {e['msg']}" for e in exc.errors())
    return InputError(f"invalid selection: {details}")
