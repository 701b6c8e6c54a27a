"""The ``dedup_sweep`` batch handler: the accepted duplicate pairs of a batch's companies, with their evidence.

The pair decision is global (candidates come from blocking over every company: a vector index, the registrable
domain, the name key), so the first batch a process runs computes it over the sweep's universe once
(``core.dedup_store.load_universe`` + ``core.dedup_decision.find_duplicates``) and keeps it for the sweep's other
batches; a rerun process computes it again, and its checkpointed batches do not run at all.  Each pair is
written by exactly one batch, the one holding its smaller selected member, in the transaction of the batch's
outcomes; a company without a vector of the sweep's model is skipped and says so.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from core.dedup_decision import DedupParams, PairEvidence, find_duplicates
from core.dedup_store import Universe, load_universe, store_pairs, sweep_companies
from core.schema import OutcomeStatus
from core.store import CompanyResult
from tasks.batch import BatchContext, register_handler


@dataclass(frozen=True)
class SweepPairs:
    """One sweep's accepted pairs, by the selected company that writes each (company ids, ``left < right``)."""

    universe_ids: frozenset[int]
    by_writer: dict[int, list[PairEvidence]]


_CACHE: dict[tuple[str, int], SweepPairs] = {}
_LOCK = threading.Lock()


def params_of(options: dict[str, Any]) -> DedupParams:
    return DedupParams(
        vector_threshold=float(options.get("vector_threshold", 0.95)),
        name_threshold=float(options.get("name_threshold", 0.85)),
    )


def compute_sweep_pairs(universe: Universe, selected: set[int], params: DedupParams) -> SweepPairs:
    """Every accepted pair touching a selected company, assigned to the smaller selected member."""
    ids = universe.ids
    by_writer: dict[int, list[PairEvidence]] = defaultdict(list)
    found = find_duplicates(universe.vectors, universe.signals, params) if len(universe) > 1 else None
    for pair in found.evidence() if found is not None else []:
        a, b = int(ids[pair.left]), int(ids[pair.right])
        a, b = min(a, b), max(a, b)
        writer = a if a in selected else b
        if writer not in selected:
            continue  # neither is in the sweep's selection
        by_writer[writer].append(
            PairEvidence(
                a, b, pair.cosine, pair.name_score, pair.same_domain, pair.same_country, pair.rule, pair.found_by
            )
        )
    return SweepPairs(frozenset(int(i) for i in ids), dict(by_writer))


def _sweep_pairs(ctx: BatchContext) -> SweepPairs:
    key = (str(ctx.database.url.get_secret_value()), ctx.bulk_action_id)
    with _LOCK:  # batches of one process wait for the one computation
        if key not in _CACHE:
            with ctx.database.read_session() as session:
                universe = load_universe(session, str(ctx.options["model_id"]))
                selected = sweep_companies(session, ctx.bulk_action_id)
            _CACHE.clear()  # one sweep at a time per process: the matrix of the last one is not kept
            _CACHE[key] = compute_sweep_pairs(universe, selected, params_of(ctx.options))
        return _CACHE[key]


@register_handler("dedup_sweep")
def dedup_sweep_batch(ctx: BatchContext, company_ids: Sequence[int]) -> list[CompanyResult]:
    found = _sweep_pairs(ctx)
    model = ctx.options["model_id"]
    results: list[CompanyResult] = []
    pairs: list[PairEvidence] = []
    for cid in company_ids:
        if cid not in found.universe_ids:
            results.append(CompanyResult(cid, OutcomeStatus.SKIPPED, f"no vector of model {model} (or not active)", 0))
            continue
        mine = found.by_writer.get(cid, [])
        pairs.extend(mine)
        detail = f"{len(mine)} duplicate pair(s) written" if mine else "no duplicate written from here"
        results.append(CompanyResult(cid, OutcomeStatus.SUCCEEDED, detail, 0))

    def write(session: Session) -> None:
        store_pairs(session, ctx.bulk_action_id, pairs)

    if pairs:
        ctx.write_with_outcomes(write)
    return results
