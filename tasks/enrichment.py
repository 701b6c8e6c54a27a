"""The ``enrich_companies`` batch handler: one Parallel task run per company, five companies per batch.

The five companies of a batch go side by side, one thread each: create the run, then wait for it.  So the
five runs are all created at once and are active together at the provider while the batch holds a single
Prefect slot.  Hence the sizing rule (see ``blocks.enrichment``): ``tag:<concurrency_tag>`` counts *batches*,
each batch has up to 5 runs active, so the limit must be at most ``floor(active-run cap / 5)``.  Each thread
waits for its own run rather than for all creations first: a creation held back (429, or a
``max_active_runs`` slot) then delays nobody else, and a run slot is only ever held by a run being waited
on, so batches can never deadlock on slots.

Per company, in order: the raw result goes to ``companies/{id}/parallel-scrape.json`` (kept even when its content
turns out invalid, for review), the merged profile to ``companies/{id}/profile.json``, then the company row gets
``activity_description``, ``ownership_type``, ``enrichment_status`` and ``enriched_at``.  Every company gets its
own outcome: a run that failed (or returned unusable output) is ``FAILED_PERMANENT`` and a dead job that is not
retryable; one that still fails transiently after the client's retries is ``FAILED_RETRYABLE``.  The handler
never raises for a company, so one bad company can neither fail nor re-run (and re-pay) its batch-mates.

Never paying twice: each created run id is journaled in ``companies/{id}/parallel-run.json`` with the bulk action
id.  If the same bulk action reaches the company again (a Prefect retry of the batch after a database error, or
a rerun after a crash mid-wait), the handler waits on the journaled run (result retrieval is free) instead of
creating a new one.  A new bulk action always does fresh research.

Money: every run creation goes through the batch's meter.  The processor's price (``PriceBook.run_cost``) is
reserved before the run is created and held until the run ends (up to an hour: the run's price is its worst
case), then settled as one ledger row for the company (provider ``parallel``, model ``processor <name>``,
e.g. ``processor base``) unless the run was seen failing: failed runs are free, so a ``TaskRunFailedError``,
or a create that raised, gives the reservation back.  A run whose end was not seen (the wait timed out or
lost the connection) is settled as billed: the provider bills it when it completes, and a rerun that picks
it up from the journal pays nothing again.  Waiting on a journaled run is never metered: this bulk action
paid for it when it was created.

Budgets: the threads share the batch's meter (thread-safe).  A company whose run a budget refused is left
without an outcome (it stays pending, it has not failed); its batch-mates' threads finish, their companies
are recorded, and the handler then raises the ``BudgetReachedError`` with their results in ``completed``, so
``process_batch`` records them and the action pauses.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from prefect import get_run_logger
from sqlalchemy import update

from blocks.enrichment import ParallelEnrichment
from blocks.loading import load_provider_block
from blocks.storage import load_storage, read_json, write_json
from core.errors import ActionStopError, ConfigurationError, ProviderError, ProviderRequestError, TaskRunFailedError
from core.pricing import UnpricedModelError
from core.schema import Company, EnrichmentStatus, OutcomeStatus, utcnow
from core.spend import LedgerEntry
from core.store import CompanyResult, load_companies
from providers.parallel import (
    ENRICHMENT_OUTPUT_SCHEMA,
    PROVIDER,
    CompanyEnrichment,
    ParallelClient,
    TaskRunResult,
    enrichment_input,
    parse_enrichment,
)
from tasks.batch import BatchContext, failure, register_handler
from tasks.metering import Meter

RUN_JOURNAL = "companies/{id}/parallel-run.json"
RAW_RESULT = "companies/{id}/parallel-scrape.json"
PROFILE = "companies/{id}/profile.json"
OWNERSHIP_COLUMN_CHARS = 100
NOT_FOUND = 404

logger = logging.getLogger(__name__)  # for worker threads, which have no Prefect run context


@dataclass(frozen=True)
class _Company:
    """The fields a run and a profile need, copied out of the session (worker threads must not touch it)."""

    id: int
    name: str
    website: str | None
    industry: str | None
    nace_code: str | None
    country: str | None
    activity_description: str | None
    ownership_type: str | None

    @classmethod
    def of(cls, row: Company) -> _Company:
        return cls(
            row.id,
            row.name,
            row.website,
            row.industry,
            row.nace_code,
            row.country,
            row.activity_description,
            row.ownership_type,
        )


@dataclass
class _Work:
    """One company's way through the batch."""

    company: _Company
    run_id: str | None = None
    runs_created: int = 0
    result: CompanyResult | None = None
    columns: dict[str, Any] | None = None
    #: a budget refused this company's run: no outcome, the company stays pending
    stop: ActionStopError | None = None


