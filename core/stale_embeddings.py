"""Vectors a change left stale: which companies an action changed the embedding text of, per model.

A vector is stored with the hash of the text it was made from (``company_embeddings.text_sha256``, the template in
``core.text``), so a company whose name, industry, activity or country changed keeps the vector of its old text
until it is embedded again, and search and the duplicate sweep compare against what it no longer says.  After an
action that changes those fields through the history (a rollback; an import in update mode), the vectors to make
again are those of the companies the action changed one of these fields of whose stored hash differs from their
text now.  A vector whose hash matches is current and costs nothing: the field changed back, or (a rollback) the
vector was never made again after the change being undone.  Only active companies count, as only they are searched
(``core.search``); a deleted company's vector is made again by whatever embeds it once it is back.

The vector keeps only its model id, not the provider block that made it.  :func:`embedding_providers` reads the
providers back from the ``generate_embeddings`` bulk actions: each stores its provider block in its parameters, and
its succeeded outcomes name the model id its vectors carry (``tasks.embeddings``).  Functions take a ``Session``
and never commit, as in ``core.store``.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.schema import (
    BulkAction,
    BulkActionOutcome,
    Company,
    CompanyEmbedding,
    CompanyHistory,
    CompanyStatus,
    OutcomeStatus,
)
from core.store import chunked
from core.text import embedding_text, text_sha256

#: the company columns ``core.text.embedding_text`` reads: a change to any other column leaves every vector current
EMBEDDING_TEXT_FIELDS: frozenset[str] = frozenset({"name", "industry", "activity_description", "country"})

EMBEDDING_ACTION = "generate_embeddings"


def stale_embeddings(session: Session, bulk_action_id: int) -> dict[str, list[int]]:
    """Model id → the active companies whose vector of that model no longer matches their text, after
    ``bulk_action_id`` changed one of :data:`EMBEDDING_TEXT_FIELDS` of theirs (ids ascending).

    Companies the action did not change the embedding text of are not looked at, even if stale for another reason:
    the caller undoes or follows up this action, not every edit ever made.
    """
    changed = session.scalars(
        select(CompanyHistory.company_id)
        .where(
            CompanyHistory.bulk_action_id == bulk_action_id,
            CompanyHistory.field.in_(sorted(EMBEDDING_TEXT_FIELDS)),
        )
        .distinct()
    )
    stale: dict[str, list[int]] = {}
    for part in chunked(sorted(changed), 500):
        texts = {
            row.id: text_sha256(embedding_text(row))
            for row in session.execute(
                select(Company.id, Company.name, Company.industry, Company.activity_description, Company.country).where(
                    Company.id.in_(part), Company.status == CompanyStatus.ACTIVE
                )
            )
        }
        vectors = session.execute(
            select(CompanyEmbedding.company_id, CompanyEmbedding.model_id, CompanyEmbedding.text_sha256)
            .where(CompanyEmbedding.company_id.in_(list(texts)))
            .order_by(CompanyEmbedding.company_id)
        )
        for company_id, model_id, sha256 in vectors:
            if sha256 != texts[company_id]:
                stale.setdefault(model_id, []).append(company_id)
    return stale


def embedding_providers(session: Session, model_ids: Collection[str]) -> dict[str, list[str]]:
    """Model id → the provider blocks (``<block-type>/<name>``) whose ``generate_embeddings`` actions made vectors
    of it, the most recent action's first.

    An action's model is the detail of its first succeeded outcome (one action runs on one provider block, so all
    its vectors carry one model id); actions that embedded nothing cannot say and are passed over.  A model made
    only by actions deleted since (``cleanup``'s retention) has no entry.  A block may have been edited to another
    model since it ran: the caller checks a provider's current model id before paying it.
    """
    wanted = set(model_ids)
    if not wanted:
        return {}
    model_of = (
        select(BulkActionOutcome.detail)
        .where(BulkActionOutcome.bulk_action_id == BulkAction.id, BulkActionOutcome.status == OutcomeStatus.SUCCEEDED)
        .limit(1)
        .correlate(BulkAction)
        .scalar_subquery()
    )
    rows = session.execute(
        select(BulkAction.parameters, model_of)
        .where(BulkAction.action == EMBEDDING_ACTION, BulkAction.succeeded > 0)
        .order_by(BulkAction.id.desc())
    )
    found: dict[str, list[str]] = {}
    for parameters, model_id in rows:
        provider = (parameters or {}).get("provider")
        if model_id in wanted and provider:
            providers = found.setdefault(model_id, [])
            if provider not in providers:
                providers.append(str(provider))
    return found
