"""What an estimate reads from the company database: a sample of the selection and what the ledger knows.

Every function only reads (a dry run writes nothing) and each query is bounded, so a dry run over a million
companies stays a few statements: the sample is at most ``SAMPLE_SIZE`` rows picked by ``ROW_NUMBER()`` inside
the database, the ledger history covers its most recent ``LEDGER_ROWS`` rows of a model, the escalation history
the outcomes of the most recent tiered scorings.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session

from core.estimate_model import (
    LedgerHistory,
    TierHistory,
)
from core.schema import BulkAction, BulkActionOutcome, Company, SpendEntry
from core.selection import Selection, selected_companies, selection_ordering

#: companies an estimate examines (building the ten prompts of 200 companies takes a few milliseconds)
SAMPLE_SIZE = 200
#: the most recent ledger rows of a model that make its history (recent prompts and answers, bounded reads)
LEDGER_ROWS = 10_000
#: the most recent tiered scorings, and at most this many of their outcomes, that make the escalation history
TIERED_ACTIONS = 20
TIERED_OUTCOMES = 20_000

_TIER_DETAIL = re.compile(r"\(tier (\d+) of (\d+)\)")


@dataclass(frozen=True)
class SampledCompany:
    """The columns the rubric, the input checks and the embedding template read, copied out of the session."""

    id: int
    name: str
    website: str | None
    industry: str | None
    country: str | None
    activity_description: str | None
    ownership_type: str | None


def sample_companies(
    session: Session, selection: Selection, count: int, size: int = SAMPLE_SIZE
) -> list[SampledCompany]:
    """Up to ``size`` of the selected companies, every ``ceil(count / size)``-th in selection order.

    Spread over the whole selection, not its first rows: a selection ordered by priority or by enrichment date
    has its least-enriched companies at one end, and their prompts are shorter.  All of them when ``count`` is
    at most ``size`` (then the estimate is exact about who is skipped or invalid).
    """
    if count <= 0:
        return []
    step = max(1, math.ceil(count / size))
    selected = selected_companies(session, selection).subquery()
    numbered = select(
        selected.c.id.label("id"),
        func.row_number().over(order_by=selection_ordering(selected.c, selection)).label("position"),
    ).subquery()
    picked = select(numbered.c.id, numbered.c.position).where((numbered.c.position - 1) % step == 0).subquery()
    rows = session.execute(
        select(
            Company.id,
            Company.name,
            Company.website,
            Company.industry,
            Company.country,
            Company.activity_description,
            Company.ownership_type,
        )
        .join(picked, picked.c.id == Company.id)
        .order_by(picked.c.position)
        .limit(size)
    )
    return [SampledCompany(*row) for row in rows.tuples()]


def ledger_history(session: Session, providers: Sequence[str], model: str) -> LedgerHistory:
    """Calls, tokens and bytes of the most recent ledger rows of ``model`` by any of ``providers``.

    Only rows that recorded their input bytes count, so tokens per byte compares like with like.
    """
    recent = (
        select(SpendEntry.calls, SpendEntry.input_tokens, SpendEntry.output_tokens, SpendEntry.input_bytes)
        .where(SpendEntry.provider.in_(list(providers)), SpendEntry.model == model, SpendEntry.input_bytes > 0)
        .order_by(SpendEntry.id.desc())
        .limit(LEDGER_ROWS)
        .subquery()
    )
    calls, input_tokens, output_tokens, input_bytes = session.execute(
        select(
            func.coalesce(func.sum(recent.c.calls), 0),
            func.coalesce(func.sum(recent.c.input_tokens), 0),
            func.coalesce(func.sum(recent.c.output_tokens), 0),
            func.coalesce(func.sum(recent.c.input_bytes), 0),
        )
    ).one()
    return LedgerHistory(int(calls), int(input_tokens), int(output_tokens), int(input_bytes))


def tier_history(session: Session, tiers: int) -> TierHistory:
    """Which tier decided each company of the recent tiered scorings with ``tiers`` tiers.

    Read from the outcome details a tiered scoring writes (``... (tier 2 of 2) ...``); failed companies carry
    no tier and are left out.
    """
    if tiers < 2:
        return TierHistory()
    actions = (
        select(BulkAction.id)
        .where(BulkAction.action == "score_llm_adoption", cast(BulkAction.parameters, String).like('%"tiers"%'))
        .order_by(BulkAction.id.desc())
        .limit(TIERED_ACTIONS)
    )
    details = session.scalars(
        select(BulkActionOutcome.detail)
        .where(BulkActionOutcome.bulk_action_id.in_(actions), BulkActionOutcome.detail.like(f"%of {tiers})%"))
        .limit(TIERED_OUTCOMES)
    )
    decided: Counter[int] = Counter()
    for detail in details:
        found = _TIER_DETAIL.search(detail or "")
        if found is not None and int(found.group(2)) == tiers and 1 <= int(found.group(1)) <= tiers:
            decided[int(found.group(1)) - 1] += 1
    return TierHistory(tuple(decided[t] for t in range(tiers)))