@register_handler("enrich_companies")
def enrich_batch(ctx: BatchContext, company_ids: Sequence[int]) -> list[CompanyResult]:
    block = load_provider_block(ctx.provider)
    if not isinstance(block, ParallelEnrichment):
        raise ConfigurationError(f"provider {ctx.provider!r} is not a parallel-enrichment block")
    load_storage(block.storage_block)  # a storage misconfiguration stops the batch before any run is paid for
    # built here, not in the run threads: the meter reads the flow run's id from this thread's Prefect context
    job = _Job(ctx, block.get_client(), block.storage_block, ctx.meter)
    with ctx.database.read_session() as session:
        found = {c.id: _Company.of(c) for c in load_companies(session, company_ids)}
    gone = [
        CompanyResult(cid, OutcomeStatus.FAILED, "company no longer exists", 0, "CompanyNotFound", False)
        for cid in company_ids
        if cid not in found
    ]
    work = [_Work(found[cid]) for cid in company_ids if cid in found]
    done: list[_Work] = []
    if work:
        with ThreadPoolExecutor(max_workers=len(work), thread_name_prefix="parallel-run") as pool:
            list(pool.map(job.run, work))
        ctx.count_call(sum(w.runs_created for w in work))
        done = [w for w in work if w.result is not None]
        _update_companies(ctx, done)
    results = gone + [w.result for w in done if w.result is not None]
    failed = sum(r.status is OutcomeStatus.FAILED for r in results)
    get_run_logger().info(
        "enriched %d of %d companies (%d runs created)", len(results) - failed, len(results), ctx.provider_calls
    )
    stop = next((w.stop for w in work if w.stop is not None), None)
    if stop is not None:
        stop.completed = results  # recorded by the batch before it stops; the refused companies stay pending
        raise stop
    return results


