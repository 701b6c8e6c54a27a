"""rollback: undo another bulk action's changes to companies, field by field, from the change history.

Works for every action that writes through the history: ``reclassify``, ``update_status``, an import in update
mode, and another rollback (which redoes what that rollback undid).  A field changed again since, by a later
action or outside any, is a conflict: kept unless ``force``, and listed per company and field in the
``rollback-<id>-conflicts`` table artifact and in the outcome rows.

A restore of a name, industry, activity or country (an import in update mode changes them; ``reclassify`` and
``update_status`` never do) changes the company's embedding text, so after its batches the rollback embeds again,
as ``generate_embeddings`` subflows, the companies whose stored vectors no longer match their text, with every
model they have a vector of (``core.stale_embeddings``).  A vector only records its model id: each model goes to
the provider block of the latest ``generate_embeddings`` action that made vectors of it, if that block still makes
that model, else to the default embedding provider if it does; a model no block on record makes is reported,
not guessed.  A vector whose hash still matches the restored text is current and not paid for again.

A merge (``merge_companies``) runs on its clusters' winners but also changes the losers: the rollback visits every
company with history rows of the action, so the losers come back active, and it puts back the score rows and
dead jobs the merge moved or closed (``core.merge``).  A rollback of a merge's rollback is refused: merge again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.client.schemas.objects import State
from prefect.task_runners import ThreadPoolTaskRunner
from sqlalchemy import select

import blocks.local_database  # noqa: F401 - registers the block type that ``provider`` references
from blocks.loading import load_database, load_embedding_block
from core.catalog import DEFAULT_MAX_COMPANIES, get_action
from core.errors import ConfigurationError, InputError
from core.merge_undo import rolled_back_merge
from core.rollback import companies_beyond_outcomes
from core.schema import BulkAction, BulkActionOutcome
from core.selection import MAX_EXPLICIT_IDS, ActionCompanies, Selection, selection_of
from core.stale_embeddings import embedding_providers, stale_embeddings
from core.store import bulk_action_company_ids, chunked
from flows.action_end import artifact_key
from flows.engine import BULK_ACTION_HOOKS, BulkActionRequest, BulkActionSummary, DryRunReport, run_bulk_action
from flows.generate_embeddings import DEFAULT_EMBEDDING_PROVIDER, generate_embeddings
from tasks.rollback import CONFLICT_PREFIX

DEFAULT_PROVIDER = get_action("rollback").default_provider


@dataclass(frozen=True)
class RollbackSummary(BulkActionSummary):
    """A rollback's summary, with what became of the vectors of the companies it restored."""

    #: companies whose vectors (of any model) no longer matched their text after the restores
    embeddings_stale: int = 0
    #: of those, the companies whose every vector matches their text again, embedded by the subflows
    reembedded: int = 0
    #: vectors (company and model) still stale: no provider block on record makes the model, or not asked to
    embeddings_left_stale: int = 0
    #: the ``generate_embeddings`` bulk actions the rollback ran
    embedding_actions: list[int] = field(default_factory=list)


@flow(
    name="rollback",
    task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]
    validate_parameters=True,
    **BULK_ACTION_HOOKS,
)
def rollback(
    rollback_of: int | None = None,
    force: bool = False,
    provider: str = DEFAULT_PROVIDER,
    database: str = "default",
    created_by: str = "prefect",
    bulk_action_id: int | None = None,
    failure_threshold: float = 0.5,
    progress_every: int = 5,
    max_companies: int = DEFAULT_MAX_COMPANIES,
    takeover: bool = False,
    dry_run: bool = False,
    regenerate_embeddings: bool = True,
) -> RollbackSummary | BulkActionSummary | DryRunReport | State[Any]:
    """Restore every field bulk action ``rollback_of`` changed to its value before that action.

    Args:
        rollback_of: the bulk action to undo.
        force: also overwrite fields changed again since (by a later action or outside any).
        provider: the block that holds this action's concurrency tag (``database-writes``).
        database: name of the company-database block.
        created_by: who asked, recorded on the bulk action.
        bulk_action_id: resume this rollback (after a crash or cancellation).
        failure_threshold: share of failed companies above which the action ends ``failed``.
        progress_every: write progress to the database every this many batches.
        max_companies: refuse rollbacks of larger actions than this.
        takeover: with ``bulk_action_id``, take the action over from a flow run whose process is gone.
        dry_run: report the companies the rollback would visit; write nothing.
        regenerate_embeddings: embed again, on the provider that made them, the companies whose restored name,
            industry, activity or country no longer match their stored vectors (false: only count them).
    """
    selection = None
    if bulk_action_id is None:
        if rollback_of is None:
            raise InputError("say which bulk action to roll back: rollback_of=<bulk action id>")
        selection = _companies_to_restore(database, rollback_of)
    result = run_bulk_action(
        BulkActionRequest(
            action="rollback",
            selection=selection,
            provider=provider,
            database=database,
            created_by=created_by,
            bulk_action_id=bulk_action_id,
            failure_threshold=failure_threshold,
            progress_every=progress_every,
            max_companies=max_companies,
            takeover=takeover,
            dry_run=dry_run,
            options={"rollback_of": rollback_of, "force": force},
        )
    )
    if isinstance(result, BulkActionSummary):
        _publish_conflicts(database, result.bulk_action_id)
        return _refresh_embeddings(result, database, created_by, regenerate=regenerate_embeddings)
    return result


