"""Reads and writes of LLM-adoption scores (``company_scores``).

Like ``core.store``, functions take a ``Session`` and never commit: the caller owns the transaction, and the
scoring task writes a company's eleven rows (ten criteria and the total) in one, so a company is either fully
scored or not at all.  That is also what makes the total row a marker: if it exists with a given input hash,
its ten criterion rows exist with the same hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.rubric import CRITERIA_BY_KEY, MAX_TOTAL, TOTAL_CRITERION, Level, total_points
from core.schema import CompanyScore, utcnow
from core.store import chunked, upsert


@dataclass(frozen=True)
class CriterionScore:
    """One criterion's judgement and what its calls cost (parse retries included)."""

    criterion: str
    level: Level
    reasoning: str
    prompt_tokens: int
    completion_tokens: int
    calls: int = 1


def score_rows(
    *,
    company_id: int,
    bulk_action_id: int | None,
    provider: str,
    model: str,
    input_sha256: str,
    scores: Sequence[CriterionScore],
    scored_at: datetime | None = None,
    tier: int | None = None,
) -> list[dict[str, Any]]:
    """The eleven rows of one company: one per criterion, then the total (tokens summed)."""
    levels = {s.criterion: s.level for s in scores}
    total = total_points(levels)
    rows = criterion_rows(
        company_id=company_id,
        bulk_action_id=bulk_action_id,
        provider=provider,
        model=model,
        input_sha256=input_sha256,
        scores=scores,
        scored_at=scored_at,
        tier=tier,
    )
    rows.append(
        {
            **{key: rows[0][key] for key in _COMMON},
            "criterion": TOTAL_CRITERION,
            "level": None,
            "score": total,
            "reasoning": f"sum of {len(scores)} criteria (0-{MAX_TOTAL})",
            "prompt_tokens": sum(s.prompt_tokens for s in scores),
            "completion_tokens": sum(s.completion_tokens for s in scores),
        }
    )
    return rows


_COMMON = ("company_id", "bulk_action_id", "provider", "model", "input_sha256", "scored_at", "tier")


def criterion_rows(
    *,
    company_id: int,
    bulk_action_id: int | None,
    provider: str,
    model: str,
    input_sha256: str,
    scores: Sequence[CriterionScore],
    scored_at: datetime | None = None,
    tier: int | None = None,
) -> list[dict[str, Any]]:
    """One row per criterion, in rubric order, without the total: on their own, what a company scored
    half-way keeps when a budget stops it (reused by ``answered_criteria`` when the action resumes)."""
    if not scores or len({s.criterion for s in scores}) != len(scores):
        raise ValueError("one score per criterion, please")
    common: dict[str, Any] = {
        "company_id": company_id,
        "bulk_action_id": bulk_action_id,
        "provider": provider,
        "model": model,
        "input_sha256": input_sha256,
        "scored_at": scored_at or utcnow(),
        "tier": tier,
    }
    order = list(CRITERIA_BY_KEY)
    return [
        {
            **common,
            "criterion": s.criterion,
            "level": s.level.value,
            "score": s.level.points,
            "reasoning": s.reasoning,
            "prompt_tokens": s.prompt_tokens,
            "completion_tokens": s.completion_tokens,
        }
        for s in sorted(scores, key=lambda s: order.index(s.criterion))
    ]


def store_scores(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert or overwrite rows on (company, criterion, provider, model)."""
    upsert(
        session,
        CompanyScore.__table__,  # type: ignore[arg-type]
        rows,
        keys=("company_id", "criterion", "provider", "model"),
        update_cols=(
            "bulk_action_id",
            "level",
            "score",
            "reasoning",
            "prompt_tokens",
            "completion_tokens",
            "input_sha256",
            "scored_at",
            "tier",
        ),
    )


def answered_criteria(
    session: Session, company_id: int, *, bulk_action_id: int, provider: str, model: str, input_sha256: str
) -> dict[str, CriterionScore]:
    """Criteria this bulk action already paid for on this very prompt (a company stopped half-way by a budget).

    Reused when the action resumes, so a pause never pays for an answer twice.
    """
    rows = session.scalars(
        select(CompanyScore).where(
            CompanyScore.company_id == company_id,
            CompanyScore.bulk_action_id == bulk_action_id,
            CompanyScore.provider == provider,
            CompanyScore.model == model,
            CompanyScore.input_sha256 == input_sha256,
            CompanyScore.criterion != TOTAL_CRITERION,
        )
    )
    return {
        row.criterion: CriterionScore(
            criterion=row.criterion,
            level=Level(row.level),
            reasoning=row.reasoning or "",
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            calls=0,
        )
        for row in rows
        if row.level is not None
    }


def current_input_hashes(session: Session, company_ids: Sequence[int], provider: str, model: str) -> dict[int, str]:
    """The input hash of each company's complete score by ``provider``/``model`` (read from its total row)."""
    found: dict[int, str] = {}
    for part in chunked(list(company_ids)):
        rows = session.execute(
            select(CompanyScore.company_id, CompanyScore.input_sha256).where(
                CompanyScore.criterion == TOTAL_CRITERION,
                CompanyScore.provider == provider,
                CompanyScore.model == model,
                CompanyScore.company_id.in_(part),
            )
        ).tuples()
        found.update((company_id, digest) for company_id, digest in rows)
    return found


def stored_levels(session: Session, company_id: int, provider: str, model: str) -> dict[str, Level]:
    """A company's criterion levels by ``provider``/``model`` as stored (the total row left out)."""
    rows = session.execute(
        select(CompanyScore.criterion, CompanyScore.level).where(
            CompanyScore.company_id == company_id,
            CompanyScore.provider == provider,
            CompanyScore.model == model,
            CompanyScore.criterion != TOTAL_CRITERION,
        )
    ).tuples()
    return {criterion: Level(level) for criterion, level in rows if level is not None}


def company_scores(
    session: Session, company_id: int, *, provider: str | None = None, model: str | None = None
) -> list[CompanyScore]:
    """A company's score rows, criteria in rubric order and the total last."""
    stmt = select(CompanyScore).where(CompanyScore.company_id == company_id)
    if provider is not None:
        stmt = stmt.where(CompanyScore.provider == provider)
    if model is not None:
        stmt = stmt.where(CompanyScore.model == model)
    order = {key: i for i, key in enumerate([*CRITERIA_BY_KEY, TOTAL_CRITERION])}
    rows = list(session.scalars(stmt))
    return sorted(rows, key=lambda r: (r.provider, r.model, order.get(r.criterion, len(order))))