class _Job:
    """What every company of the batch shares: the bulk action, the client, the storage block, the meter."""

    def __init__(self, ctx: BatchContext, client: ParallelClient, storage: str, meter: Meter) -> None:
        self.bulk_action_id = ctx.bulk_action_id
        self.client = client
        self.storage = storage
        self.meter = meter
        self.price, self.unpriced = _run_price(meter, client.processor)

    def run(self, work: _Work) -> None:
        try:
            self._research(work)
        except ActionStopError as stop:
            work.stop = stop  # not the company's fault: it gets no outcome and waits for the resumed action
        except Exception as error:  # noqa: BLE001 - isolated: this company fails, its batch-mates go on
            work.result = _failed(work.company.id, error)
        finally:
            if work.run_id is not None:
                self.client.abandon(work.run_id)  # no-op after a wait; frees a run slot if the wait never came

    def _research(self, work: _Work) -> None:
        """Wait on the run this bulk action already paid for, or pay for a new one; store what it found."""
        journal = read_json(self.storage, RUN_JOURNAL.format(id=work.company.id))
        if isinstance(journal, dict) and journal.get("bulk_action_id") == self.bulk_action_id:
            work.run_id = str(journal["run_id"])
            try:
                result = self.client.wait_result(work.run_id)  # paid for when it was created
            except ProviderRequestError as error:
                if error.status_code != NOT_FOUND:
                    raise
                result = self._paid_run(work)  # the journaled run is gone at the provider: research afresh
        else:
            result = self._paid_run(work)
        self._store(work, result)

    def _paid_run(self, work: _Work) -> TaskRunResult:
        """Create a run and wait for it, its price reserved meanwhile; settled unless the run was seen failing."""
        with self.meter.call(PROVIDER, self.price) as bill:
            run_id = self._create(work)
            try:
                result = self.client.wait_result(run_id)
            except TaskRunFailedError:
                raise  # failed runs are free: the empty bill gives the reservation back
            except Exception:
                bill.add(self._charge(work))  # its end was not seen: the provider bills it when it completes
                raise
            bill.add(self._charge(work))
        return result

    def _charge(self, work: _Work) -> LedgerEntry:
        return LedgerEntry(
            company_id=work.company.id,
            provider=PROVIDER,
            model=f"processor {self.client.processor}",
            cost_nanousd=self.price,
            unpriced=self.unpriced,
        )

    def _create(self, work: _Work) -> str:
        company = work.company
        run_id = self.client.create_run(
            enrichment_input(company.name, company.website, company.country),
            ENRICHMENT_OUTPUT_SCHEMA,
            metadata={"company_id": str(company.id), "bulk_action_id": str(self.bulk_action_id)},
        )
        work.run_id = run_id
        work.runs_created += 1
        journal = {"bulk_action_id": self.bulk_action_id, "run_id": run_id, "created_at": utcnow().isoformat()}
        try:
            write_json(self.storage, RUN_JOURNAL.format(id=company.id), journal)
        except Exception:  # noqa: BLE001 - the journal only saves money on reruns; the paid run must be awaited
            logger.warning("could not journal run %s of company %d", run_id, company.id, exc_info=True)
        return run_id

    def _store(self, work: _Work, result: TaskRunResult) -> None:
        company = work.company
        raw_path = RAW_RESULT.format(id=company.id)
        write_json(self.storage, raw_path, result.raw)  # first: kept for review even if the content is invalid
        enrichment = parse_enrichment(result.content)
        source = {
            "provider": self.client.provider,
            "processor": self.client.processor,
            "run_id": result.run_id,
            "bulk_action_id": self.bulk_action_id,
            "raw": raw_path,
        }
        profile, work.columns = _merge(company, enrichment, source)
        write_json(self.storage, PROFILE.format(id=company.id), profile)
        work.result = CompanyResult(company.id, OutcomeStatus.SUCCEEDED, detail=f"run {result.run_id}")


def _run_price(meter: Meter, processor: str) -> tuple[int, bool]:
    """One completed run's price and whether it is unpriced (a processor without a price, ``allow_unpriced``)."""
    try:
        return meter.prices.run_cost(processor), False
    except UnpricedModelError:
        if not meter.allow_unpriced:
            raise
        return 0, True


def _merge(
    company: _Company, enrichment: CompanyEnrichment, source: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The merged profile and the company's new columns.

    What the run could not tell (an empty activity, ownership "unknown") keeps the value the database had.
    """
    enriched_at = utcnow()
    activity = enrichment.activity_description.strip() or company.activity_description
    label = enrichment.ownership_type.strip()
    ownership = label[:OWNERSHIP_COLUMN_CHARS] if label not in ("", "unknown") else company.ownership_type
    found = enrichment.to_json()
    profile = {
        "id": company.id,
        "name": company.name,
        "website": company.website,
        "industry": company.industry,
        "nace_code": company.nace_code,
        "country": company.country,
        **found,
        "activity_description": activity,
        "ownership": {**found["ownership"], "type": ownership},
        "source": source,
        "enriched_at": enriched_at.isoformat(),
    }
    columns = {
        "activity_description": activity,
        "ownership_type": ownership,
        "enrichment_status": EnrichmentStatus.ENRICHED,
        "enriched_at": enriched_at,
    }
    return profile, columns


def _failed(company_id: int, error: Exception) -> CompanyResult:
    """A company's failure; storage and network trouble outside the provider client is worth another try."""
    result = failure(company_id, error, getattr(error, "attempts", 1))
    if isinstance(error, OSError) and not isinstance(error, ProviderError):
        result = replace(result, retryable=True)
    return result


def _update_companies(ctx: BatchContext, work: list[_Work]) -> None:
    """One transaction for the batch; a failure's status says whether trying again could help."""
    if not work:
        return
    with ctx.database.session() as session:
        for item in work:
            values = item.columns
            if values is None:
                retryable = item.result is not None and item.result.retryable
                status = EnrichmentStatus.FAILED_RETRYABLE if retryable else EnrichmentStatus.FAILED_PERMANENT
                values = {"enrichment_status": status}
            session.execute(update(Company).where(Company.id == item.company.id).values(**values))
