"""Benchmark: spend against the provider's own bill, budgets, pause/resume, tiered scoring and estimates (#13).

Everything runs on its own sandbox, whose ``/_sandbox/stats`` bills every call it accepts at the providers' list
prices (``sandbox/prices.py``): the instrument the project's recorded spend is judged against.

* ``cost_vs_list_price``: the project's recorded spend (the ledger) ÷ the list price of the calls the sandbox
  accepted, over GROQ scoring, Parallel enrichment and Workers AI embeddings (target 1.000 ± 0.001).
* ``budget_overspend_usd``: what the sandbox billed past the budget of a scoring action stopped mid-way with 4
  batches in flight (target 0).
* ``budget_unused_fraction``: the budget left unspent when that action paused ÷ the budget (target <= 0.05).
* ``pause_resume_repeated_paid_calls``: answers the sandbox billed more than once for the same company and
  criterion across a pause on request and resume, and across a budget stop and resume with a raised budget
  (target 0).
* ``tiered_cost_vs_premium`` / ``tiered_agreement``: on a labelled sample (the sandbox's premium model answers a
  deterministic truth, ``sandbox/truth.py``; ``llama-3.1-8b-instant`` answers it with 20 % noise per criterion),
  tiered scoring's spend ÷ premium-only spend, and the share of companies whose 0-50 total lands in the same band
  as premium-only scoring's (targets <= 0.4 / >= 0.95).
* ``estimate_vs_actual_cost``: a dry run's estimated cost ÷ the spend of the run that follows (target 0.8-1.25),
  once the ledger has seen the model; ``estimate_vs_actual_cost_first`` is the same before any history (the
  estimate then assumes 4 bytes per token and 60 output tokens per call: informational, no target).

Standalone: ``python -m bench spend``.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections import Counter
from typing import Any

logger = logging.getLogger(__name__)

SLOTS = 4
TAG = "bench-spend-groq"
PREMIUM, CHEAP = "groq-llm/bench-spend-premium", "groq-llm/bench-spend-cheap"
ENRICH, EMBED = "parallel-enrichment/bench-spend", "workers-ai-embeddings/bench-spend"
TIER_SAMPLE = 300


def run() -> dict[str, float]:
    from sandbox.server import SandboxServer

    config = {"parallel": {"job_duration_s": 0.2}, "groq": {"latency_ms": 5}}
    with SandboxServer(port=0, config=config) as sandbox, tempfile.TemporaryDirectory() as storage:
        _blocks(sandbox.url, storage)
        results: dict[str, float] = {}
        results.update(_first_estimate(sandbox))
        results.update(_cost_vs_list_price(sandbox))
        budget, repeated_after_budget = _budget_stop(sandbox)
        results.update(budget)
        results["pause_resume_repeated_paid_calls"] = repeated_after_budget + _pause_and_resume(sandbox)
        results.update(_tiered(sandbox))
        results.update(_estimate_vs_actual(sandbox))
        return results


def _blocks(url: str, storage: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.filesystems import LocalFileSystem
    from pydantic import SecretStr

    from blocks.embeddings import WorkersAIEmbeddings
    from blocks.enrichment import ParallelEnrichment
    from blocks.llm import GroqLLM
    from blocks.loading import clear_block_cache
    from deployments.provision_limits import provision_limits
    from providers.pacing import window_limit_name

    provision_limits({TAG: SLOTS, "bench-spend-parallel": 4, "bench-spend-workers": 2})
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(window_limit_name(TAG), 60_000)
    groq: dict[str, Any] = {
        "api_key": SecretStr("gsk-bench-spend-key"),
        "base_url": f"{url}/openai/v1",
        "requests_per_minute": 60_000,
        "concurrency_tag": TAG,
        "calls_per_batch": 1,
    }
    GroqLLM(**groq).save("bench-spend-premium", overwrite=True)
    GroqLLM(**groq, model="llama-3.1-8b-instant").save("bench-spend-cheap", overwrite=True)
    LocalFileSystem(basepath=storage).save("bench-spend", overwrite=True)
    ParallelEnrichment(
        api_key=SecretStr("par-bench-spend-key"),
        base_url=url,
        poll_slice_seconds=5,
        concurrency_tag="bench-spend-parallel",
        storage_block="local-file-system/bench-spend",
    ).save("bench-spend", overwrite=True)
    WorkersAIEmbeddings(
        account_id="bench",
        api_token=SecretStr("cf-bench-spend-key"),
        base_url=url,
        concurrency_tag="bench-spend-workers",
    ).save("bench-spend", overwrite=True)
    clear_block_cache()


def _companies(n: int) -> list[int]:
    from blocks.loading import load_database
    from core.synthetic import seed_companies

    with load_database("default").session() as session:
        return seed_companies(session, n, seed=int(time.time() * 1000) % 1_000_000, duplicate_fraction=0.0)


def _spend(bulk_action_id: int) -> int:
    from blocks.loading import load_database
    from core.spend import action_spend

    with load_database("default").read_session() as session:
        return action_spend(session, bulk_action_id)


def _billed(sandbox: Any, provider: str = "groq") -> int:
    return int(sandbox.stats(log=False)["providers"][provider]["list_price_nanousd"])


def _repeated_answers(sandbox: Any, names: list[str]) -> int:
    """Answers billed more than once: per company, calls past the ten criteria (no faults: no repair calls)."""
    counts = Counter({name: len(sandbox.requests(provider="groq", contains=name)) for name in names})
    return sum(max(0, count - 10) for count in counts.values())


def _names(ids: list[int]) -> list[str]:
    from sqlalchemy import select

    from blocks.loading import load_database
    from core.schema import Company

    with load_database("default").read_session() as session:
        return list(session.scalars(select(Company.name).where(Company.id.in_(ids))))


def _first_estimate(sandbox: Any) -> dict[str, float]:
    """Estimate before the ledger has seen the model, then run: how far the no-history defaults are."""
    from flows.score_llm_adoption import score_llm_adoption

    ids = _companies(30)
    report: Any = score_llm_adoption(company_ids=ids, provider=PREMIUM, dry_run=True)
    summary: Any = score_llm_adoption(company_ids=ids, provider=PREMIUM)
    return {"estimate_vs_actual_cost_first": report.estimated_cost_nanousd / _spend(summary.bulk_action_id)}


def _cost_vs_list_price(sandbox: Any) -> dict[str, float]:
    from flows.enrich_companies import enrich_companies
    from flows.generate_embeddings import generate_embeddings
    from flows.score_llm_adoption import score_llm_adoption

    sandbox.reset()
    recorded = 0
    scored: Any = score_llm_adoption(company_ids=_companies(60), provider=PREMIUM)
    enriched: Any = enrich_companies(company_ids=_companies(20), provider=ENRICH)
    embedded: Any = generate_embeddings(company_ids=_companies(200), provider=EMBED)
    for summary in (scored, enriched, embedded):
        recorded += _spend(summary.bulk_action_id)
    billed = sum(_billed(sandbox, provider) for provider in ("groq", "parallel", "workers_ai"))
    logger.warning("spend: recorded %d nano-USD, the sandbox billed %d", recorded, billed)
    return {"cost_vs_list_price": recorded / billed}


def _budget_stop(sandbox: Any) -> tuple[dict[str, float], int]:
    from core.pricing import nano_to_usd, usd_to_nano
    from flows.score_llm_adoption import score_llm_adoption

    sandbox.reset()
    ids = _companies(120)
    budget = 0.03  # about 70 of the 120 companies
    paused: Any = score_llm_adoption(company_ids=ids, provider=PREMIUM, budget_usd=budget, return_state=True)
    bulk_action_id = _latest_action()
    billed, spent = _billed(sandbox), _spend(bulk_action_id)
    status = _status(bulk_action_id)
    if status != "paused":
        raise RuntimeError(f"the budget should have paused the action, it is {status}: {paused}")
    resumed: Any = score_llm_adoption(bulk_action_id=bulk_action_id, provider=PREMIUM, budget_usd=1.0)
    if resumed.status != "completed":
        raise RuntimeError(f"the resumed action did not complete: {resumed}")
    figures = {
        "budget_overspend_usd": nano_to_usd(max(0, billed - usd_to_nano(budget))),
        "budget_unused_fraction": (usd_to_nano(budget) - spent) / usd_to_nano(budget),
    }
    return figures, _repeated_answers(sandbox, _names(ids))


def _pause_and_resume(sandbox: Any) -> int:
    """Pause on request mid-way (the pause flow, as the UI runs it), then resume from the checkpoints."""
    from flows.pause_bulk_action import pause_bulk_action
    from flows.score_llm_adoption import score_llm_adoption

    sandbox.reset()
    sandbox.configure("groq", latency_ms=20)
    ids = _companies(60)
    before = _latest_action()
    done = threading.Event()
    thread = threading.Thread(
        target=lambda: (score_llm_adoption(company_ids=ids, provider=PREMIUM), done.set()), daemon=True
    )
    thread.start()
    while _latest_action() == before or _succeeded(_latest_action()) < 9:
        if done.is_set():
            raise RuntimeError("the action finished before it could be paused")
        time.sleep(0.1)  # polling the database for the moment to pause; the action runs on its own
    bulk_action_id = _latest_action()
    pause_bulk_action(bulk_action_id)
    thread.join()
    if _status(bulk_action_id) != "paused":
        raise RuntimeError(f"the action should be paused, it is {_status(bulk_action_id)}")
    score_llm_adoption(bulk_action_id=bulk_action_id, provider=PREMIUM)
    sandbox.configure("groq", latency_ms=5)
    return _repeated_answers(sandbox, _names(ids))


def _tiered(sandbox: Any) -> dict[str, float]:
    from sqlalchemy import select

    from blocks.loading import load_database
    from core.rubric import TOTAL_CRITERION
    from core.schema import CompanyScore
    from core.tiering import EscalationRule
    from flows.score_llm_adoption import score_llm_adoption

    rule = EscalationRule()
    ids = _companies(TIER_SAMPLE)
    premium: Any = score_llm_adoption(company_ids=ids, provider=PREMIUM)

    def totals(bulk_action_id: int) -> dict[int, tuple[int | None, int]]:
        with load_database("default").read_session() as session:
            rows = session.execute(
                select(CompanyScore.company_id, CompanyScore.tier, CompanyScore.score).where(
                    CompanyScore.bulk_action_id == bulk_action_id, CompanyScore.criterion == TOTAL_CRITERION
                )
            ).all()
        final: dict[int, tuple[int | None, int]] = {}
        for company, tier, score in rows:
            if company not in final or (tier or 0) > (final[company][0] or 0):
                final[company] = (tier, score)
        return final

    premium_totals = {company: score for company, (_, score) in totals(premium.bulk_action_id).items()}
    tiered: Any = score_llm_adoption(company_ids=ids, provider=PREMIUM, tiers=[CHEAP, PREMIUM], rescore=True)
    tiered_totals = totals(tiered.bulk_action_id)
    same = sum(rule.band(premium_totals[c]) == rule.band(score) for c, (_, score) in tiered_totals.items())
    escalated = sum(1 for tier, _ in tiered_totals.values() if tier == 1)
    logger.warning("tiered: %d of %d companies went up to the premium tier", escalated, len(ids))
    _margin_table(tiered.bulk_action_id, premium_totals)
    return {
        "tiered_cost_vs_premium": _spend(tiered.bulk_action_id) / _spend(premium.bulk_action_id),
        "tiered_agreement": same / len(ids),
        "tiered_escalated_fraction": escalated / len(ids),
    }


def _margin_table(bulk_action_id: int, premium_totals: dict[int, int]) -> None:
    """What other margins would have escalated and agreed, from the cheap tier's stored totals (no new calls)."""
    from sqlalchemy import select

    from blocks.loading import load_database
    from core.rubric import TOTAL_CRITERION
    from core.schema import CompanyScore
    from core.tiering import EscalationRule

    with load_database("default").read_session() as session:
        cheap = dict(
            session.execute(
                select(CompanyScore.company_id, CompanyScore.score).where(
                    CompanyScore.bulk_action_id == bulk_action_id,
                    CompanyScore.criterion == TOTAL_CRITERION,
                    CompanyScore.tier == 0,
                )
            )
            .tuples()
            .all()
        )
    for margin in range(7):
        rule = EscalationRule(margin=margin)
        up = {c for c, total in cheap.items() if rule.uncertainty(total) is not None}
        agree = sum(c in up or rule.band(total) == rule.band(premium_totals[c]) for c, total in cheap.items())
        logger.warning(
            "margin %d: %.0f%% escalated, %.1f%% in the premium band",
            margin,
            100 * len(up) / len(cheap),
            100 * agree / len(cheap),
        )


