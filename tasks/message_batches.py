"""The three phases of LLM reclassify on Anthropic Message Batches: submit, poll and stage, post-process.

Each phase is idempotent against the database (``core.message_batches`` states the rules), which is where its
checkpoints live: a Prefect result cache cannot know that a POST was in flight when the process died, a row
written before the POST can.  The flow (``flows.reclassify_llm``) calls the phases in rounds and never holds a
worker while the provider works.

* ``submit``: up to 100 eligible companies per sub-batch, one request each; companies that need no paid call
  (gone, merged, current, nothing to classify) are settled first, without one.  The worst case is reserved
  against every budget and the intent written in one transaction before the POST; the batch id right after it.
* ``poll_and_stage``: ended batches' result lines go to the staging table with their spend settled.
* ``apply_staged``: staged results in chunks of 500, validated against the taxonomy and applied with history,
  outcomes and the staging rows' deletion in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from blocks.database import CompanyDatabase
from core.classify_prompt import CompanyText
from core.errors import ProviderError, ProviderRequestError, RateLimitedError
from core.failpoints import failpoint
from core.history import apply_changes
from core.message_batch_tables import MessageBatch
from core.message_batches import (
    CLOCK_SKEW,
    Settlement,
    StagedLine,
    abandon,
    clear_staged,
    known_batch_ids,
    pending_statuses,
    record_intent,
    record_orphans,
    record_submitted,
    reservation_accounts,
    stage,
    staged_chunk,
    to_poll,
    unrecorded,
    unsubmitted,
    update_counts,
)
from core.reclassify import CLASSIFY_COLUMNS, ClassifyInput
from core.reclassify_llm import (
    PROVIDER,
    SUB_BATCH_SIZE,
    LLMOptions,
    company_of,
    interpret,
    ledger_entry,
    request_for,
    worst_case_nanousd,
)
from core.schema import Company, CompanyStatus, OutcomeStatus, utcnow
from core.spend import reserve
from core.store import CompanyResult, flag_for_review, record_results
from providers.anthropic_batches import MessageBatchesClient, ResultLine
from tasks.metering import Meter

APPLY_CHUNK = 500
ACTION = "reclassify"


@dataclass
class PhaseReport:
    """What one pass of a phase did (the flow adds these up for progress and the summary)."""

    requests: int = 0
    #: sub-batches submitted (by ``submit``) or staged (by ``poll_and_stage``)
    batches: int = 0
    staged: int = 0
    applied: int = 0
    duplicates: int = 0
    #: companies refused before any request (nothing to classify from): failed and flagged for review
    invalid_input: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class MessageBatchJob:
    """One reclassify's view of its batches: the database, the Anthropic client and the options."""

    database: CompanyDatabase
    bulk_action_id: int
    client: MessageBatchesClient
    options: LLMOptions
    meter: Meter
    force: bool = False
    #: a lost POST is looked for only once this old: the provider may still be creating the batch before that
    resolve_after_seconds: float = 60.0

    # --- submit -----------------------------------------------------------------------------------------------

    def submit(self, should_stop: Callable[[], bool]) -> PhaseReport:
        """Submit sub-batches until every eligible company is in one, ``should_stop`` says so, or a budget stops
        it (``BudgetReachedError`` propagates: what was submitted stays submitted)."""
        report = PhaseReport()
        while not should_stop():
            with self.database.read_session() as session:
                ids = unsubmitted(session, self.bulk_action_id, SUB_BATCH_SIZE)
            if not ids:
                break
            eligible, settled = self._screen(ids)
            if settled:
                refused = {r.company_id: r.detail or "" for r in settled if r.error_class == "InvalidInputError"}
                with self.database.session() as session:
                    record_results(session, self.bulk_action_id, ACTION, settled)
                    flag_for_review(session, refused)  # as the engine does with invalid input
                report.invalid_input += len(refused)
            if eligible:
                stop = self._submit_one(eligible, report)
                if stop:
                    break
        return report

    def _screen(self, ids: Sequence[int]) -> tuple[list[tuple[ClassifyInput, CompanyText]], list[CompanyResult]]:
        """The companies worth a paid request, and the outcomes of the others (no request made for them)."""
        with self.database.read_session() as session:
            rows = session.execute(
                select(*CLASSIFY_COLUMNS, Company.website, Company.status).where(Company.id.in_(list(ids)))
            ).all()
        found = {row[0]: row for row in rows}
        eligible: list[tuple[ClassifyInput, CompanyText]] = []
        settled: list[CompanyResult] = []
        for cid in ids:
            row = found.get(cid)
            if row is None:
                settled.append(_gone(cid, attempts=0))
                continue
            current = ClassifyInput(*row[: len(CLASSIFY_COLUMNS)])  # type: ignore[arg-type]
            website, status = row[-2], CompanyStatus(str(row[-1]))
            text = CompanyText(current.name, current.nace_code, current.industry, current.activity_description, website)
            if status is not CompanyStatus.ACTIVE:
                settled.append(CompanyResult(cid, OutcomeStatus.SKIPPED, f"company is {status.value}", 0))
            elif not self.force and not current.outdated():
                settled.append(CompanyResult(cid, OutcomeStatus.SKIPPED, "classification is current", 0))
            elif text.is_empty():
                settled.append(
                    CompanyResult(
                        cid, OutcomeStatus.FAILED, "invalid input: nothing to classify from", 0, "InvalidInputError"
                    )
                )
            else:
                eligible.append((current, text))
        return eligible, settled

    def _submit_one(self, eligible: list[tuple[ClassifyInput, CompanyText]], report: PhaseReport) -> bool:
        """POST one sub-batch; True when submitting should stop for this round (the provider refused for now)."""
        requests = [request_for(self.bulk_action_id, row.id, text, self.options) for row, text in eligible]
        worst = worst_case_nanousd(requests, self.options, self.meter.prices)
        charge = self.meter.charge(PROVIDER)
        with self.database.session() as session:  # the reservation and the intent commit together, or neither
            reservation = reserve(session, charge, worst, bulk_action_id=self.bulk_action_id, flow_run_id=None)
            row_id = record_intent(session, self.bulk_action_id, [row.id for row, _ in eligible], reservation)
        failpoint("reclassify.before_post")
        try:
            state = self.client.create(requests)
        except (ProviderRequestError, RateLimitedError) as refused:  # a 4xx or a 429: the provider made no batch
            with self.database.session() as session:
                row = session.get(MessageBatch, row_id)
                assert row is not None
                abandon(session, row, f"refused: {refused}")
            if isinstance(refused, RateLimitedError):
                report.notes.append(f"submitting paused for this round: {refused}")
                return True
            raise
        except ProviderError as unknown:  # a timeout, a dropped connection, a 5xx: a batch may exist
            report.notes.append(f"sub-batch {row_id}: the POST's answer was lost ({unknown}); resolved later")
            return True
        failpoint("reclassify.after_post")
        with self.database.session() as session:
            record_submitted(session, row_id, state.batch_id, state.request_counts)
        report.requests += len(requests)
        report.batches += 1
        return False

    # --- recovery of lost POSTs -------------------------------------------------------------------------------

    def resolve_unrecorded(self) -> PhaseReport:
        """Decide the fate of every sub-batch whose POST answer never got recorded (see ``core.message_batches``)."""
        report = PhaseReport()
        with self.database.read_session() as session:
            rows = unrecorded(session, self.bulk_action_id)
        now = utcnow()
        for row in rows:
            age = (now - row.requested_at).total_seconds()
            if age < self.resolve_after_seconds:
                report.notes.append(f"sub-batch {row.id}: its POST is {age:.0f} s old; looked for later")
                continue
            since = row.requested_at - CLOCK_SKEW
            with self.database.read_session() as session:
                known = known_batch_ids(session, since)
            candidates = [
                batch
                for batch in self.client.recent(since)
                if batch.batch_id not in known and batch.total == row.request_count
            ]
            with self.database.session() as session:
                fresh = session.get(MessageBatch, row.id)
                assert fresh is not None
                if len(candidates) == 1:
                    found = candidates[0]
                    note = "adopted after a crash between the POST and recording its id"
                    record_submitted(session, row.id, found.batch_id, found.request_counts, note)
                    report.notes.append(f"sub-batch {row.id}: {note} ({found.batch_id})")
                elif not candidates:
                    abandon(session, fresh, "the POST made no batch (none found after a crash); resubmitted")
                    report.notes.append(f"sub-batch {row.id}: its POST made no batch; its companies go again")
                else:
                    record_orphans(session, fresh, [c.batch_id for c in candidates])
                    abandon(session, fresh, f"{len(candidates)} possible duplicates canceled; resubmitted")
                    report.notes.append(f"sub-batch {row.id}: {len(candidates)} possible duplicates, canceled")
            for candidate in candidates if len(candidates) > 1 else []:
                self.client.cancel(candidate.batch_id)
        return report

    # --- poll and stage ---------------------------------------------------------------------------------------

    def poll_and_stage(self) -> PhaseReport:
        """Poll every batch in progress once; stage the ones that ended."""
        report = PhaseReport()
        with self.database.read_session() as session:
            rows = to_poll(session, self.bulk_action_id)
        for row in rows:
            assert row.provider_batch_id is not None
            state = self.client.retrieve(row.provider_batch_id)
            if not state.ended:
                if state.request_counts != row.request_counts:
                    with self.database.session() as session:
                        update_counts(session, row.id, state.request_counts)
                continue
            lines = self.client.results(row.provider_batch_id)
            report.staged += self._stage(row, lines, state.request_counts)
            report.batches += 1
        return report

    def _stage(self, row: MessageBatch, lines: Sequence[ResultLine], counts: dict[str, int]) -> int:
        ours: list[StagedLine] = []
        for line in lines:
            cid = company_of(line.custom_id, self.bulk_action_id)
            if cid is not None:
                ours.append(StagedLine(cid, line.kind, _payload(line)))
        prices = self.meter.prices
        entries = [ledger_entry(s.company_id, s.payload, prices) for s in ours if s.result_type == "succeeded"]
        with self.database.session() as session:
            accounts = reservation_accounts(session, row.reservation_id) or self.meter.charge(PROVIDER).keys
            settlement = Settlement(accounts, entries, ACTION, self.meter.created_by)
            staged = stage(session, row, ours, counts, settlement)
            failpoint("reclassify.staging")  # dies before the commit: nothing of this batch is staged
        return staged

    # --- post-process -----------------------------------------------------------------------------------------

    def apply_staged(self) -> PhaseReport:
        """Apply every staged result, 500 at a time, each chunk in one transaction."""
        report = PhaseReport()
        while True:
            with self.database.session() as session:
                chunk = staged_chunk(session, self.bulk_action_id, APPLY_CHUNK)
                if not chunk:
                    break
                self._apply_chunk(session, chunk, report)
                failpoint("reclassify.applying")  # dies before the commit: the chunk is neither applied nor cleared
        return report

    def _apply_chunk(self, session: Session, chunk: Sequence[Any], report: PhaseReport) -> None:
        ids = sorted({staged.company_id for staged in chunk})
        pending = pending_statuses(session, self.bulk_action_id, ids)
        rows = {
            row[0]: ClassifyInput(*row)  # type: ignore[call-arg]
            for row in session.execute(select(*CLASSIFY_COLUMNS).where(Company.id.in_(ids))).all()
        }
        results: list[CompanyResult] = []
        changes: dict[int, dict[str, Any]] = {}
        for staged in chunk:
            cid = staged.company_id
            if cid not in pending or cid not in rows:
                report.duplicates += cid not in pending
                if cid in pending:  # deleted since it was submitted
                    results.append(_gone(cid, attempts=1))
                    pending.discard(cid)
                continue
            pending.discard(cid)  # a second result for it in this chunk is a duplicate
            meaning = interpret(rows[cid], staged.result_type, staged.payload, self.options)
            results.append(meaning.result)
            if meaning.values:
                changes[cid] = meaning.values
        apply_changes(session, changes, self.bulk_action_id)
        classified = [cid for cid, values in changes.items() if "taxonomy_version" in values]
        if classified:
            session.execute(update(Company).where(Company.id.in_(classified)).values(classified_at=utcnow()))
        record_results(session, self.bulk_action_id, ACTION, results)
        clear_staged(session, [staged.id for staged in chunk])
        report.applied += len(results)


def _gone(company_id: int, *, attempts: int) -> CompanyResult:
    return CompanyResult(company_id, OutcomeStatus.FAILED, "the company no longer exists", attempts, "CompanyGone")


def _payload(line: ResultLine) -> dict[str, Any]:
    if line.kind == "succeeded":
        return {
            "text": line.text,
            "model": line.model,
            "input_tokens": line.input_tokens,
            "output_tokens": line.output_tokens,
            "web_search_requests": line.web_search_requests,
        }
    if line.kind == "errored":
        return {"error_type": line.error_type, "error_message": line.error_message}
    return {}