def _companies_to_restore(database: str, rollback_of: int) -> Selection | None:
    """Every company the action changed: its own companies, and any other with history rows of it (a merge's
    losers, which are not outcome rows of the merge)."""
    with load_database(database).read_session() as session:
        if session.get(BulkAction, rollback_of) is None:
            raise InputError(f"bulk action {rollback_of} does not exist")
        merge = rolled_back_merge(session, rollback_of)
        if merge is not None:
            raise InputError(
                f"bulk action {rollback_of} rolled back merge {merge}: merge again (a new dedup_sweep, then "
                "merge_companies) rather than rolling the rollback back, so the moved rows follow"
            )
        beyond = companies_beyond_outcomes(session, rollback_of)
        if not beyond:
            return Selection(from_action=ActionCompanies(bulk_action_id=rollback_of, outcome="all"))
        own = bulk_action_company_ids(session, rollback_of)
    # explicit ids through the legacy path: bounded by max_companies, not by the 10,000 of a hand-picked list
    return selection_of([*own, *beyond], None)


def _refresh_embeddings(
    summary: BulkActionSummary, database: str, created_by: str, *, regenerate: bool
) -> RollbackSummary:
    """Embed again the companies whose restored text no longer matches their vectors, one subflow per provider.

    What counts as done is read back afterwards, not taken from the subflows' counts: a company is re-embedded
    when none of its vectors is stale anymore.  A subflow that fails fails the rollback's flow run (the restores
    stay, recorded): rerun it with ``bulk_action_id`` and only the vectors still stale are embedded.
    """
    logger = get_run_logger()
    rollback_id = summary.bulk_action_id
    db = load_database(database)
    with db.read_session() as session:
        stale = stale_embeddings(session, rollback_id)
        providers = embedding_providers(session, stale) if regenerate and stale else {}
    stale_companies = {cid for ids in stale.values() for cid in ids}
    vectors = sum(len(ids) for ids in stale.values())
    if not stale:
        logger.info("rollback %d left no stored vector out of date", rollback_id)
        return summary.extended(RollbackSummary)
    if not regenerate:
        logger.warning(
            "rollback %d left %d vectors of %d companies out of date (regenerate_embeddings=false): rerun it with "
            "bulk_action_id=%d and regenerate_embeddings=true to embed them again",
            rollback_id,
            vectors,
            len(stale_companies),
            rollback_id,
        )
        return summary.extended(RollbackSummary, embeddings_stale=len(stale_companies), embeddings_left_stale=vectors)
    actions: list[int] = []
    for model_id, company_ids in sorted(stale.items()):
        provider = _provider_making(model_id, providers.get(model_id, []))
        if provider is None:
            logger.warning(
                "%d companies' %s vectors are out of date and no embedding provider block on record makes that "
                "model: embed them with a block that does",
                len(company_ids),
                model_id,
            )
            continue
        for part in chunked(company_ids, MAX_EXPLICIT_IDS):  # explicit ids, so a selection never passes 512 KB
            embedded = generate_embeddings(
                selection=Selection(ids=list(part)), provider=provider, database=database, created_by=created_by
            )
            if isinstance(embedded, BulkActionSummary):
                actions.append(embedded.bulk_action_id)
    with db.read_session() as session:
        left = stale_embeddings(session, rollback_id)
    still = {cid for ids in left.values() for cid in ids}
    reembedded = len(stale_companies - still)
    left_vectors = sum(len(ids) for ids in left.values())
    logger.info(
        "rollback %d re-embedded %d of the %d companies whose vectors its restores left out of date "
        "(generate_embeddings bulk actions %s); %d vectors still out of date",
        rollback_id,
        reembedded,
        len(stale_companies),
        actions,
        left_vectors,
    )
    return summary.extended(
        RollbackSummary,
        embeddings_stale=len(stale_companies),
        reembedded=reembedded,
        embeddings_left_stale=left_vectors,
        embedding_actions=actions,
    )


def _provider_making(model_id: str, recorded: list[str]) -> str | None:
    """The first block that makes ``model_id`` now: those that made it (latest first), then the default one.

    A block's current model is asked of the block itself (its client's ``model_id``), since a block may have been
    edited to another model or pooling since it ran; one that no longer exists is passed over.
    """
    for reference in dict.fromkeys([*recorded, DEFAULT_EMBEDDING_PROVIDER]):
        try:
            made = load_embedding_block(reference).get_client().model_id
        except ConfigurationError:
            continue
        if made == model_id:
            return reference
    return None


def _publish_conflicts(database: str, bulk_action_id: int) -> None:
    """The fields kept because they changed again since, per company: what a reviewer decides about."""
    with load_database(database).read_session() as session:
        rows = session.execute(
            select(BulkActionOutcome.company_id, BulkActionOutcome.detail)
            .where(
                BulkActionOutcome.bulk_action_id == bulk_action_id,
                BulkActionOutcome.detail.contains(f"{CONFLICT_PREFIX}s kept"),
            )
            .order_by(BulkActionOutcome.position)
            .limit(1000)
        ).all()
    if not rows:
        return
    table = [
        {"company": company_id, "field": part.split(": ", 1)[0].strip(), "why kept": part.split(": ", 1)[-1]}
        for company_id, detail in rows
        for part in (detail or "").split(f"{CONFLICT_PREFIX}s kept: ", 1)[-1].split("; ")
    ]
    create_table_artifact(
        table,
        key=artifact_key("rollback", bulk_action_id, "conflicts"),
        description=f"rollback {bulk_action_id}: fields kept because they changed again (rerun with force=true)",
    )
    get_run_logger().warning(
        "rollback %d kept %d conflicting fields; see its conflicts artifact", bulk_action_id, len(table)
    )


if __name__ == "__main__":
    rollback()