def _estimate_vs_actual(sandbox: Any) -> dict[str, float]:
    from flows.score_llm_adoption import score_llm_adoption

    ids = _companies(100)
    report: Any = score_llm_adoption(company_ids=ids, provider=PREMIUM, dry_run=True)
    summary: Any = score_llm_adoption(company_ids=ids, provider=PREMIUM)
    return {"estimate_vs_actual_cost": report.estimated_cost_nanousd / _spend(summary.bulk_action_id)}


def _latest_action() -> int:
    from sqlalchemy import func, select

    from blocks.loading import load_database
    from core.schema import BulkAction

    with load_database("default").read_session() as session:
        return int(session.scalar(select(func.max(BulkAction.id))) or 0)


def _record(bulk_action_id: int) -> Any:
    from blocks.loading import load_database
    from core.schema import BulkAction

    with load_database("default").read_session() as session:
        return session.get(BulkAction, bulk_action_id)


def _status(bulk_action_id: int) -> str:
    record = _record(bulk_action_id)
    return str(record.status.value) if record is not None else "missing"


def _succeeded(bulk_action_id: int) -> int:
    record = _record(bulk_action_id)
    return int(record.succeeded) if record is not None else 0


if __name__ == "__main__":
    from bench.environment import prefect_environment

    with prefect_environment():
        print(run())
