"""What an export writes: the columns people ask for, as one SELECT the database streams in pages.

An export is a read: it never records its companies as outcome rows (at a million rows that INSERT would
cost more than the export itself).  :func:`export_query` builds one statement over the selected companies, or
over one bulk action's outcomes, with the chosen columns:

* company fields (``name``, ``website``, ``country``...), the enrichment fields, the review flag;
* each LLM-adoption criterion and the total (``score_<criterion>``, ``score_total``), from one model's scores:
  the most recently used one unless ``score_model`` names another, so every row of a file compares like with
  like; the pivot is one GROUP BY over the scores' (company, criterion, ...) index;
* ``embedding_models``: the embedding models a company has vectors of;
* for a bulk action's results, each company's ``outcome``, ``outcome_detail`` (the error) and ``attempts``.

The caller streams the statement (``stream_results``) into polars pages and a file writer, so memory stays
flat at any size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import Select, String, and_, case, func, literal, select
from sqlalchemy.orm import Session

from core.errors import InputError, UnknownBulkActionError
from core.rubric import CRITERIA, TOTAL_CRITERION
from core.schema import BulkAction, BulkActionOutcome, Company, CompanyEmbedding, CompanyScore
from core.selection import Selection, selected_companies, selection_ordering

COMPANY_COLUMNS: tuple[str, ...] = (
    "id",
    "name",
    "website",
    "domain",
    "industry",
    "nace_code",
    "country",
    "status",
    "priority",
    "created_at",
    "updated_at",
)
ENRICHMENT_COLUMNS: tuple[str, ...] = ("activity_description", "ownership_type", "enrichment_status", "enriched_at")
REVIEW_COLUMNS: tuple[str, ...] = ("needs_review", "review_reason")
CLASSIFICATION_COLUMNS: tuple[str, ...] = (
    "sector",
    "subsector",
    "business_model",
    "taxonomy_version",
    "classification_mode",
    "classification_model",
    "classified_at",
)
SCORE_COLUMNS: tuple[str, ...] = (*(f"score_{c.key}" for c in CRITERIA), "score_total")
EMBEDDING_COLUMNS: tuple[str, ...] = ("embedding_models",)
OUTCOME_COLUMNS: tuple[str, ...] = ("outcome", "outcome_detail", "attempts")

GROUPS: dict[str, tuple[str, ...]] = {
    "company": COMPANY_COLUMNS,
    "enrichment": ENRICHMENT_COLUMNS,
    "review": REVIEW_COLUMNS,
    "classification": CLASSIFICATION_COLUMNS,
    "scores": SCORE_COLUMNS,
    "embeddings": EMBEDDING_COLUMNS,
    "outcome": OUTCOME_COLUMNS,
}
DEFAULT_COLUMNS: tuple[str, ...] = ("company", "enrichment", "review", "score_total", "embeddings")


@dataclass(frozen=True)
class ExportPlan:
    """The statement to stream and the columns it yields, in order."""

    statement: Select[Any]
    columns: list[str]
    score_model: tuple[str, str] | None  # (provider, model) the score columns come from

    @property
    def schema(self) -> dict[str, pl.DataType]:
        """The polars type of each column, from the SQL types: every page of the file gets the same types."""
        return {
            name: _polars_type(column.type)
            for name, column in zip(self.columns, self.statement.selected_columns, strict=True)
        }


def _polars_type(sql_type: Any) -> pl.DataType:
    python_type: Any
    try:  # a TypeDecorator (UTCDateTime, CleanString) says ``object``: its implementation knows
        python_type = getattr(sql_type, "impl_instance", sql_type).python_type
    except NotImplementedError:
        python_type = str
    if isinstance(python_type, type) and issubclass(python_type, bool):
        return pl.Boolean()
    if isinstance(python_type, type) and issubclass(python_type, int):
        return pl.Int64()
    if isinstance(python_type, type) and issubclass(python_type, datetime):
        return pl.Datetime("us", "UTC")
    return pl.String()


def expand_columns(requested: Sequence[str] | None, *, results: bool) -> list[str]:
    """Group names expanded, duplicates dropped, unknown names refused with the known ones."""
    known = {c for group in GROUPS.values() for c in group}
    names: list[str] = []
    for item in requested or (*DEFAULT_COLUMNS, *(("outcome",) if results else ())):
        for name in GROUPS.get(item, (item,)):
            if name not in known:
                raise InputError(f"unknown export column {name!r}; columns: {sorted(known)}; groups: {sorted(GROUPS)}")
            if name in OUTCOME_COLUMNS and not results:
                raise InputError(f"{name!r} is a column of a bulk action's results: give results_of")
            if name not in names:
                names.append(name)
    if "id" not in names:
        names.insert(0, "id")
    return names


def latest_score_model(session: Session) -> tuple[str, str] | None:
    """The (provider, model) of the most recent total score: what the score columns show by default."""
    row = session.execute(
        select(CompanyScore.provider, CompanyScore.model)
        .where(CompanyScore.criterion == TOTAL_CRITERION)
        .order_by(CompanyScore.scored_at.desc(), CompanyScore.id.desc())
        .limit(1)
    ).first()
    return (row[0], row[1]) if row is not None else None


def export_query(
    session: Session,
    columns: Sequence[str],
    *,
    selection: Selection | None = None,
    results_of: int | None = None,
    score_model: str | None = None,
) -> ExportPlan:
    """The SELECT of an export (see the module docstring); exactly one of ``selection`` or ``results_of``."""
    if (selection is None) == (results_of is None):
        raise InputError("say what to export: a selection, or results_of (a bulk action id)")
    names = list(columns)
    company = Company.__table__.c
    outcome = BulkActionOutcome.__table__.c
    if results_of is not None:
        if session.get(BulkAction, results_of) is None:
            raise UnknownBulkActionError(results_of)
        stmt = (
            select()
            .select_from(BulkActionOutcome.__table__.join(Company.__table__, company.id == outcome.company_id))
            .where(outcome.bulk_action_id == results_of)
            .order_by(outcome.position)
        )
    else:
        assert selection is not None
        chosen = selected_companies(session, selection).subquery()
        stmt = select().select_from(chosen.join(Company.__table__, company.id == chosen.c.id))
        stmt = stmt.order_by(*selection_ordering(chosen.c, selection))
    picked: list[Any] = []
    model: tuple[str, str] | None = None
    if any(n in SCORE_COLUMNS for n in names):
        model = _score_model(session, score_model)
        scores = _score_pivot(model)
        stmt = stmt.outerjoin(scores, scores.c.company_id == company.id)
    if "embedding_models" in names:
        models = _embedding_models(session.get_bind().dialect.name)
        stmt = stmt.outerjoin(models, models.c.company_id == company.id)
    for name in names:
        if name in SCORE_COLUMNS:
            picked.append(scores.c[name])
        elif name == "embedding_models":
            picked.append(models.c.embedding_models)
        elif name == "outcome":
            picked.append(outcome.status.label("outcome"))
        elif name == "outcome_detail":
            picked.append(outcome.detail.label("outcome_detail"))
        elif name == "attempts":
            picked.append(outcome.attempts)
        else:
            picked.append(company[name])
    return ExportPlan(stmt.with_only_columns(*picked, maintain_column_froms=True), names, model)


def _score_model(session: Session, wanted: str | None) -> tuple[str, str] | None:
    if wanted is None:
        return latest_score_model(session)
    provider, _, model = wanted.partition(":")
    if not model:
        raise InputError(f"score_model is '<provider>:<model>' (e.g. 'groq:openai/gpt-oss-120b'), not {wanted!r}")
    return provider, model


def _score_pivot(model: tuple[str, str] | None) -> Any:
    """One row per scored company: each criterion's score and the total, of one (provider, model)."""
    score = CompanyScore.__table__.c
    columns = [
        func.max(case((score.criterion == key, score.score))).label(f"score_{key}")
        for key in [c.key for c in CRITERIA] + [TOTAL_CRITERION]
    ]
    match = (
        and_(score.provider == model[0], score.model == model[1]) if model is not None else literal(False)
    )  # no score anywhere: every score column is empty
    return select(score.company_id, *columns).where(match).group_by(score.company_id).subquery("scores")


def _embedding_models(dialect: str) -> Any:
    embedding = CompanyEmbedding.__table__.c
    if dialect == "postgresql":
        joined = func.string_agg(embedding.model_id, literal(";", String))
    else:
        joined = func.group_concat(embedding.model_id, ";")
    return (
        select(embedding.company_id, joined.label("embedding_models"))
        .group_by(embedding.company_id)
        .subquery("embedding_models")
    )
